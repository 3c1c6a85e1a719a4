//! ConsumerGroupHeartbeat on the coordinating shard: joining (epoch 0), leaving (-1, or -2 for a
//! static member that will come back), and the regular heartbeat that keeps the session alive,
//! updates the subscription, recomputes the target assignment when the group epoch moved, and
//! takes the member one reconciliation step further.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedPartitions;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment as WireAssignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::assignor;
use super::group::ConsumerGroup;
use super::member::{is_subset, Assignment, Member, MemberState};
use super::{compile_regex, ConsumerGroupSettings, ConsumerGroups};
use crate::shard::topics::TopicTable;

/// The epoch a member sends to leave the group.
const LEAVE_EPOCH: i32 = -1;
/// The epoch a static member sends when it leaves and will come back (its assignment is kept).
const STATIC_LEAVE_EPOCH: i32 = -2;
/// From this version the client generates its member id (KIP-1082).
const CLIENT_MEMBER_ID_VERSION: i16 = 1;

/// One heartbeat as the coordinator sees it.
pub(super) struct Heartbeat {
    pub(super) request: ConsumerGroupHeartbeatRequest,
    pub(super) version: i16,
    pub(super) client_id: String,
    /// The group id is a classic group with members.
    pub(super) classic_in_use: bool,
}

type Response = ConsumerGroupHeartbeatResponse;

/// Why a heartbeat is refused: an error code and Kafka's message for it.
pub(super) struct Refusal(i16, String);

impl Refusal {
    fn response(self) -> Response {
        Response::default().with_error_code(self.0).with_error_message(Some(StrBytes::from_string(self.1)))
    }
}

fn error(code: i16, message: &str) -> Refusal {
    Refusal(code, message.to_string())
}

fn invalid(message: &str) -> Refusal {
    error(ResponseError::InvalidRequest.code(), message)
}

fn fenced(message: &str) -> Refusal {
    error(ResponseError::FencedMemberEpoch.code(), message)
}

fn unknown_member(member_id: &str, group_id: &str) -> Refusal {
    error(ResponseError::UnknownMemberId.code(), &format!("Member {member_id} is not a member of group {group_id}."))
}

fn owned_assignment(owned: &[OwnedPartitions]) -> Assignment {
    let mut assignment = Assignment::new();
    for topic in owned {
        if !topic.partitions.is_empty() {
            assignment.entry(topic.topic_id).or_default().extend(topic.partitions.iter().copied());
        }
    }
    assignment
}

fn wire_assignment(assignment: &Assignment) -> WireAssignment {
    let topic_partitions = assignment
        .iter()
        .map(|(topic_id, partitions)| {
            TopicPartitions::default().with_topic_id(*topic_id).with_partitions(partitions.iter().copied().collect())
        })
        .collect();
    WireAssignment::default().with_topic_partitions(topic_partitions)
}

