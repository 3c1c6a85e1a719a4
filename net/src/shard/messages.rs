//! Every message one shard sends another, and the handler that serves them.
//!
//! | request | sent by | to | does |
//! | --- | --- | --- | --- |
//! | `CreateTopics` | CreateTopics / Metadata handlers | shard 0 | the controller creates topics |
//! | `OpenPartitions` | the controller | every shard | open the logs of new partitions it owns |
//! | `InstallTopics` | the controller | every shard | swap in the new topic table copy |
//! | `Produce` | Produce handler | partition owners | append, wait for the durability asked |
//! | `Fetch` | Fetch handler | partition owners | read from the logs, no waiting |
//! | `Watch` | Fetch handler (long poll) | partition owners | arm a bounded watch, answer at once |
//! | `Wake` | an owner's watch; a group coordinator | the fetching shard; a parked group call's shard | wake a waiting fetch or parked JoinGroup/SyncGroup |
//! | `ListOffsets` | ListOffsets handler | partition owners | offsets by position or timestamp |
//! | `Controller` | admin handlers (DeleteTopics, CreatePartitions, configs, InitProducerId) | shard 0 | the controller's other mutations |
//! | `DeleteRecords` | DeleteRecords handler | partition owners | move log start offsets |
//! | `LogSizes` | DescribeLogDirs handler | partition owners | each log's size in bytes |
//! | `Group` | group handlers (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, DeleteGroups, OffsetDelete; ListGroups to every coordinating shard) | the group's coordinating shard | group membership and committed offsets (JoinGroup and SyncGroup from other shards are parked there, see `Wake`) |
//! | `ConsumerGroup` | ConsumerGroupHeartbeat, ConsumerGroupDescribe, OffsetFetch v9 (member check) | the group's coordinating shard | consumer-protocol groups (KIP-848); never waits |
//! | `Drained` | every shard at shutdown | shard 0 | barrier before logs are closed |
//!
//! Requests that touch logs or the controller run as detached tasks ([`spawn_detached`]): a call a
//! shard makes to itself runs in the caller's future, and a caller dropped halfway (its client
//! disconnected) must not cut an append or a topic creation short. No handler here waits on another
//! shard except the controller's broadcasts (to handlers that do only local work) and the barrier, so
//! calls cannot deadlock in cycles, and no handler waits for a client's long poll (see `Watch`, and
//! for a JoinGroup or SyncGroup waiting for its rebalance round, `group::calls::Parked`: the
//! coordinator answers `Pending` at once and sends `Wake` when the answer is ready).

use std::rc::Rc;

use spate_core::runtime::{spawn_detached, ShardId};

use super::controller::{ControllerCall, ControllerReply, CreateOutcome, CreateTopicsCall};
use super::topics::TopicTable;
use super::{drain_barrier, ShardContext};
use crate::handlers::delete_records::{self, DeleteRecordsCall, DeleteRecordsOutcome};
use crate::handlers::describe_log_dirs;
use crate::handlers::fetch::owner::{self as fetch_owner, PartitionRead, ReadCall, WatchCall};
use crate::handlers::list_offsets::{self, OffsetOutcome, OffsetsCall};
use crate::handlers::produce::{self, AppendCall, AppendOutcome};

/// A cross-shard request.
pub enum ShardRequest {
    /// To shard 0: create topics.
    CreateTopics(CreateTopicsCall),
    /// From the controller: open the partitions of this table that you own.
    OpenPartitions(TopicTable),
    /// From the controller: this is the new topic table.
    InstallTopics(TopicTable),
    /// Append to partitions you own.
    Produce(AppendCall),
    /// Read from partitions you own.
    Fetch(ReadCall),
    /// Tell the caller's waiting fetch when one of these partitions has new data.
    Watch(WatchCall),
    /// Wake waiting fetch `id` (it has new data to read).
    Wake(u64),
    /// Offsets of partitions you own.
    ListOffsets(OffsetsCall),
    /// To shard 0: delete topics, add partitions, alter configs, a producer id.
    Controller(ControllerCall),
    /// Delete records before offsets of partitions you own.
    DeleteRecords(DeleteRecordsCall),
    /// Sizes of these partitions you own (`None`: not open here).
    LogSizes(Vec<(uuid::Uuid, i32)>),
    /// A group call, to the shard coordinating the group.
    Group(Box<crate::group::state::Addressed>),
    /// A consumer-protocol group call, to the shard coordinating the group.
    ConsumerGroup(Box<crate::group::consumer::Addressed>),
    /// To shard 0 at shutdown: this shard's connections are done.
    Drained,
}

