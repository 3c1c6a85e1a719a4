//! Topic configs: Kafka's names, types, defaults and validation rules, plus Spate's own keys.
//!
//! A topic's effective config is three layers, as in Kafka: the built-in default of each key
//! ([`TopicConfig::default`], Kafka's `LogConfig` defaults), then the broker's `[topic_defaults]`
//! (Kafka's `log.*` broker settings, here spelled with the topic key names), then the topic's own
//! overrides. [`TopicDefaults`] holds the first two; [`TopicDefaults::resolve`] adds the third and says
//! where each value came from ([`ConfigSource`]), which DescribeConfigs and CreateTopics v5+ report.
//!
//! Values are parsed the way Kafka's `ConfigDef` parses them (trimmed; booleans case-insensitive;
//! list values comma-separated) and checked against Kafka's validators; a bad value or an unknown
//! key is an [`InvalidConfig`] error (`INVALID_CONFIG`, 40).
//!
//! Keys Spate validates and stores but does not act on yet are listed in [`NOT_YET_ENFORCED`].

use std::collections::BTreeMap;
use std::fmt;

use crate::batch::TimestampType;
use crate::error::ErrorCode;

/// `retention.ms`.
pub const RETENTION_MS: &str = "retention.ms";
/// `retention.bytes`.
pub const RETENTION_BYTES: &str = "retention.bytes";
/// `segment.bytes`.
pub const SEGMENT_BYTES: &str = "segment.bytes";
/// `segment.ms`.
pub const SEGMENT_MS: &str = "segment.ms";
/// `cleanup.policy`.
pub const CLEANUP_POLICY: &str = "cleanup.policy";
/// `delete.retention.ms`.
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
/// `min.cleanable.dirty.ratio`.
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
/// `min.compaction.lag.ms`.
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
/// `max.compaction.lag.ms`.
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
/// `max.message.bytes`.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// `message.timestamp.type`.
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
/// `compression.type`.
pub const COMPRESSION_TYPE: &str = "compression.type";
/// `compression.gzip.level` (KIP-390): 1–9, or -1 for the codec's default.
pub const COMPRESSION_GZIP_LEVEL: &str = "compression.gzip.level";
/// `compression.lz4.level`: 1–17 (3 and up: LZ4HC).
pub const COMPRESSION_LZ4_LEVEL: &str = "compression.lz4.level";
/// `compression.zstd.level`: -131072–22.
pub const COMPRESSION_ZSTD_LEVEL: &str = "compression.zstd.level";
/// `min.insync.replicas`.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// `flush.messages`.
pub const FLUSH_MESSAGES: &str = "flush.messages";
/// `flush.ms`.
pub const FLUSH_MS: &str = "flush.ms";
/// `index.interval.bytes`.
pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
/// `spate.acks.all.flush`: Spate's own key (not Kafka's). `true` (the default): a Produce with acks=-1 is
/// answered only after a group-committed fdatasync covering it, so acknowledged data survives power
/// loss on a single node. `false`: acks=-1 is answered like acks=1 (written to the device: survives
/// kill -9 of the broker, not power loss), unless the flush policy syncs anyway.
pub const ACKS_ALL_FLUSH: &str = "spate.acks.all.flush";

/// Every key a topic config may set, in the order Spate lists them.
pub const KEYS: [&str; 20] = [
    CLEANUP_POLICY,
    COMPRESSION_GZIP_LEVEL,
    COMPRESSION_LZ4_LEVEL,
    COMPRESSION_TYPE,
    COMPRESSION_ZSTD_LEVEL,
    DELETE_RETENTION_MS,
    FLUSH_MESSAGES,
    FLUSH_MS,
    INDEX_INTERVAL_BYTES,
    MAX_COMPACTION_LAG_MS,
    MAX_MESSAGE_BYTES,
    MESSAGE_TIMESTAMP_TYPE,
    MIN_CLEANABLE_DIRTY_RATIO,
    MIN_COMPACTION_LAG_MS,
    MIN_INSYNC_REPLICAS,
    RETENTION_BYTES,
    RETENTION_MS,
    SEGMENT_BYTES,
    SEGMENT_MS,
    ACKS_ALL_FLUSH,
];

