//! Classic groups on their coordinating shard: members, generations, rebalances, and the committed
//! offsets of every group this shard coordinates.
//!
//! A group moves through Kafka's states: `Empty` → `PreparingRebalance` (a member joined, left or
//! timed out; every member must rejoin) → `CompletingRebalance` (the generation is formed; the leader
//! computes the assignment client-side and sends it in SyncGroup) → `Stable`. A rebalance round ends
//! when every known member has rejoined, or at the rebalance deadline (the longest
//! `rebalance_timeout_ms` of the members), when members that did not rejoin are dropped. A first
//! rebalance of an empty group waits [`INITIAL_REBALANCE_DELAY`] for more members (Kafka's
//! `group.initial.rebalance.delay.ms`). A member that sends nothing (heartbeat, join, sync, commit)
//! for its `session_timeout_ms` is removed and the group rebalances. The [`Groups::tick`] task, every
//! [`GROUP_TICK`], enforces both timeouts; waiting JoinGroup and SyncGroup calls wake on the shard's
//! group event.
//!
//! Static membership (KIP-345): a member with a `group.instance.id` joins without the KIP-394 round
//! trip; when it restarts (joins again with that instance id and no member id) it takes over its old
//! membership under a new member id, and if the group is stable and its protocols are unchanged, the
//! group keeps its generation and assignment (no rebalance; a static leader gets `skip_assignment`).
//! The old member id is fenced (`FENCED_INSTANCE_ID`), and the takeover is stored so that a restart
//! does not bring the old id back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use event_listener::Event;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::metadata::StoredGroup;
use super::offsets::{self, Committed, OffsetMap};
use crate::shard::messages::ShardRequest;
use crate::shard::partitions::now_ms;
use crate::shard::ShardContext;

/// Kafka's `group.initial.rebalance.delay.ms` default.
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_secs(3);
/// Kafka's `group.min.session.timeout.ms` default.
pub const MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
/// Kafka's `group.max.session.timeout.ms` default.
pub const MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;
/// Kafka's `offset.metadata.max.bytes` default.
pub const MAX_METADATA_BYTES: usize = 4096;
/// How often timeouts are checked.
pub const GROUP_TICK: Duration = Duration::from_millis(50);

pub use super::calls::{Addressed, CommitPart, GroupCall, GroupReply, Parked, ParkedKind, Waiter};

#[path = "state_admin.rs"]
mod admin;

use super::classic::{Group, Member, State};
pub use super::classic::{CLASSIC, DEAD};

/// The groups this shard coordinates and their committed offsets.
#[derive(Default)]
pub struct Groups {
    groups: RefCell<HashMap<String, Group>>,
    offsets: RefCell<OffsetMap>,
    changed: Event,
    /// Calls from other shards waiting for their answers (see [`Parked`]).
    parked: RefCell<Vec<Parked>>,
}

fn join_error(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
}

fn text(value: &StrBytes) -> String {
    value.to_string()
}

impl Groups {
    /// Loads the committed offsets and the group metadata of every `__consumer_offsets` partition
    /// this shard has open.
    pub async fn load(&self, context: &ShardContext) {
        let Some(topic) = context.topics().get(super::OFFSETS_TOPIC).cloned() else { return };
        let mut map = OffsetMap::new();
        let mut stored = HashMap::new();
        let mut records = 0;
        for partition in 0..topic.partitions {
            if let Some(open) = context.partitions.get(&topic.id, partition) {
                records += offsets::load(&open.log, &mut map, &mut stored).await;
            }
        }
        if records > 0 {
            tracing::info!(
                shard = %context.shard.id(),
                records,
                groups_with_offsets = map.len(),
                groups = stored.len(),
                "loaded committed offsets and groups"
            );
        }
        *self.offsets.borrow_mut() = map;
        let now = Instant::now();
        *self.groups.borrow_mut() =
            stored.into_iter().map(|(group_id, group)| (group_id, Group::restore(group, now))).collect();
    }

