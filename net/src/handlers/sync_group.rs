//! SyncGroup (key 14), versions 0–5: the leader's assignment in, each member's share out; served by
//! the shard coordinating the group ([`crate::group`]).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::SYNC_GROUP;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Answers one SyncGroup request.
///
/// # Panics
/// If `header` is not a SyncGroup header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::SyncGroup, "misrouted request");
    let request: SyncGroupRequest = decode_checked(header, &SYNC_GROUP, body)?;
    let group_id = request.group_id.to_string();
    let response = match call_coordinator(context, &group_id, GroupCall::Sync(request, None)).await {
        Ok(GroupReply::Sync(response)) => response,
        Ok(_) => unreachable!("the coordinator answers a sync with a sync"),
        Err(code) => SyncGroupResponse::default().with_error_code(code),
    };
    respond(header, &response.with_throttle_time_ms(0))
}
