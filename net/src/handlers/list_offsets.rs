//! ListOffsets (key 2), versions 1–8: an offset per partition, by position or by time.
//!
//! Each partition is resolved in this shard's topic table copy (`UNKNOWN_TOPIC_OR_PARTITION`), the
//! partitions are grouped by owner shard and answered there ([`on_owner`]), all owners at once. The
//! `timestamp` of each partition asks for:
//!
//! | timestamp | answer (offset, timestamp) |
//! | --- | --- |
//! | -2 earliest | the log start offset, -1 |
//! | -1 latest | the high watermark (also for read_committed: no transactions, so it is the LSO), -1 |
//! | -3 max timestamp (v7+) | the offset and timestamp of the record with the largest timestamp; -1, -1 if empty |
//! | -4 earliest local (v8+) | the log start offset, -1 (all of the log is local) |
//! | t ≥ 0 | the first offset whose timestamp is ≥ t (`Log::offset_for_timestamp`), and that timestamp; -1, -1 if none below the high watermark |
//!
//! -3 before v7 and -4 before v8 are `UNSUPPORTED_VERSION` for that partition, as in Kafka. A
//! `current_leader_epoch` above the leader's (0) is `UNKNOWN_LEADER_EPOCH`. The leader epoch answered
//! (v4+) is 0.

use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use spate_core::ErrorCode;
use uuid::Uuid;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::LIST_OFFSETS;
use crate::handlers::produce::LEADER_EPOCH;
use crate::header::RequestHeader;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::scatter::Scatter;
use crate::shard::{join_all, ShardContext};

/// `timestamp` -1: the latest offset.
pub const LATEST: i64 = -1;
/// `timestamp` -2: the earliest offset.
pub const EARLIEST: i64 = -2;
/// `timestamp` -3: the record with the largest timestamp (v7+).
pub const MAX_TIMESTAMP: i64 = -3;
/// `timestamp` -4: the earliest offset on local storage (v8+).
pub const EARLIEST_LOCAL: i64 = -4;

/// Offsets for one owner shard.
pub struct OffsetsCall {
    /// The partitions, in the order the answers must come back.
    pub parts: Vec<OffsetsPart>,
}

/// One partition's question.
#[derive(Debug, Clone, Copy)]
pub struct OffsetsPart {
    /// The topic.
    pub topic_id: Uuid,
    /// The partition.
    pub partition: i32,
    /// What is asked (see the module docs).
    pub timestamp: i64,
    /// The leader epoch the client believes in (-1: unknown).
    pub current_leader_epoch: i32,
}

/// One partition's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetOutcome {
    /// `NONE` or the error.
    pub error: ErrorCode,
    /// The timestamp found, or -1.
    pub timestamp: i64,
    /// The offset found, or -1.
    pub offset: i64,
}

impl OffsetOutcome {
    fn failed(error: ErrorCode) -> Self {
        OffsetOutcome { error, timestamp: -1, offset: -1 }
    }

    fn found(offset: i64, timestamp: i64) -> Self {
        OffsetOutcome { error: ErrorCode::None, timestamp, offset }
    }
}

/// Answers one ListOffsets request.
///
/// # Panics
/// If `header` is not a ListOffsets header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::ListOffsets, "misrouted request");
    let version = header.api_version;
    let request: ListOffsetsRequest = decode_checked(header, &LIST_OFFSETS, body)?;
    let table = context.topics();
    let mut results: Vec<Vec<OffsetOutcome>> = request
        .topics
        .iter()
        .map(|topic| vec![OffsetOutcome::failed(ErrorCode::UnknownServerError); topic.partitions.len()])
        .collect();
    let mut scatter: Scatter<(usize, usize), OffsetsPart> = Scatter::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let entry = table.get(topic.name.as_str());
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            let unsupported = (partition.timestamp == MAX_TIMESTAMP && version < 7)
                || (partition.timestamp == EARLIEST_LOCAL && version < 8);
            let Some(entry) = entry.filter(|entry| (0..entry.partitions).contains(&partition.partition_index)) else {
                results[topic_index][partition_index] = OffsetOutcome::failed(ErrorCode::UnknownTopicOrPartition);
                continue;
            };
            if unsupported {
                results[topic_index][partition_index] = OffsetOutcome::failed(ErrorCode::UnsupportedVersion);
                continue;
            }
            scatter.add(
                context.owner(&entry.id, partition.partition_index),
                (topic_index, partition_index),
                OffsetsPart {
                    topic_id: entry.id,
                    partition: partition.partition_index,
                    timestamp: partition.timestamp,
                    current_leader_epoch: partition.current_leader_epoch,
                },
            );
        }
    }
    scatter
        .gather(
            context,
            &mut results[..],
            |parts| ShardRequest::ListOffsets(OffsetsCall { parts }),
            |reply| match reply {
                ShardReply::ListOffsets(outcomes) => Some(outcomes),
                _ => None,
            },
            OffsetOutcome::failed(ErrorCode::NotLeaderOrFollower),
        )
        .await;
    let topics = request
        .topics
        .iter()
        .zip(results)
        .map(|(topic, outcomes)| {
            let partitions = topic
                .partitions
                .iter()
                .zip(outcomes)
                .map(|(partition, outcome)| {
                    let answer = ListOffsetsPartitionResponse::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(outcome.error.code())
                        .with_timestamp(outcome.timestamp)
                        .with_offset(outcome.offset);
                    if version >= 4 {
                        let epoch = if outcome.error == ErrorCode::None { LEADER_EPOCH } else { -1 };
                        answer.with_leader_epoch(epoch)
                    } else {
                        answer
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    respond(header, &ListOffsetsResponse::default().with_throttle_time_ms(0).with_topics(topics))
}

/// The owner's side: answers every part at once, in order.
pub async fn on_owner(context: &ShardContext, call: OffsetsCall) -> Vec<OffsetOutcome> {
    join_all(call.parts.into_iter().map(|part| offsets_one(context, part)).collect()).await
}

async fn offsets_one(context: &ShardContext, part: OffsetsPart) -> OffsetOutcome {
    let Some(partition) = context.partitions.get(&part.topic_id, part.partition) else {
        return OffsetOutcome::failed(ErrorCode::NotLeaderOrFollower);
    };
    if part.current_leader_epoch > LEADER_EPOCH {
        return OffsetOutcome::failed(ErrorCode::UnknownLeaderEpoch);
    }
    let log = &partition.log;
    let high_watermark = log.high_watermark();
    match part.timestamp {
        EARLIEST | EARLIEST_LOCAL => OffsetOutcome::found(log.log_start_offset(), -1),
        LATEST => OffsetOutcome::found(high_watermark, -1),
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some((timestamp, offset)) if offset < high_watermark => OffsetOutcome::found(offset, timestamp),
            _ => OffsetOutcome::found(-1, -1),
        },
        timestamp => match log.offset_for_timestamp(timestamp).await {
            Ok(Some((offset, found))) if offset < high_watermark => OffsetOutcome::found(offset, found),
            Ok(_) => OffsetOutcome::found(-1, -1),
            Err(error) => {
                context.partitions.check_fatal(&partition, error);
                OffsetOutcome::failed(error)
            }
        },
    }
}
