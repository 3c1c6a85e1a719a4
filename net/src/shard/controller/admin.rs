//! The controller's other mutations: DeleteTopics, CreatePartitions, AlterConfigs and
//! IncrementalAlterConfigs, and producer ids for InitProducerId.
//!
//! Each runs under the controller's lock and commits the same way as creation: validate, write the
//! next table version (the commit point), then broadcast. Growing a topic or changing its configs
//! broadcasts `OpenPartitions` (owners open the new logs and apply the new configs to the open ones
//! with `Log::set_config`) before `InstallTopics`, so a shard that sees the new table has the new
//! partitions open. Deleting broadcasts `InstallTopics` first (no shard routes to the topic any more),
//! then `OpenPartitions`, whose sync closes each orphaned log on its owner and renames its directory to
//! `<topic>-<p>.<uuid>-delete`, removed in the background (and at the next start if cut short).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use spate_core::topic_config::{CLEANUP_POLICY, KEYS};
use spate_core::ErrorCode;
use tracing::{error, info, warn};
use uuid::Uuid;

use super::{bounded, broadcast, Controller};
use crate::shard::messages::ShardRequest;
use crate::shard::topics::{TopicEntry, TopicTable};
use crate::shard::ShardContext;

/// A per-item answer: done, or Kafka's error code and message.
pub type Outcome = Result<(), (ErrorCode, String)>;

/// A topic named by a DeleteTopics request.
#[derive(Debug, Clone)]
pub enum TopicRef {
    /// By name.
    Name(String),
    /// By id (v6+).
    Id(Uuid),
}

/// One DeleteTopics answer.
#[derive(Debug, Clone)]
pub struct DeleteOutcome {
    /// The topic's name, if known.
    pub name: Option<String>,
    /// The topic's id (nil if unknown).
    pub id: Uuid,
    /// What happened.
    pub result: Outcome,
}

/// A CreatePartitions topic.
#[derive(Debug, Clone)]
pub struct NewPartitions {
    /// The topic.
    pub name: String,
    /// The new total partition count.
    pub count: i32,
    /// Broker ids for each new partition, if given.
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// How a topic's overrides change.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// AlterConfigs: these become the whole override set.
    Replace(Vec<(String, Option<String>)>),
    /// IncrementalAlterConfigs: (key, operation 0 SET / 1 DELETE / 2 APPEND / 3 SUBTRACT, value).
    Incremental(Vec<(String, i8, Option<String>)>),
}

/// A call to the controller beyond CreateTopics.
#[derive(Debug, Clone)]
pub enum ControllerCall {
    /// Delete these topics.
    DeleteTopics(Vec<TopicRef>),
    /// Grow these topics.
    CreatePartitions {
        /// The topics.
        topics: Vec<NewPartitions>,
        /// Check only.
        validate_only: bool,
    },
    /// Change these topics' overrides.
    AlterConfigs {
        /// (topic, change).
        resources: Vec<(String, ConfigChange)>,
        /// Check only.
        validate_only: bool,
    },
    /// A fresh producer id.
    ProducerId,
}

/// The controller's answer, per item in request order.
#[derive(Debug, Clone)]
pub enum ControllerReply {
    /// To `DeleteTopics`.
    DeleteTopics(Vec<DeleteOutcome>),
    /// To `CreatePartitions`.
    CreatePartitions(Vec<Outcome>),
    /// To `AlterConfigs`.
    AlterConfigs(Vec<Outcome>),
    /// To `ProducerId`.
    ProducerId(Result<i64, ErrorCode>),
}

fn duplicates<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<&'a str, usize> {
    let mut count = HashMap::new();
    for name in names {
        *count.entry(name).or_insert(0) += 1;
    }
    count
}

fn unknown_topic(name: &str) -> (ErrorCode, String) {
    (ErrorCode::UnknownTopicOrPartition, format!("This server does not host this topic: {name}"))
}

impl Controller {
    /// Serves one call (see the module docs).
    pub async fn admin(&self, context: &ShardContext, call: ControllerCall) -> ControllerReply {
        match call {
            ControllerCall::ProducerId => ControllerReply::ProducerId(self.producer_id()),
            ControllerCall::DeleteTopics(topics) => ControllerReply::DeleteTopics(self.delete(context, topics).await),
            ControllerCall::CreatePartitions { topics, validate_only } => {
                ControllerReply::CreatePartitions(self.grow(context, topics, validate_only).await)
            }
            ControllerCall::AlterConfigs { resources, validate_only } => {
                ControllerReply::AlterConfigs(self.alter(context, resources, validate_only).await)
            }
        }
    }

