//! Committed offsets as records of `__consumer_offsets`, in Kafka's layout
//! (`GroupCoordinatorRecordSerde`: `OffsetCommitKey` / `OffsetCommitValue`):
//!
//! ```text
//! key   v1: version i16 = 1 | group string | topic string | partition i32
//! value v3: version i16 = 3 | offset i64 | leader_epoch i32 | metadata string | commit_timestamp i64
//! ```
//!
//! Strings are i16-length-prefixed UTF-8. Values v0–v2 (Kafka's older layouts) are read too; a null
//! value is a tombstone (the offset was deleted: OffsetDelete, DeleteGroups), applied on load like
//! any other record. Keys of version 2 are group metadata (`version i16 = 2 | group string`), whose
//! values [`super::metadata`] reads and writes.

use std::collections::{BTreeMap, HashMap};

use bytes::BytesMut;
use spate_core::batch::{build_batch, BatchHeader, BatchOptions, Compression, BATCH_HEADER_LEN};
use spate_core::record::{RecordIter, RecordSpec};
use storage::disk::dma::DmaDisk;
use storage::Log;
use tracing::warn;

use super::metadata::StoredGroup;

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The offset (the next one the group will consume).
    pub offset: i64,
    /// The leader epoch of the last consumed record, -1 if unknown.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed (ms since the epoch).
    pub commit_timestamp: i64,
}

/// Committed offsets of the groups on one shard: group → (topic, partition) → offset.
pub type OffsetMap = HashMap<String, BTreeMap<(String, i32), Committed>>;

pub(super) fn put_string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.extend_from_slice(&(bytes.len().min(i16::MAX as usize) as i16).to_be_bytes());
    out.extend_from_slice(&bytes[..bytes.len().min(i16::MAX as usize)]);
}

/// The record key of an offset commit (version 1).
pub fn encode_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + group.len() + topic.len());
    out.extend_from_slice(&1i16.to_be_bytes());
    put_string(&mut out, group);
    put_string(&mut out, topic);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// The record value of an offset commit (version 3).
pub fn encode_value(committed: &Committed) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + committed.metadata.len());
    out.extend_from_slice(&3i16.to_be_bytes());
    out.extend_from_slice(&committed.offset.to_be_bytes());
    out.extend_from_slice(&committed.leader_epoch.to_be_bytes());
    put_string(&mut out, &committed.metadata);
    out.extend_from_slice(&committed.commit_timestamp.to_be_bytes());
    out
}

/// The record key of a group's metadata (version 2; its value: [`super::metadata`]).
pub fn encode_group_key(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + group.len());
    out.extend_from_slice(&2i16.to_be_bytes());
    put_string(&mut out, group);
    out
}

/// Reads Kafka's fixed-width, big-endian record fields.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl Reader<'_> {
    pub(super) fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    pub(super) fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    pub(super) fn i32(&mut self) -> Option<i32> {
        self.take(4).map(|b| i32::from_be_bytes(b.try_into().unwrap_or([0; 4])))
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        self.take(8).map(|b| i64::from_be_bytes(b.try_into().unwrap_or([0; 8])))
    }
    pub(super) fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.i16()?).ok()?;
        self.take(len).map(|b| String::from_utf8_lossy(b).into_owned())
    }
    /// A nullable string: length -1 is null.
    pub(super) fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let len = usize::try_from(len).ok()?;
        self.take(len).map(|b| Some(String::from_utf8_lossy(b).into_owned()))
    }
    /// Bytes with an i32 length (-1: null, read as empty).
    pub(super) fn bytes(&mut self) -> Option<&[u8]> {
        let len = self.i32()?;
        if len < 0 {
            return Some(&[]);
        }
        self.take(usize::try_from(len).ok()?)
    }
}

/// An offset commit key (versions 0 and 1): group, topic, partition. `None` for other record types.
pub fn decode_key(key: &[u8]) -> Option<(String, String, i32)> {
    let mut reader = Reader(key);
    match reader.i16()? {
        0 | 1 => Some((reader.string()?, reader.string()?, reader.i32()?)),
        _ => None,
    }
}

