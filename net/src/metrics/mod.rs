//! Prometheus metrics, served on the admin listener ([`http`]).
//!
//! One [`Metrics`] per process holds the prometheus-client registry. Each shard reaches it through its
//! own [`ShardMetrics`], which caches the handles of the series it writes (a counter or histogram
//! handle is an `Arc` of atomics), so the request path never takes the registry's family locks after a
//! series' first use, and no two shards write the same series (every per-request series carries a
//! `shard` label). Gauges of state (log offsets and sizes, cache, I/O in flight) are sampled by each
//! shard's ticker; consumer group lag is computed at scrape time from the committed offsets the
//! coordinators publish and the end offsets the owners publish.
//!
//! Names follow Prometheus conventions: `spate_` prefix, base units (`_seconds`, `_bytes`), `_total`
//! for counters (added by the encoder).

pub mod http;
mod shard;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub use shard::{PartitionSample, ShardMetrics};

/// A group's committed offset: group, topic, partition, offset.
pub type CommittedOffset = (String, String, i32, i64);

/// Labels of a per-request series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: &'static str,
    pub shard: u32,
}

/// Labels of a per-topic series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
    pub shard: u32,
}

/// Labels of a per-partition series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

/// Labels of a consumer group's lag.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// Labels of a shard-level series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShardLabels {
    pub shard: u32,
}

/// Labels of I/O in flight.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IoLabels {
    pub shard: u32,
    pub op: &'static str,
}

/// Labels of a cross-shard call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub from: u32,
    pub to: u32,
}

fn latency_histogram() -> Histogram {
    // 10 µs to ~84 s.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 24))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub(crate) requests: Family<ApiLabels, Counter>,
    pub(crate) request_errors: Family<ApiLabels, Counter>,
    pub(crate) request_duration: Family<ApiLabels, Histogram, fn() -> Histogram>,
    pub(crate) bytes_in: Family<TopicLabels, Counter>,
    pub(crate) records_in: Family<TopicLabels, Counter>,
    pub(crate) bytes_out: Family<TopicLabels, Counter>,
    pub(crate) records_out: Family<TopicLabels, Counter>,
    pub(crate) log_start_offset: Family<PartitionLabels, Gauge>,
    pub(crate) log_end_offset: Family<PartitionLabels, Gauge>,
    pub(crate) log_size: Family<PartitionLabels, Gauge>,
    group_lag: Family<LagLabels, Gauge>,
    pub(crate) cache_bytes: Family<ShardLabels, Gauge>,
    pub(crate) cache_budget: Family<ShardLabels, Gauge>,
    pub(crate) cache_hits: Family<ShardLabels, Counter>,
    pub(crate) cache_misses: Family<ShardLabels, Counter>,
    pub(crate) fdatasync_duration: Family<ShardLabels, Histogram, fn() -> Histogram>,
    pub(crate) io_in_flight: Family<IoLabels, Gauge>,
    pub(crate) calls: Family<CallLabels, Counter>,
    pub(crate) call_duration: Family<CallLabels, Histogram, fn() -> Histogram>,
    pub(crate) connections: Family<ShardLabels, Gauge>,
    /// Committed offsets each coordinating shard published: shard → (group, topic, partition, offset).
    committed: Mutex<HashMap<u32, Vec<CommittedOffset>>>,
    ready_shards: AtomicUsize,
    nr_shards: usize,
}

