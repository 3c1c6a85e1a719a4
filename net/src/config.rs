//! `spate serve` settings: defaults, then the TOML file (`--config`), then command-line flags.
//!
//! TOML keys (all optional):
//!
//! ```toml
//! listen = "127.0.0.1:9092"          # HOST:PORT to accept on (every shard, SO_REUSEPORT)
//! advertise = "broker1.example:9092" # HOST:PORT told to clients; default: listen
//! admin_listen = "127.0.0.1:9644"    # HTTP: /metrics (Prometheus), /healthz, /readyz; "off" disables
//! data_dir = "./spate-data"          # created if missing; holds meta.properties
//! cores = "0,1"                      # a count (2 or "2"), a CPU list ("0,1", "0-3"), or "all"
//! node_id = 0
//! socket_request_max_bytes = 104857600 # largest request frame accepted
//! max_connections_per_shard = 10000    # connections beyond this are closed on accept
//! auto_create_topics_enable = true     # Metadata requests create unknown topics (Kafka's default)
//! num_partitions = 1                   # partitions of auto-created topics and of CreateTopics with -1
//! offsets_topic_num_partitions = 50    # partitions of __consumer_offsets when it is created (Kafka's default)
//! offsets_retention_minutes = 10080    # committed offsets of empty groups (and of assign() consumers)
//!                                      # expire after this (Kafka's offsets.retention.minutes; fractions allowed)
//! offsets_retention_check_interval_ms = 600000 # how often that expiry runs
//! batch_cache_bytes_per_shard = 268435456 # default: min(256 MiB, physical RAM / 4 / shards)
//! memory_budget_bytes_per_shard = 536870912 # requests and responses in flight; default: physical
//!                                           # RAM / 4 / shards, within 64 MiB..=512 MiB
//! retention_check_interval_ms = 300000 # how often retention runs (log.retention.check.interval.ms)
//! log_cleaner_backoff_ms = 15000       # how often each shard looks for a compacted log to clean (log.cleaner.backoff.ms)
//! io_ring_depth = 128                  # entries of each shard's io_uring rings (glommio's default 128)
//! io_memory_bytes_per_shard = 10485760 # I/O memory registered with io_uring per shard (glommio's 10 MiB)
//! spin_before_park_us = 50             # an idle shard polls this long before sleeping; 0 never polls
//! preempt_timer_ms = 100               # a busy task queue yields this often (glommio's default 100 ms)
//! group_commit_window_us = 0           # a log waits this long for more appenders before write + fdatasync
//! max_inflight_writes_per_shard = 0    # direct writes in flight at once per shard, over all logs (0: no cap)
//! fetch_max_bytes = 57671680           # most record bytes per Fetch response (Kafka's fetch.max.bytes); a
//!                                      # Fetch also reserves at most a 64th of the memory budget
//! socket_send_buffer_bytes = 0         # SO_SNDBUF of accepted connections; 0: kernel autotuning
//! socket_receive_buffer_bytes = 0      # SO_RCVBUF of accepted connections; 0: kernel autotuning
//! group_consumer_session_timeout_ms = 45000   # consumer-protocol members silent this long are removed
//! group_consumer_heartbeat_interval_ms = 5000 # how often consumer-protocol members heartbeat
//!
//! [topic_defaults]                     # broker-wide topic config defaults, with Kafka's topic keys
//! "retention.ms" = 604800000
//! "flush.messages" = 1
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use spate_core::runtime::CoreSpec;
use spate_core::topic_config::TopicDefaults;

use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::group::consumer::ConsumerGroupSettings;

/// Default `admin_listen` (Redpanda's admin port).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9644";
/// Default `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9092";
/// Default `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "./spate-data";
/// Default `max_connections_per_shard`.
pub const DEFAULT_MAX_CONNECTIONS_PER_SHARD: usize = 10_000;
/// Largest default `batch_cache_bytes_per_shard` (the default is smaller on small machines).
pub const DEFAULT_BATCH_CACHE_BYTES_MAX: usize = 256 << 20;
/// Smallest `memory_budget_bytes_per_shard` accepted.
pub const MEMORY_BUDGET_BYTES_MIN: usize = 1 << 20;
/// Smallest and largest default `memory_budget_bytes_per_shard` (between them: RAM / 4 / shards).
pub const DEFAULT_MEMORY_BUDGET_BYTES_MIN: usize = 64 << 20;
/// See [`DEFAULT_MEMORY_BUDGET_BYTES_MIN`].
pub const DEFAULT_MEMORY_BUDGET_BYTES_MAX: usize = 512 << 20;
/// Default `spin_before_park_us` (what the shard pool always used).
pub const DEFAULT_SPIN_BEFORE_PARK_US: u64 = 50;
/// Largest `io_ring_depth` (io_uring's limit on submission queue entries).
pub const IO_RING_DEPTH_MAX: usize = 32_768;
/// Largest `group_commit_window_us` and `spin_before_park_us`: one second.
pub const MICROS_SETTING_MAX: u64 = 1_000_000;
/// Default `fetch_max_bytes`: Kafka's `fetch.max.bytes` (55 MiB).
pub const DEFAULT_FETCH_MAX_BYTES: usize = 57_671_680;
/// Default `offsets_retention_minutes` (Kafka's `offsets.retention.minutes`: 7 days).
pub const DEFAULT_OFFSETS_RETENTION_MINUTES: f64 = 10_080.0;
/// Default `offsets_retention_check_interval_ms` (Kafka's `offsets.retention.check.interval.ms`).
pub const DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS: u64 = 600_000;
/// Default `retention_check_interval_ms` (Kafka's `log.retention.check.interval.ms`).
pub const DEFAULT_RETENTION_CHECK_INTERVAL_MS: u64 = 300_000;
/// Default `log_cleaner_backoff_ms` (Kafka's `log.cleaner.backoff.ms`).
pub const DEFAULT_LOG_CLEANER_BACKOFF_MS: u64 = 15_000;