/// Keys whose values are validated and stored but whose behaviour Spate does not implement yet: none at
/// the moment (the list stays so that a key added before its behaviour is flagged at topic creation).
pub const NOT_YET_ENFORCED: [&str; 0] = [];

/// Kafka's "unset" value of `flush.messages` and `flush.ms` (Long.MAX_VALUE).
pub const FLUSH_UNSET: i64 = i64::MAX;

/// `cleanup.policy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// `delete`: retention by time and size.
    Delete,
    /// `compact`: keep the latest record per key (the log cleaner).
    Compact,
    /// `compact,delete` (either order): both.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether retention deletes segments under this policy.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether the log cleaner compacts logs under this policy.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// `compression.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionType {
    /// Keep whatever codec the producer used.
    Producer,
    Uncompressed,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl CompressionType {
    /// The codec batches are stored in; `None`: the producer's.
    pub fn codec(self) -> Option<crate::batch::Compression> {
        use crate::batch::Compression;
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(Compression::None),
            CompressionType::Gzip => Some(Compression::Gzip),
            CompressionType::Snappy => Some(Compression::Snappy),
            CompressionType::Lz4 => Some(Compression::Lz4),
            CompressionType::Zstd => Some(Compression::Zstd),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }
}

/// One topic's effective settings, typed.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub segment_bytes: i32,
    pub segment_ms: i64,
    pub cleanup_policy: CleanupPolicy,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub max_message_bytes: i32,
    pub message_timestamp_type: TimestampType,
    pub compression_type: CompressionType,
    /// `compression.gzip.level`; -1: the codec's default.
    pub compression_gzip_level: i32,
    pub compression_lz4_level: i32,
    pub compression_zstd_level: i32,
    pub min_insync_replicas: i32,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub index_interval_bytes: i32,
    /// [`ACKS_ALL_FLUSH`].
    pub acks_all_flush: bool,
}

impl Default for TopicConfig {
    /// Kafka's defaults, and `spate.acks.all.flush=true`.
    fn default() -> Self {
        TopicConfig {
            retention_ms: 604_800_000,
            retention_bytes: -1,
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            compression_type: CompressionType::Producer,
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            min_insync_replicas: 1,
            flush_messages: FLUSH_UNSET,
            flush_ms: FLUSH_UNSET,
            index_interval_bytes: 4096,
            acks_all_flush: true,
        }
    }
}

/// A config key or value Kafka would refuse: `INVALID_CONFIG`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidConfig {
    /// The key as given.
    pub key: String,
    /// Why, in Kafka's words where there are some.
    pub message: String,
}

