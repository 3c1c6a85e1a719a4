//! A zero-copy view of Kafka RecordBatch v2 (magic 2), the unit Spate stores and serves.
//!
//! Layout (big-endian), as in `DefaultRecordBatch.java`:
//!
//! ```text
//!  0 base_offset i64        8 batch_length i32     12 partition_leader_epoch i32
//! 16 magic i8              17 crc u32 (CRC-32C of bytes 21..end)
//! 21 attributes i16        23 last_offset_delta i32  27 base_timestamp i64
//! 35 max_timestamp i64     43 producer_id i64     51 producer_epoch i16
//! 53 base_sequence i32     57 record_count i32    61 records...
//! ```
//!
//! The CRC does not cover the base offset or the partition leader epoch, so both are rewritten in place
//! without recomputing it; LogAppendTime changes covered bytes and so recomputes it.

use crate::error::ErrorCode;
use crate::record::{RecordIter, RecordSpec};
use crate::varint;

/// Bytes before `batch_length` counts: base offset (8) and the length itself (4).
pub const LOG_OVERHEAD: usize = 12;
/// The fixed v2 header, up to and including the record count.
pub const BATCH_HEADER_LEN: usize = 61;
pub const MAGIC_V2: i8 = 2;

const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const MAX_TIMESTAMP_AT: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Compression codec named by the low three attribute bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The parsed fixed header of one batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads only `base_offset` and the total length (`LOG_OVERHEAD + batch_length`) of the batch at the start of
/// `buf`; `None` if fewer than 12 bytes are there or the length is impossible. Used by scanners that must find
/// batch boundaries before they have the whole batch.
pub fn peek_frame(buf: &[u8]) -> Option<(i64, usize)> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let batch_length = be_i32(buf, 8);
    if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
        return None;
    }
    Some((be_i64(buf, 0), LOG_OVERHEAD + batch_length as usize))
}

impl BatchHeader {
    /// Parses the fixed header. Checks only what is needed to read it safely: enough bytes, a plausible length
    /// and magic 2.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, ErrorCode> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(ErrorCode::CorruptMessage);
        }
        // Magic first: a v0/v1 message set has a different layout, so its "length" means nothing to us.
        let magic = buf[MAGIC_AT] as i8;
        if magic != MAGIC_V2 {
            return Err(ErrorCode::UnsupportedForMessageFormat);
        }
        let batch_length = be_i32(buf, 8);
        if batch_length < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(ErrorCode::CorruptMessage);
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_AT),
            magic,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_AT),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Bytes the whole batch occupies on the wire and on disk.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// `None` for the reserved codec values 5..7.
    pub fn compression(&self) -> Option<Compression> {
        match self.attributes & COMPRESSION_MASK {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// CRC-32C over the bytes the batch CRC covers (attributes to the end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// A validated batch: its header and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct BatchView<'a> {
    pub header: BatchHeader,
    pub bytes: &'a [u8],
}

impl<'a> BatchView<'a> {
    /// Checks a batch read back from storage: whole, magic 2, CRC intact. Does not decode records, so it also
    /// accepts batches with offset gaps (compaction) and compressed batches.
    pub fn check_stored(bytes: &'a [u8]) -> Result<BatchView<'a>, ErrorCode> {
        let header = BatchHeader::parse(bytes)?;
        if header.total_len() != bytes.len() {
            return Err(ErrorCode::CorruptMessage);
        }
        if compute_crc(bytes) != header.crc {
            return Err(ErrorCode::CorruptMessage);
        }
        if header.last_offset_delta < 0 || header.record_count < 0 {
            return Err(ErrorCode::CorruptMessage);
        }
        Ok(BatchView { header, bytes })
    }

    /// Checks a batch a producer sent, as Kafka's LogValidator does for magic 2: the length matches the bytes,
    /// the size is within `max_message_bytes`, the CRC is intact, the record count agrees with the last offset
    /// delta, and for uncompressed batches every record parses, offset deltas run 0..count, and nothing trails.
    pub fn validate_produced(bytes: &'a [u8], max_message_bytes: usize) -> Result<BatchView<'a>, ErrorCode> {
        let header = BatchHeader::parse(bytes)?;
        if header.total_len() != bytes.len() {
            return Err(ErrorCode::CorruptMessage);
        }
        if bytes.len() > max_message_bytes {
            return Err(ErrorCode::MessageTooLarge);
        }
        if compute_crc(bytes) != header.crc {
            return Err(ErrorCode::CorruptMessage);
        }
        if header.record_count <= 0 || header.last_offset_delta != header.record_count - 1 {
            return Err(ErrorCode::InvalidRecord);
        }
        match header.compression() {
            None => return Err(ErrorCode::UnsupportedCompressionType),
            Some(Compression::None) => {
                let mut expected_delta = 0;
                let mut records = RecordIter::new(&bytes[BATCH_HEADER_LEN..]);
                for record in records.by_ref() {
                    let record = record?;
                    if record.offset_delta != expected_delta {
                        return Err(ErrorCode::InvalidRecord);
                    }
                    expected_delta += 1;
                }
                if expected_delta != header.record_count {
                    return Err(ErrorCode::InvalidRecord);
                }
            }
            // Compressed payloads are checked when a codec needs them (recompression, compaction).
            Some(_) => {}
        }
        Ok(BatchView { header, bytes })
    }
}

/// Splits a record set (the `records` field of a produce partition, or a segment region) into batch slices.
/// A trailing partial batch is an error: Kafka rejects such a produce with CORRUPT_MESSAGE.
pub fn split_record_set(mut buf: &[u8]) -> impl Iterator<Item = Result<&[u8], ErrorCode>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        if buf.len() > MAGIC_AT && buf[MAGIC_AT] as i8 != MAGIC_V2 {
            buf = &[];
            return Some(Err(ErrorCode::UnsupportedForMessageFormat));
        }
        match peek_frame(buf) {
            Some((_, len)) if len <= buf.len() => {
                let (batch, rest) = buf.split_at(len);
                buf = rest;
                Some(Ok(batch))
            }
            _ => {
                buf = &[];
                Some(Err(ErrorCode::CorruptMessage))
            }
        }
    })
}

