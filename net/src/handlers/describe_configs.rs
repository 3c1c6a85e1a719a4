//! DescribeConfigs (key 32), versions 1–4: topic and broker configs.
//!
//! - **Topic** (resource type 2): every key of `spate_core::topic_config::KEYS` with its effective
//!   value and source: `DYNAMIC_TOPIC_CONFIG` (1) for an override, `STATIC_BROKER_CONFIG` (4) for a
//!   value from the broker's `[topic_defaults]`, `DEFAULT_CONFIG` (5) otherwise. With
//!   `include_synonyms`, each key lists, most specific first, the override, the broker setting (Kafka's
//!   broker key name, e.g. `log.retention.ms`) and the built-in default. Unknown topic:
//!   `UNKNOWN_TOPIC_OR_PARTITION`.
//! - **Broker** (type 4) named by this node's id: the broker-level topic defaults under Kafka's broker
//!   key names, plus `num.partitions`, `auto.create.topics.enable`, `default.replication.factor`,
//!   `node.id` and `log.dirs`. `num.partitions` and `auto.create.topics.enable` are reported as
//!   `STATIC_BROKER_CONFIG` when they differ from Kafka's default. The empty name (cluster-wide dynamic
//!   defaults) has no entries: Spate has no dynamic broker configs. Another id: `INVALID_REQUEST`.
//! - Any other type (broker loggers, ...): `INVALID_REQUEST`.
//!
//! `configuration_keys` filters the entries (unknown keys are left out, as Kafka does). Nothing is
//! read-only or sensitive; v3+ carries each key's type; no documentation.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use spate_core::topic_config::{self as tc, ConfigSource, TopicConfig};
use spate_core::ErrorCode;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::DESCRIBE_CONFIGS;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// Resource type TOPIC.
pub const RESOURCE_TOPIC: i8 = 2;
/// Resource type BROKER.
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigType` numbers (DescribeConfigs v3+).
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// Each topic key's broker-level name (Kafka's `LogConfig` synonyms) and type.
pub fn broker_key(topic_key: &str) -> (&'static str, i8) {
    match topic_key {
        tc::RETENTION_MS => ("log.retention.ms", LONG),
        tc::RETENTION_BYTES => ("log.retention.bytes", LONG),
        tc::SEGMENT_BYTES => ("log.segment.bytes", INT),
        tc::SEGMENT_MS => ("log.roll.ms", LONG),
        tc::CLEANUP_POLICY => ("log.cleanup.policy", LIST),
        tc::MAX_MESSAGE_BYTES => ("message.max.bytes", INT),
        tc::MESSAGE_TIMESTAMP_TYPE => ("log.message.timestamp.type", STRING),
        tc::COMPRESSION_TYPE => ("compression.type", STRING),
        tc::COMPRESSION_GZIP_LEVEL => ("compression.gzip.level", INT),
        tc::COMPRESSION_LZ4_LEVEL => ("compression.lz4.level", INT),
        tc::COMPRESSION_ZSTD_LEVEL => ("compression.zstd.level", INT),
        tc::MIN_INSYNC_REPLICAS => ("min.insync.replicas", INT),
        tc::FLUSH_MESSAGES => ("log.flush.interval.messages", LONG),
        tc::FLUSH_MS => ("log.flush.interval.ms", LONG),
        tc::INDEX_INTERVAL_BYTES => ("log.index.interval.bytes", INT),
        _ => (tc::ACKS_ALL_FLUSH, BOOLEAN),
    }
}

/// One entry before encoding.
struct Entry {
    name: String,
    value: String,
    source: ConfigSource,
    config_type: i8,
    synonyms: Vec<(String, String, ConfigSource)>,
}

/// Answers one DescribeConfigs request.
///
/// # Panics
/// If `header` is not a DescribeConfigs header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::DescribeConfigs, "misrouted request");
    let version = header.api_version;
    let request: DescribeConfigsRequest = decode_checked(header, &DESCRIBE_CONFIGS, body)?;
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => topic_entries(context, resource.resource_name.as_str()),
                RESOURCE_BROKER => broker_entries(context, resource.resource_name.as_str()),
                other => Err((ErrorCode::InvalidRequest, format!("Unsupported resource type {other}"))),
            };
            match entries {
                Err((code, message)) => {
                    result.with_error_code(code.code()).with_error_message(Some(StrBytes::from_string(message)))
                }
                Ok(entries) => {
                    let wanted = resource.configuration_keys.as_ref();
                    let configs = entries
                        .into_iter()
                        .filter(|entry| wanted.is_none_or(|keys| keys.iter().any(|key| key.as_str() == entry.name)))
                        .map(|entry| encode(entry, version, request.include_synonyms))
                        .collect();
                    result.with_error_code(0).with_error_message(None).with_configs(configs)
                }
            }
        })
        .collect();
    respond(header, &DescribeConfigsResponse::default().with_throttle_time_ms(0).with_results(results))
}

fn encode(entry: Entry, version: i16, include_synonyms: bool) -> DescribeConfigsResourceResult {
    let mut result = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(entry.name))
        .with_value(Some(StrBytes::from_string(entry.value)))
        .with_read_only(false)
        .with_config_source(entry.source.code())
        .with_is_sensitive(false);
    if include_synonyms {
        result.synonyms = entry
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(StrBytes::from_string(name))
                    .with_value(Some(StrBytes::from_string(value)))
                    .with_source(source.code())
            })
            .collect();
    }
    if version >= 3 {
        result = result.with_config_type(entry.config_type).with_documentation(None);
    }
    result
}

type Entries = Result<Vec<Entry>, (ErrorCode, String)>;

fn topic_entries(context: &ShardContext, name: &str) -> Entries {
    let table = context.topics();
    let topic = table
        .get(name)
        .ok_or_else(|| (ErrorCode::UnknownTopicOrPartition, format!("Topic '{name}' does not exist.")))?;
    let defaults = &context.settings.defaults;
    let invalid = |error: tc::InvalidConfig| (ErrorCode::InvalidConfig, error.message);
    let effective = defaults.describe(&topic.overrides).map_err(invalid)?;
    let broker = defaults.describe(&BTreeMap::new()).map_err(invalid)?;
    let builtin = TopicConfig::default();
    Ok(effective
        .into_iter()
        .zip(broker)
        .map(|(entry, broker)| {
            let (broker_name, config_type) = broker_key(entry.key);
            let mut synonyms = Vec::new();
            if entry.source == ConfigSource::Topic {
                synonyms.push((entry.key.to_owned(), entry.value.clone(), ConfigSource::Topic));
            }
            if broker.source == ConfigSource::Broker {
                synonyms.push((broker_name.to_owned(), broker.value, ConfigSource::Broker));
            }
            synonyms.push((broker_name.to_owned(), builtin.get(entry.key).unwrap_or_default(), ConfigSource::Default));
            Entry { name: entry.key.to_owned(), value: entry.value, source: entry.source, config_type, synonyms }
        })
        .collect())
}

fn broker_entries(context: &ShardContext, name: &str) -> Entries {
    let node = context.broker.node_id;
    if name.is_empty() {
        return Ok(Vec::new());
    }
    if name.parse::<i32>().ok() != Some(node) {
        return Err((
            ErrorCode::InvalidRequest,
            format!("Unexpected broker id, expected {node} or empty string, but received {name}"),
        ));
    }
    let settings = &context.settings;
    let invalid = |error: tc::InvalidConfig| (ErrorCode::InvalidConfig, error.message);
    let mut entries: Vec<Entry> = settings
        .defaults
        .describe(&BTreeMap::new())
        .map_err(invalid)?
        .into_iter()
        .map(|entry| {
            let (broker_name, config_type) = broker_key(entry.key);
            let synonyms = vec![(broker_name.to_owned(), entry.value.clone(), entry.source)];
            Entry { name: broker_name.to_owned(), value: entry.value, source: entry.source, config_type, synonyms }
        })
        .collect();
    let source = |is_default: bool| if is_default { ConfigSource::Default } else { ConfigSource::Broker };
    let data_dir = context.partitions.data_dir().display().to_string();
    for (key, value, source, config_type) in [
        ("num.partitions", settings.num_partitions.to_string(), source(settings.num_partitions == 1), INT),
        ("auto.create.topics.enable", settings.auto_create.to_string(), source(settings.auto_create), BOOLEAN),
        ("default.replication.factor", "1".to_owned(), ConfigSource::Default, INT),
        ("node.id", node.to_string(), ConfigSource::Broker, INT),
        ("log.dirs", data_dir, ConfigSource::Broker, STRING),
    ] {
        let synonyms = vec![(key.to_owned(), value.clone(), source)];
        entries.push(Entry { name: key.to_owned(), value, source, config_type, synonyms });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}