impl InvalidConfig {
    /// The Kafka error code: always `INVALID_CONFIG`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidConfig
    }

    fn new(key: &str, message: String) -> Self {
        InvalidConfig { key: key.to_owned(), message }
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidConfig {}

fn parse_long(key: &str, value: &str, at_least: i64) -> Result<i64, InvalidConfig> {
    let parsed: i64 = value.trim().parse().map_err(|_| {
        InvalidConfig::new(key, format!("Invalid value {value} for configuration {key}: Not a number of type LONG"))
    })?;
    if parsed < at_least {
        return Err(InvalidConfig::new(
            key,
            format!("Invalid value {parsed} for configuration {key}: Value must be at least {at_least}"),
        ));
    }
    Ok(parsed)
}

fn parse_int(key: &str, value: &str, at_least: i32) -> Result<i32, InvalidConfig> {
    let parsed: i32 = value.trim().parse().map_err(|_| {
        InvalidConfig::new(key, format!("Invalid value {value} for configuration {key}: Not a number of type INT"))
    })?;
    if parsed < at_least {
        return Err(InvalidConfig::new(
            key,
            format!("Invalid value {parsed} for configuration {key}: Value must be at least {at_least}"),
        ));
    }
    Ok(parsed)
}

fn parse_int_between(key: &str, value: &str, at_least: i32, at_most: i32) -> Result<i32, InvalidConfig> {
    let parsed = parse_int(key, value, at_least)?;
    if parsed > at_most {
        return Err(InvalidConfig::new(
            key,
            format!("Invalid value {parsed} for configuration {key}: Value must be no more than {at_most}"),
        ));
    }
    Ok(parsed)
}

fn parse_ratio(key: &str, value: &str) -> Result<f64, InvalidConfig> {
    let parsed: f64 = value.trim().parse().map_err(|_| {
        InvalidConfig::new(key, format!("Invalid value {value} for configuration {key}: Not a number of type DOUBLE"))
    })?;
    if !(0.0..=1.0).contains(&parsed) {
        return Err(InvalidConfig::new(
            key,
            format!("Invalid value {parsed} for configuration {key}: Value must be no more than 1"),
        ));
    }
    Ok(parsed)
}

fn one_of<T: Copy>(key: &str, value: &str, choices: &[(&str, T)]) -> Result<T, InvalidConfig> {
    let trimmed = value.trim();
    choices.iter().find(|(name, _)| trimmed.eq_ignore_ascii_case(name)).map(|(_, choice)| *choice).ok_or_else(|| {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        InvalidConfig::new(
            key,
            format!("Invalid value {value} for configuration {key}: String must be one of: {}", names.join(", ")),
        )
    })
}

impl TopicConfig {
    /// Sets `key` from its string form, validated as Kafka does. Unknown keys are refused.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), InvalidConfig> {
        match key {
            RETENTION_MS => self.retention_ms = parse_long(key, value, -1)?,
            RETENTION_BYTES => self.retention_bytes = parse_long(key, value, i64::MIN)?,
            // Kafka's minimum is 14 (a legacy record's overhead); Spate stores 32-bit positions, which
            // an INT cannot exceed anyway.
            SEGMENT_BYTES => self.segment_bytes = parse_int(key, value, 14)?,
            SEGMENT_MS => self.segment_ms = parse_long(key, value, 1)?,
            CLEANUP_POLICY => self.cleanup_policy = parse_cleanup_policy(value)?,
            DELETE_RETENTION_MS => self.delete_retention_ms = parse_long(key, value, 0)?,
            MIN_CLEANABLE_DIRTY_RATIO => self.min_cleanable_dirty_ratio = parse_ratio(key, value)?,
            MIN_COMPACTION_LAG_MS => self.min_compaction_lag_ms = parse_long(key, value, 0)?,
            MAX_COMPACTION_LAG_MS => self.max_compaction_lag_ms = parse_long(key, value, 1)?,
            MAX_MESSAGE_BYTES => self.max_message_bytes = parse_int(key, value, 0)?,
            MESSAGE_TIMESTAMP_TYPE => {
                self.message_timestamp_type = one_of(
                    key,
                    value,
                    &[("CreateTime", TimestampType::CreateTime), ("LogAppendTime", TimestampType::LogAppendTime)],
                )?
            }
            COMPRESSION_TYPE => {
                self.compression_type = one_of(
                    key,
                    value,
                    &[
                        ("uncompressed", CompressionType::Uncompressed),
                        ("zstd", CompressionType::Zstd),
                        ("lz4", CompressionType::Lz4),
                        ("snappy", CompressionType::Snappy),
                        ("gzip", CompressionType::Gzip),
                        ("producer", CompressionType::Producer),
                    ],
                )?
            }
            COMPRESSION_GZIP_LEVEL => {
                let level = parse_int(key, value, -1)?;
                if level == 0 || level > 9 {
                    return Err(InvalidConfig::new(
                        key,
                        format!("Invalid value {level} for configuration {key}: Value must be between 1 and 9, or -1"),
                    ));
                }
                self.compression_gzip_level = level;
            }
            COMPRESSION_LZ4_LEVEL => self.compression_lz4_level = parse_int_between(key, value, 1, 17)?,
            COMPRESSION_ZSTD_LEVEL => self.compression_zstd_level = parse_int_between(key, value, -131_072, 22)?,
            MIN_INSYNC_REPLICAS => self.min_insync_replicas = parse_int(key, value, 1)?,
            FLUSH_MESSAGES => self.flush_messages = parse_long(key, value, 1)?,
            FLUSH_MS => self.flush_ms = parse_long(key, value, 0)?,
            INDEX_INTERVAL_BYTES => self.index_interval_bytes = parse_int(key, value, 0)?,
            ACKS_ALL_FLUSH => {
                self.acks_all_flush = one_of(key, value, &[("true", true), ("false", false)])?;
            }
            _ => return Err(InvalidConfig::new(key, format!("Unknown topic config name: {key}"))),
        }
        Ok(())
    }

    /// The value of `key` in its string form, `None` for an unknown key.
    pub fn get(&self, key: &str) -> Option<String> {
        let value = match key {
            RETENTION_MS => self.retention_ms.to_string(),
            RETENTION_BYTES => self.retention_bytes.to_string(),
            SEGMENT_BYTES => self.segment_bytes.to_string(),
            SEGMENT_MS => self.segment_ms.to_string(),
            CLEANUP_POLICY => self.cleanup_policy.as_str().to_owned(),
            DELETE_RETENTION_MS => self.delete_retention_ms.to_string(),
            // `{:?}` keeps Kafka's spelling of whole doubles ("1.0", not "1").
            MIN_CLEANABLE_DIRTY_RATIO => format!("{:?}", self.min_cleanable_dirty_ratio),
            MIN_COMPACTION_LAG_MS => self.min_compaction_lag_ms.to_string(),
            MAX_COMPACTION_LAG_MS => self.max_compaction_lag_ms.to_string(),
            MAX_MESSAGE_BYTES => self.max_message_bytes.to_string(),
            MESSAGE_TIMESTAMP_TYPE => match self.message_timestamp_type {
                TimestampType::CreateTime => "CreateTime".to_owned(),
                TimestampType::LogAppendTime => "LogAppendTime".to_owned(),
            },
            COMPRESSION_TYPE => self.compression_type.as_str().to_owned(),
            COMPRESSION_GZIP_LEVEL => self.compression_gzip_level.to_string(),
            COMPRESSION_LZ4_LEVEL => self.compression_lz4_level.to_string(),
            COMPRESSION_ZSTD_LEVEL => self.compression_zstd_level.to_string(),
            MIN_INSYNC_REPLICAS => self.min_insync_replicas.to_string(),
            FLUSH_MESSAGES => self.flush_messages.to_string(),
            FLUSH_MS => self.flush_ms.to_string(),
            INDEX_INTERVAL_BYTES => self.index_interval_bytes.to_string(),
            ACKS_ALL_FLUSH => self.acks_all_flush.to_string(),
            _ => return None,
        };
        Some(value)
    }
}

