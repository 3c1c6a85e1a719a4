//! Where consumer-protocol groups meet the classic coordinator on a shard: the classic group
//! calls (JoinGroup, OffsetCommit, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete) pass
//! through here first, so that a group id is either kind, never both, and a consumer member's
//! offset commit is checked against its member epoch (OffsetCommit v9: `STALE_MEMBER_EPOCH`)
//! before the classic coordinator stores it like any unmanaged commit.

use std::collections::BTreeSet;
use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{ConsumerGroups, CONSUMER_GROUP_TYPE};
use crate::group::state::DEAD;
use crate::group::state::{self, Addressed, GroupCall, GroupReply};
use crate::shard::ShardContext;

/// The protocol type Kafka lists consumer groups with.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Whether the classic coordinator has a group `group_id` with members.
pub async fn classic_has_members(
    context: &Rc<ShardContext>,
    (topic_id, partition): (Uuid, i32),
    group_id: &str,
) -> bool {
    let call = GroupCall::Describe(group_id.to_string());
    match state::handle(context, Addressed { topic_id, partition, call }).await {
        GroupReply::Describe(described) => !described.members.is_empty(),
        _ => false,
    }
}

/// Serves a classic group call on the coordinating shard, with consumer-protocol groups in mind.
pub async fn on_owner(context: &Rc<ShardContext>, addressed: Addressed) -> GroupReply {
    let consumers = &context.consumer_groups;
    let Addressed { topic_id, partition, call } = addressed;
    let forward = |call: GroupCall| state::handle(context, Addressed { topic_id, partition, call });
    match call {
        GroupCall::Join(request, version, client_id, client_host, waiter) => {
            let group_id = request.group_id.to_string();
            if consumers.membership(&group_id) == Some(true) {
                let response = JoinGroupResponse::default()
                    .with_error_code(ResponseError::InconsistentGroupProtocol.code())
                    .with_generation_id(-1)
                    .with_member_id(request.member_id.clone());
                return GroupReply::Join(response);
            }
            // An empty consumer group gives its id to the classic group.
            consumers.remove_if_empty(&group_id);
            forward(GroupCall::Join(request, version, client_id, client_host, waiter)).await
        }
        GroupCall::Commit { group, generation, member_id, parts } => {
            match consumers.validate_commit(&group, &member_id, generation) {
                None => forward(GroupCall::Commit { group, generation, member_id, parts }).await,
                Some(Err(code)) => GroupReply::Commit(Err(code)),
                // Checked here; the classic coordinator stores it as an unmanaged commit.
                Some(Ok(())) => {
                    forward(GroupCall::Commit { group, generation: -1, member_id: String::new(), parts }).await
                }
            }
        }
        GroupCall::List => match forward(GroupCall::List).await {
            GroupReply::List(mut listed) => {
                listed.retain(|group| consumers.membership(group.group_id.as_str()).is_none());
                listed.extend(consumers.list());
                GroupReply::List(listed)
            }
            other => other,
        },
        GroupCall::Describe(group_id) if consumers.membership(&group_id).is_some() => {
            // DescribeGroups is for classic groups: Kafka shows a consumer group as Dead there.
            GroupReply::Describe(
                DescribedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(group_id)))
                    .with_group_state(StrBytes::from_static_str(DEAD))
                    .with_protocol_type(StrBytes::default()),
            )
        }
        GroupCall::Delete(group_id) => match consumers.membership(&group_id) {
            Some(true) => GroupReply::Code(ResponseError::NonEmptyGroup.code()),
            Some(false) => {
                consumers.remove_if_empty(&group_id);
                match forward(GroupCall::Delete(group_id)).await {
                    // No offsets to delete: the group itself was what existed.
                    GroupReply::Code(code) if code == ResponseError::GroupIdNotFound.code() => GroupReply::Code(0),
                    other => other,
                }
            }
            None => forward(GroupCall::Delete(group_id)).await,
        },
        GroupCall::OffsetDelete { group, partitions } => {
            let subscribed = consumers.subscribed_topic_names(&group);
            if subscribed.is_empty() {
                return forward(GroupCall::OffsetDelete { group, partitions }).await;
            }
            // Offsets of topics the members subscribe to stay (GROUP_SUBSCRIBED_TO_TOPIC).
            let (kept, deletable): (Vec<_>, Vec<_>) =
                partitions.iter().cloned().enumerate().partition(|(_, (topic, _))| subscribed.contains(topic));
            let mut codes = vec![0i16; partitions.len()];
            for (index, _) in kept {
                codes[index] = ResponseError::GroupSubscribedToTopic.code();
            }
            if !deletable.is_empty() {
                let call = GroupCall::OffsetDelete {
                    group,
                    partitions: deletable.iter().map(|(_, part)| part.clone()).collect(),
                };
                match forward(call).await {
                    GroupReply::OffsetDelete(Ok(answers)) => {
                        for ((index, _), code) in deletable.iter().zip(answers) {
                            codes[*index] = code;
                        }
                    }
                    GroupReply::OffsetDelete(Err(code)) if code != ResponseError::GroupIdNotFound.code() => {
                        return GroupReply::OffsetDelete(Err(code));
                    }
                    _ => {}
                }
            }
            GroupReply::OffsetDelete(Ok(codes))
        }
        other => forward(other).await,
    }
}

