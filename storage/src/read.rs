//! Reads: by offset (batch cache, else sparse index then scan) and by timestamp. Batches are returned whole, as
//! the bytes stored, never decoded.

use crate::disk::Disk;
use crate::log::Log;
use crate::segment::{ScanStop, Scanner};
use bytes::Bytes;
use spate_core::batch::TimestampType;
use spate_core::compression;
use spate_core::record::RecordIter;
use spate_core::ErrorCode;
use std::rc::Rc;

/// The result of a read: whole batches, in offset order, plus the log's bounds at the time of the read.
#[derive(Clone, Debug, Default)]
pub struct LogRead {
    pub batches: Vec<Bytes>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
}

impl LogRead {
    pub fn total_bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

/// The least cap on a compressed batch's inflated records section when the log decodes one.
const MIN_DECOMPRESSED_BYTES: usize = 64 << 20;
/// How many times `max.message.bytes` a batch may inflate to (above [`MIN_DECOMPRESSED_BYTES`]).
const DECOMPRESSION_FACTOR: usize = 64;

/// The hard cap on a compressed batch's inflated records section, against decompression bombs: 64 × the
/// topic's `max.message.bytes`, and at least 64 MiB (Kafka itself has no cap; real batches compress far less).
pub(crate) fn max_decompressed_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(DECOMPRESSION_FACTOR).max(MIN_DECOMPRESSED_BYTES)
}

/// Where to read a segment from disk.
struct DiskPlan<F> {
    file: Rc<F>,
    position: u64,
    end: u64,
    next_segment: Option<i64>,
}

