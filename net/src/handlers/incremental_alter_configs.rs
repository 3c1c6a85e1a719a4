//! IncrementalAlterConfigs (key 44), versions 0–1: change some of a topic's overrides.
//!
//! Operations: SET (0) a key, DELETE (1) an override (back to the broker default), APPEND (2) and
//! SUBTRACT (3) items of a list key (`cleanup.policy`; any other key is `INVALID_CONFIG`, as in
//! Kafka), starting from the override or the default. The controller applies them to the current
//! overrides under its lock, validates the result (`INVALID_CONFIG` with Kafka's message), and commits
//! as AlterConfigs does (`alter_configs::alter`); `validate_only` changes nothing. Broker resources
//! are `INVALID_REQUEST` for now.

use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{alter, split};
use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::INCREMENTAL_ALTER_CONFIGS;
use crate::header::RequestHeader;
use crate::shard::controller::ConfigChange;
use crate::shard::ShardContext;

/// Answers one IncrementalAlterConfigs request.
///
/// # Panics
/// If `header` is not an IncrementalAlterConfigs header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::IncrementalAlterConfigs, "misrouted request");
    let request: IncrementalAlterConfigsRequest = decode_checked(header, &INCREMENTAL_ALTER_CONFIGS, body)?;
    let resources = request
        .resources
        .iter()
        .map(|resource| {
            let ops = resource
                .configs
                .iter()
                .map(|config| {
                    let value = config.value.as_ref().map(|value| value.to_string());
                    (config.name.to_string(), config.config_operation, value)
                })
                .collect();
            (resource.resource_type, resource.resource_name.to_string(), ConfigChange::Incremental(ops))
        })
        .collect();
    let outcomes = alter(context, resources, request.validate_only).await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, outcome)| {
            let (code, message) = split(outcome);
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
        })
        .collect();
    respond(header, &IncrementalAlterConfigsResponse::default().with_throttle_time_ms(0).with_responses(responses))
}
