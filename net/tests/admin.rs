//! The admin APIs against the real `spate serve`: requests encoded at exact versions with
//! `kafka-protocol`, answers checked field by field, restarts to show what persists, and kcat's
//! idempotent producer (InitProducerId) end to end.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{kcat, kcat_with_input, Broker, Client};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_core::batch::{build_batch, BatchOptions};
use spate_core::record::RecordSpec;
use uuid::Uuid;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn name(value: &str) -> TopicName {
    TopicName(text(value))
}

fn create(client: &mut Client, topic: &str, partitions: i32) {
    let topic =
        CreatableTopic::default().with_name(name(topic)).with_num_partitions(partitions).with_replication_factor(1);
    let response: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic]));
    assert_eq!(response.topics[0].error_code, 0);
}

fn metadata(client: &mut Client, topic: &str) -> (i16, usize, Uuid) {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic)))]))
        .with_allow_auto_topic_creation(false);
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    let topic = &response.topics[0];
    (topic.error_code, topic.partitions.len(), topic.topic_id)
}

fn produce(client: &mut Client, topic: &str, partition: i32, count: usize) {
    let values: Vec<String> = (0..count).map(|i| format!("value-{i}")).collect();
    let records: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|value| RecordSpec { key: None, value: Some(value.as_bytes()), headers: &[], timestamp_ms: 1_000 })
        .collect();
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(Bytes::from(build_batch(&records, BatchOptions::default()))));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])]);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
}

fn producer_id(client: &mut Client, version: i16, transactional_id: Option<&str>) -> (i16, i64, i16) {
    let mut request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(|id| TransactionalId(text(id))))
        .with_transaction_timeout_ms(60_000);
    if version >= 3 {
        request = request.with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
    }
    let response: InitProducerIdResponse = client.call(ApiKey::InitProducerId, version, &request);
    (response.error_code, response.producer_id.0, response.producer_epoch)
}

#[test]
fn cluster_coordinators_and_producer_ids_survive_restarts() {
    let mut broker = Broker::start(&["--node-id", "3"]);
    let mut client = Client::connect(&broker);
    for version in 0..=1 {
        let request = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let cluster: DescribeClusterResponse = client.call(ApiKey::DescribeCluster, version, &request);
        assert_eq!((cluster.error_code, cluster.controller_id.0, cluster.brokers.len()), (0, 3, 1));
        assert_eq!((cluster.brokers[0].broker_id.0, cluster.brokers[0].port), (3, i32::from(broker.port)));
        assert!(!cluster.cluster_id.is_empty());
        assert_eq!(cluster.cluster_authorized_operations, i32::MIN);
    }
    for version in 0..=3 {
        let mut request = FindCoordinatorRequest::default().with_key(text("group"));
        if version >= 1 {
            request = request.with_key_type(1);
        }
        let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, version, &request);
        assert_eq!((found.error_code, found.node_id.0, found.port), (0, 3, i32::from(broker.port)), "v{version}");
    }
    let batched = FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![text("a"), text("b")]);
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &batched);
    let answers: Vec<(String, i16, i32)> =
        found.coordinators.iter().map(|c| (c.key.to_string(), c.error_code, c.node_id.0)).collect();
    assert_eq!(answers, vec![("a".into(), 0, 3), ("b".into(), 0, 3)]);
    let share: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 4, &batched.clone().with_key_type(2));
    assert_eq!(share.coordinators[0].error_code, 42, "share groups: INVALID_REQUEST");

    let mut seen = Vec::new();
    for version in 0..=5 {
        let (error, id, epoch) = producer_id(&mut client, version, None);
        assert_eq!((error, epoch), (0, 0), "v{version}");
        assert!(!seen.contains(&id), "id {id} handed out twice");
        seen.push(id);
    }
    assert_eq!(producer_id(&mut client, 4, Some("tx")), (53, -1, -1), "transactions: a clear fatal error");

    broker.stop();
    broker.restart();
    let mut client = Client::connect(&broker);
    let (error, id, _) = producer_id(&mut client, 4, None);
    assert_eq!(error, 0);
    assert!(id > *seen.iter().max().unwrap(), "id {id} after a restart reuses one of {seen:?}");
    broker.kill9();
    broker.restart();
    let mut client = Client::connect(&broker);
    let (_, after_kill, _) = producer_id(&mut client, 4, None);
    assert!(after_kill > id, "{after_kill} after kill -9, {id} before");
}

