//! Consumer groups of the new protocol (KIP-848, `group.protocol=consumer`): the coordinator
//! computes each member's target assignment with a server-side assignor and hands it out through
//! ConsumerGroupHeartbeat, one reconciliation step per heartbeat ([`member`]).
//!
//! These groups live beside the classic ones on the same coordinating shard
//! ([`ShardContext::consumer_groups`]); a group id is one or the other: a consumer heartbeat for a
//! classic group with members is `GROUP_ID_NOT_FOUND`, a JoinGroup for a consumer group with
//! members is `INCONSISTENT_GROUP_PROTOCOL`, and an empty group of either kind gives way to the
//! other. Committed offsets are shared with the classic coordinator (one offsets map per shard):
//! [`bridge`] checks a consumer member's epoch, then commits the way an unmanaged consumer would.
//!
//! Membership is memory only: after a restart members get `UNKNOWN_MEMBER_ID` and rejoin at epoch
//! 0 (which clients do on their own); committed offsets persist as always.

pub mod assignor;
pub mod bridge;
mod describe;
pub mod group;
mod heartbeat;
pub mod member;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use uuid::Uuid;

use group::ConsumerGroup;

use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::ShardContext;

/// Kafka's `group.consumer.session.timeout.ms` default.
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;
/// Kafka's `group.consumer.heartbeat.interval.ms` default.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 5_000;
/// The group type ListGroups v5 gives these groups.
pub const CONSUMER_GROUP_TYPE: &str = "consumer";

/// The broker's consumer-protocol timeouts (`group_consumer_session_timeout_ms`,
/// `group_consumer_heartbeat_interval_ms`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerGroupSettings {
    /// A member that sends no heartbeat for this long is removed.
    pub session_timeout: Duration,
    /// How often members are told to heartbeat.
    pub heartbeat_interval: Duration,
}

impl Default for ConsumerGroupSettings {
    fn default() -> Self {
        ConsumerGroupSettings {
            session_timeout: Duration::from_millis(DEFAULT_SESSION_TIMEOUT_MS),
            heartbeat_interval: Duration::from_millis(DEFAULT_HEARTBEAT_INTERVAL_MS),
        }
    }
}

/// A consumer-protocol call, addressed to the offsets partition whose shard coordinates the group.
pub struct Addressed {
    /// The offsets topic's id.
    pub topic_id: Uuid,
    /// The group's offsets partition.
    pub partition: i32,
    /// The call.
    pub call: ConsumerCall,
}

/// A consumer-protocol request, decoded on the connection's shard.
pub enum ConsumerCall {
    /// ConsumerGroupHeartbeat at `version`, from `client_id`.
    Heartbeat(Box<ConsumerGroupHeartbeatRequest>, i16, String),
    /// ConsumerGroupDescribe of one group.
    Describe(String),
    /// OffsetFetch v9's member check: group, member id, member epoch.
    ValidateFetch(String, String, i32),
}

/// The coordinator's answer.
pub enum ConsumerReply {
    /// ConsumerGroupHeartbeat's response.
    Heartbeat(Box<ConsumerGroupHeartbeatResponse>),
    /// One described group.
    Describe(Box<DescribedGroup>),
    /// An error code (0: fine).
    Code(i16),
}

/// The consumer-protocol groups this shard coordinates.
#[derive(Default)]
pub struct ConsumerGroups {
    groups: RefCell<HashMap<String, ConsumerGroup>>,
}

/// A subscription regex as Kafka applies it (the whole topic name must match); `None` if invalid.
pub fn compile_regex(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?:{pattern})$")).ok()
}

impl ConsumerGroups {
    /// Removes members whose session expired or who did not revoke partitions within their
    /// rebalance timeout; run on the group tick.
    pub fn tick(&self) {
        let now = Instant::now();
        for (group_id, group) in self.groups.borrow_mut().iter_mut() {
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now))
                .map(|m| m.member_id.clone())
                .collect();
            for member_id in expired {
                tracing::info!(group = %group_id, member = %member_id, "consumer group member expired");
                group.remove_member(&member_id);
            }
        }
    }

    /// Whether `group_id` is a consumer group, and whether it has members.
    pub fn membership(&self, group_id: &str) -> Option<bool> {
        self.groups.borrow().get(group_id).map(|group| !group.members.is_empty())
    }

    /// Forgets an empty group (a classic group or DeleteGroups takes the id); `false` if it has
    /// members or does not exist.
    pub fn remove_if_empty(&self, group_id: &str) -> bool {
        let mut groups = self.groups.borrow_mut();
        if groups.get(group_id).is_some_and(|group| group.members.is_empty()) {
            groups.remove(group_id);
            return true;
        }
        false
    }
}

/// Sends `call` to the shard coordinating `group_id`. `Err`: an error code
/// (COORDINATOR_NOT_AVAILABLE, which clients retry).
pub async fn call_coordinator(
    context: &ShardContext,
    group_id: &str,
    call: ConsumerCall,
) -> Result<ConsumerReply, i16> {
    let (shard, topic_id, partition) = super::coordinator_shard(context, group_id).await?;
    let request = ShardRequest::ConsumerGroup(Box::new(Addressed { topic_id, partition, call }));
    match context.call(shard, request).await {
        Ok(ShardReply::ConsumerGroup(reply)) => Ok(*reply),
        _ => Err(ResponseError::CoordinatorNotAvailable.code()),
    }
}

/// Serves a consumer-protocol call on the coordinating shard.
pub async fn on_owner(context: &Rc<ShardContext>, addressed: Addressed) -> ConsumerReply {
    let place = (addressed.topic_id, addressed.partition);
    match addressed.call {
        ConsumerCall::Heartbeat(request, version, client_id) => {
            let group_id = request.group_id.to_string();
            let classic_in_use = context.consumer_groups.membership(&group_id).is_none()
                && bridge::classic_has_members(context, place, &group_id).await;
            let settings = &context.settings.consumer_groups;
            let table = context.topics();
            let call = heartbeat::Heartbeat { request: *request, version, client_id, classic_in_use };
            ConsumerReply::Heartbeat(Box::new(context.consumer_groups.heartbeat(call, settings, &table)))
        }
        ConsumerCall::Describe(group_id) => {
            let classic_in_use = context.consumer_groups.membership(&group_id).is_none()
                && bridge::classic_has_members(context, place, &group_id).await;
            let table = context.topics();
            ConsumerReply::Describe(Box::new(context.consumer_groups.describe(&group_id, classic_in_use, &table)))
        }
        ConsumerCall::ValidateFetch(group_id, member_id, member_epoch) => {
            ConsumerReply::Code(context.consumer_groups.validate_fetch(&group_id, &member_id, member_epoch))
        }
    }
}
