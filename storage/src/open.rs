//! Opening a log: clean-shutdown fast path, crash recovery of the newest segment, index rebuilds, and the
//! clean close that makes the next open fast.

use crate::cache::BatchCache;
use crate::config::LogConfig;
use crate::disk::{Disk, DiskFile, OpenMode};
use crate::index::{OffsetIndex, TimeIndex};
use crate::log::{Log, LogState};
use crate::segment::{
    parse_segment_name, segment_path, ScanStop, Scanner, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::writer::{align_down, WriteBuffer};
use event_listener::Event;
use spate_core::ErrorCode;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Written by a clean close, removed by the next open: its presence means every file is final.
pub const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";
/// The log start offset when DeleteRecords moved it inside a segment.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset";

const RECOVERY_CHUNK_BYTES: usize = 1 << 20;

/// Why a log could not be opened.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    /// A batch in a segment other than the newest is unreadable: reported, never skipped or truncated.
    Corrupt {
        segment: PathBuf,
        position: u64,
        error: ErrorCode,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(error) => write!(f, "I/O error opening the log: {error}"),
            OpenError::Corrupt { segment, position, error } => {
                write!(f, "corrupt batch in {} at byte {position}: {error}", segment.display())
            }
        }
    }
}

impl std::error::Error for OpenError {}

impl From<io::Error> for OpenError {
    fn from(error: io::Error) -> Self {
        OpenError::Io(error)
    }
}

/// Clamps settings the on-disk format cannot honour (positions are 32-bit).
pub(crate) fn sanitize(mut config: LogConfig) -> LogConfig {
    config.segment_bytes = config.segment_bytes.clamp(4096, i32::MAX as u64);
    config.index_interval_bytes = config.index_interval_bytes.max(1);
    config
}

