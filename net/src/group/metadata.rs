//! Group metadata as records of `__consumer_offsets`, in Kafka's layout (`GroupMetadataKey` v2 /
//! `GroupMetadataValue`), so that a group's generation, leader, members and assignments survive a
//! restart (or kill -9) of its coordinator, and tools reading that topic understand them:
//!
//! ```text
//! key   v2: version i16 = 2 | group string
//! value v3: version i16 = 3 | protocol_type string | generation i32 | protocol nullable string
//!           | leader nullable string | current_state_timestamp i64
//!           | members [member_id string | group_instance_id nullable string | client_id string
//!                      | client_host string | rebalance_timeout i32 | session_timeout i32
//!                      | subscription bytes | assignment bytes]
//! ```
//!
//! Values v0–v3 are read (v0 lacks the rebalance timeout, v0–v1 the state timestamp, v0–v2 the
//! instance id); a null value is a tombstone (DeleteGroups, or a group whose offsets expired).
//! Like Kafka, the coordinator writes a group's record when a rebalance completes (the leader's
//! assignment, before SyncGroup is answered) and when the group becomes empty.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use spate_core::batch::{build_batch, BatchOptions};
use spate_core::record::RecordSpec;

use super::offsets::{encode_group_key, put_string, Reader};

/// The value version written.
const VALUE_VERSION: i16 = 3;

/// One member as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Its metadata for the group's protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// One group as stored: its last completed generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state (ms since the epoch; -1 unknown).
    pub state_timestamp_ms: i64,
    pub members: Vec<StoredMember>,
}

fn put_nullable_string(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => put_string(out, value),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, value: &[u8]) {
    out.extend_from_slice(&(value.len() as i32).to_be_bytes());
    out.extend_from_slice(value);
}

/// The record value of `group` (version 3).
pub fn encode_value(group: &StoredGroup) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + group.members.len() * 128);
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    put_string(&mut out, &group.protocol_type);
    out.extend_from_slice(&group.generation.to_be_bytes());
    put_nullable_string(&mut out, group.protocol.as_deref());
    put_nullable_string(&mut out, group.leader.as_deref());
    out.extend_from_slice(&group.state_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(group.members.len() as i32).to_be_bytes());
    for member in &group.members {
        put_string(&mut out, &member.member_id);
        put_nullable_string(&mut out, member.instance_id.as_deref());
        put_string(&mut out, &member.client_id);
        put_string(&mut out, &member.client_host);
        out.extend_from_slice(&member.rebalance_timeout_ms.to_be_bytes());
        out.extend_from_slice(&member.session_timeout_ms.to_be_bytes());
        put_bytes(&mut out, &member.subscription);
        put_bytes(&mut out, &member.assignment);
    }
    out
}