    /// Enforces session and rebalance timeouts; run every [`GROUP_TICK`].
    pub fn tick(&self) {
        let now = Instant::now();
        let mut changed = false;
        for group in self.groups.borrow_mut().values_mut() {
            changed |= group.expire(now);
            changed |= group.try_complete(now);
        }
        if changed {
            self.changed.notify(usize::MAX);
        }
    }

    /// Writes the metadata of groups whose stored record is out of date (see `Group::unsaved`).
    pub async fn save_changed(&self, context: &ShardContext) {
        let Some(topic) = context.topics().get(super::OFFSETS_TOPIC).cloned() else { return };
        let unsaved: Vec<(String, StoredGroup)> = self
            .groups
            .borrow_mut()
            .iter_mut()
            .filter(|(_, group)| group.unsaved)
            .map(|(group_id, group)| {
                group.unsaved = false;
                (group_id.clone(), group.snapshot())
            })
            .collect();
        for (group_id, stored) in unsaved {
            let place = (topic.id, super::offsets_partition(&group_id, topic.partitions));
            if let Err(code) = self.store(context, place, &group_id, &stored).await {
                tracing::warn!(group = group_id, code, "cannot store group metadata; retrying");
                if let Some(group) = self.groups.borrow_mut().get_mut(&group_id) {
                    group.unsaved = true;
                }
            }
        }
    }

    /// Appends `stored` as `group_id`'s metadata record and flushes it.
    async fn store(
        &self,
        context: &ShardContext,
        place: (Uuid, i32),
        group_id: &str,
        stored: &StoredGroup,
    ) -> Result<(), i16> {
        offsets::append(context, place, super::metadata::group_batch(group_id, stored, now_ms())).await
    }

    fn touch(&self, group_id: &str, member_id: &str) {
        if let Some(member) = self.groups.borrow_mut().get_mut(group_id).and_then(|g| g.members.get_mut(member_id)) {
            member.last_seen = Instant::now();
        }
    }

    /// Waits until `check` gives an answer, the shard shuts down (`on_shutdown`), or forever; or,
    /// for a call from another shard (`park`), answers at once if it can and parks it otherwise.
    async fn wait_or_park<T>(
        &self,
        context: &ShardContext,
        mut check: impl FnMut() -> Option<T>,
        on_shutdown: T,
        park: Option<Parked>,
    ) -> Result<T, Parked> {
        if let Some(parked) = park {
            return match check() {
                Some(answer) => Ok(answer),
                None => {
                    self.parked.borrow_mut().push(parked.clone());
                    Err(parked)
                }
            };
        }
        loop {
            if let Some(answer) = check() {
                return Ok(answer);
            }
            let listener = self.changed.listen();
            if let Some(answer) = check() {
                return Ok(answer);
            }
            if context.shutdown.is_triggered() {
                return Ok(on_shutdown);
            }
            futures_lite::future::or(listener, context.shutdown.wait()).await;
        }
    }

    /// The JoinGroup answer of `member_id` once its round completed (UNKNOWN_MEMBER_ID once it is gone).
    fn take_join_outcome(&self, group_id: &str, member_id: &str) -> Option<JoinGroupResponse> {
        let mut groups = self.groups.borrow_mut();
        let Some(member) = groups.get_mut(group_id).and_then(|g| g.members.get_mut(member_id)) else {
            return Some(join_error(ResponseError::UnknownMemberId.code(), member_id));
        };
        member.join_result.take()
    }