/// A setting that is missing its file, does not parse, or makes no sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// `cores` in the file: a number, a string, or a list of CPU ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum CoresValue {
    /// `cores = 2`: a count.
    Count(usize),
    /// `cores = "0,1"`: the `--cores` syntax.
    Text(String),
    /// `cores = [0, 1]`: CPU ids.
    List(Vec<usize>),
}

/// The settings as given, file or flags: everything optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HOST:PORT to listen on.
    pub listen: Option<String>,
    /// HOST:PORT of the admin HTTP listener, or "off".
    pub admin_listen: Option<String>,
    /// HOST:PORT to advertise.
    pub advertise: Option<String>,
    /// The data directory.
    pub data_dir: Option<PathBuf>,
    /// Which cores to run shards on.
    pub cores: Option<CoresValue>,
    /// This broker's node id.
    pub node_id: Option<i32>,
    /// Largest request frame, in bytes.
    pub socket_request_max_bytes: Option<usize>,
    /// Connections per shard before new ones are closed.
    pub max_connections_per_shard: Option<usize>,
    /// Whether Metadata requests create unknown topics.
    pub auto_create_topics_enable: Option<bool>,
    /// Partitions of auto-created topics and of CreateTopics asking for the default.
    pub num_partitions: Option<i32>,
    /// Partitions of `__consumer_offsets` when Spate creates it (Kafka's `offsets.topic.num.partitions`).
    pub offsets_topic_num_partitions: Option<i32>,
    /// How long committed offsets of empty groups are kept (Kafka's `offsets.retention.minutes`).
    pub offsets_retention_minutes: Option<f64>,
    /// How often offsets expiry runs (Kafka's `offsets.retention.check.interval.ms`).
    pub offsets_retention_check_interval_ms: Option<u64>,
    /// Batch cache budget of each shard, in bytes.
    pub batch_cache_bytes_per_shard: Option<usize>,
    /// How often retention runs, in milliseconds.
    pub retention_check_interval_ms: Option<u64>,
    /// How often each shard looks for a compacted log to clean, in milliseconds.
    pub log_cleaner_backoff_ms: Option<u64>,
    /// Memory budget of each shard for requests and responses, in bytes.
    pub memory_budget_bytes_per_shard: Option<usize>,
    /// Entries of each shard's io_uring rings.
    pub io_ring_depth: Option<usize>,
    /// I/O memory each shard registers with io_uring, in bytes.
    pub io_memory_bytes_per_shard: Option<usize>,
    /// How long an idle shard polls before sleeping, in microseconds; 0 never polls.
    pub spin_before_park_us: Option<u64>,
    /// How often a busy task queue yields, in milliseconds.
    pub preempt_timer_ms: Option<u64>,
    /// How long a log waits for more appenders before a write + fdatasync, in microseconds.
    pub group_commit_window_us: Option<u64>,
    /// Direct writes in flight at once per shard, over all its logs; 0 or unset: no cap.
    pub max_inflight_writes_per_shard: Option<u64>,
    /// Most record bytes one Fetch response carries after its first batch (Kafka's `fetch.max.bytes`).
    pub fetch_max_bytes: Option<usize>,
    /// SO_SNDBUF of accepted connections, in bytes; 0 leaves the kernel's autotuning.
    pub socket_send_buffer_bytes: Option<usize>,
    /// SO_RCVBUF of accepted connections, in bytes; 0 leaves the kernel's autotuning.
    pub socket_receive_buffer_bytes: Option<usize>,
    /// Kafka's `group.consumer.session.timeout.ms`, in milliseconds.
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// Kafka's `group.consumer.heartbeat.interval.ms`, in milliseconds.
    pub group_consumer_heartbeat_interval_ms: Option<u64>,
    /// Broker-wide topic config defaults, by Kafka topic config key.
    pub topic_defaults: Option<BTreeMap<String, toml::Value>>,
}