/// A cross-shard reply.
pub enum ShardReply {
    /// The controller's answer to `CreateTopics`, in request order.
    CreateTopics(Vec<CreateOutcome>),
    /// Done (`OpenPartitions`, `InstallTopics`, `Wake`, `Drained`).
    Done,
    /// One result per part, in order.
    Produce(Vec<AppendOutcome>),
    /// One result per part, in order.
    Fetch(Vec<PartitionRead>),
    /// `true` if a watched partition already had new data (no watch was armed).
    Watch(bool),
    /// One result per part, in order.
    ListOffsets(Vec<OffsetOutcome>),
    /// The controller's answer to `Controller`.
    Controller(ControllerReply),
    /// One result per part, in order.
    DeleteRecords(Vec<DeleteRecordsOutcome>),
    /// One size per partition, in order.
    LogSizes(Vec<Option<u64>>),
    /// The coordinator's answer to `Group`.
    Group(Box<crate::group::GroupReply>),
    /// The coordinator's answer to `ConsumerGroup`.
    ConsumerGroup(Box<crate::group::consumer::ConsumerReply>),
    /// The shard is stopping and could not act.
    Unavailable,
}

/// Serves one request on this shard.
pub async fn handle(context: Rc<ShardContext>, from: ShardId, request: ShardRequest) -> ShardReply {
    match request {
        ShardRequest::InstallTopics(table) => {
            context.install_topics(table);
            ShardReply::Done
        }
        ShardRequest::Wake(id) => {
            context.waiters.wake(id);
            ShardReply::Done
        }
        ShardRequest::Watch(call) => ShardReply::Watch(fetch_owner::watch(&context, from, call)),
        ShardRequest::LogSizes(parts) => ShardReply::LogSizes(describe_log_dirs::sizes_on_owner(&context, &parts)),
        ShardRequest::Drained => {
            drain_barrier(&context).await;
            ShardReply::Done
        }
        detached => spawn_detached(handle_detached(context, detached)).await.unwrap_or(ShardReply::Unavailable),
    }
}

async fn handle_detached(context: Rc<ShardContext>, request: ShardRequest) -> ShardReply {
    match request {
        ShardRequest::CreateTopics(call) => match &context.controller {
            Some(controller) => ShardReply::CreateTopics(controller.create_topics(&context, call).await),
            None => unreachable!("CreateTopics sent to shard {}, which is not the controller", context.shard.id()),
        },
        ShardRequest::Controller(call) => match &context.controller {
            Some(controller) => ShardReply::Controller(controller.admin(&context, call).await),
            None => unreachable!("a controller call sent to shard {}", context.shard.id()),
        },
        ShardRequest::DeleteRecords(call) => ShardReply::DeleteRecords(delete_records::on_owner(&context, call).await),
        ShardRequest::OpenPartitions(table) => {
            context.partitions.sync_with(&table).await;
            ShardReply::Done
        }
        ShardRequest::Produce(call) => ShardReply::Produce(produce::append_on_owner(&context, call).await),
        ShardRequest::Fetch(call) => ShardReply::Fetch(fetch_owner::read(&context, call).await),
        ShardRequest::ListOffsets(call) => ShardReply::ListOffsets(list_offsets::on_owner(&context, call).await),
        ShardRequest::Group(call) => ShardReply::Group(Box::new(crate::group::on_owner(&context, *call).await)),
        ShardRequest::ConsumerGroup(call) => {
            ShardReply::ConsumerGroup(Box::new(crate::group::consumer::on_owner(&context, *call).await))
        }
        ShardRequest::InstallTopics(_)
        | ShardRequest::Wake(_)
        | ShardRequest::Watch(_)
        | ShardRequest::LogSizes(_)
        | ShardRequest::Drained => {
            unreachable!("handled inline")
        }
    }
}