    /// The SyncGroup answer of `member_id` for `generation`, once there is one: its assignment when
    /// the group is Stable, or the error that ends its wait.
    fn sync_outcome(&self, group_id: &str, member_id: &str, generation: i32) -> Option<SyncGroupResponse> {
        let error = |code: i16| SyncGroupResponse::default().with_error_code(code);
        let groups = self.groups.borrow();
        let Some(group) = groups.get(group_id) else { return Some(error(ResponseError::UnknownMemberId.code())) };
        let Some(member) = group.members.get(member_id) else {
            return Some(error(ResponseError::UnknownMemberId.code()));
        };
        if group.generation != generation || group.state == State::PreparingRebalance {
            return Some(error(ResponseError::RebalanceInProgress.code()));
        }
        (group.state == State::Stable).then(|| {
            SyncGroupResponse::default()
                .with_protocol_type(group.protocol_type.clone().map(StrBytes::from_string))
                .with_protocol_name(group.protocol.clone().map(StrBytes::from_string))
                .with_assignment(member.assignment.clone())
        })
    }

    /// Answers a parked call whose waiter was woken, or parks it again.
    fn collect(&self, parked: Parked) -> GroupReply {
        let reply = match parked.kind {
            ParkedKind::Join => self.take_join_outcome(&parked.group_id, &parked.member_id).map(GroupReply::Join),
            ParkedKind::Sync { generation } => {
                let outcome = self.sync_outcome(&parked.group_id, &parked.member_id, generation);
                if outcome.is_some() {
                    self.touch(&parked.group_id, &parked.member_id);
                }
                outcome.map(GroupReply::Sync)
            }
        };
        reply.unwrap_or_else(|| {
            self.parked.borrow_mut().push(parked.clone());
            GroupReply::Pending(parked)
        })
    }

    /// Wakes the parked calls whose answers are ready, whenever the groups change; runs for the
    /// shard's lifetime.
    pub async fn wake_parked(&self, context: &Rc<ShardContext>) {
        while !context.shutdown.is_triggered() {
            let listener = self.changed.listen();
            let ready: Vec<Parked> = {
                let mut parked = self.parked.borrow_mut();
                let (ready, waiting) = parked.drain(..).partition(|call| self.is_ready(call));
                *parked = waiting;
                ready
            };
            for call in ready {
                let context = context.clone();
                spate_core::runtime::spawn_local(async move {
                    let _ = context.call(call.waiter.0, ShardRequest::Wake(call.waiter.1)).await;
                })
                .detach();
            }
            futures_lite::future::or(listener, context.shutdown.wait()).await;
        }
    }

    /// Whether a parked call has its answer (without taking it).
    fn is_ready(&self, call: &Parked) -> bool {
        match call.kind {
            ParkedKind::Join => self
                .groups
                .borrow()
                .get(&call.group_id)
                .and_then(|group| group.members.get(&call.member_id))
                .is_none_or(|member| member.join_result.is_some()),
            ParkedKind::Sync { generation } => self.sync_outcome(&call.group_id, &call.member_id, generation).is_some(),
        }
    }