impl Settings {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError(format!("cannot read config file {}: {error}", path.display())))?;
        toml::from_str(&text).map_err(|error| ConfigError(format!("config file {}: {error}", path.display())))
    }

    /// `self`, with every setting `overrides` has replacing this one's.
    pub fn overridden_by(self, overrides: Settings) -> Settings {
        Settings {
            listen: overrides.listen.or(self.listen),
            admin_listen: overrides.admin_listen.or(self.admin_listen),
            advertise: overrides.advertise.or(self.advertise),
            data_dir: overrides.data_dir.or(self.data_dir),
            cores: overrides.cores.or(self.cores),
            node_id: overrides.node_id.or(self.node_id),
            socket_request_max_bytes: overrides.socket_request_max_bytes.or(self.socket_request_max_bytes),
            max_connections_per_shard: overrides.max_connections_per_shard.or(self.max_connections_per_shard),
            auto_create_topics_enable: overrides.auto_create_topics_enable.or(self.auto_create_topics_enable),
            num_partitions: overrides.num_partitions.or(self.num_partitions),
            offsets_topic_num_partitions: overrides.offsets_topic_num_partitions.or(self.offsets_topic_num_partitions),
            offsets_retention_minutes: overrides.offsets_retention_minutes.or(self.offsets_retention_minutes),
            offsets_retention_check_interval_ms: overrides
                .offsets_retention_check_interval_ms
                .or(self.offsets_retention_check_interval_ms),
            batch_cache_bytes_per_shard: overrides.batch_cache_bytes_per_shard.or(self.batch_cache_bytes_per_shard),
            retention_check_interval_ms: overrides.retention_check_interval_ms.or(self.retention_check_interval_ms),
            log_cleaner_backoff_ms: overrides.log_cleaner_backoff_ms.or(self.log_cleaner_backoff_ms),
            memory_budget_bytes_per_shard: overrides
                .memory_budget_bytes_per_shard
                .or(self.memory_budget_bytes_per_shard),
            io_ring_depth: overrides.io_ring_depth.or(self.io_ring_depth),
            io_memory_bytes_per_shard: overrides.io_memory_bytes_per_shard.or(self.io_memory_bytes_per_shard),
            spin_before_park_us: overrides.spin_before_park_us.or(self.spin_before_park_us),
            preempt_timer_ms: overrides.preempt_timer_ms.or(self.preempt_timer_ms),
            group_commit_window_us: overrides.group_commit_window_us.or(self.group_commit_window_us),
            max_inflight_writes_per_shard: overrides
                .max_inflight_writes_per_shard
                .or(self.max_inflight_writes_per_shard),
            fetch_max_bytes: overrides.fetch_max_bytes.or(self.fetch_max_bytes),
            socket_send_buffer_bytes: overrides.socket_send_buffer_bytes.or(self.socket_send_buffer_bytes),
            socket_receive_buffer_bytes: overrides.socket_receive_buffer_bytes.or(self.socket_receive_buffer_bytes),
            group_consumer_session_timeout_ms: overrides
                .group_consumer_session_timeout_ms
                .or(self.group_consumer_session_timeout_ms),
            group_consumer_heartbeat_interval_ms: overrides
                .group_consumer_heartbeat_interval_ms
                .or(self.group_consumer_heartbeat_interval_ms),
            topic_defaults: overrides.topic_defaults.or(self.topic_defaults),
        }
    }

    /// The settings of a tuning profile's `[broker]` section (same names).
    pub fn from_profile(broker: &tuning::BrokerSettings) -> Settings {
        let size = |bytes: u64| usize::try_from(bytes).unwrap_or(usize::MAX);
        Settings {
            // A CPU list, never a count: `cores = "3"` in a profile is CPU 3 (as text, `--cores 3` is a count).
            cores: Some(match tuning::discover::parse_cpu_list(&broker.cores) {
                Ok(cpus) if !cpus.is_empty() => CoresValue::List(cpus),
                _ => CoresValue::Text(broker.cores.clone()),
            }),
            memory_budget_bytes_per_shard: Some(size(broker.memory_budget_bytes_per_shard)),
            batch_cache_bytes_per_shard: Some(size(broker.batch_cache_bytes_per_shard)),
            io_ring_depth: Some(size(broker.io_ring_depth)),
            io_memory_bytes_per_shard: Some(size(broker.io_memory_bytes_per_shard)),
            spin_before_park_us: Some(broker.spin_before_park_us),
            preempt_timer_ms: Some(broker.preempt_timer_ms),
            group_commit_window_us: Some(broker.group_commit_window_us),
            max_inflight_writes_per_shard: Some(broker.max_inflight_writes_per_shard),
            fetch_max_bytes: Some(size(broker.fetch_max_bytes)),
            socket_send_buffer_bytes: Some(size(broker.socket_send_buffer_bytes)),
            socket_receive_buffer_bytes: Some(size(broker.socket_receive_buffer_bytes)),
            ..Settings::default()
        }
    }

    /// The settings a tuning profile can set, by name, with this layer's value where it has one (for the
    /// startup log of what was applied from where).
    pub fn tuning_values(&self) -> Vec<(&'static str, Option<String>)> {
        fn text<T: ToString>(value: &Option<T>) -> Option<String> {
            value.as_ref().map(ToString::to_string)
        }
        let cores = self.cores.as_ref().map(|cores| match cores {
            CoresValue::Count(count) => count.to_string(),
            CoresValue::Text(text) => text.clone(),
            CoresValue::List(cpus) => tuning::discover::format_cpu_list(cpus),
        });
        vec![
            ("cores", cores),
            ("memory_budget_bytes_per_shard", text(&self.memory_budget_bytes_per_shard)),
            ("batch_cache_bytes_per_shard", text(&self.batch_cache_bytes_per_shard)),
            ("io_ring_depth", text(&self.io_ring_depth)),
            ("io_memory_bytes_per_shard", text(&self.io_memory_bytes_per_shard)),
            ("spin_before_park_us", text(&self.spin_before_park_us)),
            ("preempt_timer_ms", text(&self.preempt_timer_ms)),
            ("group_commit_window_us", text(&self.group_commit_window_us)),
            ("max_inflight_writes_per_shard", text(&self.max_inflight_writes_per_shard)),
            ("fetch_max_bytes", text(&self.fetch_max_bytes)),
            ("socket_send_buffer_bytes", text(&self.socket_send_buffer_bytes)),
            ("socket_receive_buffer_bytes", text(&self.socket_receive_buffer_bytes)),
        ]
    }

    /// Fills in defaults and checks everything.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let listen_text = self.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let (listen_host, _) = split_host_port(&listen_text, "listen")?;
        let listen = listen_text
            .to_socket_addrs()
            .map_err(|error| ConfigError(format!("listen {listen_text:?}: {error}")))?
            .next()
            .ok_or_else(|| ConfigError(format!("listen {listen_text:?} resolves to no address")))?;
        let admin_text = self.admin_listen.unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.to_owned());
        let admin_listen = if admin_text.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(
                admin_text
                    .to_socket_addrs()
                    .map_err(|error| ConfigError(format!("admin_listen {admin_text:?}: {error}")))?
                    .next()
                    .ok_or_else(|| ConfigError(format!("admin_listen {admin_text:?} resolves to no address")))?,
            )
        };
        let advertise = match &self.advertise {
            Some(text) => {
                let (host, port) = split_host_port(text, "advertise")?;
                if port == 0 {
                    return Err(ConfigError(format!("advertise {text:?}: port 0 cannot be advertised")));
                }
                Some((host, port))
            }
            None => None,
        };
        let advertised_host = advertise.as_ref().map_or(listen_host.as_str(), |(host, _)| host.as_str());
        if ["0.0.0.0", "::", ""].contains(&advertised_host) {
            return Err(ConfigError(format!(
                "cannot advertise the wildcard address {advertised_host:?} to clients; set --advertise HOST:PORT"
            )));
        }
        let cores = match self.cores {
            None => CoreSpec::All,
            Some(CoresValue::Count(0)) => return Err(ConfigError("cores: the shard count must be at least 1".into())),
            Some(CoresValue::Count(count)) => CoreSpec::Count(count),
            Some(CoresValue::Text(text)) => text.parse().map_err(|error| ConfigError(format!("{error}")))?,
            Some(CoresValue::List(cpus)) => {
                let text = cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(",") + ",";
                text.parse().map_err(|error| ConfigError(format!("{error}")))?
            }
        };
        let node_id = self.node_id.unwrap_or(0);
        if node_id < 0 {
            return Err(ConfigError(format!("node_id {node_id} must not be negative")));
        }
        let max_frame_bytes = self.socket_request_max_bytes.unwrap_or(DEFAULT_MAX_FRAME_BYTES);
        if max_frame_bytes == 0 || i32::try_from(max_frame_bytes).is_err() {
            return Err(ConfigError(format!("socket_request_max_bytes {max_frame_bytes} must be 1..={}", i32::MAX)));
        }
        let max_connections_per_shard = self.max_connections_per_shard.unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_SHARD);
        if max_connections_per_shard == 0 {
            return Err(ConfigError("max_connections_per_shard must be at least 1".into()));
        }
        let num_partitions = self.num_partitions.unwrap_or(1);
        if num_partitions < 1 {
            return Err(ConfigError(format!("num_partitions {num_partitions} must be at least 1")));
        }
        let offsets_topic_num_partitions =
            self.offsets_topic_num_partitions.unwrap_or(crate::group::OFFSETS_TOPIC_PARTITIONS);
        if !(1..=crate::shard::controller::MAX_PARTITIONS_PER_TOPIC).contains(&offsets_topic_num_partitions) {
            return Err(ConfigError(format!(
                "offsets_topic_num_partitions {offsets_topic_num_partitions} must be 1..={}",
                crate::shard::controller::MAX_PARTITIONS_PER_TOPIC
            )));
        }
        let offsets_retention_minutes = self.offsets_retention_minutes.unwrap_or(DEFAULT_OFFSETS_RETENTION_MINUTES);
        if !(offsets_retention_minutes.is_finite() && offsets_retention_minutes > 0.0) {
            return Err(ConfigError(format!("offsets_retention_minutes {offsets_retention_minutes} must be above 0")));
        }
        let offsets_retention_check_interval_ms =
            self.offsets_retention_check_interval_ms.unwrap_or(DEFAULT_OFFSETS_RETENTION_CHECK_INTERVAL_MS);
        if offsets_retention_check_interval_ms == 0 {
            return Err(ConfigError("offsets_retention_check_interval_ms must be at least 1".into()));
        }
        let consumer_groups =
            consumer_group_settings(self.group_consumer_session_timeout_ms, self.group_consumer_heartbeat_interval_ms)?;
        let mut defaults = Vec::new();
        for (key, value) in self.topic_defaults.unwrap_or_default() {
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                other => {
                    return Err(ConfigError(format!(
                        "topic_defaults.{key}: {other} is not a string, integer or boolean"
                    )))
                }
            };
            defaults.push((key, text));
        }
        let defaults = TopicDefaults::new(defaults.iter().map(|(key, value)| (key.as_str(), value.as_str())))
            .map_err(|invalid| ConfigError(format!("topic_defaults: {invalid}")))?;
        if self.batch_cache_bytes_per_shard == Some(0) {
            return Err(ConfigError("batch_cache_bytes_per_shard must be at least 1".into()));
        }
        if self.memory_budget_bytes_per_shard.is_some_and(|bytes| bytes < MEMORY_BUDGET_BYTES_MIN) {
            return Err(ConfigError(format!(
                "memory_budget_bytes_per_shard must be at least {MEMORY_BUDGET_BYTES_MIN} (1 MiB)"
            )));
        }
        let retention_check_interval_ms =
            self.retention_check_interval_ms.unwrap_or(DEFAULT_RETENTION_CHECK_INTERVAL_MS);
        if retention_check_interval_ms == 0 {
            return Err(ConfigError("retention_check_interval_ms must be at least 1".into()));
        }
        let log_cleaner_backoff_ms = self.log_cleaner_backoff_ms.unwrap_or(DEFAULT_LOG_CLEANER_BACKOFF_MS).max(1);
        let io_ring_depth = self.io_ring_depth;
        if io_ring_depth.is_some_and(|depth| !(1..=IO_RING_DEPTH_MAX).contains(&depth)) {
            return Err(ConfigError(format!("io_ring_depth must be 1..={IO_RING_DEPTH_MAX}")));
        }
        if self.io_memory_bytes_per_shard.is_some_and(|bytes| !(64 << 10..=1 << 30).contains(&bytes)) {
            return Err(ConfigError("io_memory_bytes_per_shard must be 65536 (64 KiB)..=1073741824 (1 GiB)".into()));
        }
        let spin_before_park_us = self.spin_before_park_us.unwrap_or(DEFAULT_SPIN_BEFORE_PARK_US);
        if spin_before_park_us > MICROS_SETTING_MAX {
            return Err(ConfigError(format!("spin_before_park_us must be at most {MICROS_SETTING_MAX}")));
        }
        if self.preempt_timer_ms.is_some_and(|ms| !(1..=10_000).contains(&ms)) {
            return Err(ConfigError("preempt_timer_ms must be 1..=10000".into()));
        }
        let fetch_max_bytes = self.fetch_max_bytes.unwrap_or(DEFAULT_FETCH_MAX_BYTES);
        if fetch_max_bytes == 0 {
            return Err(ConfigError("fetch_max_bytes must be at least 1".into()));
        }
        let group_commit_window_us = self.group_commit_window_us.unwrap_or(0);
        if group_commit_window_us > MICROS_SETTING_MAX {
            return Err(ConfigError(format!("group_commit_window_us must be at most {MICROS_SETTING_MAX}")));
        }
        let socket_buffer = |bytes: Option<usize>, what: &str| match bytes {
            None | Some(0) => Ok(None),
            Some(bytes) if bytes <= i32::MAX as usize / 2 => Ok(Some(bytes)),
            Some(_) => Err(ConfigError(format!("{what} must be at most {}", i32::MAX / 2))),
        };
        let socket_send_buffer_bytes = socket_buffer(self.socket_send_buffer_bytes, "socket_send_buffer_bytes")?;
        let socket_receive_buffer_bytes =
            socket_buffer(self.socket_receive_buffer_bytes, "socket_receive_buffer_bytes")?;
        Ok(ServeConfig {
            listen,
            listen_host,
            admin_listen,
            advertise,
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            cores,
            node_id,
            max_frame_bytes,
            max_connections_per_shard,
            topics: TopicSettings {
                auto_create: self.auto_create_topics_enable.unwrap_or(true),
                num_partitions,
                offsets_topic_num_partitions,
                offsets_retention: Duration::from_secs_f64(offsets_retention_minutes * 60.0),
                offsets_retention_check_interval: Duration::from_millis(offsets_retention_check_interval_ms),
                defaults,
                consumer_groups,
            },
            batch_cache_bytes_per_shard: self.batch_cache_bytes_per_shard,
            retention_check_interval: Duration::from_millis(retention_check_interval_ms),
            log_cleaner_backoff: Duration::from_millis(log_cleaner_backoff_ms),
            memory_budget_bytes_per_shard: self.memory_budget_bytes_per_shard,
            io_ring_depth,
            io_memory_bytes_per_shard: self.io_memory_bytes_per_shard,
            spin_before_park: (spin_before_park_us > 0).then(|| Duration::from_micros(spin_before_park_us)),
            preempt_timer: self.preempt_timer_ms.map(Duration::from_millis),
            group_commit_window: Duration::from_micros(group_commit_window_us),
            max_inflight_writes_per_shard: self.max_inflight_writes_per_shard.unwrap_or(0),
            fetch_max_bytes,
            socket_send_buffer_bytes,
            socket_receive_buffer_bytes,
        })
    }
}

