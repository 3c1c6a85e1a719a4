//! `spate topic create|list|describe|alter-config|delete|add-partitions`.

use clap::Subcommand;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};

use super::client::{kafka_error, quoted, topics_of, Admin, CliError, CliResult, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::output::{join, print_json, Table};
use super::Common;
use bench::client::topic_name;

/// DescribeConfigs / IncrementalAlterConfigs resource type of a topic.
const TOPIC_RESOURCE: i8 = 2;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// How long the broker may take to create or delete, in ms.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic
    Create {
        name: String,
        /// Partitions [default: the broker's num.partitions]
        #[arg(long, value_name = "N")]
        partitions: Option<i32>,
        /// Replicas of each partition [default: the broker's default.replication.factor]
        #[arg(long, value_name = "N")]
        replication_factor: Option<i16>,
        /// A topic config, KEY=VALUE (repeatable)
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics
    List {
        /// Leave out internal topics (__consumer_offsets)
        #[arg(long)]
        exclude_internal: bool,
    },
    /// Partitions (leader, replicas, ISR, start and end offsets) and configs of a topic
    Describe {
        name: String,
        /// Show every config, not only those set on the topic or the broker
        #[arg(long)]
        all_configs: bool,
    },
    /// Set or delete topic configs (IncrementalAlterConfigs)
    AlterConfig {
        name: String,
        /// Set KEY=VALUE (repeatable)
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Delete KEY, back to its default (repeatable)
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Delete a topic
    Delete { name: String },
    /// Raise a topic's partition count
    AddPartitions {
        name: String,
        /// The partition count afterwards
        #[arg(long, value_name = "N")]
        total: i32,
    },
}

pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

pub fn run(common: &Common, command: TopicCommand) -> CliResult<()> {
    let mut admin = Admin::connect(common)?;
    match command {
        TopicCommand::Create { name, partitions, replication_factor, configs } => {
            create(&mut admin, common, &name, partitions, replication_factor, &configs)
        }
        TopicCommand::List { exclude_internal } => list(&mut admin, common, exclude_internal),
        TopicCommand::Describe { name, all_configs } => describe(&mut admin, common, &name, all_configs),
        TopicCommand::AlterConfig { name, set, delete } => alter_config(&mut admin, common, &name, &set, &delete),
        TopicCommand::Delete { name } => delete_topic(&mut admin, common, &name),
        TopicCommand::AddPartitions { name, total } => add_partitions(&mut admin, common, &name, total),
    }
}

fn create(
    admin: &mut Admin,
    common: &Common,
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
) -> CliResult<()> {
    let bootstrap = admin.bootstrap.clone();
    let (version, response): (i16, CreateTopicsResponse) = admin.call(&bootstrap, ApiKey::CreateTopics, |version| {
        // Before v4, -1 (the broker's default) is not allowed.
        let default = if version >= 4 { -1 } else { 1 };
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions.unwrap_or(default))
            .with_replication_factor(replication_factor.unwrap_or(default as i16))
            .with_configs(bench::client::creatable_configs(configs));
        CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(ADMIN_TIMEOUT_MS)
    })?;
    let result = response
        .topics
        .first()
        .ok_or_else(|| CliError(format!("broker {bootstrap}: CreateTopics {}: empty answer", quoted(name))))?;
    if result.error_code != 0 {
        let request = format!("CreateTopics {}", quoted(name));
        return Err(kafka_error(&bootstrap, &request, result.error_code, result.error_message.as_ref()));
    }
    // v5+ answers with what was created; before, the request says it.
    let (partitions, replication_factor) = if version >= 5 {
        (Some(result.num_partitions), Some(result.replication_factor))
    } else {
        (partitions, replication_factor)
    };
    if common.json {
        print_json(&json!({
            "topic": name,
            "topic_id": (version >= 7).then(|| result.topic_id.to_string()),
            "partitions": partitions,
            "replication_factor": replication_factor,
        }));
    } else {
        let count = partitions.map_or_else(|| "the default number of".to_owned(), |count| count.to_string());
        println!("created topic {} with {count} partitions", quoted(name));
    }
    Ok(())
}

fn list(admin: &mut Admin, common: &Common, exclude_internal: bool) -> CliResult<()> {
    let response = admin.metadata(None)?;
    let topics: Vec<_> =
        topics_of(&response).into_iter().filter(|topic| !(exclude_internal && topic.internal)).collect();
    if common.json {
        let topics: Vec<Value> = topics
            .iter()
            .map(|topic| {
                json!({
                    "topic": topic.name,
                    "topic_id": topic.topic_id,
                    "partitions": topic.partitions.len(),
                    "replication_factor": topic.partitions.first().map_or(0, |partition| partition.replicas.len()),
                    "internal": topic.internal,
                })
            })
            .collect();
        print_json(&Value::Array(topics));
        return Ok(());
    }
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION", "INTERNAL"]);
    for topic in &topics {
        table.row(vec![
            topic.name.clone(),
            topic.partitions.len().to_string(),
            topic.partitions.first().map_or(0, |partition| partition.replicas.len()).to_string(),
            if topic.internal { "yes" } else { "no" }.to_owned(),
        ]);
    }
    table.print();
    Ok(())
}

/// One config as DescribeConfigs reports it.
struct ConfigEntry {
    name: String,
    value: Option<String>,
    source: &'static str,
    sensitive: bool,
    read_only: bool,
}

/// Kafka's `ConfigSource` names (DescribeConfigs v1+).
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "topic",
        2 => "dynamic-broker",
        3 => "dynamic-default-broker",
        4 => "static-broker",
        5 => "default",
        6 => "dynamic-broker-logger",
        7 => "client-metrics",
        8 => "group",
        _ => "unknown",
    }
}

