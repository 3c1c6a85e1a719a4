//! CreateTopics (key 19), versions 2–7.
//!
//! The topics go to the controller (shard 0), which validates and creates them one request at a
//! time (see `shard::controller`); this handler checks the body, refuses names the request lists
//! twice (`INVALID_REQUEST`, as Kafka does, for every entry of that name), and shapes the answer:
//!
//! - per topic, in request order: the error code and (v1+) message;
//! - v5+: the partition count, the replication factor (1) and the effective configs with their
//!   sources, for created topics and for `validate_only` ones; v7+: the topic id (nil under
//!   `validate_only`, as Kafka answers).
//!
//! `num_partitions` and `replication_factor` -1 take the broker defaults (`num_partitions`, 1);
//! a replication factor other than 1 is `INVALID_REPLICATION_FACTOR` on this single node; manual
//! assignments must put every partition on this node alone. `timeout_ms` is not needed: creation
//! completes (every partition opened) before the answer.

use std::collections::HashMap;

use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use spate_core::runtime::ShardId;
use spate_core::ErrorCode;

use super::{decode_checked, respond, HandlerError};
use crate::guard::schemas::CREATE_TOPICS;
use crate::header::RequestHeader;
use crate::shard::controller::{CreateOutcome, CreateTopicsCall, CreatedTopic, NewTopic};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;

/// First version whose results carry partitions, replication factor and configs.
const FIRST_CONFIGS_VERSION: i16 = 5;
/// First version whose results carry the topic id.
const FIRST_TOPIC_ID_VERSION: i16 = 7;

/// Answers one CreateTopics request.
///
/// # Panics
/// If `header` is not a CreateTopics header: dispatch sent the wrong request here.
pub async fn handle(
    context: &ShardContext,
    header: &RequestHeader,
    body: Bytes,
) -> Result<Option<Vec<Bytes>>, HandlerError> {
    assert_eq!(header.api_key, ApiKey::CreateTopics, "misrouted request");
    let request: CreateTopicsRequest = decode_checked(header, &CREATE_TOPICS, body)?;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for topic in &request.topics {
        *count.entry(topic.name.as_str()).or_default() += 1;
    }
    let unique: Vec<NewTopic> = request
        .topics
        .iter()
        .filter(|topic| count.get(topic.name.as_str()) == Some(&1))
        .map(|topic| NewTopic {
            name: topic.name.to_string(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|assignment| (assignment.partition_index, assignment.broker_ids.iter().map(|id| id.0).collect()))
                .collect(),
            configs: topic
                .configs
                .iter()
                .map(|config| (config.name.to_string(), config.value.as_ref().map(|value| value.to_string())))
                .collect(),
        })
        .collect();
    let mut outcomes: HashMap<String, CreateOutcome> = HashMap::new();
    if !unique.is_empty() {
        let call = CreateTopicsCall { topics: unique, validate_only: request.validate_only };
        // If the controller is stopping, the topics below are answered as not created.
        if let Ok(ShardReply::CreateTopics(answers)) =
            context.call(ShardId::new(0), ShardRequest::CreateTopics(call)).await
        {
            outcomes.extend(answers.into_iter().map(|outcome| (outcome.name.clone(), outcome)));
        }
    }
    let results = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.as_str();
            let result = if count.get(name) != Some(&1) {
                Err((ErrorCode::InvalidRequest, "Duplicate topic name.".to_owned()))
            } else {
                match outcomes.remove(name) {
                    Some(outcome) => outcome.result,
                    None => Err((ErrorCode::UnknownServerError, "the controller is not available".to_owned())),
                }
            };
            topic_result(header.api_version, topic.name.clone(), result)
        })
        .collect();
    respond(header, &CreateTopicsResponse::default().with_throttle_time_ms(0).with_topics(results))
}

fn topic_result(
    version: i16,
    name: TopicName,
    result: Result<CreatedTopic, (ErrorCode, String)>,
) -> CreatableTopicResult {
    let answer = CreatableTopicResult::default().with_name(name);
    match result {
        Err((code, message)) => {
            answer.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
        }
        Ok(created) => {
            let answer = answer.with_error_code(0).with_error_message(None);
            if version < FIRST_CONFIGS_VERSION {
                return answer;
            }
            let configs = created
                .configs
                .into_iter()
                .map(|entry| {
                    CreatableTopicConfigs::default()
                        .with_name(StrBytes::from_static_str(entry.key))
                        .with_value(Some(StrBytes::from_string(entry.value)))
                        .with_read_only(false)
                        .with_config_source(entry.source.code())
                        .with_is_sensitive(false)
                })
                .collect();
            let answer = if version >= FIRST_TOPIC_ID_VERSION { answer.with_topic_id(created.id) } else { answer };
            answer.with_num_partitions(created.partitions).with_replication_factor(1).with_configs(Some(configs))
        }
    }
}
