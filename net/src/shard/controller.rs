//! The controller: shard 0's single writer of the topic table.
//!
//! Every topic mutation, from any shard, arrives here as a cross-shard call and is applied one at a
//! time (an async lock local to shard 0 — control plane only, never on the produce or fetch path):
//!
//! 1. validate each new topic against the current table (names, existence, partitions, replication
//!    factor, assignments, configs), with Kafka's error codes and messages;
//! 2. write the next table version to `topics.json` (atomic and durable) — the commit point;
//! 3. broadcast `OpenPartitions(table)` to every shard and wait: each opens the logs it owns;
//! 4. broadcast `InstallTopics(table)` to every shard and wait: each swaps in its new copy.
//!
//! So when a shard's copy lists a topic, every partition of it is open on its owner, and when a
//! CreateTopics answer says "created", produce to it works on every shard.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::path::PathBuf;

use event_listener::Event;
use spate_core::topic_config::{ConfigEntry, NOT_YET_ENFORCED};
use spate_core::ErrorCode;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::messages::{ShardReply, ShardRequest};
use super::producer_ids::ProducerIds;
use super::topics::{new_topic_id, validate_topic_name, TopicEntry, TopicTable};
use super::{join_all, ShardContext};

mod admin;

pub use admin::{
    remove_in_background, ConfigChange, ControllerCall, ControllerReply, DeleteOutcome, NewPartitions, Outcome,
    TopicRef,
};

/// Most partitions one topic may have: each is a directory, open files and a batch-cache share.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// A topic to create, as a client described it.
#[derive(Debug, Clone)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// Partitions; -1 for the broker default (`num_partitions`).
    pub num_partitions: i32,
    /// Replication factor; -1 for the default (1 on a single node).
    pub replication_factor: i16,
    /// Manual assignment: partition index → broker ids.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Config overrides as sent (a `None` value is refused).
    pub configs: Vec<(String, Option<String>)>,
}

/// A CreateTopics (or auto-creation) call to the controller.
#[derive(Debug, Clone)]
pub struct CreateTopicsCall {
    /// The topics, in request order.
    pub topics: Vec<NewTopic>,
    /// Check only; create nothing.
    pub validate_only: bool,
}

/// A topic the controller created (or would have, under `validate_only`).
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    /// Its id (nil under `validate_only`, as Kafka answers).
    pub id: Uuid,
    /// Its partition count.
    pub partitions: i32,
    /// Its effective configs.
    pub configs: Vec<ConfigEntry>,
}

/// One topic's answer.
#[derive(Debug, Clone)]
pub struct CreateOutcome {
    /// The topic name as sent.
    pub name: String,
    /// What happened.
    pub result: Result<CreatedTopic, (ErrorCode, String)>,
}

/// The controller's state (shard 0 only).
pub struct Controller {
    table: RefCell<TopicTable>,
    data_dir: PathBuf,
    busy: Cell<bool>,
    idle: Event,
    /// InitProducerId's allocator; the error if its file could not be read (no ids are given then).
    producer_ids: RefCell<Result<ProducerIds, String>>,
}

/// Holds the controller's lock until dropped.
struct Busy<'a>(&'a Controller);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.set(false);
        self.0.idle.notify(1);
    }
}

impl Controller {
    /// The controller of `table`, stored under `data_dir`.
    pub fn new(table: TopicTable, data_dir: PathBuf) -> Self {
        let producer_ids = ProducerIds::load(&data_dir);
        if let Err(error) = &producer_ids {
            error!(%error, "cannot load the producer id allocator; InitProducerId will fail");
        }
        admin::remove_deleted_leftovers(&data_dir);
        Controller {
            table: RefCell::new(table),
            data_dir,
            busy: Cell::new(false),
            idle: Event::new(),
            producer_ids: RefCell::new(producer_ids),
        }
    }

