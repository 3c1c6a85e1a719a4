//! The group requests a connection's shard sends to the coordinating shard, and their answers.
//! DeleteGroups answers with [`GroupReply::Code`].

use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest, SyncGroupResponse,
};
use spate_core::runtime::ShardId;
use uuid::Uuid;

use super::offsets::Committed;

/// A group call, addressed to the offsets partition whose shard coordinates the group.
pub struct Addressed {
    /// The offsets topic's id.
    pub topic_id: Uuid,
    /// The group's offsets partition.
    pub partition: i32,
    /// The call.
    pub call: GroupCall,
}

/// A waiting call on another shard: that shard and its waiter id (woken with `ShardRequest::Wake`).
pub type Waiter = (ShardId, u64);

/// A JoinGroup or SyncGroup from another shard whose answer is not ready. Rather than hold one of
/// the coordinating shard's cross-shard call slots for a whole rebalance (members joining through
/// other shards would soon take them all, and with them every other call to that shard), the
/// coordinator answers [`GroupReply::Pending`] at once, wakes `waiter` when the answer is ready, and
/// the caller collects it with [`GroupCall::Collect`].
#[derive(Debug, Clone)]
pub struct Parked {
    pub waiter: Waiter,
    pub group_id: String,
    pub member_id: String,
    pub kind: ParkedKind,
}

/// What a parked call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkedKind {
    /// The end of the member's rebalance round.
    Join,
    /// The assignment of `generation`.
    Sync { generation: i32 },
}

/// One partition's commit: topic, partition, what to store.
pub type CommitPart = (String, i32, Committed);

/// A group request, decoded by the handler on the connection's shard.
pub enum GroupCall {
    /// JoinGroup at `version`, from `client_id` at `client_host`; from another shard, the waiter to
    /// wake instead of waiting there (see [`Parked`]).
    Join(JoinGroupRequest, i16, String, String, Option<Waiter>),
    /// SyncGroup; the waiter as for `Join`.
    Sync(SyncGroupRequest, Option<Waiter>),
    /// Collect the answer of a parked JoinGroup or SyncGroup (its waiter was woken).
    Collect(Parked),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup at `version`.
    Leave(LeaveGroupRequest, i16),
    /// OffsetCommit: group, generation, member id, the partitions.
    Commit { group: String, generation: i32, member_id: String, parts: Vec<CommitPart> },
    /// OffsetFetch of one group: `None`: every partition with a committed offset.
    Fetch { group: String, partitions: Option<Vec<(String, i32)>> },
    /// ListGroups: every group this shard coordinates (the address names any partition it owns).
    List,
    /// DescribeGroups of one group.
    Describe(String),
    /// DeleteGroups of one group.
    Delete(String),
    /// OffsetDelete: group, the partitions whose committed offsets to delete.
    OffsetDelete { group: String, partitions: Vec<(String, i32)> },
}

/// The coordinator's answer.
pub enum GroupReply {
    /// JoinGroup's response (to encode at the request's version).
    Join(JoinGroupResponse),
    /// SyncGroup's response.
    Sync(SyncGroupResponse),
    /// A bare error code (Heartbeat).
    Code(i16),
    /// LeaveGroup: top-level error, per-member answers.
    Leave(i16, Vec<MemberResponse>),
    /// OffsetCommit: one error code per part (or one for all: the group check failed).
    Commit(Result<Vec<i16>, i16>),
    /// OffsetFetch: (topic, partition, committed or none).
    Fetch(Result<Vec<(String, i32, Option<Committed>)>, i16>),
    /// ListGroups: this shard's groups, every field set (the handler filters).
    List(Vec<ListedGroup>),
    /// DescribeGroups: one group (fields of every version set; the handler trims).
    Describe(DescribedGroup),
    /// OffsetDelete: one error code per partition (or a group-level error).
    OffsetDelete(Result<Vec<i16>, i16>),
    /// A JoinGroup or SyncGroup from another shard is parked: collect it once woken.
    Pending(Parked),
}