/// An offset commit value, versions 0–3 (and the v3 fields of later, flexible versions).
pub fn decode_value(value: &[u8]) -> Option<Committed> {
    let mut reader = Reader(value);
    let version = reader.i16()?;
    let offset = reader.i64()?;
    let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
    let metadata = reader.string()?;
    let commit_timestamp = reader.i64()?;
    Some(Committed { offset, leader_epoch, metadata, commit_timestamp })
}

/// One uncompressed batch holding `commits` of `group`, ready to append.
pub fn commit_batch(group: &str, commits: &[(String, i32, Committed)], now_ms: i64) -> BytesMut {
    let keys: Vec<Vec<u8>> = commits.iter().map(|(topic, partition, _)| encode_key(group, topic, *partition)).collect();
    let values: Vec<Vec<u8>> = commits.iter().map(|(_, _, committed)| encode_value(committed)).collect();
    let specs: Vec<RecordSpec<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(key, value)| RecordSpec { key: Some(key), value: Some(value), headers: &[], timestamp_ms: now_ms })
        .collect();
    BytesMut::from(&build_batch(&specs, BatchOptions::default())[..])
}

/// One uncompressed batch of tombstones (null values): the offsets of `partitions` of `group`, and
/// with `group_key` the group's metadata key too.
pub fn tombstone_batch(group: &str, partitions: &[(String, i32)], group_key: bool, now_ms: i64) -> BytesMut {
    let mut keys: Vec<Vec<u8>> =
        partitions.iter().map(|(topic, partition)| encode_key(group, topic, *partition)).collect();
    if group_key {
        keys.push(encode_group_key(group));
    }
    let specs: Vec<RecordSpec<'_>> =
        keys.iter().map(|key| RecordSpec { key: Some(key), value: None, headers: &[], timestamp_ms: now_ms }).collect();
    BytesMut::from(&build_batch(&specs, BatchOptions::default())[..])
}

/// The topics of a `consumer` protocol subscription (Kafka's `ConsumerProtocolSubscription`, any
/// version: `version i16 | topics [string] | ...`); empty if the metadata does not parse.
pub fn subscribed_topics(metadata: &[u8]) -> Vec<String> {
    let mut reader = Reader(metadata);
    let parse = |reader: &mut Reader<'_>| -> Option<Vec<String>> {
        reader.i16()?;
        let count = usize::try_from(reader.i32()?).ok()?;
        let mut topics = Vec::with_capacity(count.min(metadata.len()));
        for _ in 0..count {
            topics.push(reader.string()?);
        }
        Some(topics)
    };
    parse(&mut reader).unwrap_or_default()
}

/// Applies one record of the offsets topic to `map`.
pub fn apply_record(map: &mut OffsetMap, key: Option<&[u8]>, value: Option<&[u8]>) {
    let Some((group, topic, partition)) = key.and_then(decode_key) else { return };
    match value {
        None => {
            if let Some(offsets) = map.get_mut(&group) {
                offsets.remove(&(topic, partition));
                if offsets.is_empty() {
                    map.remove(&group);
                }
            }
        }
        Some(value) => {
            if let Some(committed) = decode_value(value) {
                map.entry(group).or_default().insert((topic, partition), committed);
            }
        }
    }
}

/// Reads `log` from its start and applies every offset commit record in it to `map`, and every
/// group metadata record to `groups` (the last one of each group wins; a tombstone removes it).
pub async fn load(log: &Log<DmaDisk>, map: &mut OffsetMap, groups: &mut HashMap<String, StoredGroup>) -> usize {
    let end = log.log_end_offset();
    let mut offset = log.log_start_offset();
    let mut records = 0;
    while offset < end {
        let read = match log.read(offset, 1 << 20, end).await {
            Ok(read) => read,
            Err(error) => {
                warn!(?error, offset, "cannot read __consumer_offsets; committed offsets after this are lost");
                break;
            }
        };
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            let Ok(header) = BatchHeader::parse(batch) else { return records };
            offset = header.next_offset();
            if header.compression() != Some(Compression::None) || header.is_control() || batch.len() < BATCH_HEADER_LEN
            {
                continue;
            }
            for record in RecordIter::new(&batch[BATCH_HEADER_LEN..]).flatten() {
                apply_record(map, record.key, record.value);
                super::metadata::apply_record(groups, record.key, record.value);
                records += 1;
            }
        }
    }
    records
}