#[test]
fn delete_topics_and_create_partitions() {
    let mut broker = Broker::start(&["--cores", "2"]);
    let mut client = Client::connect(&broker);
    create(&mut client, "grow", 2);
    create(&mut client, "gone", 3);
    create(&mut client, "by-id", 1);
    produce(&mut client, "gone", 0, 3);

    let grow = |count: i32, assignments: Option<Vec<i32>>| {
        CreatePartitionsTopic::default().with_name(name("grow")).with_count(count).with_assignments(assignments.map(
            |nodes| {
                nodes
                    .into_iter()
                    .map(|n| CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(n)]))
                    .collect()
            },
        ))
    };
    let call = |client: &mut Client, version: i16, topics: Vec<CreatePartitionsTopic>, validate_only: bool| {
        let request = CreatePartitionsRequest::default().with_topics(topics).with_validate_only(validate_only);
        let response: CreatePartitionsResponse = client.call(ApiKey::CreatePartitions, version, &request);
        response.results.iter().map(|result| result.error_code).collect::<Vec<_>>()
    };
    assert_eq!(call(&mut client, 3, vec![grow(4, None)], true), vec![0]);
    assert_eq!(metadata(&mut client, "grow").1, 2, "validate_only changes nothing");
    assert_eq!(call(&mut client, 0, vec![grow(4, Some(vec![0, 0]))], false), vec![0]);
    assert_eq!(metadata(&mut client, "grow").1, 4);
    produce(&mut client, "grow", 3, 1);
    assert!(broker.data_dir().join("grow-3").is_dir());
    let unknown = CreatePartitionsTopic::default().with_name(name("nope")).with_count(2);
    let codes = call(
        &mut client,
        2,
        vec![grow(3, None), grow(4, None), unknown, grow(5, Some(vec![0, 0])), grow(5, Some(vec![7]))],
        false,
    );
    assert_eq!(codes, vec![42, 42, 3, 42, 42], "a topic named twice is INVALID_REQUEST for every entry");
    assert_eq!(call(&mut client, 2, vec![grow(3, None)], false), vec![37], "shrinking: INVALID_PARTITIONS");
    assert_eq!(call(&mut client, 2, vec![grow(4, None)], false), vec![37], "same count: INVALID_PARTITIONS");
    assert_eq!(call(&mut client, 2, vec![grow(6, Some(vec![0]))], false), vec![39], "one assignment for two");
    assert_eq!(call(&mut client, 2, vec![grow(5, Some(vec![7]))], false), vec![39], "another broker");

    let by_id = metadata(&mut client, "by-id").2;
    let request = DeleteTopicsRequest::default().with_topic_names(vec![name("gone"), name("never")]);
    let deleted: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 5, &request);
    let codes: Vec<i16> = deleted.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 3]);
    let request = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_topic_id(by_id),
        DeleteTopicState::default().with_topic_id(Uuid::from_u128(42)),
    ]);
    let deleted: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, 6, &request);
    assert_eq!(deleted.responses[0].name.as_ref().map(|n| n.to_string()), Some("by-id".to_owned()));
    let codes: Vec<i16> = deleted.responses.iter().map(|r| r.error_code).collect();
    assert_eq!(codes, vec![0, 100]);
    assert_eq!(metadata(&mut client, "gone").0, 3);
    assert_eq!(metadata(&mut client, "by-id").0, 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    let leftovers = || {
        common::list(&broker.data_dir())
            .into_iter()
            .filter(|dir| dir.starts_with("gone-") || dir.starts_with("by-id-"))
            .collect::<Vec<_>>()
    };
    while !leftovers().is_empty() {
        assert!(Instant::now() < deadline, "partition directories left: {:?}", leftovers());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The name is free again, with a new, empty log.
    create(&mut client, "gone", 1);
    let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(name("gone"))
        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)])]);
    let offsets: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request);
    assert_eq!(offsets.topics[0].partitions[0].offset, 0);

    broker.stop();
    broker.restart();
    let mut client = Client::connect(&broker);
    assert_eq!(metadata(&mut client, "grow").1, 4);
    assert_eq!(metadata(&mut client, "by-id").0, 3);
    assert_eq!(metadata(&mut client, "gone").1, 1);
}

fn describe(
    client: &mut Client,
    version: i16,
    resource_type: i8,
    resource: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(resource))
        .with_configuration_keys(keys.map(|keys| keys.iter().map(|key| text(key)).collect()));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]).with_include_synonyms(true);
    let mut response: DescribeConfigsResponse = client.call(ApiKey::DescribeConfigs, version, &request);
    response.results.remove(0)
}

fn value(result: &DescribeConfigsResult, key: &str) -> (String, i8) {
    let entry = result.configs.iter().find(|entry| entry.name.as_str() == key).unwrap_or_else(|| panic!("{key}"));
    (entry.value.as_ref().map(|v| v.to_string()).unwrap_or_default(), entry.config_source)
}

