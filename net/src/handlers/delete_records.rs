//! DeleteRecords (key 21), versions 0–2: move partitions' log start offsets forward.
//!
//! Each partition is resolved in this shard's table copy (`UNKNOWN_TOPIC_OR_PARTITION`), grouped by
//! owner, and on the owner `Log::delete_records_before(offset)` runs (offset -1: the high watermark):
//! the new log start offset is written durably, then whole segments below it are deleted. The answer
//! is the new low watermark; an offset below 0 (other than -1) or above the high watermark is
//! `OFFSET_OUT_OF_RANGE`, as storage returns it. An offset at or below the current start changes
//! nothing and answers the current start.

use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use spate_core::ErrorCode;
use uuid::Uuid;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::DELETE_RECORDS;
use crate::header::RequestHeader;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::partitions::run_log_op;
use crate::shard::scatter::Scatter;
use crate::shard::ShardContext;

/// Deletions for one owner shard.
pub struct DeleteRecordsCall {
    /// (topic id, partition, offset), in the order the answers must come back.
    pub parts: Vec<(Uuid, i32, i64)>,
}

/// One partition's answer: the new low watermark, or the error.
pub type DeleteRecordsOutcome = Result<i64, ErrorCode>;

/// Answers one DeleteRecords request.
///
/// # Panics
/// If `header` is not a DeleteRecords header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::DeleteRecords, "misrouted request");
    let request: DeleteRecordsRequest = decode_checked(header, &DELETE_RECORDS, body)?;
    let table = context.topics();
    let mut results: Vec<Vec<DeleteRecordsOutcome>> = request
        .topics
        .iter()
        .map(|topic| vec![Err(ErrorCode::UnknownTopicOrPartition); topic.partitions.len()])
        .collect();
    let mut scatter: Scatter<(usize, usize), (Uuid, i32, i64)> = Scatter::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let Some(entry) = table.get(topic.name.as_str()) else { continue };
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            let index = partition.partition_index;
            if !(0..entry.partitions).contains(&index) {
                continue;
            }
            scatter.add(
                context.owner(&entry.id, index),
                (topic_index, partition_index),
                (entry.id, index, partition.offset),
            );
        }
    }
    scatter
        .gather(
            context,
            &mut results[..],
            |parts| ShardRequest::DeleteRecords(DeleteRecordsCall { parts }),
            |reply| match reply {
                ShardReply::DeleteRecords(outcomes) => Some(outcomes),
                _ => None,
            },
            Err(ErrorCode::NotLeaderOrFollower),
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
                    let (low_watermark, error) = match outcome {
                        Ok(low) => (low, ErrorCode::None),
                        Err(error) => (-1, error),
                    };
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(partition.partition_index)
                        .with_low_watermark(low_watermark)
                        .with_error_code(error.code())
                })
                .collect();
            DeleteRecordsTopicResult::default().with_name(topic.name.clone()).with_partitions(partitions)
        })
        .collect();
    respond(header, &DeleteRecordsResponse::default().with_throttle_time_ms(0).with_topics(topics))
}

/// The owner's side: each deletion in turn (they are quick: a checkpoint write and unlinks).
pub async fn on_owner(context: &ShardContext, call: DeleteRecordsCall) -> Vec<DeleteRecordsOutcome> {
    let mut outcomes = Vec::with_capacity(call.parts.len());
    for (id, index, offset) in call.parts {
        let Some(partition) = context.partitions.get(&id, index) else {
            outcomes.push(Err(ErrorCode::NotLeaderOrFollower));
            continue;
        };
        let deleting = partition.clone();
        let outcome = match run_log_op(async move { deleting.log.delete_records_before(offset).await }).await {
            Some(outcome) => outcome,
            None => Err(ErrorCode::KafkaStorageError),
        };
        if let Err(error) = outcome {
            context.partitions.check_fatal(&partition, error);
        }
        outcomes.push(outcome);
    }
    outcomes
}
