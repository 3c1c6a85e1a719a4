//! Round trips of the admin API schemas against `kafka-protocol`'s encoders: for every version the
//! handlers accept, the walk of a crate-encoded body consumes exactly the bytes the crate wrote.

use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::*;
use uuid::Uuid;

use super::super::walk::{check_body, BodyError};
use super::tests::{assert_encoded_walks, text};
use super::*;

#[test]
fn init_producer_id_and_find_coordinator() {
    for version in 0..=5 {
        let mut request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(text("tx"))))
            .with_transaction_timeout_ms(60_000);
        if version >= 3 {
            request = request.with_producer_id(ProducerId(7)).with_producer_epoch(2);
        }
        assert_encoded_walks(&INIT_PRODUCER_ID, version, &request);
    }
    for version in 0..=6 {
        let mut request = FindCoordinatorRequest::default();
        if version <= 3 {
            request = request.with_key(text("group"));
        } else {
            request = request.with_coordinator_keys(vec![text("a"), text("bc")]);
        }
        if version >= 1 {
            request = request.with_key_type(1);
        }
        assert_encoded_walks(&FIND_COORDINATOR, version, &request);
    }
    for version in 0..=2 {
        let mut request = DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        if version >= 1 {
            request = request.with_endpoint_type(1);
        }
        assert_encoded_walks(&DESCRIBE_CLUSTER, version, &request);
    }
}

#[test]
fn topic_admin() {
    for version in 1..=6 {
        let mut request = DeleteTopicsRequest::default().with_timeout_ms(1000);
        if version >= 6 {
            let by_name = DeleteTopicState::default().with_name(Some(TopicName(text("t"))));
            let by_id = DeleteTopicState::default().with_topic_id(Uuid::from_u128(9));
            request = request.with_topics(vec![by_name, by_id]);
        } else {
            request = request.with_topic_names(vec![TopicName(text("t")), TopicName(text("u"))]);
        }
        assert_encoded_walks(&DELETE_TOPICS, version, &request);
    }
    for version in 0..=3 {
        let assignment = CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(0)]);
        let with = CreatePartitionsTopic::default()
            .with_name(TopicName(text("t")))
            .with_count(3)
            .with_assignments(Some(vec![assignment.clone(), assignment]));
        let without = CreatePartitionsTopic::default().with_name(TopicName(text("u"))).with_count(2);
        let request = CreatePartitionsRequest::default().with_topics(vec![with, without]).with_validate_only(true);
        assert_encoded_walks(&CREATE_PARTITIONS, version, &request);
    }
    for version in 0..=2 {
        let partition = DeleteRecordsPartition::default().with_partition_index(1).with_offset(5);
        let topic = DeleteRecordsTopic::default()
            .with_name(TopicName(text("t")))
            .with_partitions(vec![partition.clone(), partition]);
        assert_encoded_walks(&DELETE_RECORDS, version, &DeleteRecordsRequest::default().with_topics(vec![topic]));
    }
    for version in 1..=4 {
        let topic = DescribableLogDirTopic::default().with_topic(TopicName(text("t"))).with_partitions(vec![0, 1]);
        assert_encoded_walks(
            &DESCRIBE_LOG_DIRS,
            version,
            &DescribeLogDirsRequest::default().with_topics(Some(vec![topic])),
        );
        assert_encoded_walks(&DESCRIBE_LOG_DIRS, version, &DescribeLogDirsRequest::default().with_topics(None));
    }
}

#[test]
fn configs() {
    for version in 1..=4 {
        let all = DescribeConfigsResource::default().with_resource_type(2).with_resource_name(text("t"));
        let some = all.clone().with_configuration_keys(Some(vec![text("retention.ms"), text("x")]));
        let mut request = DescribeConfigsRequest::default().with_resources(vec![all, some]).with_include_synonyms(true);
        if version >= 3 {
            request = request.with_include_documentation(true);
        }
        assert_encoded_walks(&DESCRIBE_CONFIGS, version, &request);
    }
    for version in 0..=2 {
        let config = AlterableConfig::default().with_name(text("retention.ms")).with_value(Some(text("1")));
        let resource = AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("t"))
            .with_configs(vec![config, AlterableConfig::default().with_name(text("x"))]);
        let request = AlterConfigsRequest::default().with_resources(vec![resource]).with_validate_only(true);
        assert_encoded_walks(&ALTER_CONFIGS, version, &request);
    }
    for version in 0..=1 {
        let config = incremental::AlterableConfig::default()
            .with_name(text("cleanup.policy"))
            .with_config_operation(2)
            .with_value(Some(text("compact")));
        let resource = incremental::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("t"))
            .with_configs(vec![config.clone(), config]);
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
        assert_encoded_walks(&INCREMENTAL_ALTER_CONFIGS, version, &request);
    }
}

#[test]
fn string_arrays_that_lie_are_caught() {
    // DeleteTopics v1: topic_names claims a million names in 4 bytes.
    let mut body = 1_000_000i32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0]);
    assert!(matches!(check_body(&DELETE_TOPICS, 1, &body), Err(BodyError::ArrayTooLong { field: "topic_names", .. })));
}