fn parse_cleanup_policy(value: &str) -> Result<CleanupPolicy, InvalidConfig> {
    let mut delete = false;
    let mut compact = false;
    for item in value.split(',').map(str::trim) {
        match item.to_ascii_lowercase().as_str() {
            "delete" => delete = true,
            "compact" => compact = true,
            _ => {
                return Err(InvalidConfig::new(
                    CLEANUP_POLICY,
                    format!(
                    "Invalid value {value} for configuration {CLEANUP_POLICY}: String must be one of: compact, delete"
                ),
                ))
            }
        }
    }
    Ok(match (compact, delete) {
        (true, true) => CleanupPolicy::CompactDelete,
        (true, false) => CleanupPolicy::Compact,
        _ => CleanupPolicy::Delete,
    })
}

/// Where an effective value came from (Kafka's `ConfigSource`, as DescribeConfigs numbers them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (`DYNAMIC_TOPIC_CONFIG`, 1).
    Topic,
    /// The broker's config file (`STATIC_BROKER_CONFIG`, 4).
    Broker,
    /// Built in (`DEFAULT_CONFIG`, 5).
    Default,
}

impl ConfigSource {
    /// The wire value.
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::Broker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// One effective setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

/// The built-in defaults with the broker's `[topic_defaults]` applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicDefaults {
    config: TopicConfig,
    /// Keys the broker config set, normalized.
    broker_keys: BTreeMap<String, String>,
}