fn alter(
    client: &mut Client,
    version: i16,
    topic: &str,
    configs: &[(&str, &str)],
    validate_only: bool,
) -> (i16, String) {
    let configs = configs
        .iter()
        .map(|(key, value)| AlterableConfig::default().with_name(text(key)).with_value(Some(text(value))))
        .collect();
    let resource =
        AlterConfigsResource::default().with_resource_type(2).with_resource_name(text(topic)).with_configs(configs);
    let request = AlterConfigsRequest::default().with_resources(vec![resource]).with_validate_only(validate_only);
    let response: AlterConfigsResponse = client.call(ApiKey::AlterConfigs, version, &request);
    let answer = &response.responses[0];
    (answer.error_code, answer.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default())
}

fn alter_incrementally(client: &mut Client, resource_type: i8, topic: &str, ops: &[(&str, i8, Option<&str>)]) -> i16 {
    let configs = ops
        .iter()
        .map(|(key, op, value)| {
            incremental::AlterableConfig::default()
                .with_name(text(key))
                .with_config_operation(*op)
                .with_value(value.map(text))
        })
        .collect();
    let resource = incremental::AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(topic))
        .with_configs(configs);
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let response: IncrementalAlterConfigsResponse = client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
    response.responses[0].error_code
}

#[test]
fn configs_are_described_altered_and_survive_restarts() {
    let mut broker = Broker::start_with_config("[topic_defaults]\n\"flush.messages\" = 1\n", &[]);
    let mut client = Client::connect(&broker);
    create(&mut client, "c", 1);
    for version in 1..=4 {
        let result = describe(&mut client, version, 2, "c", None);
        assert_eq!(result.error_code, 0);
        assert_eq!(result.configs.len(), 17, "every key");
        assert_eq!(value(&result, "retention.ms"), ("604800000".into(), 5));
        assert_eq!(value(&result, "flush.messages"), ("1".into(), 4), "from the broker config");
    }
    assert_eq!(describe(&mut client, 4, 2, "missing", None).error_code, 3);
    let filtered = describe(&mut client, 4, 2, "c", Some(&["segment.ms", "nope"]));
    assert_eq!(filtered.configs.len(), 1);

    assert_eq!(alter(&mut client, 0, "c", &[("retention.ms", "1000")], true).0, 0);
    assert_eq!(value(&describe(&mut client, 4, 2, "c", None), "retention.ms").1, 5, "validate_only");
    assert_eq!(alter(&mut client, 2, "c", &[("retention.ms", "1000"), ("cleanup.policy", "compact")], false).0, 0);
    let (code, message) = alter(&mut client, 1, "c", &[("retention.ms", "soon")], false);
    assert_eq!(code, 40);
    assert!(message.contains("retention.ms"), "{message}");
    assert_eq!(alter(&mut client, 1, "missing", &[("retention.ms", "1")], false).0, 3);
    let described = describe(&mut client, 4, 2, "c", None);
    assert_eq!(value(&described, "retention.ms"), ("1000".into(), 1));
    let retention = described.configs.iter().find(|entry| entry.name.as_str() == "retention.ms").unwrap();
    let synonyms: Vec<(String, i8)> = retention.synonyms.iter().map(|s| (s.name.to_string(), s.source)).collect();
    assert_eq!(synonyms, vec![("retention.ms".into(), 1), ("log.retention.ms".into(), 5)]);

    // Incremental: SET, DELETE, APPEND to a list; APPEND to a non-list key is INVALID_CONFIG.
    let ops = [("segment.ms", 0, Some("60000")), ("retention.ms", 1, None), ("cleanup.policy", 2, Some("delete"))];
    assert_eq!(alter_incrementally(&mut client, 2, "c", &ops), 0);
    assert_eq!(alter_incrementally(&mut client, 2, "c", &[("retention.ms", 2, Some("5"))]), 40);
    assert_eq!(alter_incrementally(&mut client, 2, "c", &[("segment.ms", 0, Some("0"))]), 40);
    assert_eq!(alter_incrementally(&mut client, 4, "0", &[("log.retention.ms", 0, Some("5"))]), 42);
    let described = describe(&mut client, 4, 2, "c", None);
    assert_eq!(value(&described, "segment.ms"), ("60000".into(), 1));
    assert_eq!(value(&described, "retention.ms"), ("604800000".into(), 5));
    assert_eq!(value(&described, "cleanup.policy"), ("compact,delete".into(), 1));

    let brokers = describe(&mut client, 4, 4, "0", None);
    assert_eq!(brokers.error_code, 0);
    assert_eq!(value(&brokers, "log.flush.interval.messages"), ("1".into(), 4));
    assert_eq!(value(&brokers, "num.partitions"), ("1".into(), 5));
    assert_eq!(value(&brokers, "auto.create.topics.enable"), ("true".into(), 5));
    assert_eq!(describe(&mut client, 4, 4, "7", None).error_code, 42);

    broker.stop();
    broker.restart();
    let mut client = Client::connect(&broker);
    let described = describe(&mut client, 2, 2, "c", None);
    assert_eq!(value(&described, "segment.ms"), ("60000".into(), 1));
    assert_eq!(value(&described, "cleanup.policy"), ("compact,delete".into(), 1));
    // AlterConfigs replaces the whole set.
    assert_eq!(alter(&mut client, 2, "c", &[("max.message.bytes", "2000")], false).0, 0);
    let described = describe(&mut client, 4, 2, "c", None);
    assert_eq!(value(&described, "segment.ms"), ("604800000".into(), 5));
    assert_eq!(value(&described, "max.message.bytes"), ("2000".into(), 1));
}

