//! ConsumerGroupDescribe's view of a consumer-protocol group: state, epochs, the assignor, and
//! each member's subscription, current assignment and target assignment, with topic names from
//! the shard's topic table.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member as WireMember, TopicPartitions,
};
use kafka_protocol::messages::{GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::member::Assignment;
use super::ConsumerGroups;
use crate::shard::topics::TopicTable;

/// ConsumerGroupDescribe v1's member type of a member using the consumer protocol.
const CONSUMER_MEMBER_TYPE: i8 = 1;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn wire_assignment(assignment: &Assignment, table: &TopicTable) -> WireAssignment {
    let topic_partitions = assignment
        .iter()
        .map(|(topic_id, partitions)| {
            let name = table.by_id(topic_id).map(|topic| topic.name.as_str()).unwrap_or_default();
            TopicPartitions::default()
                .with_topic_id(*topic_id)
                .with_topic_name(TopicName(text(name)))
                .with_partitions(partitions.iter().copied().collect())
        })
        .collect();
    WireAssignment::default().with_topic_partitions(topic_partitions)
}

impl ConsumerGroups {
    /// One group as ConsumerGroupDescribe shows it; a missing or classic group is
    /// `GROUP_ID_NOT_FOUND` (as in Kafka).
    pub(super) fn describe(&self, group_id: &str, classic_in_use: bool, table: &TopicTable) -> DescribedGroup {
        let described = DescribedGroup::default().with_group_id(GroupId(text(group_id)));
        let groups = self.groups.borrow();
        let group = match groups.get(group_id) {
            Some(group) if !classic_in_use => group,
            _ => {
                let message = if classic_in_use {
                    format!("Group {group_id} is not a consumer group.")
                } else {
                    format!("Group {group_id} not found.")
                };
                return described
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(message)))
                    .with_group_state(text("Dead"));
            }
        };
        let members = group
            .members
            .values()
            .map(|member| {
                let target = group.target.get(&member.member_id).cloned().unwrap_or_default();
                WireMember::default()
                    .with_member_id(text(&member.member_id))
                    .with_instance_id(member.instance_id.as_deref().map(text))
                    .with_rack_id(member.rack_id.as_deref().map(text))
                    .with_member_epoch(member.epoch)
                    .with_client_id(text(&member.client_id))
                    .with_client_host(StrBytes::default())
                    .with_subscribed_topic_names(
                        member.subscribed_topic_names.iter().map(|name| TopicName(text(name))).collect(),
                    )
                    .with_subscribed_topic_regex(member.subscribed_topic_regex.as_deref().map(text))
                    .with_assignment(wire_assignment(&member.assigned, table))
                    .with_target_assignment(wire_assignment(&target, table))
                    .with_member_type(CONSUMER_MEMBER_TYPE)
            })
            .collect();
        described
            .with_group_state(text(group.state_name()))
            .with_group_epoch(group.group_epoch)
            .with_assignment_epoch(group.assignment_epoch)
            .with_assignor_name(text(if group.assignor.is_empty() {
                super::assignor::UNIFORM
            } else {
                &group.assignor
            }))
            .with_members(members)
    }
}
