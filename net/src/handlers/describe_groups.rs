//! DescribeGroups (key 15), versions 0–6: each group's state, protocol type, chosen protocol and
//! members (member id, instance id, client id, metadata and assignment bytes as the members sent and
//! received them), from the shard coordinating it ([`crate::group`]). As in Kafka, an unknown group
//! is answered with state `Dead` and error NONE, and the protocol and member metadata are filled only
//! for a Stable group. Not done: `client_host` is empty (the handlers do not see the connection's
//! peer address); authorized operations stay at Kafka's "not asked" default.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::DESCRIBE_GROUPS;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Answers one DescribeGroups request.
///
/// # Panics
/// If `header` is not a DescribeGroups header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::DescribeGroups, "misrouted request");
    let request: DescribeGroupsRequest = decode_checked(header, &DESCRIBE_GROUPS, body)?;
    let mut groups = Vec::with_capacity(request.groups.len());
    for group_id in request.groups {
        let call = GroupCall::Describe(group_id.to_string());
        let described = match call_coordinator(context, group_id.as_str(), call).await {
            Ok(GroupReply::Describe(described)) => described,
            Ok(_) => unreachable!("the coordinator answers a describe with a describe"),
            Err(code) => DescribedGroup::default().with_group_id(group_id).with_error_code(code),
        };
        groups.push(described);
    }
    respond(header, &DescribeGroupsResponse::default().with_throttle_time_ms(0).with_groups(groups))
}