#[test]
fn delete_records_and_log_dirs() {
    let broker = Broker::start(&["--cores", "2"]);
    let mut client = Client::connect(&broker);
    create(&mut client, "r", 2);
    produce(&mut client, "r", 0, 5);
    produce(&mut client, "r", 1, 2);
    let delete = |client: &mut Client, version: i16, parts: &[(i32, i64)]| {
        let partitions = parts
            .iter()
            .map(|(p, o)| DeleteRecordsPartition::default().with_partition_index(*p).with_offset(*o))
            .collect();
        let request = DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default().with_name(name("r")).with_partitions(partitions)]);
        let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, version, &request);
        response.topics[0].partitions.iter().map(|p| (p.error_code, p.low_watermark)).collect::<Vec<_>>()
    };
    assert_eq!(delete(&mut client, 0, &[(0, 3), (1, -1), (7, 0)]), vec![(0, 3), (0, 2), (3, -1)]);
    assert_eq!(delete(&mut client, 2, &[(0, 6), (0, -5), (0, 1)]), vec![(1, -1), (1, -1), (0, 3)]);
    let request = ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
        .with_name(name("r"))
        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-2)])]);
    let offsets: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 7, &request);
    assert_eq!(offsets.topics[0].partitions[0].offset, 3, "the log start offset moved");

    for version in 1..=4 {
        let dirs: DescribeLogDirsResponse =
            client.call(ApiKey::DescribeLogDirs, version, &DescribeLogDirsRequest::default().with_topics(None));
        let dir = &dirs.results[0];
        assert_eq!(dir.error_code, 0);
        assert_eq!(dir.topics.len(), 1);
        let mut sizes: Vec<(i32, i64)> =
            dir.topics[0].partitions.iter().map(|p| (p.partition_index, p.partition_size)).collect();
        sizes.sort_unstable();
        assert_eq!(sizes.len(), 2);
        assert!(sizes.iter().all(|(_, size)| *size > 0), "{sizes:?}");
        if version >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes);
        }
    }
    let one = DescribableLogDirTopic::default().with_topic(name("r")).with_partitions(vec![1, 9]);
    let unknown = DescribableLogDirTopic::default().with_topic(name("nope")).with_partitions(vec![0]);
    let request = DescribeLogDirsRequest::default().with_topics(Some(vec![one, unknown]));
    let dirs: DescribeLogDirsResponse = client.call(ApiKey::DescribeLogDirs, 2, &request);
    let listed: Vec<(String, Vec<i32>)> = dirs.results[0]
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions.iter().map(|p| p.partition_index).collect()))
        .collect();
    assert_eq!(listed, vec![("r".to_owned(), vec![1])]);
}

#[test]
fn kcat_idempotent_producer_round_trips() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let input: String = (0..100).map(|i| format!("k{i}:v{i}\n")).collect();
    let args = ["-P", "-b", &bootstrap, "-t", "idem", "-K:", "-X", "enable.idempotence=true", "-X", "debug=eos"];
    let output = kcat_with_input(&args, Some(input.as_bytes()));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kcat -P: {log}");
    assert!(log.contains("Acquired PID{Id:"), "no producer id acquired (InitProducerId):\n{log}");
    let output = kcat(&["-C", "-b", &bootstrap, "-t", "idem", "-o", "beginning", "-e", "-f", "%k=%s\n"]);
    assert!(output.status.success(), "kcat -C: {}", String::from_utf8_lossy(&output.stderr));
    let consumed = String::from_utf8_lossy(&output.stdout);
    let expected: String = (0..100).map(|i| format!("k{i}=v{i}\n")).collect();
    assert_eq!(consumed, expected);
    assert!(!broker.stderr().contains("closing connection"), "{}", broker.stderr());
}
