//! LeaveGroup (key 13), versions 0–5 (v3+: a batch of members, KIP-345); served by the shard
//! coordinating the group. Members that leave start a rebalance of the others.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::LEAVE_GROUP;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// First version with a batch of members.
const FIRST_BATCHED_VERSION: i16 = 3;

/// Answers one LeaveGroup request.
///
/// # Panics
/// If `header` is not a LeaveGroup header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::LeaveGroup, "misrouted request");
    let version = header.api_version;
    let request: LeaveGroupRequest = decode_checked(header, &LEAVE_GROUP, body)?;
    let group_id = request.group_id.to_string();
    let (code, members) = match call_coordinator(context, &group_id, GroupCall::Leave(request, version)).await {
        Ok(GroupReply::Leave(code, members)) => (code, members),
        Ok(_) => unreachable!("the coordinator answers a leave with a leave"),
        Err(code) => (code, Vec::new()),
    };
    let response = LeaveGroupResponse::default().with_error_code(code);
    let response = if version >= FIRST_BATCHED_VERSION { response.with_members(members) } else { response };
    respond(header, &response)
}
