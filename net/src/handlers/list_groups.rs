//! ListGroups (key 16), versions 0–5: every group on every shard of this broker. Groups live on the
//! shards owning their `__consumer_offsets` partitions ([`crate::group`]), so each such shard is asked
//! once. v4 filters by state (Kafka's names, case-insensitive), v5 by type (`classic`, or
//! `consumer` for KIP-848 groups). Groups with only committed offsets are listed as Empty with protocol type "".

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::state::Addressed;
use crate::group::{GroupCall, GroupReply, OFFSETS_TOPIC};
use crate::guard::schemas::LIST_GROUPS;
use crate::header::RequestHeader;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;

/// Whether `value` passes `filter` (empty: everything), ignoring ASCII case as Kafka does.
fn passes(filter: &[StrBytes], value: &str) -> bool {
    filter.is_empty() || filter.iter().any(|wanted| wanted.as_str().eq_ignore_ascii_case(value))
}

/// Every group of every shard coordinating groups, sorted by id. `Err`: a shard did not answer.
pub async fn all_groups(context: &ShardContext) -> Result<Vec<ListedGroup>, i16> {
    let Some(topic) = context.topics().get(OFFSETS_TOPIC).cloned() else { return Ok(Vec::new()) };
    // One partition per owning shard: each shard's `Groups` holds all of its partitions' groups.
    let mut shards = BTreeMap::new();
    for partition in 0..topic.partitions {
        shards.entry(context.owner(&topic.id, partition)).or_insert(partition);
    }
    let mut groups = Vec::new();
    for (shard, partition) in shards {
        let call = Addressed { topic_id: topic.id, partition, call: GroupCall::List };
        match context.call(shard, ShardRequest::Group(Box::new(call))).await {
            Ok(ShardReply::Group(reply)) => match *reply {
                GroupReply::List(listed) => groups.extend(listed),
                _ => unreachable!("the coordinator answers a list with a list"),
            },
            _ => return Err(ResponseError::CoordinatorNotAvailable.code()),
        }
    }
    groups.sort_by(|a, b| a.group_id.0.as_str().cmp(b.group_id.0.as_str()));
    Ok(groups)
}

/// Answers one ListGroups request.
///
/// # Panics
/// If `header` is not a ListGroups header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::ListGroups, "misrouted request");
    let request: ListGroupsRequest = decode_checked(header, &LIST_GROUPS, body)?;
    let response = ListGroupsResponse::default().with_throttle_time_ms(0);
    let response = match all_groups(context).await {
        Ok(groups) => {
            let groups = groups
                .into_iter()
                .filter(|group| {
                    passes(&request.states_filter, group.group_state.as_str())
                        && passes(&request.types_filter, group.group_type.as_str())
                })
                .collect();
            response.with_groups(groups)
        }
        Err(code) => response.with_error_code(code),
    };
    respond(header, &response)
}