impl<D: Disk> Log<D> {
    /// Opens (creating if needed) the log in `dir`. After a clean close it trusts the files; otherwise it
    /// validates the newest segment batch by batch and cuts a torn or corrupt tail. Missing or malformed
    /// indexes are rebuilt. Corruption in an older segment fails the open with [`OpenError::Corrupt`].
    pub async fn open(
        disk: D,
        dir: PathBuf,
        config: LogConfig,
        cache: Rc<BatchCache>,
        now_ms: i64,
    ) -> Result<Log<D>, OpenError> {
        let config = sanitize(config);
        disk.create_dir_all(&dir).await?;
        crate::compact::recover_swaps(&disk, &dir).await?;
        let cleaner = crate::compact::load_checkpoint(&disk, &dir).await?;
        let names = disk.list_dir(&dir).await?;
        let clean = names.iter().any(|n| n == CLEAN_SHUTDOWN_MARKER);
        let mut bases: Vec<i64> = names.iter().filter_map(|n| parse_segment_name(n)).collect();
        bases.sort_unstable();
        remove_leftovers(&disk, &dir, &names, &bases).await?;

        let checkpoint = match disk.read_file(&dir.join(LOG_START_OFFSET_FILE)).await {
            Ok(bytes) => std::str::from_utf8(&bytes).ok().and_then(|s| s.trim().parse::<i64>().ok()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error.into()),
        };

        let mut sealed = BTreeMap::new();
        let mut active = None;
        for (i, &base) in bases.iter().enumerate() {
            let newest = i + 1 == bases.len();
            let segment = open_segment(&disk, &dir, base, newest && !clean, &config, now_ms).await?;
            if newest {
                active = Some(segment);
            } else {
                sealed.insert(base, segment);
            }
        }
        // A power loss can cut the unsynced tail below a start offset that DeleteRecords had made durable. Then
        // every batch left is below the start: drop them all and restart empty at the start, so that the start
        // never moves back and deleted offsets are never handed out again (Kafka's LogLoader does the same).
        let recovered_end = active.as_ref().map(|segment: &Segment<D::File>| segment.next_offset);
        if let (Some(start), Some(end)) = (checkpoint, recovered_end) {
            if end < start {
                tracing::warn!(
                    dir = %dir.display(), log_end_offset = end, log_start_offset = start,
                    "the recovered log ends below its start offset; restarting it empty at the start"
                );
                sealed.clear();
                active = None;
                for &base in &bases {
                    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                        match disk.remove_file(&segment_path(&dir, base, suffix)).await {
                            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error.into()),
                            _ => {}
                        }
                    }
                }
            }
        }
        let mut active = match active {
            Some(segment) => segment,
            None => {
                let base = checkpoint.unwrap_or(0).max(0);
                let file = disk.open(&segment_path(&dir, base, LOG_SUFFIX), OpenMode::CreateNew).await?;
                Segment::new(base, file, now_ms)
            }
        };
        // Make the recovered state durable before accepting writes or forgetting the marker.
        active.file.sync_data().await?;
        let tail_start = align_down(active.size, active.file.alignment());
        let tail = active.file.read_at(tail_start, (active.size - tail_start) as usize).await?;
        if tail.len() as u64 != active.size - tail_start {
            return Err(OpenError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "segment shorter than its data")));
        }
        active.allocated_bytes = active.file.size().await?;
        let write_buffer = WriteBuffer::new(&*active.file, active.size, &tail, config.write_buffer_bytes);
        if clean {
            disk.remove_file(&dir.join(CLEAN_SHUTDOWN_MARKER)).await?;
        }

        let first_base = sealed.keys().next().copied().unwrap_or(active.base_offset);
        let log_end_offset = active.next_offset;
        let log_start_offset = checkpoint.unwrap_or(first_base).max(first_base).min(log_end_offset);
        let written_bytes = active.size;
        tracing::info!(
            dir = %dir.display(), clean, segments = sealed.len() + 1, log_start_offset, log_end_offset,
            "opened log"
        );
        let id = cache.register_log();
        Ok(Log {
            disk,
            dir,
            id,
            cache,
            changed: Event::new(),
            state: RefCell::new(LogState {
                config,
                sealed,
                active,
                write_buffer,
                log_start_offset,
                high_watermark: log_end_offset,
                written_bytes,
                written_next_offset: log_end_offset,
                synced_next_offset: log_end_offset,
                write_in_flight: false,
                sync_in_flight: false,
                rolling: false,
                failure: None,
                last_flush_ms: now_ms,
                cleaner,
                segment_files_busy: false,
            }),
        })
    }

    /// Clean shutdown: flushes, seals the active segment's files (indexes written, file cut to size) and writes
    /// the marker that lets the next open skip recovery. The log refuses appends afterwards.
    pub async fn close(&self) -> Result<(), ErrorCode> {
        self.flush().await?;
        {
            // Refuse appends from here on: the active segment is about to become final.
            let mut state = self.state();
            state.check_writable()?;
            state.failure = Some("closed".to_string());
        }
        self.changed.notify(usize::MAX);
        self.seal_active().await?;
        self.cache.drop_log(self.id);
        let marker = self.dir.join(CLEAN_SHUTDOWN_MARKER);
        if let Err(error) = self.disk.write_file_atomic(&marker, b"").await {
            let mut state = self.state();
            state.failure = None;
            return Err(self.fail(&mut state, "writing the clean-shutdown marker", error));
        }
        Ok(())
    }
}

/// Temporary files from interrupted atomic writes, and indexes whose segment is gone (retention removes the
/// `.log` first).
async fn remove_leftovers<D: Disk>(disk: &D, dir: &Path, names: &[String], bases: &[i64]) -> io::Result<()> {
    for name in names {
        let orphan_index = [INDEX_SUFFIX, TIME_INDEX_SUFFIX].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .and_then(|digits| parse_segment_name(&format!("{digits}{LOG_SUFFIX}")))
                .is_some_and(|base| bases.binary_search(&base).is_err())
        });
        if name.ends_with(".tmp") || orphan_index {
            tracing::info!(dir = %dir.display(), file = %name, "removing leftover file");
            disk.remove_file(&dir.join(name)).await?;
        }
    }
    Ok(())
}

