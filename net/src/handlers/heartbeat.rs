//! Heartbeat (key 12), versions 0–4: keeps a member's session alive and tells it when the group is
//! rebalancing (`REBALANCE_IN_PROGRESS`); served by the shard coordinating the group.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::HEARTBEAT;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Answers one Heartbeat request.
///
/// # Panics
/// If `header` is not a Heartbeat header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::Heartbeat, "misrouted request");
    let request: HeartbeatRequest = decode_checked(header, &HEARTBEAT, body)?;
    let group_id = request.group_id.to_string();
    let code = match call_coordinator(context, &group_id, GroupCall::Heartbeat(request)).await {
        Ok(GroupReply::Code(code)) | Err(code) => code,
        Ok(_) => unreachable!("the coordinator answers a heartbeat with a code"),
    };
    respond(header, &HeartbeatResponse::default().with_error_code(code))
}
