//! One segment: a `.log` file of whole batches starting at `base_offset`, with its sparse indexes in memory.

use crate::disk::DiskFile;
use crate::index::{OffsetIndex, TimeIndex};
use bytes::Bytes;
use spate_core::batch::{peek_frame, BatchHeader, BatchView};
use spate_core::ErrorCode;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";

/// Kafka's segment file name: the base offset as 20 zero-padded digits.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// The base offset named by a `.log` file name, if it is one of ours.
pub(crate) fn parse_segment_name(name: &str) -> Option<i64> {
    let digits = name.strip_suffix(LOG_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) struct Segment<F> {
    pub base_offset: i64,
    pub file: Rc<F>,
    /// Bytes of whole batches (the logical end; the file may be longer, preallocated with zeros).
    pub size: u64,
    /// The offset after the last batch; `base_offset` when empty.
    pub next_offset: i64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    /// Largest batch max timestamp, -1 when empty.
    pub max_timestamp: i64,
    /// Last offset of the batch that holds `max_timestamp`.
    pub max_timestamp_offset: i64,
    bytes_since_index_entry: u64,
    /// Max timestamp of the first batch, or the creation time: what `segment.ms` is measured from.
    pub roll_clock_start_ms: Option<i64>,
    pub created_ms: i64,
    /// File size reserved ahead of the writer (active segment only).
    pub allocated_bytes: u64,
}

impl<F: DiskFile> Segment<F> {
    pub fn new(base_offset: i64, file: F, created_ms: i64) -> Self {
        Segment {
            base_offset,
            file: Rc::new(file),
            size: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            max_timestamp: -1,
            max_timestamp_offset: -1,
            bytes_since_index_entry: 0,
            roll_clock_start_ms: None,
            created_ms,
            allocated_bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Offsets inside a segment are stored relative to its base and must fit in 32 bits.
    pub fn relative(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!((0..=i64::from(u32::MAX)).contains(&relative), "offset {offset} outside segment {}", self.base_offset);
        relative as u32
    }

    /// Records that the batch `header` was placed at `position` (== the old size): sizes, offsets, timestamps and
    /// the sparse index entries, as Kafka's `LogSegment.append` does.
    pub fn note_batch(&mut self, header: &BatchHeader, position: u64, index_interval_bytes: u32) {
        assert_eq!(position, self.size, "batches are appended at the end");
        assert!(header.base_offset >= self.next_offset, "offsets only grow");
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.max_timestamp_offset = header.last_offset();
        }
        if self.roll_clock_start_ms.is_none() {
            self.roll_clock_start_ms = Some(header.max_timestamp);
        }
        if self.bytes_since_index_entry > u64::from(index_interval_bytes) {
            let relative = self.relative(header.last_offset());
            self.offset_index.push(relative, position as u32);
            self.time_index.maybe_push(self.max_timestamp, self.relative(self.max_timestamp_offset));
            self.bytes_since_index_entry = 0;
        }
        let len = header.total_len() as u64;
        self.bytes_since_index_entry += len;
        self.size += len;
        self.next_offset = header.next_offset();
    }

    /// Adds the final time-index entry Kafka writes when a segment stops being active.
    pub fn finish_time_index(&mut self) {
        if self.max_timestamp >= 0 {
            let relative = self.relative(self.max_timestamp_offset);
            self.time_index.maybe_push(self.max_timestamp, relative);
        }
    }
}

/// Why a scan stopped before its end.
#[derive(Debug)]
pub(crate) enum ScanStop {
    Io(io::Error),
    /// No valid batch at `position`: torn tail, zeros, or corruption.
    Invalid {
        position: u64,
        error: ErrorCode,
    },
}

/// A batch found by a scan.
pub(crate) struct ScannedBatch {
    pub position: u64,
    pub header: BatchHeader,
    pub bytes: Bytes,
}

/// Walks the batches of a segment file from `position` to `end`, reading in chunks of at least
/// `chunk_bytes` and handing out zero-copy slices of them.
pub(crate) struct Scanner<'a, F> {
    file: &'a F,
    position: u64,
    end: u64,
    chunk_bytes: usize,
    buffer: Bytes,
    buffer_position: u64,
    verify_crc: bool,
}

impl<'a, F: DiskFile> Scanner<'a, F> {
    pub fn new(file: &'a F, position: u64, end: u64, chunk_bytes: usize, verify_crc: bool) -> Self {
        Scanner { file, position, end, chunk_bytes, buffer: Bytes::new(), buffer_position: position, verify_crc }
    }

    /// Makes `len` bytes at the current position available in the buffer, if the file has them before `end`.
    async fn fill(&mut self, len: usize) -> Result<bool, io::Error> {
        let buffered_end = self.buffer_position + self.buffer.len() as u64;
        if self.position >= self.buffer_position && self.position + len as u64 <= buffered_end {
            return Ok(true);
        }
        if self.position + len as u64 > self.end {
            return Ok(false);
        }
        let want = (self.end - self.position).min(len.max(self.chunk_bytes) as u64) as usize;
        self.buffer = self.file.read_at(self.position, want).await?;
        self.buffer_position = self.position;
        Ok(self.buffer.len() >= len)
    }

    /// The next batch, `Ok(None)` at a clean end, or why the bytes at the position are not a batch.
    pub async fn next_batch(&mut self) -> Result<Option<ScannedBatch>, ScanStop> {
        if self.position >= self.end {
            return Ok(None);
        }
        let invalid = |position, error| Err(ScanStop::Invalid { position, error });
        if !self.fill(spate_core::batch::LOG_OVERHEAD).await.map_err(ScanStop::Io)? {
            return invalid(self.position, ErrorCode::CorruptMessage);
        }
        let at = (self.position - self.buffer_position) as usize;
        let Some((_, len)) = peek_frame(&self.buffer[at..]) else {
            return invalid(self.position, ErrorCode::CorruptMessage);
        };
        if !self.fill(len).await.map_err(ScanStop::Io)? {
            return invalid(self.position, ErrorCode::CorruptMessage);
        }
        let at = (self.position - self.buffer_position) as usize;
        let bytes = self.buffer.slice(at..at + len);
        let header = if self.verify_crc {
            BatchView::check_stored(&bytes).map(|view| view.header)
        } else {
            BatchHeader::parse(&bytes)
        };
        match header {
            Ok(header) => {
                let position = self.position;
                self.position += len as u64;
                Ok(Some(ScannedBatch { position, header, bytes }))
            }
            Err(error) => invalid(self.position, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafka() {
        let path = segment_path(Path::new("/d"), 42, LOG_SUFFIX);
        assert_eq!(path, Path::new("/d/00000000000000000042.log"));
        assert_eq!(parse_segment_name("00000000000000000042.log"), Some(42));
        assert_eq!(parse_segment_name("00000000000000000042.index"), None);
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
    }
}
