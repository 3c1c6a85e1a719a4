//! The partitions one shard owns: their logs, opened on this shard with its own `DmaDisk` and batch
//! cache, and the fatal-error rule.
//!
//! Every `Log` call the broker makes goes through [`run_log_op`]: a detached task, so that a dropped
//! request (the client closed its connection) cannot cut an append, flush or read short halfway. A
//! `Log` sets "write in flight" / "sync in flight" before it awaits the device and clears them after;
//! a future dropped in between would leave the log waiting forever.
//!
//! **Fatal I/O.** When a log reports `KAFKA_STORAGE_ERROR` because of an I/O failure
//! (`Log::failure()` is set), the process logs the error and exits with [`EXIT_IO_ERROR`] (74,
//! `EX_IOERR`): never a broker with one shard's disk half dead. A log refusing writes because the
//! shard is closing it is not a failure.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use spate_core::runtime::{spawn_background, spawn_detached, ShardId};
use spate_core::topic_config::{TopicConfig, TopicDefaults};
use spate_core::ErrorCode;
use storage::disk::dma::DmaDisk;
use storage::{BatchCache, FlushPolicy, Log, LogConfig};
use tracing::{error, info, warn};
use uuid::Uuid;

use super::topics::{owner_shard, partition_dir, TopicTable};

/// Exit status after a fatal I/O error (sysexits.h `EX_IOERR`).
pub const EXIT_IO_ERROR: i32 = 74;

/// Logs `what` and exits the process with [`EXIT_IO_ERROR`].
pub fn fatal_io(what: &str) -> ! {
    error!("fatal I/O error, exiting: {what}");
    std::process::exit(EXIT_IO_ERROR)
}

/// Milliseconds since the Unix epoch, the clock logs are given.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// Runs a log operation as a detached task (see the module docs). `None` only if the shard's
/// executor stopped under it.
pub async fn run_log_op<T: 'static>(operation: impl Future<Output = T> + 'static) -> Option<T> {
    spawn_detached(operation).await
}

/// The storage settings of a topic config.
pub fn log_config(config: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: u64::try_from(config.segment_bytes).unwrap_or(0),
        // Kafka rolls a compacted log by max.compaction.lag.ms too, so the active segment cannot hold dirty
        // data past the lag (the active segment is never cleaned).
        segment_ms: if config.cleanup_policy.compacts() {
            config.segment_ms.min(config.max_compaction_lag_ms)
        } else {
            config.segment_ms
        },
        retention_ms: config.retention_ms,
        retention_bytes: config.retention_bytes,
        index_interval_bytes: u32::try_from(config.index_interval_bytes).unwrap_or(0),
        max_message_bytes: usize::try_from(config.max_message_bytes).unwrap_or(0),
        flush_messages: config.flush_messages,
        flush_ms: config.flush_ms,
        message_timestamp_type: config.message_timestamp_type,
        compact: config.cleanup_policy.compacts(),
        delete_retention_ms: config.delete_retention_ms,
        min_cleanable_dirty_ratio: config.min_cleanable_dirty_ratio,
        min_compaction_lag_ms: config.min_compaction_lag_ms,
        max_compaction_lag_ms: config.max_compaction_lag_ms,
        ..LogConfig::default()
    }
}

/// One partition this shard leads.
pub struct Partition {
    /// The topic's name (for the directory and logs).
    pub topic: String,
    /// The partition number.
    pub index: i32,
    /// The log.
    pub log: Log<DmaDisk>,
    config: RefCell<TopicConfig>,
}

impl Partition {
    /// The topic's effective config.
    pub fn config(&self) -> TopicConfig {
        self.config.borrow().clone()
    }
}

/// This shard's partitions.
pub struct Partitions {
    shard: ShardId,
    nr_shards: usize,
    data_dir: PathBuf,
    disk: DmaDisk,
    cache: Rc<BatchCache>,
    defaults: TopicDefaults,
    /// The broker's `group_commit_window_us`, set on every log this shard opens.
    group_commit_window_us: u64,
    map: RefCell<HashMap<(Uuid, i32), Rc<Partition>>>,
    closing: Rc<Cell<bool>>,
    /// A cleaning round runs on this shard (at most one at a time).
    cleaning: Rc<Cell<bool>>,
}

impl Partitions {
    /// Opens the shard's disk (glommio DMA files on `data_dir`) and an empty set of partitions.
    pub async fn new(
        shard: ShardId,
        nr_shards: usize,
        data_dir: PathBuf,
        defaults: TopicDefaults,
        cache_bytes: usize,
        group_commit_window: std::time::Duration,
        max_inflight_writes: u64,
    ) -> std::io::Result<Partitions> {
        let disk = DmaDisk::new(&data_dir).await?.with_write_limit(max_inflight_writes);
        Ok(Partitions {
            shard,
            nr_shards,
            data_dir,
            disk,
            cache: BatchCache::new(cache_bytes),
            defaults,
            group_commit_window_us: u64::try_from(group_commit_window.as_micros()).unwrap_or(u64::MAX),
            map: RefCell::new(HashMap::new()),
            closing: Rc::new(Cell::new(false)),
            cleaning: Rc::new(Cell::new(false)),
        })
    }

