//! CreatePartitions (key 37), versions 0–3: grow topics.
//!
//! The controller checks each topic (`UNKNOWN_TOPIC_OR_PARTITION`; a count not above the current one
//! is `INVALID_PARTITIONS`; assignments must name this node alone, one per new partition, else
//! `INVALID_REPLICA_ASSIGNMENT`; a topic named twice is `INVALID_REQUEST`), then, unless
//! `validate_only`, persists the new counts, has every owner open the new logs and only then installs
//! the new table everywhere, as creation does. New partitions are placed by the same hash as the
//! others, so existing partitions never move.

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use spate_core::runtime::ShardId;
use spate_core::ErrorCode;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::CREATE_PARTITIONS;
use crate::header::RequestHeader;
use crate::shard::controller::{ControllerCall, ControllerReply, NewPartitions};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;

/// Answers one CreatePartitions request.
///
/// # Panics
/// If `header` is not a CreatePartitions header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::CreatePartitions, "misrouted request");
    let request: CreatePartitionsRequest = decode_checked(header, &CREATE_PARTITIONS, body)?;
    let topics: Vec<NewPartitions> = request
        .topics
        .iter()
        .map(|topic| NewPartitions {
            name: topic.name.to_string(),
            count: topic.count,
            assignments: topic.assignments.as_ref().map(|assignments| {
                assignments.iter().map(|assignment| assignment.broker_ids.iter().map(|id| id.0).collect()).collect()
            }),
        })
        .collect();
    let mut outcomes = Vec::new();
    if !topics.is_empty() {
        let call = ControllerCall::CreatePartitions { topics, validate_only: request.validate_only };
        if let Ok(ShardReply::Controller(ControllerReply::CreatePartitions(answers))) =
            context.call(ShardId::new(0), ShardRequest::Controller(call)).await
        {
            outcomes = answers;
        }
    }
    let mut outcomes = outcomes.into_iter();
    let results = request
        .topics
        .iter()
        .map(|topic| {
            let outcome = outcomes
                .next()
                .unwrap_or_else(|| Err((ErrorCode::UnknownServerError, "the controller is not available".to_owned())));
            let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
            match outcome {
                Ok(()) => result.with_error_code(0).with_error_message(None),
                Err((code, message)) => {
                    result.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
                }
            }
        })
        .collect();
    respond(header, &CreatePartitionsResponse::default().with_throttle_time_ms(0).with_results(results))
}