async fn open_segment<D: Disk>(
    disk: &D,
    dir: &Path,
    base: i64,
    recover_tail: bool,
    config: &LogConfig,
    now_ms: i64,
) -> Result<Segment<D::File>, OpenError> {
    let path = segment_path(dir, base, LOG_SUFFIX);
    let file = disk.open(&path, OpenMode::Existing).await?;
    let file_size = file.size().await?;
    let mut segment = Segment::new(base, file, now_ms);
    if recover_tail {
        let valid_end = rebuild_by_scan(&mut segment, file_size, config, &path, true).await?;
        if valid_end < file_size {
            tracing::warn!(
                segment = %path.display(), valid_end, file_size,
                "crash recovery: cutting the segment after its last valid batch"
            );
        }
        // Cut everything after the last valid batch, so no stale batch can reappear behind new appends.
        segment.file.truncate(valid_end).await?;
        return Ok(segment);
    }
    let index = read_index(disk, &segment_path(dir, base, INDEX_SUFFIX)).await?;
    let time_index = read_index(disk, &segment_path(dir, base, TIME_INDEX_SUFFIX)).await?;
    let indexes = match (index, time_index) {
        (Some(index), Some(time_index)) => OffsetIndex::decode(&index, file_size).zip(TimeIndex::decode(&time_index)),
        _ => None,
    };
    let Some((offset_index, time_index)) = indexes else {
        tracing::warn!(segment = %path.display(), "rebuilding a missing or malformed index");
        let valid_end = rebuild_by_scan(&mut segment, file_size, config, &path, false).await?;
        assert_eq!(valid_end, file_size, "a strict rebuild consumes the whole segment");
        segment.finish_time_index();
        return Ok(segment);
    };
    // Trust the indexes; walk only the batches after the last index entry to find the end offset.
    let scan_from = offset_index.last().map_or(0, |(_, position)| u64::from(position));
    let mut scanner = Scanner::new(&*segment.file, scan_from, file_size, RECOVERY_CHUNK_BYTES, true);
    let mut next_offset = base;
    let mut first = true;
    loop {
        match scanner.next_batch().await {
            Ok(Some(batch)) => {
                if first && scan_from == 0 {
                    segment.roll_clock_start_ms = Some(batch.header.max_timestamp);
                }
                first = false;
                next_offset = batch.header.next_offset();
                if batch.header.max_timestamp > segment.max_timestamp {
                    segment.max_timestamp = batch.header.max_timestamp;
                    segment.max_timestamp_offset = batch.header.last_offset();
                }
            }
            Ok(None) => break,
            Err(ScanStop::Io(error)) => return Err(error.into()),
            Err(ScanStop::Invalid { position, error }) => {
                return Err(OpenError::Corrupt { segment: path, position, error })
            }
        }
    }
    if let Some((timestamp, relative_offset)) = time_index.last() {
        if timestamp > segment.max_timestamp {
            segment.max_timestamp = timestamp;
            segment.max_timestamp_offset = base + i64::from(relative_offset);
        }
    }
    segment.roll_clock_start_ms = segment.roll_clock_start_ms.or(Some(segment.max_timestamp));
    segment.size = file_size;
    segment.next_offset = next_offset.max(base + offset_index.last().map_or(0, |(o, _)| i64::from(o) + 1));
    segment.offset_index = offset_index;
    segment.time_index = time_index;
    Ok(segment)
}

async fn read_index<D: Disk>(disk: &D, path: &Path) -> Result<Option<Vec<u8>>, OpenError> {
    match disk.read_file(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Rebuilds a segment's metadata by reading every batch with its CRC checked. With `tolerate_tail` (the newest
/// segment after a crash) an invalid batch ends the segment there; otherwise it is reported as corruption.
/// Returns the end of the last valid batch.
async fn rebuild_by_scan<F: DiskFile>(
    segment: &mut Segment<F>,
    file_size: u64,
    config: &LogConfig,
    path: &Path,
    tolerate_tail: bool,
) -> Result<u64, OpenError> {
    let file = segment.file.clone();
    let mut scanner = Scanner::new(&*file, 0, file_size, RECOVERY_CHUNK_BYTES, true);
    loop {
        match scanner.next_batch().await {
            Ok(Some(batch)) => {
                if batch.header.base_offset < segment.next_offset {
                    // Offsets going backwards: not a batch this log wrote here.
                    let stop = ScanStop::Invalid { position: batch.position, error: ErrorCode::CorruptMessage };
                    return end_of_scan(stop, segment, path, tolerate_tail);
                }
                segment.note_batch(&batch.header, batch.position, config.index_interval_bytes);
            }
            Ok(None) => return Ok(segment.size),
            Err(stop) => return end_of_scan(stop, segment, path, tolerate_tail),
        }
    }
}

fn end_of_scan<F>(stop: ScanStop, segment: &Segment<F>, path: &Path, tolerate_tail: bool) -> Result<u64, OpenError> {
    match stop {
        ScanStop::Io(error) => Err(error.into()),
        ScanStop::Invalid { .. } if tolerate_tail => Ok(segment.size),
        ScanStop::Invalid { position, error } => {
            Err(OpenError::Corrupt { segment: path.to_path_buf(), position, error })
        }
    }
}