/// Kafka's request checks (`throwIfConsumerGroupHeartbeatRequestIsInvalid`).
fn check_request(request: &ConsumerGroupHeartbeatRequest, version: i16) -> Result<(), Refusal> {
    let empty = |value: &Option<StrBytes>| value.as_ref().is_some_and(|v| v.is_empty());
    if request.group_id.is_empty() {
        return Err(invalid("GroupId can't be empty."));
    }
    if empty(&request.instance_id) {
        return Err(invalid("InstanceId can't be empty."));
    }
    if empty(&request.rack_id) {
        return Err(invalid("RackId can't be empty."));
    }
    if version >= CLIENT_MEMBER_ID_VERSION && request.member_id.is_empty() {
        return Err(invalid("MemberId can't be empty."));
    }
    match request.member_epoch {
        epoch if epoch > 0 || epoch == LEAVE_EPOCH => {
            if request.member_id.is_empty() {
                return Err(invalid("MemberId can't be empty."));
            }
        }
        0 => {
            if request.rebalance_timeout_ms == -1 {
                return Err(invalid("RebalanceTimeoutMs must be provided in first request."));
            }
            if request.topic_partitions.as_ref().is_none_or(|owned| !owned.is_empty()) {
                return Err(invalid("TopicPartitions must be empty when (re-)joining."));
            }
            let names = request.subscribed_topic_names.as_ref().is_some_and(|names| !names.is_empty());
            if !names && request.subscribed_topic_regex.is_none() {
                return Err(invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request."));
            }
        }
        STATIC_LEAVE_EPOCH => {
            if request.member_id.is_empty() {
                return Err(invalid("MemberId can't be empty."));
            }
            if request.instance_id.is_none() {
                return Err(invalid("InstanceId can't be null."));
            }
        }
        _ => return Err(invalid("MemberEpoch is invalid.")),
    }
    if let Some(name) = &request.server_assignor {
        if !assignor::is_known(name) {
            let message = format!(
                "ServerAssignor {name} is not supported. Supported assignors: {}, {}.",
                assignor::UNIFORM,
                assignor::RANGE
            );
            return Err(error(ResponseError::UnsupportedAssignor.code(), &message));
        }
    }
    if let Some(pattern) = &request.subscribed_topic_regex {
        if !pattern.is_empty() && compile_regex(pattern).is_none() {
            return Err(error(ResponseError::InvalidRegularExpression.code(), &format!("Invalid regex {pattern}.")));
        }
    }
    Ok(())
}

/// Kafka's epoch check: a newer epoch than the member's is fenced, and so is an older one unless
/// it is the previous epoch and the member owns nothing beyond its assignment (the answer that
/// bumped its epoch was lost).
fn check_epoch(member: &Member, received: i32, owned: Option<&Assignment>) -> Result<(), Refusal> {
    if received > member.epoch {
        return Err(fenced(&format!("The consumer group member has a greater epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", member.epoch)));
    }
    if received < member.epoch && (received != member.previous_epoch || !is_subset(owned, &member.assigned)) {
        return Err(fenced(&format!("The consumer group member has a smaller epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.", member.epoch)));
    }
    Ok(())
}

impl ConsumerGroups {
    /// Serves one heartbeat.
    pub(super) fn heartbeat(
        &self,
        heartbeat: Heartbeat,
        settings: &ConsumerGroupSettings,
        table: &TopicTable,
    ) -> Response {
        self.serve(heartbeat, settings, table).unwrap_or_else(Refusal::response)
    }

    fn serve(
        &self,
        heartbeat: Heartbeat,
        settings: &ConsumerGroupSettings,
        table: &TopicTable,
    ) -> Result<Response, Refusal> {
        let Heartbeat { request, version, client_id, classic_in_use } = heartbeat;
        check_request(&request, version)?;
        let group_id = request.group_id.to_string();
        let member_id = request.member_id.to_string();
        let mut groups = self.groups.borrow_mut();
        if classic_in_use {
            return Err(error(
                ResponseError::GroupIdNotFound.code(),
                &format!("Group {group_id} is not a consumer group."),
            ));
        }
        let now = Instant::now();
        match request.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
                let Some(group) = groups.get_mut(&group_id) else { return Err(unknown_member(&member_id, &group_id)) };
                let Some(member) = group.members.get_mut(&member_id) else {
                    return Err(unknown_member(&member_id, &group_id));
                };
                if request.member_epoch == STATIC_LEAVE_EPOCH {
                    if member.instance_id != request.instance_id.as_ref().map(ToString::to_string) {
                        return Err(error(ResponseError::FencedInstanceId.code(), "The instance id does not match."));
                    }
                    // Kept with its assignment until it comes back or its session ends.
                    member.set_static_leave();
                } else {
                    group.remove_member(&member_id);
                }
                return Ok(Response::default()
                    .with_member_id(Some(StrBytes::from_string(member_id)))
                    .with_member_epoch(request.member_epoch)
                    .with_heartbeat_interval_ms(0));
            }
            _ => {}
        }
        let joining = request.member_epoch == 0;
        if !joining && !groups.contains_key(&group_id) {
            return Err(unknown_member(&member_id, &group_id));
        }
        let group = groups.entry(group_id.clone()).or_default();
        let member_id = if member_id.is_empty() { crate::shard::topics::new_topic_id().to_string() } else { member_id };
        let owned = request.topic_partitions.as_deref().map(owned_assignment);
        let session_timeout = settings.session_timeout;
        // Whatever changed in this heartbeat moves the group epoch once.
        let mut bump = false;
        if joining {
            bump |= join(group, &member_id, &request, client_id, now, session_timeout)?;
        } else {
            let Some(member) = group.members.get(&member_id) else { return Err(unknown_member(&member_id, &group_id)) };
            check_epoch(member, request.member_epoch, owned.as_ref())?;
        }
        let Some(member) = group.members.get_mut(&member_id) else { return Err(unknown_member(&member_id, &group_id)) };
        let before_assigned = member.assigned.clone();
        let before_held: Vec<(Uuid, i32)> = member.held().collect();
        bump |= update_member(member, &request);
        member.session_deadline = now + session_timeout;
        let resolved = group.resolve_subscriptions(table);
        if resolved != group.subscribed_topics {
            group.subscribed_topics = resolved;
            bump = true;
        }
        if bump {
            group.group_epoch += 1;
        }
        group.refresh_target();
        let target = group.target.get(&member_id).cloned().unwrap_or_default();
        let target_epoch = group.assignment_epoch;
        let free: Vec<(Uuid, i32)> = target
            .iter()
            .flat_map(|(topic, parts)| parts.iter().map(move |p| (*topic, *p)))
            .filter(|(topic, partition)| group.is_free_for(&member_id, *topic, *partition))
            .collect();
        let is_free = |topic: Uuid, partition: i32| free.contains(&(topic, partition));
        let Some(member) = group.members.get_mut(&member_id) else { return Err(unknown_member(&member_id, &group_id)) };
        member.reconcile(&target, target_epoch, owned.as_ref(), &is_free);
        member.revocation_deadline = match (member.state, member.revocation_deadline) {
            (MemberState::UnrevokedPartitions, Some(deadline)) => Some(deadline),
            (MemberState::UnrevokedPartitions, None) => Some(now + member.rebalance_timeout),
            _ => None,
        };
        let full_request = joining
            || (request.rebalance_timeout_ms != -1
                && (request.subscribed_topic_names.is_some() || request.subscribed_topic_regex.is_some())
                && request.topic_partitions.is_some());
        let assignment =
            (full_request || member.assigned != before_assigned).then(|| wire_assignment(&member.assigned));
        let response = Response::default()
            .with_member_id(Some(StrBytes::from_string(member_id.clone())))
            .with_member_epoch(member.epoch)
            .with_heartbeat_interval_ms(settings.heartbeat_interval.as_millis().min(i32::MAX as u128) as i32)
            .with_assignment(assignment);
        group.record_holdings(&member_id, &before_held);
        Ok(response)
    }
}