    async fn lock(&self) -> Busy<'_> {
        loop {
            if !self.busy.get() {
                self.busy.set(true);
                return Busy(self);
            }
            let listener = self.idle.listen();
            if !self.busy.get() {
                continue;
            }
            listener.await;
        }
    }

    /// Creates `call.topics` (see the module docs). Answers in request order.
    pub async fn create_topics(&self, context: &ShardContext, call: CreateTopicsCall) -> Vec<CreateOutcome> {
        let _busy = self.lock().await;
        let table = self.table.borrow().clone();
        let mut outcomes = Vec::with_capacity(call.topics.len());
        let mut new_entries: Vec<TopicEntry> = Vec::new();
        let mut taken = BTreeSet::new();
        for spec in call.topics {
            let result = self.check(context, &table, &taken, &spec);
            let result = result.map(|(entry, configs)| {
                taken.insert(entry.name.clone());
                let created = CreatedTopic {
                    id: if call.validate_only { Uuid::nil() } else { entry.id },
                    partitions: entry.partitions,
                    configs,
                };
                new_entries.push(entry);
                created
            });
            outcomes.push(CreateOutcome { name: spec.name, result });
        }
        if call.validate_only || new_entries.is_empty() {
            return outcomes;
        }
        let next = table.with_topics(new_entries.iter().cloned());
        if let Err(error) = next.persist(&self.data_dir) {
            error!(%error, "cannot write the topic table; topics not created");
            for outcome in &mut outcomes {
                if outcome.result.is_ok() {
                    outcome.result =
                        Err((ErrorCode::KafkaStorageError, format!("cannot write the topic table: {error}")));
                }
            }
            return outcomes;
        }
        *self.table.borrow_mut() = next.clone();
        for entry in &new_entries {
            info!(topic = %entry.name, id = %entry.id, partitions = entry.partitions, configs = ?entry.overrides, "created topic");
        }
        broadcast(context, || ShardRequest::OpenPartitions(next.clone())).await;
        broadcast(context, || ShardRequest::InstallTopics(next.clone())).await;
        outcomes
    }

    /// Validates one topic; returns the entry to add and its effective configs.
    fn check(
        &self,
        context: &ShardContext,
        table: &TopicTable,
        taken: &BTreeSet<String>,
        spec: &NewTopic,
    ) -> Result<(TopicEntry, Vec<ConfigEntry>), (ErrorCode, String)> {
        let name = spec.name.as_str();
        validate_topic_name(name).map_err(|reason| (ErrorCode::InvalidTopicException, reason))?;
        if table.get(name).is_some() || taken.contains(name) {
            return Err((ErrorCode::TopicAlreadyExists, format!("Topic '{name}' already exists.")));
        }
        let folded = name.replace('.', "_");
        let collision = table
            .colliding(name)
            .map(str::to_owned)
            .or_else(|| taken.iter().find(|other| other.replace('.', "_") == folded).cloned());
        if let Some(other) = collision {
            return Err((
                ErrorCode::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {other}"),
            ));
        }
        let partitions = self.partition_count(context, spec)?;
        let defaults = &context.settings.defaults;
        let overrides = defaults
            .validate_overrides(spec.configs.iter().map(|(key, value)| (key.as_str(), value.as_deref())))
            .map_err(|invalid| (ErrorCode::InvalidConfig, invalid.message))?;
        for key in NOT_YET_ENFORCED {
            if let Some(value) = overrides.get(key) {
                warn!(topic = name, "{key}={value} is stored but not enforced yet (see README)");
            }
        }
        let configs = defaults.describe(&overrides).map_err(|invalid| (ErrorCode::InvalidConfig, invalid.message))?;
        Ok((TopicEntry { name: name.to_owned(), id: new_topic_id(), partitions, overrides }, configs))
    }

    fn partition_count(&self, context: &ShardContext, spec: &NewTopic) -> Result<i32, (ErrorCode, String)> {
        let node = context.broker.node_id;
        if !spec.assignments.is_empty() {
            if spec.num_partitions != -1 || spec.replication_factor != -1 {
                return Err((
                    ErrorCode::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at \
                     the same time."
                        .into(),
                ));
            }
            let mut indexes: Vec<i32> = spec.assignments.iter().map(|(index, _)| *index).collect();
            indexes.sort_unstable();
            if indexes.iter().enumerate().any(|(position, index)| i64::from(*index) != position as i64) {
                return Err((
                    ErrorCode::InvalidReplicaAssignment,
                    "Partitions should be a consecutive 0-based integer sequence".into(),
                ));
            }
            if let Some((index, brokers)) = spec.assignments.iter().find(|(_, brokers)| brokers.as_slice() != [node]) {
                return Err((
                    ErrorCode::InvalidReplicaAssignment,
                    format!("Partition {index} is assigned to brokers {brokers:?}; this single-node cluster has only broker {node}"),
                ));
            }
            return bounded(i32::try_from(spec.assignments.len()).unwrap_or(i32::MAX));
        }
        match spec.replication_factor {
            -1 | 1 => {}
            factor if factor <= 0 => {
                return Err((ErrorCode::InvalidReplicationFactor, "Replication factor must be larger than 0.".into()))
            }
            factor => {
                return Err((
                    ErrorCode::InvalidReplicationFactor,
                    format!(
                        "Unable to replicate the partition {factor} time(s): The target replication factor of {factor} \
                         cannot be reached because only 1 broker(s) are registered."
                    ),
                ))
            }
        }
        match spec.num_partitions {
            -1 => bounded(context.settings.num_partitions),
            count if count <= 0 => {
                Err((ErrorCode::InvalidPartitions, "Number of partitions must be larger than 0.".into()))
            }
            count => bounded(count),
        }
    }
}

fn bounded(partitions: i32) -> Result<i32, (ErrorCode, String)> {
    if partitions > MAX_PARTITIONS_PER_TOPIC {
        return Err((
            ErrorCode::InvalidPartitions,
            format!("{partitions} partitions is more than the {MAX_PARTITIONS_PER_TOPIC} a topic may have"),
        ));
    }
    Ok(partitions)
}

/// Sends `make()` to every shard at once and waits for all. A shard that does not answer is
/// stopping (its executor ended): nothing to do for it.
async fn broadcast(context: &ShardContext, make: impl Fn() -> ShardRequest) {
    let calls: Vec<_> = context.shard.all().map(|to| context.call(to, make())).collect();
    for result in join_all(calls).await {
        if !matches!(result, Ok(ShardReply::Done)) {
            warn!("a shard did not acknowledge a topic table broadcast");
        }
    }
}