/// Appends `batch` to the group's offsets partition and flushes it. `Err`: the error code.
pub(super) async fn append(
    context: &crate::shard::ShardContext,
    (topic_id, partition): (uuid::Uuid, i32),
    batch: BytesMut,
) -> Result<(), i16> {
    let Some(log_partition) = context.partitions.get(&topic_id, partition) else {
        return Err(kafka_protocol::error::ResponseError::NotCoordinator.code());
    };
    let written = log_partition.log.append(batch, crate::shard::partitions::now_ms()).await;
    let outcome = match written {
        Ok(_) => {
            log_partition.log.set_high_watermark(log_partition.log.written_offset());
            log_partition.log.flush().await
        }
        Err(error) => Err(error),
    };
    outcome.map_err(|error| {
        context.partitions.check_fatal(&log_partition, error);
        error.code()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_round_trip_in_kafkas_layout() {
        let key = encode_key("g", "t", 3);
        assert_eq!(key, [0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(decode_key(&key), Some(("g".into(), "t".into(), 3)));
        let committed = Committed { offset: 42, leader_epoch: 0, metadata: "m".into(), commit_timestamp: 7 };
        let value = encode_value(&committed);
        assert_eq!(&value[..2], &[0, 3]);
        assert_eq!(value.len(), 2 + 8 + 4 + 3 + 8);
        assert_eq!(decode_value(&value), Some(committed));
        // Group metadata keys (version 2) are not offsets.
        assert_eq!(decode_key(&[0, 2, 0, 1, b'g']), None);
    }

    #[test]
    fn records_apply_in_order_and_tombstones_delete() {
        let mut map = OffsetMap::new();
        let key = encode_key("g", "t", 0);
        let one = Committed { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp: 0 };
        let two = Committed { offset: 2, ..one.clone() };
        apply_record(&mut map, Some(&key), Some(&encode_value(&one)));
        apply_record(&mut map, Some(&key), Some(&encode_value(&two)));
        assert_eq!(map["g"][&("t".to_string(), 0)].offset, 2);
        apply_record(&mut map, Some(&key), None);
        assert!(map.is_empty());
    }

    #[test]
    fn tombstone_batches_delete_on_load_and_skip_the_group_key() {
        let mut map = OffsetMap::new();
        let one = Committed { offset: 1, leader_epoch: -1, metadata: String::new(), commit_timestamp: 0 };
        let parts = vec![("t".to_string(), 0, one.clone()), ("t".to_string(), 1, one)];
        for batch in [commit_batch("g", &parts, 5), tombstone_batch("g", &[("t".to_string(), 0)], true, 6)] {
            for record in RecordIter::new(&batch[BATCH_HEADER_LEN..]).flatten() {
                apply_record(&mut map, record.key, record.value);
            }
        }
        assert_eq!(map["g"].keys().collect::<Vec<_>>(), [&("t".to_string(), 1)]);
        assert_eq!(encode_group_key("g"), [0, 2, 0, 1, b'g']);
    }

    #[test]
    fn subscriptions_name_their_topics() {
        let mut metadata = vec![0, 1, 0, 0, 0, 2];
        for topic in ["a", "bc"] {
            put_string(&mut metadata, topic);
        }
        metadata.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(subscribed_topics(&metadata), ["a", "bc"]);
        assert!(subscribed_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_empty());
        assert!(subscribed_topics(&[]).is_empty());
    }
}