    fn producer_id(&self) -> Result<i64, ErrorCode> {
        match &mut *self.producer_ids.borrow_mut() {
            Ok(ids) => ids.allocate().map_err(|error| {
                error!(%error, "cannot reserve producer ids");
                ErrorCode::KafkaStorageError
            }),
            Err(_) => Err(ErrorCode::UnknownServerError),
        }
    }

    /// Persists `next`; on failure marks every `Ok` outcome as a storage error and returns false.
    fn commit(&self, next: &TopicTable, outcomes: &mut [Outcome]) -> bool {
        if let Err(error) = next.persist(&self.data_dir) {
            error!(%error, "cannot write the topic table; nothing changed");
            for outcome in outcomes.iter_mut().filter(|outcome| outcome.is_ok()) {
                *outcome = Err((ErrorCode::KafkaStorageError, format!("cannot write the topic table: {error}")));
            }
            return false;
        }
        *self.table.borrow_mut() = next.clone();
        true
    }

    async fn delete(&self, context: &ShardContext, topics: Vec<TopicRef>) -> Vec<DeleteOutcome> {
        let _busy = self.lock().await;
        let table = self.table.borrow().clone();
        let mut outcomes: Vec<DeleteOutcome> = topics
            .iter()
            .map(|topic| {
                let entry = match topic {
                    TopicRef::Name(name) => table.get(name),
                    TopicRef::Id(id) => table.by_id(id),
                };
                match (entry, topic) {
                    (Some(entry), _) => DeleteOutcome { name: Some(entry.name.clone()), id: entry.id, result: Ok(()) },
                    (None, TopicRef::Name(name)) => {
                        DeleteOutcome { name: Some(name.clone()), id: Uuid::nil(), result: Err(unknown_topic(name)) }
                    }
                    (None, TopicRef::Id(id)) => DeleteOutcome {
                        name: None,
                        id: *id,
                        result: Err((ErrorCode::UnknownTopicId, format!("Topic id {id} does not exist"))),
                    },
                }
            })
            .collect();
        let count = duplicates(outcomes.iter().filter(|o| o.result.is_ok()).filter_map(|o| o.name.as_deref()));
        let repeated: Vec<String> = count.iter().filter(|(_, n)| **n > 1).map(|(name, _)| (*name).to_owned()).collect();
        for outcome in &mut outcomes {
            if outcome.result.is_ok() && outcome.name.as_ref().is_some_and(|name| repeated.contains(name)) {
                outcome.result = Err((ErrorCode::InvalidRequest, "Duplicate topic in request.".into()));
            }
        }
        let removed: Vec<String> =
            outcomes.iter().filter(|o| o.result.is_ok()).filter_map(|o| o.name.clone()).collect();
        if removed.is_empty() {
            return outcomes;
        }
        let next = table.with_changes([], &removed);
        let mut results: Vec<Outcome> = outcomes.iter().map(|outcome| outcome.result.clone()).collect();
        if !self.commit(&next, &mut results) {
            for (outcome, result) in outcomes.iter_mut().zip(results) {
                outcome.result = result;
            }
            return outcomes;
        }
        info!(topics = ?removed, "deleted topics");
        broadcast(context, || ShardRequest::InstallTopics(next.clone())).await;
        broadcast(context, || ShardRequest::OpenPartitions(next.clone())).await;
        outcomes
    }