/// Everything `spate serve` needs, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// The address every shard binds.
    pub listen: SocketAddr,
    /// The admin HTTP listener's address; `None`: off.
    pub admin_listen: Option<SocketAddr>,
    /// The host part of `listen` as written (advertised when `advertise` is not set).
    pub listen_host: String,
    /// Host and port to advertise; `None`: the listen host and the bound port.
    pub advertise: Option<(String, u16)>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Which cores run shards.
    pub cores: CoreSpec,
    /// This broker's node id.
    pub node_id: i32,
    /// `socket.request.max.bytes`.
    pub max_frame_bytes: usize,
    /// Connections per shard before new ones are closed.
    pub max_connections_per_shard: usize,
    /// Topic creation settings and broker-wide topic defaults.
    pub topics: TopicSettings,
    /// Batch cache budget per shard; `None`: [`default_batch_cache_bytes`].
    pub batch_cache_bytes_per_shard: Option<usize>,
    /// How often retention runs.
    pub retention_check_interval: Duration,
    /// How often each shard looks for a compacted log to clean (`log_cleaner_backoff_ms`).
    pub log_cleaner_backoff: Duration,
    /// Request and response memory budget per shard; `None`: [`default_memory_budget_bytes`].
    pub memory_budget_bytes_per_shard: Option<usize>,
    /// io_uring ring depth per shard; `None`: glommio's default.
    pub io_ring_depth: Option<usize>,
    /// io_uring registered I/O memory per shard; `None`: glommio's default.
    pub io_memory_bytes_per_shard: Option<usize>,
    /// Idle polling before an executor sleeps; `None`: never polls.
    pub spin_before_park: Option<Duration>,
    /// glommio's preemption timer; `None`: glommio's default.
    pub preempt_timer: Option<Duration>,
    /// Every log's group-commit window (zero: one yield, no timer).
    pub group_commit_window: Duration,
    /// Direct writes in flight at once per shard (`max_inflight_writes_per_shard`); 0: no cap.
    pub max_inflight_writes_per_shard: u64,
    /// Most record bytes in one Fetch response after its first batch (also capped by the memory budget).
    pub fetch_max_bytes: usize,
    /// SO_SNDBUF set on accepted connections; `None`: left to the kernel.
    pub socket_send_buffer_bytes: Option<usize>,
    /// SO_RCVBUF set on accepted connections; `None`: left to the kernel.
    pub socket_receive_buffer_bytes: Option<usize>,
}