    /// A topic's log settings with the broker-wide group-commit window.
    fn log_config(&self, config: &TopicConfig) -> LogConfig {
        LogConfig { group_commit_window_us: self.group_commit_window_us, ..log_config(config) }
    }

    /// The partition with this topic id and number, if this shard has it open.
    pub fn get(&self, topic_id: &Uuid, index: i32) -> Option<Rc<Partition>> {
        self.map.borrow().get(&(*topic_id, index)).cloned()
    }

    /// How many partitions are open here.
    pub fn len(&self) -> usize {
        self.map.borrow().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.map.borrow().is_empty()
    }

    /// The batch cache's counters.
    /// Tells `observer` how long each fdatasync of this shard's disk takes (metrics).
    pub fn observe_syncs(&self, observer: storage::disk::dma::SyncObserver) {
        self.disk.set_sync_observer(observer);
    }

    /// Direct I/O in flight on this shard's disk.
    pub fn io_in_flight(&self) -> storage::disk::dma::IoInFlight {
        self.disk.in_flight()
    }

    pub fn cache_stats(&self) -> storage::CacheStats {
        self.cache.stats()
    }

    /// Opens every partition of `table` this shard owns and has not opened yet, and applies config
    /// changes to the ones already open. A log that cannot be opened is fatal: the topic is already
    /// in the durable table, so the broker cannot serve it and cannot forget it.
    pub async fn sync_with(&self, table: &TopicTable) {
        for topic in table.iter() {
            let config = match self.defaults.resolve(&topic.overrides) {
                Ok(config) => config,
                Err(error) => {
                    // Stored configs were validated when set; keep serving with the defaults.
                    warn!(topic = %topic.name, "stored config no longer valid ({error}); using defaults");
                    self.defaults.config().clone()
                }
            };
            for index in 0..topic.partitions {
                if owner_shard(&topic.id, index, self.nr_shards) != self.shard {
                    continue;
                }
                if let Some(open) = self.get(&topic.id, index) {
                    if *open.config.borrow() != config {
                        open.log.set_config(self.log_config(&config));
                        *open.config.borrow_mut() = config.clone();
                    }
                    continue;
                }
                let dir = partition_dir(&self.data_dir, &topic.name, index);
                let opened =
                    Log::open(self.disk.clone(), dir.clone(), self.log_config(&config), self.cache.clone(), now_ms())
                        .await;
                let log = match opened {
                    Ok(log) => log,
                    Err(error) => fatal_io(&format!("cannot open the log in {}: {error}", dir.display())),
                };
                // A single node: everything recovered is committed.
                log.set_high_watermark(log.written_offset());
                let partition =
                    Partition { topic: topic.name.clone(), index, log, config: RefCell::new(config.clone()) };
                self.map.borrow_mut().insert((topic.id, index), Rc::new(partition));
            }
        }
        self.remove_orphans(table).await;
    }