impl ConsumerGroups {
    /// Kafka's `ConsumerGroup.validateOffsetCommit`: `None` if `group_id` is not a consumer group.
    /// An unmanaged commit (negative epoch) is allowed while the group is empty; otherwise the
    /// member must exist and send its current epoch.
    pub fn validate_commit(&self, group_id: &str, member_id: &str, member_epoch: i32) -> Option<Result<(), i16>> {
        let groups = self.groups.borrow();
        let group = groups.get(group_id)?;
        if member_epoch < 0 && group.members.is_empty() {
            return Some(Ok(()));
        }
        let Some(member) = group.members.get(member_id) else {
            return Some(Err(ResponseError::UnknownMemberId.code()));
        };
        if member.epoch != member_epoch {
            return Some(Err(ResponseError::StaleMemberEpoch.code()));
        }
        Some(Ok(()))
    }

    /// Kafka's `ConsumerGroup.validateOffsetFetch` for a request naming a member: 0 if fine or if
    /// `group_id` is not a consumer group.
    pub fn validate_fetch(&self, group_id: &str, member_id: &str, member_epoch: i32) -> i16 {
        let groups = self.groups.borrow();
        let Some(group) = groups.get(group_id) else { return 0 };
        match group.members.get(member_id) {
            None => ResponseError::UnknownMemberId.code(),
            Some(member) if member.epoch != member_epoch => ResponseError::StaleMemberEpoch.code(),
            Some(_) => 0,
        }
    }

    /// The topics the members of consumer group `group_id` subscribe to (by name or regex).
    pub fn subscribed_topic_names(&self, group_id: &str) -> BTreeSet<String> {
        let groups = self.groups.borrow();
        let Some(group) = groups.get(group_id).filter(|group| !group.members.is_empty()) else {
            return BTreeSet::new();
        };
        let mut names: BTreeSet<String> = group.subscribed_topics.keys().cloned().collect();
        for member in group.members.values() {
            names.extend(member.subscribed_topic_names.iter().cloned());
        }
        names
    }

    /// ListGroups' view of this shard's consumer groups.
    pub fn list(&self) -> Vec<ListedGroup> {
        self.groups
            .borrow()
            .iter()
            .map(|(group_id, group)| {
                ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(group_id.clone())))
                    .with_protocol_type(StrBytes::from_static_str(CONSUMER_PROTOCOL_TYPE))
                    .with_group_state(StrBytes::from_static_str(group.state_name()))
                    .with_group_type(StrBytes::from_static_str(CONSUMER_GROUP_TYPE))
            })
            .collect()
    }
}
