//! JoinGroup (key 11), versions 0–9: decoded here, served by the shard coordinating the group
//! ([`crate::group`]), where the call waits until the rebalance round completes.

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::JOIN_GROUP;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// First version with `skip_assignment`.
const FIRST_SKIP_ASSIGNMENT_VERSION: i16 = 9;

/// Answers one JoinGroup request.
///
/// # Panics
/// If `header` is not a JoinGroup header: dispatch sent the wrong request here.
pub async fn handle(
    context: &ShardContext,
    header: &RequestHeader,
    body: Bytes,
    peer: Option<SocketAddr>,
) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::JoinGroup, "misrouted request");
    let request: JoinGroupRequest = decode_checked(header, &JOIN_GROUP, body)?;
    let member_id = request.member_id.clone();
    let group_id = request.group_id.to_string();
    let client_id = header.client_id.as_ref().map_or_else(String::new, |id| id.to_string());
    // Kafka shows a member's host as Java's `InetAddress.toString()` of the client: "/127.0.0.1".
    let client_host = peer.map_or_else(String::new, |peer| format!("/{}", peer.ip()));
    let call = GroupCall::Join(request, header.api_version, client_id, client_host, None);
    let response = match call_coordinator(context, &group_id, call).await {
        Ok(GroupReply::Join(response)) => response,
        Ok(_) => unreachable!("the coordinator answers a join with a join"),
        Err(code) => {
            JoinGroupResponse::default().with_error_code(code).with_generation_id(-1).with_member_id(member_id)
        }
    };
    // `skip_assignment` exists from v9 only (a static leader that took over its membership).
    let response = if header.api_version < FIRST_SKIP_ASSIGNMENT_VERSION {
        response.with_skip_assignment(false)
    } else {
        response
    };
    respond(header, &response.with_throttle_time_ms(0))
}
