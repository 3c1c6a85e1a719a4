//! Workload files (TOML), modelled on the OpenMessaging Benchmark's: what to create, how to produce and
//! consume, for how long. Every key but `name` is optional; see `bench/workloads/README.md`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use spate_core::batch::Compression;

use crate::client::Result;

/// Message sizes: a fixed size, or uniformly spread between two bounds.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MessageSize {
    Fixed(usize),
    Uniform { min: usize, max: usize },
}

impl MessageSize {
    pub fn mean(&self) -> f64 {
        match *self {
            MessageSize::Fixed(size) => size as f64,
            MessageSize::Uniform { min, max } => (min + max) as f64 / 2.0,
        }
    }

    fn bounds(&self) -> (usize, usize) {
        match *self {
            MessageSize::Fixed(size) => (size, size),
            MessageSize::Uniform { min, max } => (min, max),
        }
    }
}

/// Where consumers start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumerStart {
    Earliest,
    Latest,
}

/// One workload, as read from its file (with command-line overrides applied by the caller).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "one")]
    pub partitions: i32,
    /// Topic configs given to CreateTopics (Kafka keys), e.g. `"flush.messages" = "1"`.
    #[serde(default)]
    pub topic_config: BTreeMap<String, String>,
    #[serde(default = "one_usize")]
    pub producers: usize,
    #[serde(default)]
    pub consumers: usize,
    /// Bytes of each message's value. Values carry their intended send time in their first 8 bytes,
    /// so at least 8.
    #[serde(default = "default_message_size")]
    pub message_size: MessageSize,
    /// Keyed messages are partitioned by the murmur2 hash of the key, as the Java client does;
    /// unkeyed ones fill one partition's batch, then move to the next.
    #[serde(default)]
    pub keyed: bool,
    #[serde(default = "default_key_count")]
    pub key_count: u64,
    /// Kafka's `batch.size`.
    #[serde(default = "default_batch_size")]
    pub batch_size_bytes: usize,
    /// Kafka's `linger.ms` (fractions allowed).
    #[serde(default = "default_linger")]
    pub linger_ms: f64,
    /// Kafka's `max.request.size`: ready batches are grouped into one request up to this.
    #[serde(default = "default_request_size")]
    pub max_request_bytes: usize,
    /// Kafka's `buffer.memory`: batches waiting for an in-flight slot, per producer.
    #[serde(default = "default_buffer_memory")]
    pub buffer_memory_bytes: usize,
    /// 0, 1 or -1 (all).
    #[serde(default = "one_i16")]
    pub acks: i16,
    /// none, gzip, snappy, lz4, zstd.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Idempotent producer (needs acks = -1).
    #[serde(default)]
    pub idempotence: bool,
    /// Kafka's `max.in.flight.requests.per.connection`.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Total produce rate in messages per second over all producers; 0 = as fast as possible.
    #[serde(default)]
    pub rate_msgs_per_s: f64,
    /// A fixed rate as a fraction of the maximum measured by a probe run first (unless a rate is given).
    #[serde(default)]
    pub rate_of_max: Option<f64>,
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    #[serde(default = "default_warmup")]
    pub warmup_s: f64,
    #[serde(default = "default_start")]
    pub consumer_start: ConsumerStart,
    /// Catch-up workloads: produce this many value bytes first (no consumers), then time the consumers
    /// reading them from the start.
    #[serde(default)]
    pub backlog_bytes: u64,
    #[serde(default = "default_fetch_wait")]
    pub fetch_max_wait_ms: i32,
    #[serde(default = "default_fetch_max")]
    pub fetch_max_bytes: i32,
    #[serde(default = "default_partition_fetch_max")]
    pub partition_fetch_max_bytes: i32,
    /// CPUs the producer threads are pinned to (round robin); empty: not pinned.
    #[serde(default)]
    pub producer_cpus: Vec<usize>,
    /// CPUs the consumer threads are pinned to.
    #[serde(default)]
    pub consumer_cpus: Vec<usize>,
}

fn one() -> i32 {
    1
}
fn one_usize() -> usize {
    1
}
fn one_i16() -> i16 {
    1
}
fn default_message_size() -> MessageSize {
    MessageSize::Fixed(1024)
}
fn default_key_count() -> u64 {
    10_000
}
fn default_batch_size() -> usize {
    128 << 10
}
fn default_linger() -> f64 {
    1.0
}
fn default_request_size() -> usize {
    1 << 20
}
fn default_buffer_memory() -> usize {
    32 << 20
}
fn default_compression() -> String {
    "none".into()
}
fn default_in_flight() -> usize {
    5
}
fn default_duration() -> f64 {
    30.0
}
fn default_warmup() -> f64 {
    5.0
}
fn default_start() -> ConsumerStart {
    ConsumerStart::Latest
}
fn default_fetch_wait() -> i32 {
    100
}
fn default_fetch_max() -> i32 {
    50 << 20
}
fn default_partition_fetch_max() -> i32 {
    1 << 20
}

