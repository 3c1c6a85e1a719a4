//! One consumer-protocol group: its members, the group epoch (bumped by every change of members,
//! subscriptions or subscribed topics' partitions), the target assignment computed at that epoch,
//! and which member holds each partition (so that no partition is handed out twice).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use super::assignor::{self, AssignmentInput, UNIFORM};
use super::member::{Assignment, Member, MemberState};
use crate::shard::topics::TopicTable;

/// Kafka's names of a consumer group's states (ListGroups, ConsumerGroupDescribe).
pub const EMPTY: &str = "Empty";
const ASSIGNING: &str = "Assigning";
const RECONCILING: &str = "Reconciling";
const STABLE: &str = "Stable";

/// A consumer-protocol group.
#[derive(Default)]
pub struct ConsumerGroup {
    pub group_epoch: i32,
    /// The epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    /// The target assignment, by member id.
    pub target: HashMap<String, Assignment>,
    /// The member holding each partition (assigned or pending revocation).
    owners: HashMap<(Uuid, i32), String>,
    /// Subscribed topics that exist: name → (id, partition count). A change bumps the epoch.
    pub subscribed_topics: BTreeMap<String, (Uuid, i32)>,
    /// The assignor the last target assignment used.
    pub assignor: String,
}

impl ConsumerGroup {
    /// Kafka's state name.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            EMPTY
        } else if self.group_epoch > self.assignment_epoch {
            ASSIGNING
        } else if self
            .members
            .values()
            .any(|member| member.epoch != self.assignment_epoch || member.state != MemberState::Stable)
        {
            RECONCILING
        } else {
            STABLE
        }
    }

    /// Whether no other member than `member_id` holds the partition.
    pub fn is_free_for(&self, member_id: &str, topic: Uuid, partition: i32) -> bool {
        self.owners.get(&(topic, partition)).is_none_or(|owner| owner == member_id)
    }

    /// Replaces what `member` held in the ownership map by what it holds now.
    pub fn record_holdings(&mut self, member_id: &str, before: &[(Uuid, i32)]) {
        for key in before {
            if self.owners.get(key).is_some_and(|owner| owner == member_id) {
                self.owners.remove(key);
            }
        }
        if let Some(member) = self.members.get(member_id) {
            for key in member.held() {
                self.owners.insert(key, member_id.to_string());
            }
        }
    }

    /// Removes a member and frees its partitions; bumps the epoch.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        let held: Vec<(Uuid, i32)> = member.held().collect();
        self.record_holdings(member_id, &held);
        self.target.remove(member_id);
        self.group_epoch += 1;
        Some(member)
    }

    /// The topics the members subscribe to, as they exist in `table` now. Internal topics match no
    /// regex (as in Kafka).
    pub fn resolve_subscriptions(&self, table: &TopicTable) -> BTreeMap<String, (Uuid, i32)> {
        let mut names: BTreeSet<&str> = BTreeSet::new();
        let mut patterns = Vec::new();
        for member in self.members.values() {
            names.extend(member.subscribed_topic_names.iter().map(String::as_str));
            if let Some(pattern) = member.subscribed_topic_regex.as_deref().and_then(super::compile_regex) {
                patterns.push(pattern);
            }
        }
        let mut resolved = BTreeMap::new();
        for topic in table.iter() {
            let by_name = names.contains(topic.name.as_str());
            let by_regex = !topic.name.starts_with("__") && patterns.iter().any(|p| p.is_match(&topic.name));
            if by_name || by_regex {
                resolved.insert(topic.name.clone(), (topic.id, topic.partitions));
            }
        }
        resolved
    }

    /// The topic ids `member` subscribes to, among the group's resolved topics.
    fn member_topics(&self, member: &Member) -> BTreeSet<Uuid> {
        let pattern = member.subscribed_topic_regex.as_deref().and_then(super::compile_regex);
        self.subscribed_topics
            .iter()
            .filter(|(name, _)| {
                member.subscribed_topic_names.iter().any(|n| n == *name)
                    || pattern.as_ref().is_some_and(|p| !name.starts_with("__") && p.is_match(name))
            })
            .map(|(_, (id, _))| *id)
            .collect()
    }

    /// The assignor the members prefer: the most named one (ties by name), else `uniform`.
    fn preferred_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.server_assignor.as_deref() {
                *votes.entry(name).or_default() += 1;
            }
        }
        let best = votes.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)));
        best.map_or_else(|| UNIFORM.to_string(), |(name, _)| name.to_string())
    }

    /// Computes the target assignment at the current group epoch if it is newer.
    pub fn refresh_target(&mut self) {
        if self.assignment_epoch >= self.group_epoch {
            return;
        }
        let members = self.members.iter().map(|(id, member)| (id.as_str(), self.member_topics(member))).collect();
        let partition_counts = self.subscribed_topics.values().map(|(id, count)| (*id, *count)).collect();
        let assignor_name = self.preferred_assignor();
        let input = AssignmentInput { members, partition_counts, previous: &self.target };
        let target = assignor::assign(&assignor_name, &input);
        self.target = target;
        self.assignor = assignor_name;
        self.assignment_epoch = self.group_epoch;
    }
}