fn topic_configs(admin: &mut Admin, name: &str) -> CliResult<Vec<ConfigEntry>> {
    let bootstrap = admin.bootstrap.clone();
    let (_, response): (i16, DescribeConfigsResponse) = admin.call(&bootstrap, ApiKey::DescribeConfigs, |_| {
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(name.to_owned()))
            .with_configuration_keys(None)])
    })?;
    let mut entries = Vec::new();
    for result in &response.results {
        if result.error_code != 0 {
            let request = format!("DescribeConfigs {}", quoted(name));
            return Err(kafka_error(&bootstrap, &request, result.error_code, result.error_message.as_ref()));
        }
        for config in &result.configs {
            entries.push(ConfigEntry {
                name: config.name.to_string(),
                value: config.value.as_ref().map(ToString::to_string),
                source: source_name(config.config_source),
                sensitive: config.is_sensitive,
                read_only: config.read_only,
            });
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

fn describe(admin: &mut Admin, common: &Common, name: &str, all_configs: bool) -> CliResult<()> {
    let topic = admin.topic(name)?;
    let indexes: Vec<i32> =
        topic.partitions.iter().filter(|partition| partition.error_code == 0).map(|p| p.partition).collect();
    let starts = admin.list_offsets(&topic, &indexes, EARLIEST_TIMESTAMP)?;
    let ends = admin.list_offsets(&topic, &indexes, LATEST_TIMESTAMP)?;
    let configs = topic_configs(admin, name)?;
    let replication = topic.partitions.first().map_or(0, |partition| partition.replicas.len());
    if common.json {
        let partitions: Vec<Value> = topic
            .partitions
            .iter()
            .map(|partition| {
                json!({
                    "partition": partition.partition,
                    "leader": partition.leader,
                    "replicas": partition.replicas,
                    "isr": partition.isr,
                    "start_offset": starts.get(&partition.partition),
                    "end_offset": ends.get(&partition.partition),
                    "error": (partition.error_code != 0).then(|| super::client::error_name(partition.error_code)),
                })
            })
            .collect();
        let configs: serde_json::Map<String, Value> = configs
            .iter()
            .map(|config| {
                let value = json!({
                    "value": config.value,
                    "source": config.source,
                    "sensitive": config.sensitive,
                    "read_only": config.read_only,
                });
                (config.name.clone(), value)
            })
            .collect();
        print_json(&json!({
            "topic": topic.name,
            "topic_id": topic.topic_id,
            "internal": topic.internal,
            "replication_factor": replication,
            "partitions": partitions,
            "configs": configs,
        }));
        return Ok(());
    }
    println!(
        "Topic: {}  id: {}  partitions: {}  replication factor: {replication}{}",
        topic.name,
        topic.topic_id,
        topic.partitions.len(),
        if topic.internal { "  (internal)" } else { "" }
    );
    println!();
    let mut table = Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR", "START-OFFSET", "END-OFFSET"]);
    let offset = |offsets: &std::collections::BTreeMap<i32, i64>, partition: i32| {
        offsets.get(&partition).map_or_else(|| "-".to_owned(), ToString::to_string)
    };
    for partition in &topic.partitions {
        table.row(vec![
            partition.partition.to_string(),
            partition.leader.to_string(),
            join(&partition.replicas),
            join(&partition.isr),
            offset(&starts, partition.partition),
            offset(&ends, partition.partition),
        ]);
    }
    table.print();
    println!();
    let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
    for config in configs.iter().filter(|config| all_configs || config.source != "default") {
        let value = if config.sensitive { "(sensitive)".to_owned() } else { config.value.clone().unwrap_or_default() };
        table.row(vec![config.name.clone(), value, config.source.to_owned()]);
    }
    if table.is_empty() {
        println!("No configs set on the topic (--all-configs shows the defaults).");
    } else {
        table.print();
    }
    Ok(())
}

fn alter_config(
    admin: &mut Admin,
    common: &Common,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> CliResult<()> {
    if set.is_empty() && delete.is_empty() {
        return Err("alter-config needs --set KEY=VALUE or --delete KEY".into());
    }
    let bootstrap = admin.bootstrap.clone();
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    configs.extend(delete.iter().map(|key| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(key.clone()))
            .with_config_operation(OP_DELETE)
            .with_value(None)
    }));
    let (_, response): (i16, IncrementalAlterConfigsResponse) =
        admin.call(&bootstrap, ApiKey::IncrementalAlterConfigs, |_| {
            IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(TOPIC_RESOURCE)
                .with_resource_name(StrBytes::from_string(name.to_owned()))
                .with_configs(configs)])
        })?;
    for result in &response.responses {
        if result.error_code != 0 {
            let request = format!("IncrementalAlterConfigs {}", quoted(name));
            return Err(kafka_error(&bootstrap, &request, result.error_code, result.error_message.as_ref()));
        }
    }
    if common.json {
        let set: serde_json::Map<String, Value> =
            set.iter().map(|(key, value)| (key.clone(), Value::String(value.clone()))).collect();
        print_json(&json!({ "topic": name, "set": set, "deleted": delete }));
    } else {
        let mut changes: Vec<String> = set.iter().map(|(key, value)| format!("set {key}={value}")).collect();
        changes.extend(delete.iter().map(|key| format!("deleted {key}")));
        println!("altered topic {}: {}", quoted(name), changes.join(", "));
    }
    Ok(())
}