/// A group metadata value, versions 0–3. `None`: not one (or a later, flexible version).
pub fn decode_value(value: &[u8]) -> Option<StoredGroup> {
    let mut reader = Reader(value);
    let version = reader.i16()?;
    if !(0..=VALUE_VERSION).contains(&version) {
        return None;
    }
    let protocol_type = reader.string()?;
    let generation = reader.i32()?;
    let protocol = reader.nullable_string()?;
    let leader = reader.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { reader.i64()? } else { -1 };
    let count = usize::try_from(reader.i32()?).ok()?;
    let mut members = Vec::with_capacity(count.min(value.len()));
    for _ in 0..count {
        let member_id = reader.string()?;
        let instance_id = if version >= 3 { reader.nullable_string()? } else { None };
        let client_id = reader.string()?;
        let client_host = reader.string()?;
        let session_after_rebalance = version >= 1;
        let first_timeout = reader.i32()?;
        let (rebalance_timeout_ms, session_timeout_ms) =
            if session_after_rebalance { (first_timeout, reader.i32()?) } else { (first_timeout, first_timeout) };
        let subscription = Bytes::copy_from_slice(reader.bytes()?);
        let assignment = Bytes::copy_from_slice(reader.bytes()?);
        members.push(StoredMember {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(StoredGroup { protocol_type, generation, protocol, leader, state_timestamp_ms, members })
}

/// The group of a group metadata key (version 2); `None` for other record types.
pub fn decode_key(key: &[u8]) -> Option<String> {
    let mut reader = Reader(key);
    match reader.i16()? {
        2 => reader.string(),
        _ => None,
    }
}

/// Applies one record of the offsets topic to `groups` (offset commits are skipped).
pub fn apply_record(groups: &mut HashMap<String, StoredGroup>, key: Option<&[u8]>, value: Option<&[u8]>) {
    let Some(group_id) = key.and_then(decode_key) else { return };
    match value.map(decode_value) {
        None => {
            groups.remove(&group_id);
        }
        Some(Some(group)) => {
            groups.insert(group_id, group);
        }
        Some(None) => tracing::warn!(group = group_id, "skipping a group metadata record of an unknown version"),
    }
}

/// One uncompressed batch holding `group`'s metadata record, ready to append.
pub fn group_batch(group_id: &str, group: &StoredGroup, now_ms: i64) -> BytesMut {
    let key = encode_group_key(group_id);
    let value = encode_value(group);
    let spec = RecordSpec { key: Some(&key), value: Some(&value), headers: &[], timestamp_ms: now_ms };
    BytesMut::from(&build_batch(&[spec], BatchOptions::default())[..])
}

#[cfg(test)]
mod tests {
    use spate_core::batch::BATCH_HEADER_LEN;
    use spate_core::record::RecordIter;

    use super::*;

    fn sample() -> StoredGroup {
        StoredGroup {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m-1".into()),
            state_timestamp_ms: 1_700_000_000_000,
            members: vec![
                StoredMember {
                    member_id: "m-1".into(),
                    instance_id: Some("i-1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(&[0, 1, 2]),
                    assignment: Bytes::from_static(&[9]),
                },
                StoredMember {
                    member_id: "m-2".into(),
                    instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.2".into(),
                    rebalance_timeout_ms: 1,
                    session_timeout_ms: 2,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn values_round_trip_in_kafkas_v3_layout() {
        let group = sample();
        let value = encode_value(&group);
        // version, "consumer", generation, "range", "m-1", timestamp, 2 members.
        assert_eq!(&value[..2], &[0, 3]);
        assert_eq!(&value[2..12], &[0, 8, b'c', b'o', b'n', b's', b'u', b'm', b'e', b'r']);
        assert_eq!(&value[12..16], &7i32.to_be_bytes());
        assert_eq!(decode_value(&value), Some(group));
        // A cut value is not a group.
        assert_eq!(decode_value(&value[..value.len() - 1]), None);
    }

    #[test]
    fn version_0_has_one_timeout_and_no_instance_id_or_timestamp() {
        let mut value = vec![0, 0];
        put_string(&mut value, "consumer");
        value.extend_from_slice(&3i32.to_be_bytes());
        put_nullable_string(&mut value, None);
        put_nullable_string(&mut value, None);
        value.extend_from_slice(&1i32.to_be_bytes());
        put_string(&mut value, "m");
        put_string(&mut value, "c");
        put_string(&mut value, "h");
        value.extend_from_slice(&5000i32.to_be_bytes());
        put_bytes(&mut value, b"s");
        value.extend_from_slice(&(-1i32).to_be_bytes());
        let group = decode_value(&value).expect("a v0 value");
        assert_eq!((group.generation, group.protocol.as_deref(), group.state_timestamp_ms), (3, None, -1));
        assert_eq!(group.members[0].session_timeout_ms, 5000);
        assert_eq!(group.members[0].rebalance_timeout_ms, 5000);
        assert_eq!(group.members[0].instance_id, None);
        assert!(group.members[0].assignment.is_empty());
    }

    #[test]
    fn records_apply_in_order_and_tombstones_remove() {
        let mut groups = HashMap::new();
        let batch = group_batch("g", &sample(), 5);
        let records: Vec<_> = RecordIter::new(&batch[BATCH_HEADER_LEN..]).flatten().collect();
        assert_eq!(records.len(), 1);
        apply_record(&mut groups, records[0].key, records[0].value);
        assert_eq!(groups["g"], sample());
        // Offset commit records are not groups.
        apply_record(&mut groups, Some(&super::super::offsets::encode_key("g", "t", 0)), None);
        assert_eq!(groups.len(), 1);
        apply_record(&mut groups, Some(&encode_group_key("g")), None);
        assert!(groups.is_empty());
    }
}
