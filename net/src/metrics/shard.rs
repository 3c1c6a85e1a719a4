//! One shard's view of the metrics: cached handles of the series it writes, so the request path costs
//! a local hash lookup and an atomic add.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use super::{ApiLabels, CallLabels, IoLabels, Metrics, PartitionLabels, ShardLabels, TopicLabels};

/// Handles of one API's series.
struct ApiSeries {
    requests: Counter,
    errors: Counter,
    duration: Histogram,
}

/// Handles of one topic's traffic series.
struct TopicSeries {
    bytes_in: Counter,
    records_in: Counter,
    bytes_out: Counter,
    records_out: Counter,
}

/// One partition's state, as last published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSample {
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub size_bytes: u64,
}

/// A shard's metrics handles. Not `Send`: each shard has its own.
pub struct ShardMetrics {
    global: Arc<Metrics>,
    shard: u32,
    apis: RefCell<HashMap<i16, ApiSeries>>,
    topics: RefCell<HashMap<String, TopicSeries>>,
    calls: RefCell<HashMap<u32, (Counter, Histogram)>>,
    /// Partitions whose gauges this shard set last time (to remove those it no longer has).
    partitions: RefCell<HashSet<PartitionLabels>>,
    connections: Gauge,
    fdatasync: Histogram,
    cache_seen: RefCell<(u64, u64)>,
}

impl ShardMetrics {
    /// Shard `shard`'s handles into `global`.
    pub fn new(global: Arc<Metrics>, shard: u32) -> ShardMetrics {
        let labels = ShardLabels { shard };
        let connections = global.connections.get_or_create(&labels).clone();
        let fdatasync = global.fdatasync_duration.get_or_create(&labels).clone();
        ShardMetrics {
            global,
            shard,
            apis: RefCell::default(),
            topics: RefCell::default(),
            calls: RefCell::default(),
            partitions: RefCell::default(),
            connections,
            fdatasync,
            cache_seen: RefCell::default(),
        }
    }

    /// The process-wide metrics.
    pub fn global(&self) -> &Arc<Metrics> {
        &self.global
    }

    /// A request of `api` took `elapsed`; `failed`: it could not be answered.
    pub fn request(&self, api: ApiKey, elapsed: Duration, failed: bool) {
        let mut apis = self.apis.borrow_mut();
        let series = apis.entry(api as i16).or_insert_with(|| {
            // Once per API and shard: label values must outlive the registry.
            let api: &'static str = Box::leak(format!("{api:?}").into_boxed_str());
            let labels = ApiLabels { api, shard: self.shard };
            ApiSeries {
                requests: self.global.requests.get_or_create(&labels).clone(),
                errors: self.global.request_errors.get_or_create(&labels).clone(),
                duration: self.global.request_duration.get_or_create(&labels).clone(),
            }
        });
        series.requests.inc();
        if failed {
            series.errors.inc();
        }
        series.duration.observe(elapsed.as_secs_f64());
    }

    fn with_topic(&self, topic: &str, update: impl FnOnce(&TopicSeries)) {
        let mut topics = self.topics.borrow_mut();
        if let Some(series) = topics.get(topic) {
            update(series);
            return;
        }
        let labels = TopicLabels { topic: topic.to_owned(), shard: self.shard };
        let series = TopicSeries {
            bytes_in: self.global.bytes_in.get_or_create(&labels).clone(),
            records_in: self.global.records_in.get_or_create(&labels).clone(),
            bytes_out: self.global.bytes_out.get_or_create(&labels).clone(),
            records_out: self.global.records_out.get_or_create(&labels).clone(),
        };
        update(&series);
        topics.insert(topic.to_owned(), series);
    }

    /// `records` records in `bytes` bytes were appended to `topic`.
    pub fn produced(&self, topic: &str, bytes: u64, records: u64) {
        self.with_topic(topic, |series| {
            series.bytes_in.inc_by(bytes);
            series.records_in.inc_by(records);
        });
    }

    /// `records` records in `bytes` bytes of `topic` were sent to a consumer.
    pub fn fetched(&self, topic: &str, bytes: u64, records: u64) {
        self.with_topic(topic, |series| {
            series.bytes_out.inc_by(bytes);
            series.records_out.inc_by(records);
        });
    }

    /// A cross-shard call to `to` took `elapsed`.
    pub fn call(&self, to: u32, elapsed: Duration) {
        let mut calls = self.calls.borrow_mut();
        let (count, duration) = calls.entry(to).or_insert_with(|| {
            let labels = CallLabels { from: self.shard, to };
            (self.global.calls.get_or_create(&labels).clone(), self.global.call_duration.get_or_create(&labels).clone())
        });
        count.inc();
        duration.observe(elapsed.as_secs_f64());
    }

    /// A connection opened (`true`) or closed.
    pub fn connection(&self, opened: bool) {
        if opened {
            self.connections.inc();
        } else {
            self.connections.dec();
        }
    }

    /// An fdatasync took `elapsed`.
    pub fn fdatasync(&self, elapsed: Duration) {
        self.fdatasync.observe(elapsed.as_secs_f64());
    }

    /// Publishes the state of the partitions this shard owns, removing the gauges of those it no
    /// longer has.
    pub fn publish_partitions(&self, samples: Vec<((String, i32), PartitionSample)>) {
        let mut published = self.partitions.borrow_mut();
        let mut now = HashSet::with_capacity(samples.len());
        for ((topic, partition), sample) in samples {
            let labels = PartitionLabels { topic, partition };
            self.global.log_start_offset.get_or_create(&labels).set(sample.log_start_offset);
            self.global.log_end_offset.get_or_create(&labels).set(sample.log_end_offset);
            self.global.log_size.get_or_create(&labels).set(i64::try_from(sample.size_bytes).unwrap_or(i64::MAX));
            now.insert(labels);
        }
        for gone in published.difference(&now) {
            self.global.log_start_offset.remove(gone);
            self.global.log_end_offset.remove(gone);
            self.global.log_size.remove(gone);
        }
        *published = now;
    }

    /// Publishes the batch cache's state (`hits` and `misses` are totals since start).
    pub fn publish_cache(&self, used_bytes: usize, budget_bytes: usize, hits: u64, misses: u64) {
        let labels = ShardLabels { shard: self.shard };
        self.global.cache_bytes.get_or_create(&labels).set(i64::try_from(used_bytes).unwrap_or(i64::MAX));
        self.global.cache_budget.get_or_create(&labels).set(i64::try_from(budget_bytes).unwrap_or(i64::MAX));
        let mut seen = self.cache_seen.borrow_mut();
        self.global.cache_hits.get_or_create(&labels).inc_by(hits.saturating_sub(seen.0));
        self.global.cache_misses.get_or_create(&labels).inc_by(misses.saturating_sub(seen.1));
        *seen = (hits.max(seen.0), misses.max(seen.1));
    }

    /// Publishes the direct I/O operations in flight now.
    pub fn publish_io(&self, writes: u64, reads: u64, syncs: u64) {
        for (op, count) in [("write", writes), ("read", reads), ("fdatasync", syncs)] {
            let labels = IoLabels { shard: self.shard, op };
            self.global.io_in_flight.get_or_create(&labels).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Publishes the committed offsets of the groups this shard coordinates.
    pub fn publish_committed(&self, committed: Vec<super::CommittedOffset>) {
        self.global.publish_committed(self.shard, committed);
    }
}
