//! One classic group's state machine: members, generations, protocol selection and the rebalance
//! round (see [`super::state`] for the states and timeouts). The shard-level coordinator that owns
//! these is [`super::state::Groups`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::JoinGroupResponse;
use kafka_protocol::protocol::StrBytes;

use super::metadata::{StoredGroup, StoredMember};
use super::state::INITIAL_REBALANCE_DELAY;
use crate::shard::partitions::now_ms;

fn duration_ms(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl State {
    /// Kafka's name for the state (ListGroups, DescribeGroups).
    pub(super) fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// Kafka's name for a group that does not exist (DescribeGroups).
pub const DEAD: &str = "Dead";
/// The type of every group here (ListGroups v5).
pub const CLASSIC: &str = "classic";
/// The protocol type of consumer groups, whose metadata names their subscribed topics.
pub(super) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

pub(super) struct Member {
    pub(super) instance_id: Option<String>,
    /// The client id of its JoinGroup (DescribeGroups).
    pub(super) client_id: String,
    /// The client's address as Kafka shows it ("/127.0.0.1").
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) last_seen: Instant,
    /// Rejoined in the current rebalance round (its JoinGroup is waiting).
    pub(super) joined: bool,
    /// The JoinGroup answer, once the round completed.
    pub(super) join_result: Option<JoinGroupResponse>,
    pub(super) assignment: Bytes,
    /// Join order, for choosing a new leader.
    pub(super) since: u64,
}

pub(super) struct Group {
    pub(super) state: State,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// KIP-394: member ids handed out with MEMBER_ID_REQUIRED, until they expire.
    pub(super) pending: HashMap<String, Instant>,
    pub(super) rebalance_started: Instant,
    pub(super) initial_delay_until: Option<Instant>,
    pub(super) next_since: u64,
    /// When the group entered its state (ms since the epoch): Kafka's `currentStateTimestamp`, from
    /// which an empty group's offsets expire.
    pub(super) state_timestamp_ms: i64,
    /// The group changed in a way its stored metadata must follow (it became empty, a static
    /// member took over): the shard's group ticker writes it.
    pub(super) unsaved: bool,
}

impl Group {
    pub(super) fn new() -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance_started: Instant::now(),
            initial_delay_until: None,
            next_since: 0,
            state_timestamp_ms: now_ms(),
            unsaved: false,
        }
    }

    /// Moves to `state`, noting when; an empty group's metadata is stored again.
    pub(super) fn enter(&mut self, state: State) {
        self.state = state;
        self.state_timestamp_ms = now_ms();
        if state == State::Empty {
            self.unsaved = true;
        }
    }

    /// The record of the group's current generation (members with their metadata for the chosen
    /// protocol, and their assignments).
    pub(super) fn snapshot(&self) -> StoredGroup {
        let protocol = self.protocol.clone();
        let members = self
            .members
            .iter()
            .map(|(id, member)| {
                let chosen = protocol.as_ref().and_then(|p| member.protocols.iter().find(|(name, _)| name == p));
                StoredMember {
                    member_id: id.clone(),
                    instance_id: member.instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: duration_ms(member.rebalance_timeout),
                    session_timeout_ms: duration_ms(member.session_timeout),
                    subscription: chosen.map(|(_, metadata)| metadata.clone()).unwrap_or_default(),
                    assignment: member.assignment.clone(),
                }
            })
            .collect();
        StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol,
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members,
        }
    }

    /// The group as its coordinator left it (Kafka's `loadGroup`): Stable with its members and their
    /// assignments, or Empty. Members have a whole session timeout from `now` to show up again.
    pub(super) fn restore(stored: StoredGroup, now: Instant) -> Group {
        let mut group = Group::new();
        group.generation = stored.generation;
        group.protocol_type = Some(stored.protocol_type).filter(|t| !t.is_empty());
        group.protocol = stored.protocol.clone();
        group.leader = stored.leader;
        group.state_timestamp_ms = stored.state_timestamp_ms;
        for (since, member) in stored.members.into_iter().enumerate() {
            let timeout = |ms: i32| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
            let protocols = stored.protocol.iter().map(|name| (name.clone(), member.subscription.clone())).collect();
            group.members.insert(
                member.member_id,
                Member {
                    instance_id: member.instance_id,
                    client_id: member.client_id,
                    client_host: member.client_host,
                    session_timeout: timeout(member.session_timeout_ms),
                    rebalance_timeout: timeout(member.rebalance_timeout_ms),
                    protocols,
                    last_seen: now,
                    joined: false,
                    join_result: None,
                    assignment: member.assignment,
                    since: since as u64,
                },
            );
        }
        group.next_since = group.members.len() as u64;
        group.state = if group.members.is_empty() { State::Empty } else { State::Stable };
        if group.leader.as_ref().is_some_and(|leader| !group.members.contains_key(leader)) {
            group.leader = None;
        }
        group
    }

    /// The member id holding static `instance` id, if any.
    pub(super) fn static_member(&self, instance: &str) -> Option<String> {
        self.members.iter().find(|(_, m)| m.instance_id.as_deref() == Some(instance)).map(|(id, _)| id.clone())
    }

    /// FENCED_INSTANCE_ID if `instance` belongs to another member than `member_id`.
    pub(super) fn fenced(&self, instance: Option<&StrBytes>, member_id: &str) -> bool {
        instance.and_then(|instance| self.static_member(instance.as_str())).is_some_and(|owner| owner != member_id)
    }

    /// Names every member supports.
    pub(super) fn common_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else { return Vec::new() };
        let mut common: Vec<String> = first.protocols.iter().map(|(name, _)| name.clone()).collect();
        for member in members {
            common.retain(|name| member.protocols.iter().any(|(other, _)| other == name));
        }
        common
    }

    /// Kafka's `supportsProtocols`: a joining member's type and protocols fit the group.
    pub(super) fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self.common_protocols().iter().any(|name| protocols.iter().any(|(other, _)| other == name))
    }

    pub(super) fn prepare_rebalance(&mut self) {
        if self.state == State::PreparingRebalance {
            return;
        }
        let now = Instant::now();
        self.initial_delay_until = (self.state == State::Empty).then(|| {
            let longest = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
            now + INITIAL_REBALANCE_DELAY.min(longest)
        });
        self.enter(State::PreparingRebalance);
        self.rebalance_started = now;
        for member in self.members.values_mut() {
            member.joined = false;
            member.join_result = None;
        }
    }

    pub(super) fn rebalance_deadline(&self) -> Instant {
        let longest = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or_default();
        self.rebalance_started + longest
    }

    /// After members left: rebalance, or become empty.
    pub(super) fn after_removal(&mut self) {
        if let Some(leader) = &self.leader {
            if !self.members.contains_key(leader) {
                self.leader = None;
            }
        }
        match self.state {
            State::Stable | State::CompletingRebalance if self.members.is_empty() => {
                self.enter(State::Empty);
                self.generation += 1;
                self.protocol = None;
            }
            State::Stable | State::CompletingRebalance => self.prepare_rebalance(),
            State::PreparingRebalance | State::Empty => {}
        }
    }

    /// Ends the rebalance round if every member rejoined (after the initial delay), or its deadline
    /// passed (dropping the members that did not rejoin). Returns whether anything changed.
    pub(super) fn try_complete(&mut self, now: Instant) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.joined);
        let delayed = self.initial_delay_until.is_some_and(|until| now < until);
        let expired = now >= self.rebalance_deadline();
        if !(expired || (all_joined && !delayed)) {
            return false;
        }
        self.members.retain(|_, member| member.joined);
        self.generation += 1;
        if self.members.is_empty() {
            self.enter(State::Empty);
            self.protocol = None;
            self.leader = None;
            return true;
        }
        // Each member votes for its first protocol among the common ones; most votes wins.
        let common = self.common_protocols();
        let mut votes: Vec<(usize, &String)> = common.iter().map(|name| (0, name)).collect();
        for member in self.members.values() {
            if let Some((name, _)) = member.protocols.iter().find(|(name, _)| common.contains(name)) {
                if let Some(slot) = votes.iter_mut().find(|(_, candidate)| *candidate == name) {
                    slot.0 += 1;
                }
            }
        }
        let chosen = votes.iter().rev().max_by_key(|(count, _)| *count).map(|(_, name)| (*name).clone());
        self.protocol = chosen;
        if self.leader.as_ref().is_none_or(|leader| !self.members.contains_key(leader)) {
            self.leader = self.members.iter().min_by_key(|(_, m)| m.since).map(|(id, _)| id.clone());
        }
        self.enter(State::CompletingRebalance);
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let everyone = self.everyone(&protocol);
        let responses: Vec<JoinGroupResponse> =
            self.members.keys().map(|id| self.response_for(id, &leader, &protocol, &everyone)).collect();
        for (member, response) in self.members.values_mut().zip(responses) {
            member.joined = false;
            member.last_seen = now;
            member.assignment = Bytes::new();
            member.join_result = Some(response);
        }
        true
    }

    /// Every member with its metadata for `protocol` (the leader's JoinGroup answer).
    pub(super) fn everyone(&self, protocol: &str) -> Vec<JoinGroupResponseMember> {
        self.members
            .iter()
            .map(|(id, member)| {
                let metadata = member.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m.clone());
                JoinGroupResponseMember::default()
                    .with_member_id(StrBytes::from_string(id.clone()))
                    .with_group_instance_id(member.instance_id.clone().map(StrBytes::from_string))
                    .with_metadata(metadata.unwrap_or_default())
            })
            .collect()
    }

    pub(super) fn response_for(
        &self,
        id: &str,
        leader: &str,
        protocol: &str,
        everyone: &[JoinGroupResponseMember],
    ) -> JoinGroupResponse {
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.clone().map(StrBytes::from_string))
            .with_protocol_name(Some(StrBytes::from_string(protocol.to_string())))
            .with_leader(StrBytes::from_string(leader.to_string()))
            .with_member_id(StrBytes::from_string(id.to_string()))
            .with_members(if id == leader { everyone.to_vec() } else { Vec::new() })
    }

    /// Removes members silent for longer than their session timeout (not those waiting in a join)
    /// and expired pending member ids.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        self.pending.retain(|_, until| now < *until);
        let before = self.members.len();
        let waiting_join = self.state == State::PreparingRebalance;
        self.members.retain(|_, member| {
            (waiting_join && member.joined) || now.duration_since(member.last_seen) < member.session_timeout
        });
        if self.members.len() == before {
            return false;
        }
        self.after_removal();
        true
    }
}
