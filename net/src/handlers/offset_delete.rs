//! OffsetDelete (key 47), version 0: deletes a group's committed offsets of the given partitions
//! (tombstones in `__consumer_offsets`, as DeleteGroups writes). Partitions of topics a consumer
//! group with members subscribes to: GROUP_SUBSCRIBED_TO_TOPIC; of topics that do not exist:
//! UNKNOWN_TOPIC_OR_PARTITION (as Kafka). An unknown group: GROUP_ID_NOT_FOUND; a non-consumer
//! group with members: NON_EMPTY_GROUP (top-level).

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::OFFSET_DELETE;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Answers one OffsetDelete request.
///
/// # Panics
/// If `header` is not an OffsetDelete header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::OffsetDelete, "misrouted request");
    let request: OffsetDeleteRequest = decode_checked(header, &OFFSET_DELETE, body)?;
    let table = context.topics();
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    // Per partition: its own error (unknown topic), or its place among the parts sent on.
    let mut parts = Vec::new();
    let mut slots = Vec::new();
    for topic in &request.topics {
        let known = table.get(topic.name.as_str()).is_some();
        for partition in &topic.partitions {
            if known {
                slots.push(Ok(parts.len()));
                parts.push((topic.name.to_string(), partition.partition_index));
            } else {
                slots.push(Err(unknown));
            }
        }
    }
    let count = parts.len();
    let group = request.group_id.to_string();
    let call = GroupCall::OffsetDelete { group: group.clone(), partitions: parts };
    let response = OffsetDeleteResponse::default().with_throttle_time_ms(0);
    let codes = match call_coordinator(context, &group, call).await {
        Ok(GroupReply::OffsetDelete(Ok(codes))) if codes.len() == count => codes,
        Ok(GroupReply::OffsetDelete(Err(code))) | Err(code) => {
            return respond(header, &response.with_error_code(code));
        }
        Ok(_) => unreachable!("the coordinator answers an offset delete with an offset delete"),
    };
    let mut slots = slots.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    let code = match slots.next() {
                        Some(Ok(index)) => codes.get(index).copied().unwrap_or_default(),
                        Some(Err(code)) => code,
                        None => 0,
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    respond(header, &response.with_topics(topics))
}
