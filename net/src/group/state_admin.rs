//! The admin side of a shard's groups: ListGroups and DescribeGroups views, DeleteGroups and
//! OffsetDelete. A child of `state` so that it sees the group internals without widening them.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::GroupId;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::offsets::{self, append};
use super::{Group, Groups, State, CLASSIC, DEAD};
use crate::group::classic::CONSUMER_PROTOCOL_TYPE;
use crate::shard::partitions::now_ms;
use crate::shard::ShardContext;

impl Group {
    /// The topics a consumer group's members subscribe to (per their metadata for the chosen
    /// protocol, or their first one while none is chosen).
    pub(super) fn subscribed_topics(&self) -> HashSet<String> {
        let mut topics = HashSet::new();
        for member in self.members.values() {
            let chosen = self.protocol.as_ref().and_then(|p| member.protocols.iter().find(|(name, _)| name == p));
            if let Some((_, metadata)) = chosen.or(member.protocols.first()) {
                topics.extend(offsets::subscribed_topics(metadata));
            }
        }
        topics
    }

    /// DescribeGroups' view: Kafka fills the protocol and the members' metadata and assignments
    /// only once the group is Stable.
    pub(super) fn describe(&self, group_id: &str) -> DescribedGroup {
        let stable = self.state == State::Stable;
        let protocol = if stable { self.protocol.clone().unwrap_or_default() } else { String::new() };
        let members = self
            .members
            .iter()
            .map(|(id, member)| {
                let member_summary = DescribedGroupMember::default()
                    .with_member_id(StrBytes::from_string(id.clone()))
                    .with_group_instance_id(member.instance_id.clone().map(StrBytes::from_string))
                    .with_client_id(StrBytes::from_string(member.client_id.clone()))
                    .with_client_host(StrBytes::from_string(member.client_host.clone()));
                if !stable {
                    return member_summary;
                }
                let metadata = member.protocols.iter().find(|(name, _)| *name == protocol).map(|(_, m)| m.clone());
                member_summary
                    .with_member_metadata(metadata.unwrap_or_default())
                    .with_member_assignment(member.assignment.clone())
            })
            .collect();
        described(group_id, self.state.name(), self.protocol_type.clone().unwrap_or_default())
            .with_protocol_data(StrBytes::from_string(protocol))
            .with_members(members)
    }
}

/// What offsets expiry removes of one group.
struct Expiry {
    group_id: String,
    /// The expired offsets.
    partitions: Vec<(String, i32)>,
    /// The group itself goes too (it is Empty and has no offsets left).
    group_goes: bool,
}

/// A described group without members.
fn described(group_id: &str, state: &str, protocol_type: String) -> DescribedGroup {
    DescribedGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_group_state(StrBytes::from_string(state.to_string()))
        .with_protocol_type(StrBytes::from_string(protocol_type))
}

/// A listed group (of type classic).
fn listed(group_id: &str, state: &str, protocol_type: String) -> ListedGroup {
    ListedGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
        .with_protocol_type(StrBytes::from_string(protocol_type))
        .with_group_state(StrBytes::from_string(state.to_string()))
        .with_group_type(StrBytes::from_static_str(CLASSIC))
}

impl Groups {
    /// Every group of this shard: those with members (or once had), and those with only committed
    /// offsets (assign() consumers), which Kafka lists as Empty with no protocol type.
    pub(super) fn list(&self) -> Vec<ListedGroup> {
        let groups = self.groups.borrow();
        let mut listed_groups: Vec<ListedGroup> = groups
            .iter()
            .map(|(id, group)| listed(id, group.state.name(), group.protocol_type.clone().unwrap_or_default()))
            .collect();
        for id in self.offsets.borrow().keys().filter(|id| !groups.contains_key(*id)) {
            listed_groups.push(listed(id, State::Empty.name(), String::new()));
        }
        listed_groups
    }

    /// One group as DescribeGroups shows it; an unknown one is Dead (error NONE, as in Kafka).
    pub(super) fn describe(&self, group_id: &str) -> DescribedGroup {
        if let Some(group) = self.groups.borrow().get(group_id) {
            return group.describe(group_id);
        }
        if self.offsets.borrow().contains_key(group_id) {
            return described(group_id, State::Empty.name(), String::new());
        }
        described(group_id, DEAD, String::new())
    }

    /// DeleteGroups of one group: only an Empty group (or one with only offsets) can go; its
    /// offsets and metadata key get tombstones. Like Kafka, the group leaves memory first (it is
    /// Dead: a JoinGroup meanwhile starts a new one).
    pub(super) async fn delete(&self, context: &ShardContext, place: (Uuid, i32), group_id: &str) -> i16 {
        match self.groups.borrow().get(group_id) {
            Some(group) if group.state != State::Empty => return ResponseError::NonEmptyGroup.code(),
            Some(_) => {}
            None if !self.offsets.borrow().contains_key(group_id) => return ResponseError::GroupIdNotFound.code(),
            None => {}
        }
        self.groups.borrow_mut().remove(group_id);
        let removed = self.offsets.borrow_mut().remove(group_id).unwrap_or_default();
        let partitions: Vec<(String, i32)> = removed.into_keys().collect();
        let batch = offsets::tombstone_batch(group_id, &partitions, true, now_ms());
        match append(context, place, batch).await {
            Ok(()) => 0,
            Err(code) => code,
        }
    }