/// Writes the base offset in place. The CRC does not cover it.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch in place. The CRC does not cover it.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with `timestamp_ms` as its max timestamp, then recomputes the CRC (both fields
/// are covered by it). Consumers read every record's timestamp as the max timestamp for such batches.
pub fn set_log_append_time(batch: &mut [u8], timestamp_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_AT) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Options for [`build_batch`].
#[derive(Clone, Copy, Debug)]
pub struct BatchOptions {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            base_offset: 0,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

/// Encodes an uncompressed v2 batch, as a producer would. Used by tests, the benchmarks and the CLI producer.
pub fn build_batch(records: &[RecordSpec<'_>], options: BatchOptions) -> Vec<u8> {
    assert!(!records.is_empty(), "a batch holds at least one record");
    let mut builder = BatchBuilder::with_capacity(records.iter().map(|r| r.encoded_len_hint()).sum::<usize>());
    for record in records {
        builder.push(record);
    }
    builder.finish(options, Compression::None).expect("no codec, nothing to fail")
}

/// Builds a v2 batch one record at a time, as a producer's accumulator does; [`BatchBuilder::finish`]
/// compresses the records section if asked. Reusable: `finish` leaves it empty.
#[derive(Debug, Default)]
pub struct BatchBuilder {
    body: Vec<u8>,
    record: Vec<u8>,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchBuilder {
    pub fn with_capacity(body_bytes: usize) -> Self {
        BatchBuilder { body: Vec::with_capacity(body_bytes), ..BatchBuilder::default() }
    }

    /// Records pushed since the last `finish`.
    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Encoded size so far (header plus uncompressed records).
    pub fn encoded_len(&self) -> usize {
        BATCH_HEADER_LEN + self.body.len()
    }

    /// Appends a record. Timestamp deltas are relative to the first record's timestamp, as the Java
    /// producer writes them (so they may be negative if the clock steps back).
    pub fn push(&mut self, record: &RecordSpec<'_>) {
        if self.record_count == 0 {
            self.base_timestamp = record.timestamp_ms;
            self.max_timestamp = record.timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp_ms);
        let body = &mut self.record;
        body.clear();
        body.push(0); // record attributes: unused
        varint::write_varlong(body, record.timestamp_ms - self.base_timestamp);
        varint::write_varint(body, self.record_count);
        write_bytes(body, record.key);
        write_bytes(body, record.value);
        varint::write_varint(body, record.headers.len() as i32);
        for (key, value) in record.headers {
            write_bytes(body, Some(key.as_bytes()));
            write_bytes(body, *value);
        }
        varint::write_varint(&mut self.body, body.len() as i32);
        self.body.extend_from_slice(body);
        self.record_count += 1;
    }

    /// The finished batch (records compressed with `compression`), CRC included. Panics if empty.
    pub fn finish(&mut self, options: BatchOptions, compression: Compression) -> Result<Vec<u8>, ErrorCode> {
        assert!(self.record_count > 0, "a batch holds at least one record");
        let compressed;
        let records: &[u8] = if compression == Compression::None {
            &self.body
        } else {
            compressed = crate::compression::compress_records(compression, &self.body)?;
            &compressed
        };
        let mut out = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
        out.extend_from_slice(&options.base_offset.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes()); // batch_length, patched below
        out.extend_from_slice(&options.partition_leader_epoch.to_be_bytes());
        out.push(MAGIC_V2 as u8);
        out.extend_from_slice(&0u32.to_be_bytes()); // crc, patched below
        out.extend_from_slice(&(compression as i16).to_be_bytes());
        out.extend_from_slice(&(self.record_count - 1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&options.producer_id.to_be_bytes());
        out.extend_from_slice(&options.producer_epoch.to_be_bytes());
        out.extend_from_slice(&options.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.record_count.to_be_bytes());
        out.extend_from_slice(records);
        let batch_length = (out.len() - LOG_OVERHEAD) as i32;
        out[8..12].copy_from_slice(&batch_length.to_be_bytes());
        let crc = compute_crc(&out);
        out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.body.clear();
        self.record_count = 0;
        Ok(out)
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => varint::write_varint(out, -1),
        Some(b) => {
            varint::write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