    async fn join(
        &self,
        context: &ShardContext,
        request: JoinGroupRequest,
        version: i16,
        (client_id, client_host): (String, String),
        waiter: Option<Waiter>,
    ) -> Result<JoinGroupResponse, Parked> {
        let group_id = text(&request.group_id);
        let member_id = text(&request.member_id);
        if group_id.is_empty() {
            return Ok(join_error(ResponseError::InvalidGroupId.code(), &member_id));
        }
        if !(MIN_SESSION_TIMEOUT_MS..=MAX_SESSION_TIMEOUT_MS).contains(&request.session_timeout_ms) {
            return Ok(join_error(ResponseError::InvalidSessionTimeout.code(), &member_id));
        }
        let protocol_type = text(&request.protocol_type);
        let protocols: Vec<(String, Bytes)> =
            request.protocols.iter().map(|p| (text(&p.name), p.metadata.clone())).collect();
        let session_timeout = Duration::from_millis(request.session_timeout_ms as u64);
        // v0 has no rebalance timeout: it is the session timeout.
        let rebalance_timeout = if version >= 1 && request.rebalance_timeout_ms > 0 {
            Duration::from_millis(request.rebalance_timeout_ms as u64)
        } else {
            session_timeout
        };
        let id = {
            let mut groups = self.groups.borrow_mut();
            let group = groups.entry(group_id.clone()).or_insert_with(Group::new);
            if !group.supports(&protocol_type, &protocols) {
                return Ok(join_error(ResponseError::InconsistentGroupProtocol.code(), &member_id));
            }
            let now = Instant::now();
            let instance_id = request.group_instance_id.as_ref().map(text).filter(|_| version >= 5);
            let static_owner = instance_id.as_deref().and_then(|instance| group.static_member(instance));
            if let (Some(owner), false) = (&static_owner, member_id.is_empty()) {
                if *owner != member_id {
                    return Ok(join_error(ResponseError::FencedInstanceId.code(), &member_id));
                }
            }
            let id = if let (Some(instance), Some(old_id), true) = (&instance_id, &static_owner, member_id.is_empty()) {
                // KIP-345: a static member restarted. It takes over its old membership under a new
                // id; if nothing else changed, the group keeps its generation and assignment.
                let new_id = format!("{instance}-{}", crate::shard::topics::new_topic_id());
                if let Some(mut member) = group.members.remove(old_id) {
                    member.joined = false;
                    member.join_result = None;
                    member.last_seen = now;
                    group.members.insert(new_id.clone(), member);
                }
                if group.leader.as_deref() == Some(old_id.as_str()) {
                    group.leader = Some(new_id.clone());
                }
                // The stored record must name the new id, or a restart would bring back the fenced one.
                group.unsaved = true;
                self.changed.notify(usize::MAX);
                new_id
            } else if let (Some(instance), true) = (&instance_id, member_id.is_empty()) {
                // A new static member needs no KIP-394 round trip.
                format!("{instance}-{}", crate::shard::topics::new_topic_id())
            } else if member_id.is_empty() {
                let new_id = format!("{client_id}-{}", crate::shard::topics::new_topic_id());
                if version >= 4 {
                    group.pending.insert(new_id.clone(), now + session_timeout);
                    return Ok(join_error(ResponseError::MemberIdRequired.code(), &new_id));
                }
                new_id
            } else if group.pending.remove(&member_id).is_some() || group.members.contains_key(&member_id) {
                member_id.clone()
            } else {
                return Ok(join_error(ResponseError::UnknownMemberId.code(), &member_id));
            };
            let is_leader = group.leader.as_deref() == Some(id.as_str());
            // A follower rejoining with the same metadata while nothing changes: answer with the
            // current generation (Kafka does the same).
            let takeover = static_owner.is_some() && member_id.is_empty();
            let settled =
                group.state == State::CompletingRebalance || (group.state == State::Stable && (!is_leader || takeover));
            match group.members.get_mut(&id) {
                Some(member) => {
                    let same = member.protocols == protocols;
                    member.last_seen = now;
                    member.session_timeout = session_timeout;
                    member.rebalance_timeout = rebalance_timeout;
                    if same && settled {
                        let protocol = group.protocol.clone().unwrap_or_default();
                        let leader = group.leader.clone().unwrap_or_default();
                        let everyone = if is_leader { group.everyone(&protocol) } else { Vec::new() };
                        // A static leader that took over its membership keeps the assignment it made.
                        let skip = is_leader && takeover;
                        return Ok(group.response_for(&id, &leader, &protocol, &everyone).with_skip_assignment(skip));
                    }
                    member.protocols = protocols;
                }
                None => {
                    let since = group.next_since;
                    group.next_since += 1;
                    group.members.insert(
                        id.clone(),
                        Member {
                            instance_id: instance_id.clone(),
                            client_id: client_id.clone(),
                            client_host: client_host.clone(),
                            session_timeout,
                            rebalance_timeout,
                            protocols,
                            last_seen: now,
                            joined: false,
                            join_result: None,
                            assignment: Bytes::new(),
                            since,
                        },
                    );
                }
            }
            if group.members.len() == 1 || group.protocol_type.is_none() {
                group.protocol_type = Some(protocol_type);
            }
            group.prepare_rebalance();
            if let Some(member) = group.members.get_mut(&id) {
                member.joined = true;
                member.join_result = None;
            }
            group.try_complete(now);
            id
        };
        self.changed.notify(usize::MAX);
        let unavailable = join_error(ResponseError::CoordinatorNotAvailable.code(), &id);
        let park = waiter.map(|waiter| Parked {
            waiter,
            group_id: group_id.clone(),
            member_id: id.clone(),
            kind: ParkedKind::Join,
        });
        self.wait_or_park(context, || self.take_join_outcome(&group_id, &id), unavailable, park).await
    }

