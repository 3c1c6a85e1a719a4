//! ConsumerGroupHeartbeat (key 68), versions 0–1: the new consumer group protocol (KIP-848). A
//! member joins (epoch 0), heartbeats with its epoch and the partitions it owns, and gets its
//! assignment from the coordinator, which computes it server-side ([`crate::group::consumer`]).
//! From v1 the client generates its member id (KIP-1082).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::consumer::{call_coordinator, ConsumerCall, ConsumerReply};
use crate::guard::schemas::CONSUMER_GROUP_HEARTBEAT;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Answers one ConsumerGroupHeartbeat request.
///
/// # Panics
/// If `header` is not a ConsumerGroupHeartbeat header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::ConsumerGroupHeartbeat, "misrouted request");
    let request: ConsumerGroupHeartbeatRequest = decode_checked(header, &CONSUMER_GROUP_HEARTBEAT, body)?;
    let group_id = request.group_id.to_string();
    let client_id = header.client_id.as_ref().map(ToString::to_string).unwrap_or_default();
    let call = ConsumerCall::Heartbeat(Box::new(request), header.api_version, client_id);
    let response = match call_coordinator(context, &group_id, call).await {
        Ok(ConsumerReply::Heartbeat(response)) => *response,
        Ok(_) => unreachable!("the coordinator answers a heartbeat with a heartbeat"),
        Err(code) => ConsumerGroupHeartbeatResponse::default().with_error_code(code),
    };
    respond(header, &response)
}