impl<D: Disk> Log<D> {
    /// Reads whole batches starting with the one that holds `offset`, stopping before `max_offset` (the high
    /// watermark for consumers, the log end offset for followers), within `max_bytes` except that the first
    /// batch is returned even if larger (Kafka's rule, so consumers always make progress).
    pub async fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<LogRead, ErrorCode> {
        let (bounds, upper) = {
            let state = self.state.borrow();
            let bounds = LogRead {
                batches: Vec::new(),
                log_start_offset: state.log_start_offset,
                log_end_offset: state.log_end_offset(),
                high_watermark: state.high_watermark,
            };
            if offset < state.log_start_offset || offset > state.log_end_offset() {
                return Err(ErrorCode::OffsetOutOfRange);
            }
            (bounds, max_offset.min(state.log_end_offset()))
        };
        if offset >= upper {
            return Ok(bounds);
        }
        if let Some(batches) = self.cache.read(self.id, offset, max_bytes, upper) {
            return Ok(LogRead { batches, ..bounds });
        }
        let mut target = offset;
        loop {
            let Some(plan) = self.plan_disk_read(target).await? else { return Ok(bounds) };
            let chunk_bytes = max_bytes.saturating_add(self.state.borrow().config.index_interval_bytes as usize * 2);
            let mut scanner = Scanner::new(&*plan.file, plan.position, plan.end, chunk_bytes.min(16 << 20), false);
            let mut batches = Vec::new();
            let mut total_bytes = 0usize;
            loop {
                let batch = match scanner.next_batch().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(ScanStop::Io(error)) => {
                        tracing::error!(dir = %self.dir.display(), %error, "segment read failed");
                        return Err(ErrorCode::KafkaStorageError);
                    }
                    Err(ScanStop::Invalid { position, error }) => {
                        tracing::error!(dir = %self.dir.display(), position, %error, "unreadable batch in a segment");
                        return Err(ErrorCode::CorruptMessage);
                    }
                };
                if batch.header.next_offset() <= target {
                    continue;
                }
                if batch.header.next_offset() > upper
                    || (!batches.is_empty() && total_bytes + batch.bytes.len() > max_bytes)
                {
                    break;
                }
                total_bytes += batch.bytes.len();
                batches.push(batch.bytes);
            }
            if !batches.is_empty() {
                return Ok(LogRead { batches, ..bounds });
            }
            // Nothing at or after `target` in this segment (an offset gap at its end): go on to the next one.
            match plan.next_segment {
                Some(base) if base < upper => target = base,
                _ => return Ok(bounds),
            }
        }
    }

    /// Finds the segment holding `offset` and where to start scanning it; writes out the active segment's
    /// buffer first if the offset is not on the device yet.
    async fn plan_disk_read(&self, offset: i64) -> Result<Option<DiskPlan<D::File>>, ErrorCode> {
        loop {
            let unwritten = {
                let state = self.state.borrow();
                let segment = match state.sealed.range(..=offset).next_back() {
                    Some((_, sealed)) if offset < sealed.next_offset => sealed,
                    _ if offset >= state.active.base_offset => &state.active,
                    _ => match state.sealed.range(offset..).next() {
                        Some((_, next)) => next,
                        None => &state.active,
                    },
                };
                let is_active = segment.base_offset == state.active.base_offset;
                if is_active && offset >= state.written_next_offset {
                    state.log_end_offset()
                } else {
                    let relative = (offset - segment.base_offset).max(0);
                    let relative = u32::try_from(relative).unwrap_or(u32::MAX);
                    let next_segment = if is_active {
                        None
                    } else {
                        state
                            .sealed
                            .range(segment.base_offset + 1..)
                            .next()
                            .map(|(&b, _)| b)
                            .or(Some(state.active.base_offset))
                    };
                    return Ok(Some(DiskPlan {
                        file: segment.file.clone(),
                        position: u64::from(segment.offset_index.lookup(relative)),
                        end: if is_active { state.written_bytes } else { segment.size },
                        next_segment,
                    }));
                }
            };
            self.write_through(unwritten).await?;
        }
    }

    /// The first offset whose record timestamp is at or after `timestamp_ms`, with that timestamp (ListOffsets
    /// by timestamp). `None` if every record is older.
    ///
    /// Exact to the record, as Kafka is: CreateTime batches are searched record by record, compressed ones after
    /// inflating their records section (capped at 64 × `max.message.bytes`, at least 64 MiB; a batch that is malformed or would
    /// inflate past the cap answers `CorruptMessage`). LogAppendTime batches answer their base offset and max
    /// timestamp, since every record in them carries the batch's timestamp.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, ErrorCode> {
        let end = self.log_end_offset();
        self.write_through(end).await?;
        let (file, position, scan_end, log_start_offset, max_message_bytes) = {
            let state = self.state.borrow();
            let Some(segment) = state.segments().find(|s| s.max_timestamp >= timestamp_ms) else {
                return Ok(None);
            };
            let relative_offset = segment.time_index.lookup(timestamp_ms);
            let position = segment.offset_index.lookup(relative_offset);
            let scan_end =
                if segment.base_offset == state.active.base_offset { state.written_bytes } else { segment.size };
            (
                segment.file.clone(),
                u64::from(position),
                scan_end,
                state.log_start_offset,
                state.config.max_message_bytes,
            )
        };
        let mut scanner = Scanner::new(&*file, position, scan_end, 1 << 20, false);
        loop {
            let batch = match scanner.next_batch().await {
                Ok(Some(batch)) => batch,
                Ok(None) => return Ok(None),
                Err(_) => return Err(ErrorCode::KafkaStorageError),
            };
            let header = batch.header;
            if header.max_timestamp < timestamp_ms || header.next_offset() <= log_start_offset {
                continue;
            }
            if header.timestamp_type() == TimestampType::CreateTime {
                let cap = max_decompressed_bytes(max_message_bytes);
                let records = compression::batch_records(&header, &batch.bytes, cap).inspect_err(|error| {
                    let offset = header.base_offset;
                    tracing::error!(dir = %self.dir.display(), offset, ?error, "undecodable records in a stored batch");
                })?;
                for record in RecordIter::new(&records) {
                    let record = record.map_err(|_| ErrorCode::CorruptMessage)?;
                    let record_timestamp = header.base_timestamp + record.timestamp_delta;
                    let record_offset = header.base_offset + i64::from(record.offset_delta);
                    if record_timestamp >= timestamp_ms && record_offset >= log_start_offset {
                        return Ok(Some((record_offset, record_timestamp)));
                    }
                }
            }
            return Ok(Some((header.base_offset.max(log_start_offset), header.max_timestamp)));
        }
    }

    /// The largest timestamp in the log and the last offset of its batch (ListOffsets MAX_TIMESTAMP).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let state = self.state.borrow();
        state
            .segments()
            .filter(|s| s.max_timestamp >= 0)
            .map(|s| (s.max_timestamp, s.max_timestamp_offset))
            .max_by_key(|&(ts, _)| ts)
    }
}
