//! Rewriting batches and segments for the cleaner: a batch keeps its bytes when every record stays, is dropped
//! when none does, and is rebuilt around the records that stay otherwise; the cleaned segment is written with
//! direct I/O and its indexes are built as it goes.

use crate::disk::{DiskBuf, DiskFile};
use crate::segment::Segment;
use crate::writer::{align_down, align_up};
use spate_core::batch::{compute_crc, BatchHeader, Compression, TimestampType, BATCH_HEADER_LEN, LOG_OVERHEAD};
use spate_core::compression::{batch_records, compress_records};
use spate_core::record::{Record, RecordIter};
use spate_core::varint::read_varint;
use spate_core::ErrorCode;
use std::io;

// Field positions in a RecordBatch v2 header (Kafka's DefaultRecordBatch layout).
const BATCH_LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const MAX_TIMESTAMP_AT: usize = 35;
const RECORD_COUNT_AT: usize = 57;

/// What the cleaner does with one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Filtered {
    /// Every record stays: the stored bytes are copied as they are.
    Unchanged,
    /// No record stays.
    Dropped,
    /// Some records stay, in this new batch.
    Rebuilt(Vec<u8>),
}

/// Calls `visit(offset, record)` for every record of a stored batch, inflating it if compressed (at most
/// `max_decompressed_bytes`).
pub(crate) fn for_each_record(
    header: &BatchHeader,
    batch: &[u8],
    max_decompressed_bytes: usize,
    mut visit: impl FnMut(i64, &Record<'_>),
) -> Result<(), ErrorCode> {
    let records = batch_records(header, batch, max_decompressed_bytes)?;
    for record in RecordIter::new(&records) {
        let record = record.map_err(|_| ErrorCode::CorruptMessage)?;
        visit(header.base_offset + i64::from(record.offset_delta), &record);
    }
    Ok(())
}

/// Applies `keep(offset, record)` to every record of a stored batch. A rebuilt batch keeps the original base
/// offset, base timestamp, producer fields and last offset delta (so the batch still ends where it ended, as
/// Kafka keeps it for producer state), and the retained records' bytes as they were (their offset and
/// timestamp deltas are unchanged); its record count, max timestamp (CreateTime), length and CRC are
/// recomputed, and its records are compressed again with the batch's codec.
pub(crate) fn filter_batch(
    header: &BatchHeader,
    batch: &[u8],
    max_decompressed_bytes: usize,
    mut keep: impl FnMut(i64, &Record<'_>) -> bool,
) -> Result<Filtered, ErrorCode> {
    let records = batch_records(header, batch, max_decompressed_bytes)?;
    let mut kept: Vec<&[u8]> = Vec::new();
    let mut total = 0usize;
    let mut max_timestamp = i64::MIN;
    let mut position = 0usize;
    while position < records.len() {
        let start = position;
        let length = read_varint(&records, &mut position).ok_or(ErrorCode::CorruptMessage)?;
        let length = usize::try_from(length).map_err(|_| ErrorCode::CorruptMessage)?;
        let end = position.checked_add(length).filter(|&end| end <= records.len()).ok_or(ErrorCode::CorruptMessage)?;
        let raw = &records[start..end];
        position = end;
        let record =
            RecordIter::new(raw).next().ok_or(ErrorCode::CorruptMessage)?.map_err(|_| ErrorCode::CorruptMessage)?;
        total += 1;
        if keep(header.base_offset + i64::from(record.offset_delta), &record) {
            max_timestamp = max_timestamp.max(header.base_timestamp + record.timestamp_delta);
            kept.push(raw);
        }
    }
    if kept.len() == total {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() {
        return Ok(Filtered::Dropped);
    }
    let body: Vec<u8> = kept.concat();
    let body = match header.compression() {
        None => return Err(ErrorCode::UnsupportedCompressionType),
        Some(Compression::None) => body,
        Some(codec) => compress_records(codec, &body)?,
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
    out.extend_from_slice(&body);
    let batch_length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| ErrorCode::CorruptMessage)?;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let record_count = i32::try_from(kept.len()).map_err(|_| ErrorCode::CorruptMessage)?;
    out[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&record_count.to_be_bytes());
    if header.timestamp_type() == TimestampType::CreateTime {
        out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    }
    let crc = compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Filtered::Rebuilt(out))
}

/// Bytes gathered before a direct write of the cleaned segment.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Writes a cleaned segment file front to back and keeps its in-memory metadata (sizes, offsets, indexes)
/// as the log's own appends do.
pub(crate) struct CleanedWriter<F: DiskFile> {
    segment: Segment<F>,
    /// Bytes not written yet; `pending[0]` belongs at the aligned file position `pending_position`.
    pending: Vec<u8>,
    pending_position: u64,
    index_interval_bytes: u32,
}

impl<F: DiskFile> CleanedWriter<F> {
    pub fn new(base_offset: i64, file: F, index_interval_bytes: u32, now_ms: i64) -> Self {
        CleanedWriter {
            segment: Segment::new(base_offset, file, now_ms),
            pending: Vec::new(),
            pending_position: 0,
            index_interval_bytes,
        }
    }

    pub async fn push(&mut self, header: &BatchHeader, bytes: &[u8]) -> io::Result<()> {
        let position = self.segment.size;
        self.segment.note_batch(header, position, self.index_interval_bytes);
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= WRITE_CHUNK_BYTES {
            self.write_out(false).await?;
        }
        Ok(())
    }

    /// Writes the whole aligned blocks gathered so far, or (`last`) everything, zero-padded to a block.
    async fn write_out(&mut self, last: bool) -> io::Result<()> {
        let file = self.segment.file.clone();
        let alignment = file.alignment();
        let len = self.pending.len() as u64;
        let write_len = if last { align_up(len, alignment) } else { align_down(len, alignment) } as usize;
        if write_len == 0 {
            return Ok(());
        }
        let data_len = write_len.min(self.pending.len());
        let mut buf = file.alloc_buf(write_len);
        buf.as_mut_slice()[..data_len].copy_from_slice(&self.pending[..data_len]);
        buf.as_mut_slice()[data_len..].fill(0);
        file.write_at(buf, self.pending_position).await?;
        self.pending.drain(..data_len);
        self.pending_position += write_len as u64;
        Ok(())
    }

    /// Writes what is left, cuts the file to its data and makes it durable; returns the segment.
    pub async fn finish(mut self) -> io::Result<Segment<F>> {
        self.write_out(true).await?;
        let file = self.segment.file.clone();
        file.truncate(self.segment.size).await?;
        file.sync_data().await?;
        self.segment.finish_time_index();
        self.segment.allocated_bytes = self.segment.size;
        Ok(self.segment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_core::batch::{BatchBuilder, BatchOptions, BatchView};
    use spate_core::record::RecordSpec;

    fn batch(compression: Compression) -> Vec<u8> {
        let mut builder = BatchBuilder::default();
        for (i, key) in [b"a", b"b", b"a"].iter().enumerate() {
            let value = format!("v{i}");
            let value = (i != 1).then_some(value.as_bytes());
            builder.push(&RecordSpec { key: Some(&key[..]), value, headers: &[], timestamp_ms: 100 + i as i64 });
        }
        let options = BatchOptions {
            base_offset: 40,
            producer_id: 7,
            producer_epoch: 1,
            base_sequence: 3,
            ..BatchOptions::default()
        };
        builder.finish(options, compression).unwrap()
    }

    #[test]
    fn a_partly_kept_batch_is_rebuilt_with_its_offsets() {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let original = batch(compression);
            let header = BatchHeader::parse(&original).unwrap();
            let all = filter_batch(&header, &original, 1 << 20, |_, _| true).unwrap();
            assert_eq!(all, Filtered::Unchanged);
            assert_eq!(filter_batch(&header, &original, 1 << 20, |_, _| false).unwrap(), Filtered::Dropped);
            let Filtered::Rebuilt(rebuilt) =
                filter_batch(&header, &original, 1 << 20, |offset, _| offset != 40).unwrap()
            else {
                panic!("expected a rebuilt batch");
            };
            let view = BatchView::check_stored(&rebuilt).expect("valid CRC and length");
            let new = view.header;
            assert_eq!((new.base_offset, new.last_offset(), new.record_count), (40, 42, 2), "{compression:?}");
            assert_eq!((new.producer_id, new.producer_epoch, new.base_sequence), (7, 1, 3));
            assert_eq!(new.compression(), Some(compression));
            assert_eq!((new.base_timestamp, new.max_timestamp), (100, 102));
            let mut seen = Vec::new();
            for_each_record(&new, &rebuilt, 1 << 20, |offset, record| {
                seen.push((offset, record.key.map(<[u8]>::to_vec), record.value.map(<[u8]>::to_vec)))
            })
            .unwrap();
            assert_eq!(
                seen,
                vec![(41, Some(b"b".to_vec()), None), (42, Some(b"a".to_vec()), Some(b"v2".to_vec()))],
                "{compression:?}"
            );
        }
    }
}