impl Workload {
    pub fn from_file(path: &Path) -> Result<Workload> {
        let text = std::fs::read_to_string(path).map_err(|error| format!("{}: {error}", path.display()))?;
        let workload: Workload = toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))?;
        workload.check()?;
        Ok(workload)
    }

    /// Refuses settings that make no sense, with a message naming the key.
    pub fn check(&self) -> Result<()> {
        let fail = |message: String| -> Result<()> { Err(format!("workload {}: {message}", self.name).into()) };
        if self.partitions < 1 {
            return fail(format!("partitions = {} must be at least 1", self.partitions));
        }
        if self.producers == 0 && self.backlog_bytes > 0 {
            return fail("backlog_bytes needs producers".into());
        }
        let (min, max) = self.message_size.bounds();
        if min < 8 || min > max {
            return fail(format!("message_size {min}..={max}: at least 8 bytes (the send timestamp), min <= max"));
        }
        if ![0, 1, -1].contains(&self.acks) {
            return fail(format!("acks = {} must be 0, 1 or -1", self.acks));
        }
        if self.idempotence && self.acks != -1 {
            return fail("idempotence needs acks = -1, as in Kafka".into());
        }
        if self.max_in_flight == 0 || (self.idempotence && self.max_in_flight > 5) {
            return fail(format!(
                "max_in_flight = {} must be 1..=5 with idempotence, at least 1 otherwise",
                self.max_in_flight
            ));
        }
        compression_codec(&self.compression)?;
        if self.batch_size_bytes == 0 || self.max_request_bytes < self.batch_size_bytes {
            return fail("batch_size_bytes must be at least 1 and at most max_request_bytes".into());
        }
        if !(self.linger_ms >= 0.0 && self.rate_msgs_per_s >= 0.0 && self.duration_s > 0.0 && self.warmup_s >= 0.0) {
            return fail("linger_ms, rate_msgs_per_s and warmup_s must be >= 0, duration_s > 0".into());
        }
        if let Some(fraction) = self.rate_of_max {
            if !(fraction > 0.0 && fraction <= 1.0) {
                return fail(format!("rate_of_max = {fraction} must be in (0, 1]"));
            }
        }
        if self.key_count == 0 {
            return fail("key_count must be at least 1".into());
        }
        Ok(())
    }

    /// A message size drawn from the distribution.
    pub fn draw_size(&self, rng: &mut impl rand::Rng) -> usize {
        let (min, max) = self.message_size.bounds();
        if min == max {
            min
        } else {
            rng.gen_range(min..=max)
        }
    }

    pub fn codec(&self) -> Compression {
        compression_codec(&self.compression).unwrap_or(Compression::None)
    }
}

pub fn compression_codec(name: &str) -> Result<Compression> {
    Ok(match name {
        "none" | "uncompressed" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => return Err(format!("compression {other:?}: expected none, gzip, snappy, lz4 or zstd").into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_in_the_repo_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let workload = Workload::from_file(&path).unwrap();
                assert_eq!(Some(workload.name.as_str()), path.file_stem().and_then(|s| s.to_str()), "name = file name");
                count += 1;
            }
        }
        assert!(count >= 7, "found {count} workloads");
    }

    #[test]
    fn defaults_and_refusals() {
        let workload: Workload = toml::from_str("name = \"w\"").unwrap();
        assert_eq!(workload.message_size, MessageSize::Fixed(1024));
        assert_eq!(workload.acks, 1);
        workload.check().unwrap();
        let uniform: Workload = toml::from_str("name = \"w\"\nmessage_size = { min = 100, max = 200 }").unwrap();
        assert_eq!(uniform.message_size.mean(), 150.0);
        for bad in [
            "name = \"w\"\nmessage_size = 4",
            "name = \"w\"\nacks = 2",
            "name = \"w\"\nidempotence = true",
            "name = \"w\"\ncompression = \"brotli\"",
            "name = \"w\"\npartitions = 0",
            "name = \"w\"\nrate_of_max = 1.5",
        ] {
            let workload: Workload = toml::from_str(bad).unwrap();
            assert!(workload.check().is_err(), "{bad}");
        }
        assert!(toml::from_str::<Workload>("name = \"w\"\ncolour = 1").is_err(), "unknown keys are refused");
    }
}