    async fn sync(
        &self,
        context: &ShardContext,
        place: (Uuid, i32),
        request: SyncGroupRequest,
        waiter: Option<Waiter>,
    ) -> Result<SyncGroupResponse, Parked> {
        let group_id = text(&request.group_id);
        let member_id = text(&request.member_id);
        let generation = request.generation_id;
        let error = |code: i16| SyncGroupResponse::default().with_error_code(code);
        let mut to_store = None;
        {
            let mut groups = self.groups.borrow_mut();
            let Some(group) = groups.get_mut(&group_id) else {
                return Ok(error(ResponseError::UnknownMemberId.code()));
            };
            if group.fenced(request.group_instance_id.as_ref(), &member_id) {
                return Ok(error(ResponseError::FencedInstanceId.code()));
            }
            if !group.members.contains_key(&member_id) {
                return Ok(error(ResponseError::UnknownMemberId.code()));
            }
            if generation != group.generation {
                return Ok(error(ResponseError::IllegalGeneration.code()));
            }
            let type_mismatch =
                request.protocol_type.as_ref().is_some_and(|t| group.protocol_type.as_deref() != Some(t.as_str()));
            let name_mismatch =
                request.protocol_name.as_ref().is_some_and(|n| group.protocol.as_deref() != Some(n.as_str()));
            if type_mismatch || name_mismatch {
                return Ok(error(ResponseError::InconsistentGroupProtocol.code()));
            }
            if let Some(member) = group.members.get_mut(&member_id) {
                member.last_seen = Instant::now();
            }
            match group.state {
                State::PreparingRebalance | State::Empty => {
                    return Ok(error(ResponseError::RebalanceInProgress.code()))
                }
                State::Stable => {}
                State::CompletingRebalance => {
                    if group.leader.as_deref() == Some(member_id.as_str()) {
                        let assignments: HashMap<String, Bytes> =
                            request.assignments.iter().map(|a| (text(&a.member_id), a.assignment.clone())).collect();
                        let mut stored = group.snapshot();
                        for member in &mut stored.members {
                            member.assignment = assignments.get(&member.member_id).cloned().unwrap_or_default();
                        }
                        stored.state_timestamp_ms = now_ms();
                        to_store = Some((stored, assignments));
                    }
                }
            }
        }
        // Like Kafka, the generation's assignment is stored before anyone is told it: a coordinator
        // restarted after the answer brings the group back Stable with it.
        if let Some((stored, assignments)) = to_store {
            let written = self.store(context, place, &group_id, &stored).await;
            let mut groups = self.groups.borrow_mut();
            if let Some(group) = groups.get_mut(&group_id) {
                if group.generation == generation && group.state == State::CompletingRebalance {
                    match written {
                        Ok(()) => {
                            for (id, member) in group.members.iter_mut() {
                                member.assignment = assignments.get(id).cloned().unwrap_or_default();
                            }
                            group.enter(State::Stable);
                            group.unsaved = false;
                        }
                        Err(_) => {
                            // Everyone rejoins; the leader hears why (clients retry this code).
                            group.prepare_rebalance();
                            self.changed.notify(usize::MAX);
                            return Ok(error(ResponseError::CoordinatorNotAvailable.code()));
                        }
                    }
                    self.changed.notify(usize::MAX);
                }
            }
        }
        let park = waiter.map(|waiter| Parked {
            waiter,
            group_id: group_id.clone(),
            member_id: member_id.clone(),
            kind: ParkedKind::Sync { generation },
        });
        let unavailable = error(ResponseError::CoordinatorNotAvailable.code());
        let response = self
            .wait_or_park(context, || self.sync_outcome(&group_id, &member_id, generation), unavailable, park)
            .await;
        self.touch(&group_id, &member_id);
        response
    }