    /// Closes the logs of partitions `table` no longer has (deleted topics) and renames their
    /// directories to `<topic>-<p>.<uuid>-delete`, removed in the background.
    async fn remove_orphans(&self, table: &TopicTable) {
        let orphans: Vec<((Uuid, i32), Rc<Partition>)> = self
            .map
            .borrow()
            .iter()
            .filter(|((id, index), _)| table.by_id(id).is_none_or(|topic| *index >= topic.partitions))
            .map(|(key, partition)| (*key, partition.clone()))
            .collect();
        for (key, partition) in orphans {
            self.map.borrow_mut().remove(&key);
            let closing = partition.clone();
            if let Some(Err(error)) = run_log_op(async move { closing.log.close().await }).await {
                warn!(topic = %partition.topic, partition = partition.index, %error, "deleted log did not close cleanly");
            }
            let dir = partition.log.dir().to_path_buf();
            let doomed =
                self.data_dir.join(format!("{}-{}.{}-delete", partition.topic, partition.index, key.0.simple()));
            match std::fs::rename(&dir, &doomed) {
                Ok(()) => super::controller::remove_in_background(doomed),
                Err(error) => warn!(dir = %dir.display(), %error, "cannot rename a deleted partition's directory"),
            }
            info!(topic = %partition.topic, partition = partition.index, "closed the log of a deleted partition");
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// After a log operation failed with `error`: exits the process if the log has failed for good
    /// (an I/O error), unless the shard is closing its logs.
    pub fn check_fatal(&self, partition: &Partition, error: ErrorCode) {
        check_fatal(&self.closing, partition, error);
    }

    /// Starts one cleaning round, in the shard's background task queue, for the compacted log (including
    /// `__consumer_offsets` partitions) that needs it most (highest dirty ratio), unless a round already runs
    /// on this shard. Called every `log_cleaner_backoff_ms`.
    pub fn start_cleaning(&self) {
        if self.cleaning.get() || self.closing.get() {
            return;
        }
        let now = now_ms();
        let candidate = self
            .all()
            .into_iter()
            .filter(|partition| partition.log.needs_cleaning(now))
            .max_by(|a, b| a.log.cleanable_ratio(now).total_cmp(&b.log.cleanable_ratio(now)));
        let Some(partition) = candidate else { return };
        self.cleaning.set(true);
        let (cleaning, closing) = (self.cleaning.clone(), self.closing.clone());
        let round = spawn_background(async move {
            let started = std::time::Instant::now();
            match partition.log.clean(now).await {
                Ok(stats) => info!(
                    topic = %partition.topic, partition = partition.index, segments_read = stats.segments_read,
                    segments_written = stats.segments_written, bytes_read = stats.bytes_read,
                    bytes_written = stats.bytes_written, records_removed = stats.records_removed,
                    first_dirty_offset = stats.first_dirty_offset, elapsed_ms = started.elapsed().as_millis() as u64,
                    "cleaned a compacted log"
                ),
                Err(error) => {
                    warn!(topic = %partition.topic, partition = partition.index, %error, "cleaning failed");
                    check_fatal(&closing, &partition, error);
                }
            }
            cleaning.set(false);
        });
        drop(round);
    }

    /// Every open partition.
    pub fn all(&self) -> Vec<Rc<Partition>> {
        self.map.borrow().values().cloned().collect()
    }

    /// Closes every log cleanly (flush, seal, clean-shutdown marker) so the next start skips recovery.
    /// From here on appends are refused.
    pub async fn close_all(&self) {
        self.closing.set(true);
        let partitions: Vec<Rc<Partition>> = self.map.borrow_mut().drain().map(|(_, partition)| partition).collect();
        let count = partitions.len();
        for partition in partitions {
            let closing = partition.clone();
            match run_log_op(async move { closing.log.close().await }).await {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    error!(topic = %partition.topic, partition = partition.index, %error, "log did not close cleanly")
                }
                None => warn!(topic = %partition.topic, partition = partition.index, "log close was cut short"),
            }
        }
        if count > 0 {
            info!(shard = %self.shard, partitions = count, "closed logs");
        }
    }

    /// Whether the logs are being closed (shutdown).
    pub fn is_closing(&self) -> bool {
        self.closing.get()
    }

    /// One round of background work: interval flushes (`flush.ms`) and, when `retention_due`,
    /// retention (for topics whose `cleanup.policy` includes `delete`). Errors are fatal as above.
    pub async fn tick(&self, retention_due: bool) {
        for partition in self.all() {
            if self.closing.get() {
                return;
            }
            let now = now_ms();
            let config = partition.config();
            if matches!(log_config(&config).flush_policy(), FlushPolicy::Interval { .. }) {
                let ticking = partition.clone();
                let flushed = run_log_op(async move { ticking.log.flush_if_due(now).await }).await;
                if let Some(Err(error)) = flushed {
                    self.check_fatal(&partition, error);
                }
            }
            if retention_due && config.cleanup_policy.deletes() {
                let retained = partition.clone();
                match run_log_op(async move { retained.log.enforce_retention(now).await }).await {
                    Some(Ok(0)) | None => {}
                    Some(Ok(deleted)) => {
                        info!(topic = %partition.topic, partition = partition.index, deleted, "retention removed segments")
                    }
                    Some(Err(error)) => self.check_fatal(&partition, error),
                }
            }
        }
    }
}

/// See [`Partitions::check_fatal`].
fn check_fatal(closing: &Cell<bool>, partition: &Partition, error: ErrorCode) {
    if error != ErrorCode::KafkaStorageError || closing.get() {
        return;
    }
    if let Some(failure) = partition.log.failure() {
        fatal_io(&format!("partition {}-{}: {failure}", partition.topic, partition.index));
    }
}

/// How often a shard runs [`Partitions::tick`] for interval flushes.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use spate_core::batch::TimestampType;
    use spate_core::topic_config::TopicDefaults;

    use super::*;

    #[test]
    fn topic_configs_become_log_configs() {
        let kafka_defaults = log_config(&TopicConfig::default());
        let storage_defaults = LogConfig::default();
        assert_eq!(kafka_defaults, storage_defaults, "both follow Kafka's defaults");
        assert_eq!(kafka_defaults.flush_policy(), FlushPolicy::Never);

        let defaults = TopicDefaults::new([("flush.messages", "1")]).unwrap();
        let overrides = defaults
            .validate_overrides([
                ("segment.bytes", Some("1048576")),
                ("retention.bytes", Some("5000000")),
                ("message.timestamp.type", Some("LogAppendTime")),
                ("max.message.bytes", Some("2000")),
            ])
            .unwrap();
        let config = log_config(&defaults.resolve(&overrides).unwrap());
        assert_eq!(config.flush_policy(), FlushPolicy::EveryAppend);
        assert_eq!(
            (config.segment_bytes, config.retention_bytes, config.max_message_bytes),
            (1 << 20, 5_000_000, 2000)
        );
        assert_eq!(config.message_timestamp_type, TimestampType::LogAppendTime);
        let interval = log_config(&TopicDefaults::new([("flush.ms", "250")]).unwrap().config().clone());
        assert!(matches!(interval.flush_policy(), FlushPolicy::Interval { interval_ms: 250, .. }));
    }
}