fn delete_topic(admin: &mut Admin, common: &Common, name: &str) -> CliResult<()> {
    let bootstrap = admin.bootstrap.clone();
    let (_, response): (i16, DeleteTopicsResponse) = admin.call(&bootstrap, ApiKey::DeleteTopics, |_| {
        DeleteTopicsRequest::default().with_topic_names(vec![topic_name(name)]).with_timeout_ms(ADMIN_TIMEOUT_MS)
    })?;
    for result in &response.responses {
        if result.error_code != 0 {
            let request = format!("DeleteTopics {}", quoted(name));
            return Err(kafka_error(&bootstrap, &request, result.error_code, result.error_message.as_ref()));
        }
    }
    if common.json {
        print_json(&json!({ "deleted": name }));
    } else {
        println!("deleted topic {}", quoted(name));
    }
    Ok(())
}

fn add_partitions(admin: &mut Admin, common: &Common, name: &str, total: i32) -> CliResult<()> {
    let bootstrap = admin.bootstrap.clone();
    let (_, response): (i16, CreatePartitionsResponse) = admin.call(&bootstrap, ApiKey::CreatePartitions, |_| {
        CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(name))
                .with_count(total)
                .with_assignments(None)])
            .with_timeout_ms(ADMIN_TIMEOUT_MS)
    })?;
    for result in &response.results {
        if result.error_code != 0 {
            let request = format!("CreatePartitions {}", quoted(name));
            return Err(kafka_error(&bootstrap, &request, result.error_code, result.error_message.as_ref()));
        }
    }
    if common.json {
        print_json(&json!({ "topic": name, "partitions": total }));
    } else {
        println!("topic {} now has {total} partitions", quoted(name));
    }
    Ok(())
}