    fn heartbeat(&self, request: &HeartbeatRequest) -> i16 {
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(request.group_id.as_str()) else {
            return ResponseError::UnknownMemberId.code();
        };
        if group.fenced(request.group_instance_id.as_ref(), request.member_id.as_str()) {
            return ResponseError::FencedInstanceId.code();
        }
        let Some(member) = group.members.get_mut(request.member_id.as_str()) else {
            return ResponseError::UnknownMemberId.code();
        };
        member.last_seen = Instant::now();
        if request.generation_id != group.generation {
            return ResponseError::IllegalGeneration.code();
        }
        match group.state {
            State::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            _ => 0,
        }
    }

    fn leave(&self, request: &LeaveGroupRequest, version: i16) -> (i16, Vec<MemberResponse>) {
        let identities: Vec<(String, Option<StrBytes>)> = if version >= 3 {
            request.members.iter().map(|m| (text(&m.member_id), m.group_instance_id.clone())).collect()
        } else {
            vec![(text(&request.member_id), None)]
        };
        let mut groups = self.groups.borrow_mut();
        let unknown = ResponseError::UnknownMemberId.code();
        let Some(group) = groups.get_mut(request.group_id.as_str()) else {
            let answers = identities
                .into_iter()
                .map(|(id, instance)| {
                    MemberResponse::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_group_instance_id(instance)
                        .with_error_code(unknown)
                })
                .collect();
            return (if version >= 3 { 0 } else { unknown }, answers);
        };
        let mut removed = false;
        let mut answers = Vec::with_capacity(identities.len());
        for (id, instance) in identities {
            let id = if id.is_empty() {
                let by_instance = instance.as_ref().and_then(|instance| {
                    group.members.iter().find(|(_, m)| m.instance_id.as_deref() == Some(instance.as_str()))
                });
                by_instance.map(|(id, _)| id.clone()).unwrap_or_default()
            } else {
                id
            };
            let code = if group.members.remove(&id).is_some() {
                removed = true;
                0
            } else if group.pending.remove(&id).is_some() {
                0
            } else {
                unknown
            };
            answers.push(
                MemberResponse::default()
                    .with_member_id(StrBytes::from_string(id))
                    .with_group_instance_id(instance)
                    .with_error_code(code),
            );
        }
        if removed {
            group.after_removal();
            group.try_complete(Instant::now());
            self.changed.notify(usize::MAX);
        }
        let top = if version >= 3 { 0 } else { answers.first().map_or(0, |a| a.error_code) };
        (top, answers)
    }