impl Metrics {
    /// The registry of a broker with `nr_shards` shards.
    pub fn new(nr_shards: usize) -> Metrics {
        let mut metrics = Metrics {
            registry: Registry::with_prefix("spate"),
            requests: Family::default(),
            request_errors: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            records_in: Family::default(),
            bytes_out: Family::default(),
            records_out: Family::default(),
            log_start_offset: Family::default(),
            log_end_offset: Family::default(),
            log_size: Family::default(),
            group_lag: Family::default(),
            cache_bytes: Family::default(),
            cache_budget: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            fdatasync_duration: Family::new_with_constructor(latency_histogram),
            io_in_flight: Family::default(),
            calls: Family::default(),
            call_duration: Family::new_with_constructor(latency_histogram),
            connections: Family::default(),
            committed: Mutex::new(HashMap::new()),
            ready_shards: AtomicUsize::new(0),
            nr_shards,
        };
        let registry = &mut metrics.registry;
        registry.register("requests", "Kafka requests answered, per API and shard", metrics.requests.clone());
        registry.register(
            "request_errors",
            "Requests the broker could not answer (unsupported versions, malformed bodies): the connection was closed",
            metrics.request_errors.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a request's frame to its encoded response, per API",
            Unit::Seconds,
            metrics.request_duration.clone(),
        );
        registry.register_with_unit(
            "topic_in",
            "Record batch bytes produced, per topic",
            Unit::Bytes,
            metrics.bytes_in.clone(),
        );
        registry.register("topic_records_in", "Records produced, per topic", metrics.records_in.clone());
        registry.register_with_unit(
            "topic_out",
            "Record batch bytes fetched, per topic",
            Unit::Bytes,
            metrics.bytes_out.clone(),
        );
        registry.register("topic_records_out", "Records fetched, per topic", metrics.records_out.clone());
        registry.register("log_start_offset", "First offset of each partition's log", metrics.log_start_offset.clone());
        registry.register(
            "log_end_offset",
            "Offset the next record of each partition will get",
            metrics.log_end_offset.clone(),
        );
        registry.register_with_unit(
            "log_size",
            "Bytes of each partition's segments",
            Unit::Bytes,
            metrics.log_size.clone(),
        );
        registry.register(
            "consumer_group_lag",
            "Log end offset minus the group's committed offset, per partition",
            metrics.group_lag.clone(),
        );
        registry.register_with_unit(
            "batch_cache_used",
            "Bytes held by each shard's batch cache",
            Unit::Bytes,
            metrics.cache_bytes.clone(),
        );
        registry.register_with_unit(
            "batch_cache_budget",
            "Budget of each shard's batch cache",
            Unit::Bytes,
            metrics.cache_budget.clone(),
        );
        registry.register("batch_cache_hits", "Reads served by the batch cache", metrics.cache_hits.clone());
        registry.register("batch_cache_misses", "Reads that went to disk", metrics.cache_misses.clone());
        registry.register_with_unit(
            "fdatasync_duration",
            "fdatasync of segment files",
            Unit::Seconds,
            metrics.fdatasync_duration.clone(),
        );
        registry.register(
            "io_in_flight",
            "Direct I/O operations submitted to io_uring and not completed, per shard and kind",
            metrics.io_in_flight.clone(),
        );
        registry.register("cross_shard_calls", "Calls from one shard to another", metrics.calls.clone());
        registry.register_with_unit(
            "cross_shard_call_duration",
            "Time from a cross-shard call to its reply",
            Unit::Seconds,
            metrics.call_duration.clone(),
        );
        registry.register("connections_open", "Client connections open, per shard", metrics.connections.clone());
        metrics
    }

    /// The exposition text (OpenMetrics), with lag brought up to date.
    pub fn encode(&self) -> String {
        self.refresh_lag();
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Replaces what shard `shard` publishes of its groups' committed offsets.
    pub fn publish_committed(&self, shard: u32, committed: Vec<CommittedOffset>) {
        if let Ok(mut map) = self.committed.lock() {
            map.insert(shard, committed);
        }
    }

    fn refresh_lag(&self) {
        let Ok(map) = self.committed.lock() else { return };
        self.group_lag.clear();
        for (group, topic, partition, offset) in map.values().flatten() {
            let labels = PartitionLabels { topic: topic.clone(), partition: *partition };
            // Only partitions this broker has (a commit may name anything).
            let Some(end) = self.log_end_offset.get(&labels).map(|gauge| gauge.get()) else { continue };
            let lag = LagLabels { group: group.clone(), topic: topic.clone(), partition: *partition };
            self.group_lag.get_or_create(&lag).set((end - offset).max(0));
        }
    }

    /// A shard finished starting (its logs are recovered and it accepts).
    pub fn shard_ready(&self) {
        self.ready_shards.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether every shard is ready (`/readyz`).
    pub fn is_ready(&self) -> bool {
        self.ready_shards.load(Ordering::Relaxed) >= self.nr_shards
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("nr_shards", &self.nr_shards).finish_non_exhaustive()
    }
}
