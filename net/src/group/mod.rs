//! The group coordinator: classic consumer groups (JoinGroup, SyncGroup, Heartbeat, LeaveGroup),
//! committed offsets (OffsetCommit, OffsetFetch) and the admin APIs (ListGroups, DescribeGroups,
//! DeleteGroups, OffsetDelete; deletions are tombstones in the offsets topic).
//!
//! **Placement.** Groups are hashed over the partitions of the internal topic [`OFFSETS_TOPIC`] as
//! Kafka does: partition `abs(java_hash(group_id)) % partitions` ([`offsets_partition`]). A group lives
//! on the shard that owns that partition ([`coordinator_shard`]): its members, its generations and its
//! committed offsets are all state of that one shard, reached from any connection by a
//! `ShardRequest::Group` call. The topic is created by the controller at first need (`offsets_topic_num_partitions`, default 50,
//! `cleanup.policy=compact`; compaction itself is not done yet).
//!
//! **Offsets** are records in that partition, with Kafka's key and value layouts ([`offsets`]),
//! appended and flushed (fdatasync) before a commit is answered, and read back from the start of every
//! owned partition when the shard starts, so they survive restarts and kill -9.
//!
//! **Group membership** ([`state`], [`classic`]) lives in memory, and each completed generation
//! (members, leader, protocol, assignments) is also a group metadata record in the same partition
//! ([`metadata`], Kafka's layout), written before the leader's SyncGroup is answered and again when
//! the group empties. On start the shard restores its groups from those records: Stable groups keep
//! their generation, and their members carry on heartbeating under their ids (no rebalance) or time
//! out as usual. **Offsets expire** (`offsets_retention_minutes`, Kafka's KIP-211 rules) once their
//! group is empty, or, without a group, after their commit; expired offsets and dead groups get
//! tombstones.

pub mod calls;
pub mod classic;
pub mod consumer;
pub mod metadata;
pub mod offsets;
pub mod state;

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use spate_core::runtime::ShardId;

use crate::shard::controller::{CreateTopicsCall, NewTopic};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;
pub use state::{GroupCall, GroupReply, Groups};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Its default partition count (Kafka's `offsets.topic.num.partitions` default; the config key
/// `offsets_topic_num_partitions`). An existing topic keeps the count it was created with.
pub const OFFSETS_TOPIC_PARTITIONS: i32 = 50;

/// Java's `String.hashCode`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hashcode(value: &str) -> i32 {
    value.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// Kafka's `Utils.abs`: `Integer.MIN_VALUE` maps to 0.
fn kafka_abs(value: i32) -> i32 {
    if value == i32::MIN {
        0
    } else {
        value.abs()
    }
}

/// The `__consumer_offsets` partition of `group_id` among `partitions` (Kafka's
/// `Utils.abs(groupId.hashCode) % n`).
pub fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    kafka_abs(java_string_hashcode(group_id)) % partitions.max(1)
}

/// The offsets topic's id and partition count in this shard's table, creating the topic through the
/// controller if it does not exist yet. `Err`: an error code for the client (COORDINATOR_NOT_AVAILABLE,
/// which clients retry).
pub async fn offsets_topic(context: &ShardContext) -> Result<(uuid::Uuid, i32), i16> {
    if let Some(topic) = context.topics().get(OFFSETS_TOPIC) {
        return Ok((topic.id, topic.partitions));
    }
    let call = CreateTopicsCall {
        topics: vec![NewTopic {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: context.settings.offsets_topic_num_partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_string(), Some("compact".to_string())),
                ("segment.bytes".to_string(), Some("104857600".to_string())),
            ],
        }],
        validate_only: false,
    };
    let _ = context.call(ShardId::new(0), ShardRequest::CreateTopics(call)).await;
    // Created now, or by a concurrent call: either way the controller installed it before answering.
    match context.topics().get(OFFSETS_TOPIC) {
        Some(topic) => Ok((topic.id, topic.partitions)),
        None => Err(ResponseError::CoordinatorNotAvailable.code()),
    }
}

/// The shard coordinating `group_id`, and the offsets partition it uses.
pub async fn coordinator_shard(context: &ShardContext, group_id: &str) -> Result<(ShardId, uuid::Uuid, i32), i16> {
    let (topic_id, partitions) = offsets_topic(context).await?;
    let partition = offsets_partition(group_id, partitions);
    Ok((context.owner(&topic_id, partition), topic_id, partition))
}

/// How often a parked JoinGroup or SyncGroup asks again without being woken: only a lost wake
/// (the coordinator's shard stopping) makes this matter.
const PARKED_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends `call` to the shard coordinating `group_id`. `Err`: an error code for every part of the
/// answer (COORDINATOR_NOT_AVAILABLE). A JoinGroup or SyncGroup for another shard is parked there
/// ([`calls::Parked`]): this shard waits for the wake and collects the answer.
pub async fn call_coordinator(context: &ShardContext, group_id: &str, call: GroupCall) -> Result<GroupReply, i16> {
    let (shard, topic_id, partition) = coordinator_shard(context, group_id).await?;
    let send = |call: GroupCall| async move {
        let request = ShardRequest::Group(Box::new(state::Addressed { topic_id, partition, call }));
        match context.call(shard, request).await {
            Ok(ShardReply::Group(reply)) => Ok(*reply),
            _ => Err(ResponseError::CoordinatorNotAvailable.code()),
        }
    };
    if shard == context.shard.id() {
        return send(call).await;
    }
    let guard = context.waiters.register();
    let waiter = (context.shard.id(), guard.id);
    let mut call = match call {
        GroupCall::Join(request, version, client_id, client_host, _) => {
            GroupCall::Join(request, version, client_id, client_host, Some(waiter))
        }
        GroupCall::Sync(request, _) => GroupCall::Sync(request, Some(waiter)),
        other => return send(other).await,
    };
    loop {
        match send(call).await? {
            GroupReply::Pending(parked) => {
                let woken = async {
                    guard.waiter.wait().await;
                    true
                };
                let timeout = async {
                    spate_core::runtime::sleep(PARKED_POLL_INTERVAL).await;
                    true
                };
                let stopping = async {
                    context.shutdown.wait().await;
                    false
                };
                if !futures_lite::future::or(futures_lite::future::or(woken, timeout), stopping).await {
                    return Err(ResponseError::CoordinatorNotAvailable.code());
                }
                guard.waiter.reset();
                call = GroupCall::Collect(parked);
            }
            reply => return Ok(reply),
        }
    }
}

/// Serves a group call on the coordinating shard (through [`consumer::bridge`], which keeps
/// classic and consumer-protocol groups apart).
pub async fn on_owner(context: &Rc<ShardContext>, addressed: state::Addressed) -> GroupReply {
    consumer::bridge::on_owner(context, addressed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hashcode_matches_java() {
        // Values from Java: "".hashCode(), "a".hashCode(), "hello".hashCode(), ...
        assert_eq!(java_string_hashcode(""), 0);
        assert_eq!(java_string_hashcode("a"), 97);
        assert_eq!(java_string_hashcode("hello"), 99_162_322);
        // A non-BMP character counts as two UTF-16 code units (a surrogate pair).
        assert_eq!(java_string_hashcode("😀"), 0xD83D * 31 + 0xDE00);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Utils.abs maps it to 0.
        assert_eq!(java_string_hashcode("polygenelubricants"), i32::MIN);
        assert_eq!(offsets_partition("polygenelubricants", 50), 0);
        assert_eq!(offsets_partition("hello", 50), 99_162_322 % 50);
    }
}