    async fn grow(&self, context: &ShardContext, topics: Vec<NewPartitions>, validate_only: bool) -> Vec<Outcome> {
        let _busy = self.lock().await;
        let table = self.table.borrow().clone();
        let count = duplicates(topics.iter().map(|topic| topic.name.as_str()));
        let node = context.broker.node_id;
        let mut changed = Vec::new();
        let mut outcomes: Vec<Outcome> = topics
            .iter()
            .map(|topic| {
                if count.get(topic.name.as_str()).copied().unwrap_or(0) > 1 {
                    return Err((ErrorCode::InvalidRequest, "Duplicate topic in request.".into()));
                }
                let entry = table.get(&topic.name).ok_or_else(|| unknown_topic(&topic.name))?;
                let current = entry.partitions;
                if topic.count < current {
                    return Err((
                        ErrorCode::InvalidPartitions,
                        format!(
                            "Topic currently has {current} partitions, which is higher than the requested {}.",
                            topic.count
                        ),
                    ));
                }
                if topic.count == current {
                    return Err((ErrorCode::InvalidPartitions, format!("Topic already has {current} partitions.")));
                }
                bounded(topic.count)?;
                if let Some(assignments) = &topic.assignments {
                    let added = topic.count - current;
                    if i64::try_from(assignments.len()).unwrap_or(i64::MAX) != i64::from(added) {
                        return Err((
                            ErrorCode::InvalidReplicaAssignment,
                            format!(
                                "Increasing the number of partitions by {added} but {} assignments provided.",
                                assignments.len()
                            ),
                        ));
                    }
                    if let Some(brokers) = assignments.iter().find(|brokers| brokers.as_slice() != [node]) {
                        return Err((
                            ErrorCode::InvalidReplicaAssignment,
                            format!("Assignment {brokers:?} is not this single-node cluster's broker {node}"),
                        ));
                    }
                }
                changed.push(TopicEntry { partitions: topic.count, ..entry.clone() });
                Ok(())
            })
            .collect();
        if validate_only || changed.is_empty() {
            return outcomes;
        }
        let next = table.with_changes(changed.iter().cloned(), &[]);
        if self.commit(&next, &mut outcomes) {
            for entry in &changed {
                info!(topic = %entry.name, partitions = entry.partitions, "added partitions");
            }
            broadcast(context, || ShardRequest::OpenPartitions(next.clone())).await;
            broadcast(context, || ShardRequest::InstallTopics(next.clone())).await;
        }
        outcomes
    }

    async fn alter(
        &self,
        context: &ShardContext,
        resources: Vec<(String, ConfigChange)>,
        validate_only: bool,
    ) -> Vec<Outcome> {
        let _busy = self.lock().await;
        let table = self.table.borrow().clone();
        let count = duplicates(resources.iter().map(|(name, _)| name.as_str()));
        let defaults = &context.settings.defaults;
        let mut changed = Vec::new();
        let mut outcomes: Vec<Outcome> = resources
            .iter()
            .map(|(name, change)| {
                if count.get(name.as_str()).copied().unwrap_or(0) > 1 {
                    return Err((ErrorCode::InvalidRequest, "Duplicate resource in request.".into()));
                }
                let entry = table.get(name).ok_or_else(|| unknown_topic(name))?;
                let wanted = match change {
                    ConfigChange::Replace(configs) => configs.clone(),
                    ConfigChange::Incremental(ops) => {
                        incremental(&entry.overrides, ops, |key| defaults.config().get(key).unwrap_or_default())?
                    }
                };
                let overrides = defaults
                    .validate_overrides(wanted.iter().map(|(key, value)| (key.as_str(), value.as_deref())))
                    .map_err(|invalid| (ErrorCode::InvalidConfig, invalid.message))?;
                changed.push(TopicEntry { overrides, ..entry.clone() });
                Ok(())
            })
            .collect();
        if validate_only || changed.is_empty() {
            return outcomes;
        }
        let next = table.with_changes(changed.iter().cloned(), &[]);
        if self.commit(&next, &mut outcomes) {
            for entry in &changed {
                info!(topic = %entry.name, configs = ?entry.overrides, "altered topic configs");
            }
            broadcast(context, || ShardRequest::OpenPartitions(next.clone())).await;
            broadcast(context, || ShardRequest::InstallTopics(next.clone())).await;
        }
        outcomes
    }
}

/// A config key and its value as a client sent it.
pub type KeyValue = (String, Option<String>);