/// How topics come to exist, and their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    /// `auto.create.topics.enable`.
    pub auto_create: bool,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets` when it is created.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.retention.minutes`: how long an empty group's committed offsets are kept.
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
    /// Kafka's topic defaults with the broker's `[topic_defaults]` applied.
    pub defaults: TopicDefaults,
    /// The consumer-protocol group timeouts (carried with the topic settings, which every shard gets).
    pub consumer_groups: ConsumerGroupSettings,
}

/// The consumer-protocol timeouts: Kafka's defaults, or the given ones if sane (the heartbeat
/// interval must be shorter than the session timeout, or every member would time out).
fn consumer_group_settings(
    session_timeout_ms: Option<u64>,
    heartbeat_interval_ms: Option<u64>,
) -> Result<ConsumerGroupSettings, ConfigError> {
    use crate::group::consumer::{DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_SESSION_TIMEOUT_MS};
    let session_timeout_ms = session_timeout_ms.unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
    let heartbeat_interval_ms = heartbeat_interval_ms.unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS);
    if !(1..=i32::MAX as u64).contains(&heartbeat_interval_ms) || heartbeat_interval_ms >= session_timeout_ms {
        return Err(ConfigError(format!(
            "group_consumer_heartbeat_interval_ms {heartbeat_interval_ms} must be at least 1 and below \
             group_consumer_session_timeout_ms {session_timeout_ms}"
        )));
    }
    Ok(ConsumerGroupSettings {
        session_timeout: Duration::from_millis(session_timeout_ms),
        heartbeat_interval: Duration::from_millis(heartbeat_interval_ms),
    })
}