    /// Kafka's `validateOffsetCommit` for classic groups.
    fn check_commit(&self, group_id: &str, generation: i32, member_id: &str) -> Result<(), i16> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId.code());
        }
        let mut groups = self.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            // No group: a consumer using assign() (generation -1, no member id) may commit.
            return if generation < 0 && member_id.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::IllegalGeneration.code())
            };
        };
        if generation < 0 && member_id.is_empty() {
            return if group.state == State::Empty { Ok(()) } else { Err(ResponseError::UnknownMemberId.code()) };
        }
        let Some(member) = group.members.get_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId.code());
        };
        member.last_seen = Instant::now();
        if generation != group.generation {
            return Err(ResponseError::IllegalGeneration.code());
        }
        if group.state == State::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress.code());
        }
        Ok(())
    }

    async fn commit(
        &self,
        context: &ShardContext,
        (topic_id, partition): (Uuid, i32),
        group: String,
        generation: i32,
        member_id: String,
        parts: Vec<CommitPart>,
    ) -> Result<Vec<i16>, i16> {
        self.check_commit(&group, generation, &member_id)?;
        let mut codes = vec![0i16; parts.len()];
        let mut valid = Vec::with_capacity(parts.len());
        for (index, part) in parts.into_iter().enumerate() {
            if part.2.metadata.len() > MAX_METADATA_BYTES {
                codes[index] = ResponseError::OffsetMetadataTooLarge.code();
            } else {
                valid.push(part);
            }
        }
        if valid.is_empty() {
            return Ok(codes);
        }
        let batch = offsets::commit_batch(&group, &valid, now_ms());
        if let Err(code) = offsets::append(context, (topic_id, partition), batch).await {
            if code == ResponseError::NotCoordinator.code() {
                return Err(code);
            }
            return Ok(codes.into_iter().map(|c| if c == 0 { code } else { c }).collect());
        }
        let mut map = self.offsets.borrow_mut();
        let offsets = map.entry(group).or_default();
        for (topic, index, committed) in valid {
            offsets.insert((topic, index), committed);
        }
        Ok(codes)
    }

    fn fetch(
        &self,
        group: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<(String, i32, Option<Committed>)>, i16> {
        let map = self.offsets.borrow();
        let offsets = map.get(group);
        Ok(match partitions {
            Some(wanted) => wanted
                .into_iter()
                .map(|(topic, index)| {
                    let committed = offsets.and_then(|o| o.get(&(topic.clone(), index)).cloned());
                    (topic, index, committed)
                })
                .collect(),
            None => offsets
                .map(|o| o.iter().map(|((t, p), c)| (t.clone(), *p, Some(c.clone()))).collect())
                .unwrap_or_default(),
        })
    }
}

/// Serves one group call on the coordinating shard.
pub async fn handle(context: &Rc<ShardContext>, addressed: Addressed) -> GroupReply {
    let groups = &context.groups;
    match addressed.call {
        GroupCall::Join(request, version, client_id, client_host, waiter) => {
            match groups.join(context, request, version, (client_id, client_host), waiter).await {
                Ok(response) => GroupReply::Join(response),
                Err(parked) => GroupReply::Pending(parked),
            }
        }
        GroupCall::Sync(request, waiter) => {
            let place = (addressed.topic_id, addressed.partition);
            match groups.sync(context, place, request, waiter).await {
                Ok(response) => GroupReply::Sync(response),
                Err(parked) => GroupReply::Pending(parked),
            }
        }
        GroupCall::Collect(parked) => groups.collect(parked),
        GroupCall::Heartbeat(request) => {
            let code = groups.heartbeat(&request);
            GroupReply::Code(code)
        }
        GroupCall::Leave(request, version) => {
            let (code, members) = groups.leave(&request, version);
            GroupReply::Leave(code, members)
        }
        GroupCall::Commit { group, generation, member_id, parts } => {
            let place = (addressed.topic_id, addressed.partition);
            GroupReply::Commit(groups.commit(context, place, group, generation, member_id, parts).await)
        }
        GroupCall::Fetch { group, partitions } => GroupReply::Fetch(groups.fetch(&group, partitions)),
        GroupCall::List => GroupReply::List(groups.list()),
        GroupCall::Describe(group) => GroupReply::Describe(groups.describe(&group)),
        GroupCall::Delete(group) => {
            GroupReply::Code(groups.delete(context, (addressed.topic_id, addressed.partition), &group).await)
        }
        GroupCall::OffsetDelete { group, partitions } => {
            let place = (addressed.topic_id, addressed.partition);
            GroupReply::OffsetDelete(groups.delete_offsets(context, place, &group, partitions).await)
        }
    }
}