    /// OffsetDelete (Kafka's `handleDeleteOffsets`): an Empty group loses any offsets asked; a
    /// consumer group with members keeps those of topics its members subscribe to
    /// (GROUP_SUBSCRIBED_TO_TOPIC); another group with members refuses (NON_EMPTY_GROUP).
    pub(super) async fn delete_offsets(
        &self,
        context: &ShardContext,
        place: (Uuid, i32),
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        let subscribed = match self.groups.borrow().get(group_id) {
            None if !self.offsets.borrow().contains_key(group_id) => {
                return Err(ResponseError::GroupIdNotFound.code());
            }
            None => HashSet::new(),
            Some(group) if group.state == State::Empty => HashSet::new(),
            Some(group) if group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) => group.subscribed_topics(),
            Some(_) => return Err(ResponseError::NonEmptyGroup.code()),
        };
        let subscribed_code = ResponseError::GroupSubscribedToTopic.code();
        let mut codes: Vec<i16> =
            partitions.iter().map(|(topic, _)| if subscribed.contains(topic) { subscribed_code } else { 0 }).collect();
        let mut deleted = Vec::new();
        {
            let mut map = self.offsets.borrow_mut();
            if let Some(offsets) = map.get_mut(group_id) {
                for (index, part) in partitions.iter().enumerate() {
                    if codes[index] == 0 && offsets.remove(part).is_some() {
                        deleted.push((index, part.clone()));
                    }
                }
                if offsets.is_empty() {
                    map.remove(group_id);
                }
            }
        }
        if deleted.is_empty() {
            return Ok(codes);
        }
        let keys: Vec<(String, i32)> = deleted.iter().map(|(_, part)| part.clone()).collect();
        if let Err(code) = append(context, place, offsets::tombstone_batch(group_id, &keys, false, now_ms())).await {
            for (index, _) in deleted {
                codes[index] = code;
            }
        }
        Ok(codes)
    }

    /// Kafka's offsets expiry (`offsets.retention.minutes`, KIP-211): the committed offsets of an
    /// Empty group expire together, `offsets_retention` after it became empty; those of a group id
    /// that only commits (assign() consumers) each `offsets_retention` after their commit; a group
    /// with members keeps its offsets. An Empty group left without offsets is removed (Dead). Every
    /// removal is a tombstone in the offsets topic, so a restart does not bring it back.
    pub async fn expire_offsets(&self, context: &ShardContext) {
        let Some(topic) = context.topics().get(super::super::OFFSETS_TOPIC).cloned() else { return };
        let retention_ms = i64::try_from(context.settings.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let mut removals: Vec<Expiry> = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            let mut map = self.offsets.borrow_mut();
            for (group_id, committed) in map.iter_mut() {
                // A consumer-protocol group with members keeps its offsets, as a classic one does.
                if context.consumer_groups.membership(group_id) == Some(true) {
                    continue;
                }
                let empty_since = match groups.get(group_id) {
                    Some(group) if group.state != State::Empty => continue,
                    Some(group) => Some(group.state_timestamp_ms).filter(|ms| *ms >= 0),
                    None => None,
                };
                let expired: Vec<(String, i32)> = committed
                    .iter()
                    .filter(|(_, offset)| {
                        now.saturating_sub(empty_since.unwrap_or(offset.commit_timestamp)) >= retention_ms
                    })
                    .map(|(part, _)| part.clone())
                    .collect();
                for part in &expired {
                    committed.remove(part);
                }
                if !expired.is_empty() {
                    removals.push(Expiry { group_id: group_id.clone(), partitions: expired, group_goes: false });
                }
            }
            map.retain(|_, committed| !committed.is_empty());
            let dead: Vec<String> = groups
                .iter()
                .filter(|(group_id, group)| group.state == State::Empty && !map.contains_key(*group_id))
                .map(|(group_id, _)| group_id.clone())
                .collect();
            for group_id in dead {
                groups.remove(&group_id);
                match removals.iter_mut().find(|removal| removal.group_id == group_id) {
                    Some(removal) => removal.group_goes = true,
                    None => removals.push(Expiry { group_id, partitions: Vec::new(), group_goes: true }),
                }
            }
        }
        for Expiry { group_id, partitions, group_goes: group_key } in removals {
            let place = (topic.id, super::super::offsets_partition(&group_id, topic.partitions));
            tracing::info!(
                group = group_id,
                offsets = partitions.len(),
                removed = group_key,
                "expired committed offsets"
            );
            let batch = offsets::tombstone_batch(&group_id, &partitions, group_key, now);
            if let Err(code) = append(context, place, batch).await {
                tracing::warn!(group = group_id, code, "cannot write tombstones for expired offsets");
            }
        }
    }

    /// (group, topic, partition, committed offset) of every group this shard coordinates (metrics).
    pub fn committed_offsets(&self) -> Vec<crate::metrics::CommittedOffset> {
        let map = self.offsets.borrow();
        map.iter()
            .flat_map(|(group, offsets)| {
                offsets.iter().map(move |((topic, partition), committed)| {
                    (group.clone(), topic.clone(), *partition, committed.offset)
                })
            })
            .collect()
    }
}
