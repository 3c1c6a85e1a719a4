//! AlterConfigs (key 33), versions 0–2: replace a topic's whole override set.
//!
//! The configs sent become the topic's overrides; every key not sent returns to the broker default,
//! as in Kafka. Values are validated with `spate_core::topic_config` (`INVALID_CONFIG` with Kafka's
//! message; a null value too); with `validate_only` nothing changes. Otherwise the controller persists
//! the table, every owner applies the new config to its open logs (`Log::set_config`), and the new
//! table is installed everywhere before the answer. Unknown topic: `UNKNOWN_TOPIC_OR_PARTITION`.
//! Broker resources (type 4) are `INVALID_REQUEST` ("not supported": Spate has no dynamic broker
//! configs yet), as is any other resource type and a resource named twice.
//!
//! [`alter`] is shared with IncrementalAlterConfigs.

use bytes::Bytes;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;
use spate_core::runtime::ShardId;
use spate_core::ErrorCode;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::ALTER_CONFIGS;
use crate::header::RequestHeader;
use crate::shard::controller::{ConfigChange, ControllerCall, ControllerReply, Outcome};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;

/// Answers one AlterConfigs request.
///
/// # Panics
/// If `header` is not an AlterConfigs header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::AlterConfigs, "misrouted request");
    let request: AlterConfigsRequest = decode_checked(header, &ALTER_CONFIGS, body)?;
    let resources = request
        .resources
        .iter()
        .map(|resource| {
            let configs = resource
                .configs
                .iter()
                .map(|config| (config.name.to_string(), config.value.as_ref().map(|value| value.to_string())))
                .collect();
            (resource.resource_type, resource.resource_name.to_string(), ConfigChange::Replace(configs))
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
    respond(header, &AlterConfigsResponse::default().with_throttle_time_ms(0).with_responses(responses))
}

/// An outcome as (error code, message).
pub fn split(outcome: Outcome) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((code, message)) => (code.code(), Some(StrBytes::from_string(message))),
    }
}

/// Applies `resources` — (resource type, name, change) — through the controller; one outcome per
/// resource, in order.
pub async fn alter(
    context: &ShardContext,
    resources: Vec<(i8, String, ConfigChange)>,
    validate_only: bool,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(resources.len());
    let mut topics = Vec::new();
    for (resource_type, name, change) in resources {
        match resource_type {
            RESOURCE_TOPIC => {
                outcomes.push(None);
                topics.push((name, change));
            }
            RESOURCE_BROKER => outcomes.push(Some(Err((
                ErrorCode::InvalidRequest,
                "Altering broker configs is not supported yet".to_owned(),
            )))),
            other => {
                outcomes.push(Some(Err((ErrorCode::InvalidRequest, format!("Unsupported resource type {other}")))))
            }
        }
    }
    let mut answers = Vec::new().into_iter();
    if !topics.is_empty() {
        let call = ControllerCall::AlterConfigs { resources: topics, validate_only };
        if let Ok(ShardReply::Controller(ControllerReply::AlterConfigs(results))) =
            context.call(ShardId::new(0), ShardRequest::Controller(call)).await
        {
            answers = results.into_iter();
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| {
                answers.next().unwrap_or_else(|| {
                    Err((ErrorCode::UnknownServerError, "the controller is not available".to_owned()))
                })
            })
        })
        .collect()
}
