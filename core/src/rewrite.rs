//! Broker-side checks and rewrites of produced batches that need their records, as Kafka's
//! `LogValidator` does on the leader:
//!
//! - a **compacted topic** refuses a batch holding a record without a key (`INVALID_RECORD`): such a
//!   record could never be compacted away;
//! - a topic whose **`compression.type`** is a codec (or `uncompressed`) stores batches in that codec:
//!   a batch in another codec is recompressed. Only the records section changes (the decompressed
//!   records are the same bytes whatever the codec), so producer id, epoch, sequence, timestamps and
//!   offsets deltas are kept; the attributes' codec bits, the length and the CRC are rewritten.
//!
//! Both run on the owner shard before the append, on batches already checked by
//! [`BatchView::validate_produced`] (so a corrupt batch is refused, never "repaired" by a new CRC).
//! Control batches are stored as they are.

use bytes::BytesMut;

use crate::batch::{compute_crc, split_record_set, BatchHeader, BatchView, Compression, BATCH_HEADER_LEN};
use crate::compression::{batch_records, compress_records_at};
use crate::error::ErrorCode;
use crate::record::RecordIter;

/// Byte offset of the attributes in a batch.
const ATTRIBUTES_AT: usize = 21;
/// Byte offset of the CRC.
const CRC_AT: usize = 17;
/// Byte offset of the batch length.
const BATCH_LENGTH_AT: usize = 8;
/// The codec bits of the attributes.
const COMPRESSION_MASK: i16 = 0x07;
/// The most bytes a produced batch may inflate to when the broker has to read its records; more is
/// `CORRUPT_MESSAGE` (a decompression bomb).
pub const MAX_INFLATED_BATCH_BYTES: usize = 128 << 20;

/// What the topic asks of produced batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewriteRules {
    /// Every record must have a key (cleanup.policy includes `compact`).
    pub keys_required: bool,
    /// Store batches in this codec (`None`: as the producer sent them).
    pub target: Option<Compression>,
    /// `compression.<codec>.level` of the target codec, if set.
    pub level: Option<i32>,
}

impl RewriteRules {
    /// Whether any batch could need its records read.
    pub fn is_noop(&self) -> bool {
        !self.keys_required && self.target.is_none()
    }
}

/// Applies `rules` to a produced record set: `Ok(None)` if every batch stays as it is, `Ok(Some(set))`
/// with the rewritten set otherwise. Any invalid batch fails the whole set, as Kafka does.
pub fn rewrite_record_set(
    records: &[u8],
    rules: RewriteRules,
    max_message_bytes: usize,
) -> Result<Option<BytesMut>, ErrorCode> {
    if rules.is_noop() {
        return Ok(None);
    }
    let mut rewritten: Vec<Option<Vec<u8>>> = Vec::new();
    for batch in split_record_set(records) {
        let view = BatchView::validate_produced(batch?, max_message_bytes)?;
        rewritten.push(rewrite_batch(&view, rules)?);
    }
    if rewritten.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(records.len());
    for (original, new) in split_record_set(records).zip(rewritten) {
        match new {
            Some(batch) => out.extend_from_slice(&batch),
            None => out.extend_from_slice(original?),
        }
    }
    Ok(Some(out))
}

/// One batch: `None` if it stays as it is.
fn rewrite_batch(view: &BatchView<'_>, rules: RewriteRules) -> Result<Option<Vec<u8>>, ErrorCode> {
    let header: &BatchHeader = &view.header;
    if header.is_control() {
        return Ok(None);
    }
    let source = header.compression().ok_or(ErrorCode::UnsupportedCompressionType)?;
    let recompress_to = rules.target.filter(|target| *target != source);
    if !rules.keys_required && recompress_to.is_none() {
        return Ok(None);
    }
    let raw = batch_records(header, view.bytes, MAX_INFLATED_BATCH_BYTES)?;
    if rules.keys_required || source != Compression::None {
        // Kafka checks every record of a compressed batch when it has to open it.
        let mut count = 0;
        for record in RecordIter::new(&raw) {
            let record = record?;
            if rules.keys_required && record.key.is_none() {
                return Err(ErrorCode::InvalidRecord);
            }
            count += 1;
        }
        if count != header.record_count {
            return Err(ErrorCode::InvalidRecord);
        }
    }
    let Some(target) = recompress_to else { return Ok(None) };
    let records = compress_records_at(target, &raw, rules.level)?;
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    out.extend_from_slice(&view.bytes[..BATCH_HEADER_LEN]);
    out.extend_from_slice(&records);
    let attributes = (header.attributes & !COMPRESSION_MASK) | target as i16;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let batch_length = i32::try_from(out.len() - 12).map_err(|_| ErrorCode::MessageTooLarge)?;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    let crc = compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