/// IncrementalAlterConfigs: `current` overrides with `ops` applied, as (key, value) pairs to validate.
/// APPEND and SUBTRACT work on list keys only (`cleanup.policy`), starting from the override or, if
/// none, `default(key)`.
pub fn incremental(
    current: &BTreeMap<String, String>,
    ops: &[(String, i8, Option<String>)],
    default: impl Fn(&str) -> String,
) -> Result<Vec<KeyValue>, (ErrorCode, String)> {
    let mut next: BTreeMap<String, Option<String>> =
        current.iter().map(|(key, value)| (key.clone(), Some(value.clone()))).collect();
    for (key, op, value) in ops {
        if !KEYS.contains(&key.as_str()) {
            return Err((ErrorCode::InvalidConfig, format!("Unknown topic config name: {key}")));
        }
        match op {
            0 => {
                next.insert(key.clone(), value.clone());
            }
            1 => {
                next.remove(key);
            }
            2 | 3 => {
                if key != CLEANUP_POLICY {
                    let verb = if *op == 2 { "append" } else { "subtract" };
                    return Err((
                        ErrorCode::InvalidConfig,
                        format!("Config value {verb} is not allowed for config key: {key}"),
                    ));
                }
                let base = next.get(key).cloned().flatten().unwrap_or_else(|| default(key));
                let mut items: Vec<String> =
                    base.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect();
                let given =
                    value.as_deref().unwrap_or_default().split(',').map(str::trim).filter(|item| !item.is_empty());
                for item in given {
                    if *op == 2 && !items.iter().any(|have| have == item) {
                        items.push(item.to_owned());
                    } else if *op == 3 {
                        items.retain(|have| have != item);
                    }
                }
                next.insert(key.clone(), Some(items.join(",")));
            }
            other => return Err((ErrorCode::InvalidRequest, format!("Unknown config operation {other}"))),
        }
    }
    Ok(next.into_iter().collect())
}

/// Removes `*-delete` partition directories a deletion left behind (the process stopped before the
/// background removal finished). In the background: nothing waits for it.
pub fn remove_deleted_leftovers(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return };
    let leftovers: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir() && path.file_name().and_then(|name| name.to_str()).is_some_and(is_deleted_dir))
        .collect();
    for path in leftovers {
        remove_in_background(path);
    }
}

/// Whether `name` is a partition directory renamed for deletion (`<topic>-<p>.<uuid>-delete`).
pub fn is_deleted_dir(name: &str) -> bool {
    name.strip_suffix("-delete")
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(_, id)| id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit()))
}

/// Removes `path` (a directory) on a short-lived thread.
pub fn remove_in_background(path: std::path::PathBuf) {
    let spawned = std::thread::Builder::new().name("spate-delete".into()).spawn(move || {
        if let Err(error) = std::fs::remove_dir_all(&path) {
            warn!(dir = %path.display(), %error, "cannot remove a deleted partition directory");
        }
    });
    if let Err(error) = spawned {
        warn!(%error, "cannot start the thread removing deleted partition directories");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations() {
        let current: BTreeMap<String, String> = [("retention.ms".to_owned(), "5".to_owned())].into();
        let op = |key: &str, op: i8, value: Option<&str>| (key.to_owned(), op, value.map(str::to_owned));
        let default = |_: &str| "delete".to_owned();
        let next = incremental(
            &current,
            &[
                op("retention.ms", 1, None),
                op("segment.ms", 0, Some("60000")),
                op("cleanup.policy", 2, Some("compact")),
            ],
            default,
        )
        .unwrap();
        assert_eq!(
            next,
            vec![
                ("cleanup.policy".to_owned(), Some("delete,compact".to_owned())),
                ("segment.ms".to_owned(), Some("60000".to_owned()))
            ]
        );
        let subtracted = incremental(&current, &[op("cleanup.policy", 3, Some("delete"))], default).unwrap();
        assert_eq!(subtracted[0], ("cleanup.policy".to_owned(), Some(String::new())));
        let error = incremental(&current, &[op("retention.ms", 2, Some("1"))], default).unwrap_err();
        assert_eq!(error.0, ErrorCode::InvalidConfig);
        assert_eq!(
            incremental(&current, &[op("nope", 0, Some("1"))], default).unwrap_err().0,
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            incremental(&current, &[op("flush.ms", 9, None)], default).unwrap_err().0,
            ErrorCode::InvalidRequest
        );
        assert!(is_deleted_dir("t-0.0123456789abcdef0123456789abcdef-delete"));
        assert!(!is_deleted_dir("t-delete") && !is_deleted_dir("t-0"));
    }
}