impl TopicDefaults {
    /// Kafka's defaults overridden by the broker's settings (`key → value` in string form).
    pub fn new<'a>(broker: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, InvalidConfig> {
        let mut defaults = TopicDefaults::default();
        for (key, value) in broker {
            defaults.config.set(key, value)?;
            let normalized = defaults.config.get(key).unwrap_or_else(|| value.to_owned());
            defaults.broker_keys.insert(key.to_owned(), normalized);
        }
        Ok(defaults)
    }

    /// The config of a topic with no overrides.
    pub fn config(&self) -> &TopicConfig {
        &self.config
    }

    /// Validates a topic's overrides (as a client sent them: a `None` value is refused, as Kafka
    /// refuses null topic config values) and returns them normalized, ready to store.
    pub fn validate_overrides<'a>(
        &self,
        overrides: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<BTreeMap<String, String>, InvalidConfig> {
        let mut scratch = self.config.clone();
        let mut normalized = BTreeMap::new();
        for (key, value) in overrides {
            let Some(value) = value else {
                return Err(InvalidConfig::new(key, format!("Null value not supported for topic configs: {key}")));
            };
            scratch.set(key, value)?;
            normalized.insert(key.to_owned(), scratch.get(key).unwrap_or_else(|| value.to_owned()));
        }
        Ok(normalized)
    }

    /// The effective config of a topic with `overrides` (already validated; a key that no longer
    /// validates, say after an upgrade, is an error rather than silently ignored).
    pub fn resolve(&self, overrides: &BTreeMap<String, String>) -> Result<TopicConfig, InvalidConfig> {
        let mut config = self.config.clone();
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        Ok(config)
    }

    /// Every key with its effective value and source, for a topic with `overrides`.
    pub fn describe(&self, overrides: &BTreeMap<String, String>) -> Result<Vec<ConfigEntry>, InvalidConfig> {
        let config = self.resolve(overrides)?;
        Ok(KEYS
            .iter()
            .map(|&key| {
                let source = if overrides.contains_key(key) {
                    ConfigSource::Topic
                } else if self.broker_keys.contains_key(key) {
                    ConfigSource::Broker
                } else {
                    ConfigSource::Default
                };
                ConfigEntry { key, value: config.get(key).unwrap_or_default(), source }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_defaults() {
        let config = TopicConfig::default();
        let expected = [
            (RETENTION_MS, "604800000"),
            (RETENTION_BYTES, "-1"),
            (SEGMENT_BYTES, "1073741824"),
            (SEGMENT_MS, "604800000"),
            (CLEANUP_POLICY, "delete"),
            (DELETE_RETENTION_MS, "86400000"),
            (MIN_CLEANABLE_DIRTY_RATIO, "0.5"),
            (MIN_COMPACTION_LAG_MS, "0"),
            (MAX_COMPACTION_LAG_MS, "9223372036854775807"),
            (MAX_MESSAGE_BYTES, "1048588"),
            (MESSAGE_TIMESTAMP_TYPE, "CreateTime"),
            (COMPRESSION_TYPE, "producer"),
            (COMPRESSION_GZIP_LEVEL, "-1"),
            (COMPRESSION_LZ4_LEVEL, "9"),
            (COMPRESSION_ZSTD_LEVEL, "3"),
            (MIN_INSYNC_REPLICAS, "1"),
            (FLUSH_MESSAGES, "9223372036854775807"),
            (FLUSH_MS, "9223372036854775807"),
            (INDEX_INTERVAL_BYTES, "4096"),
            (ACKS_ALL_FLUSH, "true"),
        ];
        for (key, value) in expected {
            assert_eq!(config.get(key).as_deref(), Some(value), "{key}");
        }
        assert_eq!(expected.len(), KEYS.len());
    }

    #[test]
    fn values_round_trip_and_are_normalized() {
        let mut config = TopicConfig::default();
        for (key, value, normalized) in [
            (RETENTION_MS, " -1 ", "-1"),
            (CLEANUP_POLICY, "Delete , compact", "compact,delete"),
            (CLEANUP_POLICY, "compact", "compact"),
            (MESSAGE_TIMESTAMP_TYPE, "logappendtime", "LogAppendTime"),
            (COMPRESSION_TYPE, "ZSTD", "zstd"),
            (FLUSH_MESSAGES, "1", "1"),
            (FLUSH_MS, "0", "0"),
            (ACKS_ALL_FLUSH, "FALSE", "false"),
            (SEGMENT_BYTES, "14", "14"),
            (MIN_CLEANABLE_DIRTY_RATIO, " 0.01", "0.01"),
            (MIN_CLEANABLE_DIRTY_RATIO, "1", "1.0"),
            (DELETE_RETENTION_MS, "0", "0"),
        ] {
            config.set(key, value).unwrap();
            assert_eq!(config.get(key).as_deref(), Some(normalized), "{key}={value}");
        }
        assert!(!config.acks_all_flush);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_invalid_config() {
        let mut config = TopicConfig::default();
        for (key, value) in [
            (RETENTION_MS, "-2"),
            (RETENTION_MS, "soon"),
            (SEGMENT_BYTES, "13"),
            (SEGMENT_BYTES, "4294967296"),
            (SEGMENT_MS, "0"),
            (CLEANUP_POLICY, "shred"),
            (CLEANUP_POLICY, ""),
            (MAX_MESSAGE_BYTES, "-1"),
            (MESSAGE_TIMESTAMP_TYPE, "Now"),
            (COMPRESSION_TYPE, "brotli"),
            (MIN_INSYNC_REPLICAS, "0"),
            (FLUSH_MESSAGES, "0"),
            (FLUSH_MS, "-1"),
            (ACKS_ALL_FLUSH, "yes"),
            (MIN_CLEANABLE_DIRTY_RATIO, "1.5"),
            (MIN_CLEANABLE_DIRTY_RATIO, "-0.1"),
            (DELETE_RETENTION_MS, "-1"),
            (MAX_COMPACTION_LAG_MS, "0"),
            ("retention.hours", "1"),
        ] {
            let error = config.set(key, value).unwrap_err();
            assert_eq!(error.code(), ErrorCode::InvalidConfig);
            assert_eq!(error.key, key);
            assert!(!error.message.is_empty());
        }
        assert_eq!(config, TopicConfig::default(), "a refused value changes nothing");
    }

    #[test]
    fn layers_and_sources() {
        let defaults = TopicDefaults::new([(FLUSH_MESSAGES, "1"), (RETENTION_MS, "1000")]).unwrap();
        assert_eq!(defaults.config().flush_messages, 1);
        let overrides =
            defaults.validate_overrides([(RETENTION_MS, Some("5000")), (SEGMENT_MS, Some("60000"))]).unwrap();
        let config = defaults.resolve(&overrides).unwrap();
        assert_eq!((config.retention_ms, config.segment_ms, config.flush_messages), (5000, 60000, 1));
        let described = defaults.describe(&overrides).unwrap();
        let source = |key: &str| described.iter().find(|entry| entry.key == key).unwrap().source;
        assert_eq!(source(RETENTION_MS), ConfigSource::Topic);
        assert_eq!(source(FLUSH_MESSAGES), ConfigSource::Broker);
        assert_eq!(source(MAX_MESSAGE_BYTES), ConfigSource::Default);
        assert_eq!(described.len(), KEYS.len());

        assert!(defaults.validate_overrides([(RETENTION_MS, None)]).is_err(), "null values are refused");
        assert!(defaults.validate_overrides([("nope", Some("1"))]).is_err());
        assert!(TopicDefaults::new([(SEGMENT_MS, "0")]).is_err());
    }
}
