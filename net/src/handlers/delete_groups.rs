//! DeleteGroups (key 42), versions 0–2: deletes groups that are Empty (no members) or have only
//! committed offsets. Their offsets and group metadata key get tombstones in `__consumer_offsets`
//! (Kafka's layout, flushed like a commit), so a restart does not bring them back. A group with
//! members: NON_EMPTY_GROUP; an unknown one: GROUP_ID_NOT_FOUND.

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::DELETE_GROUPS;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Answers one DeleteGroups request.
///
/// # Panics
/// If `header` is not a DeleteGroups header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::DeleteGroups, "misrouted request");
    let request: DeleteGroupsRequest = decode_checked(header, &DELETE_GROUPS, body)?;
    let mut results = Vec::with_capacity(request.groups_names.len());
    for group_id in request.groups_names {
        let call = GroupCall::Delete(group_id.to_string());
        let code = match call_coordinator(context, group_id.as_str(), call).await {
            Ok(GroupReply::Code(code)) | Err(code) => code,
            Ok(_) => unreachable!("the coordinator answers a delete with a code"),
        };
        results.push(DeletableGroupResult::default().with_group_id(group_id).with_error_code(code));
    }
    respond(header, &DeleteGroupsResponse::default().with_throttle_time_ms(0).with_results(results))
}