/// Adds the member (epoch 0; `Ok(true)`), or resets it (a rejoin gives up what it held), or hands
/// a static member's place to its new incarnation.
fn join(
    group: &mut ConsumerGroup,
    member_id: &str,
    request: &ConsumerGroupHeartbeatRequest,
    client_id: String,
    now: Instant,
    session_timeout: Duration,
) -> Result<bool, Refusal> {
    let instance_id = request.instance_id.as_ref().map(|i| i.to_string());
    let previous_static = instance_id.as_deref().and_then(|instance| {
        group.members.values().find(|m| m.instance_id.as_deref() == Some(instance) && m.member_id != member_id)
    });
    if let Some(previous) = previous_static {
        if previous.epoch != STATIC_LEAVE_EPOCH {
            let message = format!(
                "Static member {member_id} with instance id {} cannot join the group because the instance id is owned by {} member.",
                instance_id.as_deref().unwrap_or_default(),
                previous.member_id
            );
            return Err(error(ResponseError::UnreleasedInstanceId.code(), &message));
        }
        // KIP-345 for the new protocol: the new incarnation takes over the assignment.
        let previous_id = previous.member_id.clone();
        let previous_held: Vec<(Uuid, i32)> = previous.held().collect();
        if let Some(mut member) = group.members.remove(&previous_id) {
            member.member_id = member_id.to_string();
            member.epoch = member.previous_epoch.max(0);
            member.client_id = client_id;
            group.members.insert(member_id.to_string(), member);
            if let Some(target) = group.target.remove(&previous_id) {
                group.target.insert(member_id.to_string(), target);
            }
            group.record_holdings(&previous_id, &previous_held);
            group.record_holdings(member_id, &[]);
        }
        return Ok(false);
    }
    match group.members.get_mut(member_id) {
        Some(member) => {
            // A rejoin owns nothing (its request says so): release what it held.
            let held: Vec<(Uuid, i32)> = member.held().collect();
            member.assigned.clear();
            member.pending_revocation.clear();
            member.state = MemberState::Stable;
            member.epoch = 0;
            member.previous_epoch = 0;
            member.revocation_deadline = None;
            group.record_holdings(member_id, &held);
        }
        None => {
            let mut member = Member::new(member_id.to_string(), client_id, now, session_timeout);
            member.instance_id = instance_id;
            group.members.insert(member_id.to_string(), member);
            return Ok(true);
        }
    }
    Ok(false)
}

/// Applies the fields a heartbeat sets; `true` if the subscription or assignor changed (the
/// group epoch must move).
fn update_member(member: &mut Member, request: &ConsumerGroupHeartbeatRequest) -> bool {
    let mut changed = false;
    if let Some(rack) = &request.rack_id {
        member.rack_id = Some(rack.to_string());
    }
    if request.rebalance_timeout_ms > 0 {
        member.rebalance_timeout = Duration::from_millis(request.rebalance_timeout_ms as u64);
    }
    if let Some(names) = &request.subscribed_topic_names {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>().into_iter().collect();
        changed |= names != member.subscribed_topic_names;
        member.subscribed_topic_names = names;
    }
    if let Some(pattern) = &request.subscribed_topic_regex {
        let pattern = (!pattern.is_empty()).then(|| pattern.to_string());
        changed |= pattern != member.subscribed_topic_regex;
        member.subscribed_topic_regex = pattern;
    }
    if let Some(name) = &request.server_assignor {
        let name = Some(name.to_string());
        changed |= name != member.server_assignor;
        member.server_assignor = name;
    }
    changed
}