/// The batch cache budget per shard when none is configured: a quarter of physical memory shared by
/// the shards, at most [`DEFAULT_BATCH_CACHE_BYTES_MAX`] each.
pub fn default_batch_cache_bytes(nr_shards: usize) -> usize {
    match physical_memory_bytes() {
        0 => DEFAULT_BATCH_CACHE_BYTES_MAX,
        physical => (physical / 4 / nr_shards.max(1)).clamp(1 << 20, DEFAULT_BATCH_CACHE_BYTES_MAX),
    }
}

/// The request memory budget per shard when none is configured: another quarter of physical memory
/// shared by the shards (with the batch cache's quarter, half of it in all), within
/// [`DEFAULT_MEMORY_BUDGET_BYTES_MIN`]..=[`DEFAULT_MEMORY_BUDGET_BYTES_MAX`].
pub fn default_memory_budget_bytes(nr_shards: usize) -> usize {
    match physical_memory_bytes() {
        0 => DEFAULT_MEMORY_BUDGET_BYTES_MAX,
        physical => {
            (physical / 4 / nr_shards.max(1)).clamp(DEFAULT_MEMORY_BUDGET_BYTES_MIN, DEFAULT_MEMORY_BUDGET_BYTES_MAX)
        }
    }
}

/// Physical memory, in bytes; 0 if unknown.
fn physical_memory_bytes() -> usize {
    // SAFETY: sysconf only reads system constants.
    let (pages, page_size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    usize::try_from(pages).unwrap_or(0).saturating_mul(usize::try_from(page_size).unwrap_or(0))
}

/// Splits `HOST:PORT` (`[v6]:PORT` for IPv6 literals).
fn split_host_port(text: &str, what: &str) -> Result<(String, u16), ConfigError> {
    let invalid = || ConfigError(format!("{what} {text:?} is not HOST:PORT"));
    let (host, port) = text.rsplit_once(':').ok_or_else(invalid)?;
    let host = host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host);
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = Settings::default().resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(config.listen_host, "127.0.0.1");
        assert_eq!(config.advertise, None);
        assert_eq!(config.data_dir, PathBuf::from("./spate-data"));
        assert_eq!(config.cores, CoreSpec::All);
        assert_eq!(config.node_id, 0);
        assert_eq!(config.max_frame_bytes, 104_857_600);
        assert_eq!(config.max_connections_per_shard, 10_000);
        assert!(config.topics.auto_create);
        assert_eq!(config.topics.num_partitions, 1);
        assert_eq!(config.topics.offsets_topic_num_partitions, 50);
        assert_eq!(config.topics.defaults, TopicDefaults::default());
        assert_eq!(config.topics.consumer_groups, ConsumerGroupSettings::default());
        assert_eq!(config.topics.consumer_groups.session_timeout, Duration::from_secs(45));
        assert_eq!(config.batch_cache_bytes_per_shard, None);
        assert_eq!(config.retention_check_interval, Duration::from_secs(300));
        assert_eq!((config.io_ring_depth, config.io_memory_bytes_per_shard, config.preempt_timer), (None, None, None));
        assert_eq!(config.spin_before_park, Some(Duration::from_micros(50)), "the pool's old default");
        assert_eq!(config.group_commit_window, Duration::ZERO);
        assert_eq!((config.socket_send_buffer_bytes, config.socket_receive_buffer_bytes), (None, None));
        let cache = default_batch_cache_bytes(2);
        assert!((1 << 20..=DEFAULT_BATCH_CACHE_BYTES_MAX).contains(&cache), "{cache}");
        assert_eq!(config.memory_budget_bytes_per_shard, None);
        let budget = default_memory_budget_bytes(2);
        assert!((DEFAULT_MEMORY_BUDGET_BYTES_MIN..=DEFAULT_MEMORY_BUDGET_BYTES_MAX).contains(&budget), "{budget}");
    }

    #[test]
    fn topic_settings_and_defaults() {
        let settings: Settings = toml::from_str(
            "auto_create_topics_enable = false\nnum_partitions = 3\nbatch_cache_bytes_per_shard = 1048576\n\
             [topic_defaults]\n\"flush.messages\" = 1\n\"cleanup.policy\" = \"delete\"\n\"spate.acks.all.flush\" = false\n",
        )
        .unwrap();
        let config = settings.resolve().unwrap();
        assert!(!config.topics.auto_create);
        assert_eq!(config.topics.num_partitions, 3);
        assert_eq!(config.batch_cache_bytes_per_shard, Some(1 << 20));
        let topic = config.topics.defaults.config();
        assert_eq!(topic.flush_messages, 1);
        assert!(!topic.acks_all_flush);

        for bad in [
            "num_partitions = 0",
            "offsets_topic_num_partitions = 0",
            "[topic_defaults]\n\"retention.ms\" = \"soon\"",
            "[topic_defaults]\n\"no.such.key\" = 1",
            "[topic_defaults]\n\"retention.ms\" = 1.5",
            "batch_cache_bytes_per_shard = 0",
            "retention_check_interval_ms = 0",
            "memory_budget_bytes_per_shard = 1000",
            "io_ring_depth = 0",
            "io_ring_depth = 65536",
            "io_memory_bytes_per_shard = 4096",
            "spin_before_park_us = 5000000",
            "preempt_timer_ms = 0",
            "group_commit_window_us = 2000000",
            "socket_send_buffer_bytes = 4294967296",
            "group_consumer_heartbeat_interval_ms = 0",
            "group_consumer_session_timeout_ms = 1000\ngroup_consumer_heartbeat_interval_ms = 1000",
        ] {
            let settings: Settings = toml::from_str(bad).unwrap();
            assert!(settings.resolve().is_err(), "{bad}");
        }
    }

    #[test]
    fn file_then_flags() {
        let file: Settings = toml::from_str(
            "listen = \"127.0.0.1:9000\"\nadvertise = \"broker.example:9100\"\ndata_dir = \"/d\"\ncores = [0, 1]\n\
             node_id = 4\nmax_connections_per_shard = 5\nmemory_budget_bytes_per_shard = 16777216\n",
        )
        .unwrap();
        let flags = Settings { node_id: Some(6), cores: Some(CoresValue::Text("1".into())), ..Settings::default() };
        let config = file.overridden_by(flags).resolve().unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.advertise, Some(("broker.example".into(), 9100)));
        assert_eq!(config.data_dir, PathBuf::from("/d"));
        assert_eq!(config.cores, CoreSpec::Count(1), "flag wins");
        assert_eq!(config.node_id, 6, "flag wins");
        assert_eq!(config.max_connections_per_shard, 5);
        assert_eq!(config.memory_budget_bytes_per_shard, Some(16 << 20));
    }

    #[test]
    fn cores_in_every_file_form() {
        for (toml_text, expected) in [
            ("cores = 2", CoreSpec::Count(2)),
            ("cores = \"0,1\"", CoreSpec::List(vec![0, 1])),
            ("cores = [3]", CoreSpec::List(vec![3])),
            ("cores = \"all\"", CoreSpec::All),
        ] {
            let settings: Settings = toml::from_str(toml_text).unwrap();
            assert_eq!(settings.resolve().unwrap().cores, expected, "{toml_text}");
        }
    }

    #[test]
    fn refusals() {
        assert!(toml::from_str::<Settings>("colour = \"blue\"").is_err(), "unknown keys are errors");
        for bad in [
            Settings { listen: Some("nohostport".into()), ..Settings::default() },
            Settings { listen: Some("0.0.0.0:9092".into()), ..Settings::default() },
            Settings { advertise: Some("h:0".into()), ..Settings::default() },
            Settings { node_id: Some(-1), ..Settings::default() },
            Settings { cores: Some(CoresValue::Count(0)), ..Settings::default() },
            Settings { socket_request_max_bytes: Some(1 << 31), ..Settings::default() },
            Settings { max_connections_per_shard: Some(0), ..Settings::default() },
        ] {
            assert!(bad.clone().resolve().is_err(), "{bad:?}");
        }
        let wildcard = Settings {
            listen: Some("0.0.0.0:9092".into()),
            advertise: Some("broker.example:9092".into()),
            ..Settings::default()
        };
        assert!(wildcard.resolve().is_ok(), "wildcard listen is fine with an advertised host");
    }

    #[test]
    fn ipv6_literals() {
        assert_eq!(split_host_port("[::1]:9092", "listen"), Ok(("::1".into(), 9092)));
        let config = Settings { listen: Some("[::1]:0".into()), ..Settings::default() }.resolve().unwrap();
        assert!(config.listen.is_ipv6());
    }

    #[test]
    fn tuning_settings_from_a_profile_then_file_then_flags() {
        let broker = tuning::BrokerSettings {
            cores: "0".into(),
            memory_budget_bytes_per_shard: 64 << 20,
            batch_cache_bytes_per_shard: 32 << 20,
            io_ring_depth: 256,
            io_memory_bytes_per_shard: 16 << 20,
            spin_before_park_us: 0,
            preempt_timer_ms: 5,
            group_commit_window_us: 500,
            max_inflight_writes_per_shard: 16,
            fetch_max_bytes: 8 << 20,
            socket_send_buffer_bytes: 0,
            socket_receive_buffer_bytes: 1 << 20,
        };
        let profile = Settings::from_profile(&broker);
        assert!(profile.tuning_values().iter().all(|(_, value)| value.is_some()), "a profile sets every tuning key");
        let file: Settings = toml::from_str("io_ring_depth = 64\ngroup_commit_window_us = 100\n").unwrap();
        let flags = Settings { cores: Some(CoresValue::Text("1".into())), ..Settings::default() };
        let config = profile.overridden_by(file).overridden_by(flags).resolve().unwrap();
        assert_eq!(config.cores, CoreSpec::Count(1), "flag wins");
        let alone = Settings::from_profile(&broker).resolve().unwrap();
        assert_eq!(alone.cores, CoreSpec::List(vec![0]), "a profile's \"0\" is CPU 0, not a count");
        assert_eq!(config.io_ring_depth, Some(64), "file beats profile");
        assert_eq!(config.group_commit_window, Duration::from_micros(100));
        assert_eq!(config.io_memory_bytes_per_shard, Some(16 << 20));
        assert_eq!(config.spin_before_park, None, "0 never spins");
        assert_eq!(config.preempt_timer, Some(Duration::from_millis(5)));
        assert_eq!((config.socket_send_buffer_bytes, config.socket_receive_buffer_bytes), (None, Some(1 << 20)));
        assert_eq!(config.memory_budget_bytes_per_shard, Some(64 << 20));
        assert_eq!(config.batch_cache_bytes_per_shard, Some(32 << 20));
        assert_eq!(config.max_inflight_writes_per_shard, 16);
        assert_eq!(config.fetch_max_bytes, 8 << 20);
        assert_eq!(Settings::default().resolve().unwrap().fetch_max_bytes, DEFAULT_FETCH_MAX_BYTES);
        assert!(Settings { fetch_max_bytes: Some(0), ..Settings::default() }.resolve().is_err());
        assert_eq!(Settings::default().resolve().unwrap().max_inflight_writes_per_shard, 0, "no cap by default");
    }
}
