//! The request layouts [`super::walk`] checks, transcribed from Kafka's message JSON (and checked
//! against `kafka-protocol`'s decoders by the round-trip tests below: for every handled version, the
//! walk of a crate-encoded body must consume exactly the bytes the crate wrote).

use super::walk::{always, between, since, Field, Kind, Schema};

const PRODUCE_PARTITION: &[Field] = &[always("index", Kind::I32), always("records", Kind::Bytes)];
const PRODUCE_TOPIC: &[Field] = &[
    between("name", Kind::Str, 0, 12),
    since("topic_id", Kind::Uuid, 13),
    always("partition_data", Kind::Array(PRODUCE_PARTITION)),
];
/// ProduceRequest v3–13.
pub const PRODUCE: Schema = Schema {
    fields: &[
        since("transactional_id", Kind::Str, 3),
        always("acks", Kind::I16),
        always("timeout_ms", Kind::I32),
        always("topic_data", Kind::Array(PRODUCE_TOPIC)),
    ],
    first_flexible_version: 9,
};

const FETCH_PARTITION: &[Field] = &[
    always("partition", Kind::I32),
    since("current_leader_epoch", Kind::I32, 9),
    always("fetch_offset", Kind::I64),
    since("last_fetched_epoch", Kind::I32, 12),
    since("log_start_offset", Kind::I64, 5),
    always("partition_max_bytes", Kind::I32),
];
const FETCH_TOPIC: &[Field] = &[
    between("topic", Kind::Str, 0, 12),
    since("topic_id", Kind::Uuid, 13),
    always("partitions", Kind::Array(FETCH_PARTITION)),
];
const FORGOTTEN_TOPIC: &[Field] =
    &[between("topic", Kind::Str, 7, 12), since("topic_id", Kind::Uuid, 13), since("partitions", Kind::Int32Array, 7)];
/// FetchRequest v4–18.
pub const FETCH: Schema = Schema {
    fields: &[
        between("replica_id", Kind::I32, 0, 14),
        always("max_wait_ms", Kind::I32),
        always("min_bytes", Kind::I32),
        since("max_bytes", Kind::I32, 3),
        since("isolation_level", Kind::I8, 4),
        since("session_id", Kind::I32, 7),
        since("session_epoch", Kind::I32, 7),
        always("topics", Kind::Array(FETCH_TOPIC)),
        since("forgotten_topics_data", Kind::Array(FORGOTTEN_TOPIC), 7),
        since("rack_id", Kind::Str, 11),
    ],
    first_flexible_version: 12,
};

const LIST_OFFSETS_PARTITION: &[Field] = &[
    always("partition_index", Kind::I32),
    since("current_leader_epoch", Kind::I32, 4),
    always("timestamp", Kind::I64),
];
const LIST_OFFSETS_TOPIC: &[Field] =
    &[always("name", Kind::Str), always("partitions", Kind::Array(LIST_OFFSETS_PARTITION))];
/// ListOffsetsRequest v1–10.
pub const LIST_OFFSETS: Schema = Schema {
    fields: &[
        always("replica_id", Kind::I32),
        since("isolation_level", Kind::I8, 2),
        always("topics", Kind::Array(LIST_OFFSETS_TOPIC)),
        since("timeout_ms", Kind::I32, 10),
    ],
    first_flexible_version: 6,
};

const CREATABLE_ASSIGNMENT: &[Field] = &[always("partition_index", Kind::I32), always("broker_ids", Kind::Int32Array)];
const CREATABLE_CONFIG: &[Field] = &[always("name", Kind::Str), always("value", Kind::Str)];
const CREATABLE_TOPIC: &[Field] = &[
    always("name", Kind::Str),
    always("num_partitions", Kind::I32),
    always("replication_factor", Kind::I16),
    always("assignments", Kind::Array(CREATABLE_ASSIGNMENT)),
    always("configs", Kind::Array(CREATABLE_CONFIG)),
];
/// CreateTopicsRequest v2–7.
pub const CREATE_TOPICS: Schema = Schema {
    fields: &[
        always("topics", Kind::Array(CREATABLE_TOPIC)),
        always("timeout_ms", Kind::I32),
        since("validate_only", Kind::I8, 1),
    ],
    first_flexible_version: 5,
};

const METADATA_TOPIC: &[Field] = &[since("topic_id", Kind::Uuid, 10), always("name", Kind::Str)];
/// MetadataRequest v0–13.
pub const METADATA: Schema = Schema {
    fields: &[
        always("topics", Kind::Array(METADATA_TOPIC)),
        since("allow_auto_topic_creation", Kind::I8, 4),
        between("include_cluster_authorized_operations", Kind::I8, 8, 10),
        since("include_topic_authorized_operations", Kind::I8, 8),
    ],
    first_flexible_version: 9,
};

/// InitProducerIdRequest v0–5.
pub const INIT_PRODUCER_ID: Schema = Schema {
    fields: &[
        always("transactional_id", Kind::Str),
        always("transaction_timeout_ms", Kind::I32),
        since("producer_id", Kind::I64, 3),
        since("producer_epoch", Kind::I16, 3),
    ],
    first_flexible_version: 2,
};

/// FindCoordinatorRequest v0–6.
pub const FIND_COORDINATOR: Schema = Schema {
    fields: &[
        between("key", Kind::Str, 0, 3),
        since("key_type", Kind::I8, 1),
        since("coordinator_keys", Kind::StrArray, 4),
    ],
    first_flexible_version: 3,
};

/// DescribeClusterRequest v0–2.
pub const DESCRIBE_CLUSTER: Schema = Schema {
    fields: &[
        always("include_cluster_authorized_operations", Kind::I8),
        since("endpoint_type", Kind::I8, 1),
        since("include_fenced_brokers", Kind::I8, 2),
    ],
    first_flexible_version: 0,
};

const DELETE_TOPIC_STATE: &[Field] = &[always("name", Kind::Str), always("topic_id", Kind::Uuid)];
/// DeleteTopicsRequest v1–6.
pub const DELETE_TOPICS: Schema = Schema {
    fields: &[
        since("topics", Kind::Array(DELETE_TOPIC_STATE), 6),
        between("topic_names", Kind::StrArray, 0, 5),
        always("timeout_ms", Kind::I32),
    ],
    first_flexible_version: 4,
};

const PARTITIONS_ASSIGNMENT: &[Field] = &[always("broker_ids", Kind::Int32Array)];
const PARTITIONS_TOPIC: &[Field] =
    &[always("name", Kind::Str), always("count", Kind::I32), always("assignments", Kind::Array(PARTITIONS_ASSIGNMENT))];
/// CreatePartitionsRequest v0–3.
pub const CREATE_PARTITIONS: Schema = Schema {
    fields: &[
        always("topics", Kind::Array(PARTITIONS_TOPIC)),
        always("timeout_ms", Kind::I32),
        always("validate_only", Kind::I8),
    ],
    first_flexible_version: 2,
};

const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
    always("resource_type", Kind::I8),
    always("resource_name", Kind::Str),
    always("configuration_keys", Kind::StrArray),
];
/// DescribeConfigsRequest v0–4.
pub const DESCRIBE_CONFIGS: Schema = Schema {
    fields: &[
        always("resources", Kind::Array(DESCRIBE_CONFIGS_RESOURCE)),
        since("include_synonyms", Kind::I8, 1),
        since("include_documentation", Kind::I8, 3),
    ],
    first_flexible_version: 4,
};

const ALTERABLE_CONFIG: &[Field] = &[always("name", Kind::Str), always("value", Kind::Str)];
const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    always("resource_type", Kind::I8),
    always("resource_name", Kind::Str),
    always("configs", Kind::Array(ALTERABLE_CONFIG)),
];
/// AlterConfigsRequest v0–2.
pub const ALTER_CONFIGS: Schema = Schema {
    fields: &[always("resources", Kind::Array(ALTER_CONFIGS_RESOURCE)), always("validate_only", Kind::I8)],
    first_flexible_version: 2,
};

const INCREMENTAL_CONFIG: &[Field] =
    &[always("name", Kind::Str), always("config_operation", Kind::I8), always("value", Kind::Str)];
const INCREMENTAL_RESOURCE: &[Field] = &[
    always("resource_type", Kind::I8),
    always("resource_name", Kind::Str),
    always("configs", Kind::Array(INCREMENTAL_CONFIG)),
];
/// IncrementalAlterConfigsRequest v0–1.
pub const INCREMENTAL_ALTER_CONFIGS: Schema = Schema {
    fields: &[always("resources", Kind::Array(INCREMENTAL_RESOURCE)), always("validate_only", Kind::I8)],
    first_flexible_version: 1,
};

const LOG_DIR_TOPIC: &[Field] = &[always("topic", Kind::Str), always("partitions", Kind::Int32Array)];
/// DescribeLogDirsRequest v0–4.
pub const DESCRIBE_LOG_DIRS: Schema =
    Schema { fields: &[always("topics", Kind::Array(LOG_DIR_TOPIC))], first_flexible_version: 2 };

const DELETE_RECORDS_PARTITION: &[Field] = &[always("partition_index", Kind::I32), always("offset", Kind::I64)];
const DELETE_RECORDS_TOPIC: &[Field] =
    &[always("name", Kind::Str), always("partitions", Kind::Array(DELETE_RECORDS_PARTITION))];
/// DeleteRecordsRequest v0–2.
pub const DELETE_RECORDS: Schema = Schema {
    fields: &[always("topics", Kind::Array(DELETE_RECORDS_TOPIC)), always("timeout_ms", Kind::I32)],
    first_flexible_version: 2,
};

const JOIN_GROUP_PROTOCOL: &[Field] = &[always("name", Kind::Str), always("metadata", Kind::Bytes)];
/// JoinGroupRequest v0–9.
pub const JOIN_GROUP: Schema = Schema {
    fields: &[
        always("group_id", Kind::Str),
        always("session_timeout_ms", Kind::I32),
        since("rebalance_timeout_ms", Kind::I32, 1),
        always("member_id", Kind::Str),
        since("group_instance_id", Kind::Str, 5),
        always("protocol_type", Kind::Str),
        always("protocols", Kind::Array(JOIN_GROUP_PROTOCOL)),
        since("reason", Kind::Str, 8),
    ],
    first_flexible_version: 6,
};

const SYNC_GROUP_ASSIGNMENT: &[Field] = &[always("member_id", Kind::Str), always("assignment", Kind::Bytes)];
/// SyncGroupRequest v0–5.
pub const SYNC_GROUP: Schema = Schema {
    fields: &[
        always("group_id", Kind::Str),
        always("generation_id", Kind::I32),
        always("member_id", Kind::Str),
        since("group_instance_id", Kind::Str, 3),
        since("protocol_type", Kind::Str, 5),
        since("protocol_name", Kind::Str, 5),
        always("assignments", Kind::Array(SYNC_GROUP_ASSIGNMENT)),
    ],
    first_flexible_version: 4,
};

/// HeartbeatRequest v0–4.
pub const HEARTBEAT: Schema = Schema {
    fields: &[
        always("group_id", Kind::Str),
        always("generation_id", Kind::I32),
        always("member_id", Kind::Str),
        since("group_instance_id", Kind::Str, 3),
    ],
    first_flexible_version: 4,
};

const LEAVE_GROUP_MEMBER: &[Field] =
    &[always("member_id", Kind::Str), always("group_instance_id", Kind::Str), since("reason", Kind::Str, 5)];
/// LeaveGroupRequest v0–5.
pub const LEAVE_GROUP: Schema = Schema {
    fields: &[
        always("group_id", Kind::Str),
        between("member_id", Kind::Str, 0, 2),
        since("members", Kind::Array(LEAVE_GROUP_MEMBER), 3),
    ],
    first_flexible_version: 4,
};

const OFFSET_COMMIT_PARTITION: &[Field] = &[
    always("partition_index", Kind::I32),
    always("committed_offset", Kind::I64),
    since("committed_leader_epoch", Kind::I32, 6),
    always("committed_metadata", Kind::Str),
];
const OFFSET_COMMIT_TOPIC: &[Field] =
    &[always("name", Kind::Str), always("partitions", Kind::Array(OFFSET_COMMIT_PARTITION))];
/// OffsetCommitRequest v2–9.
pub const OFFSET_COMMIT: Schema = Schema {
    fields: &[
        always("group_id", Kind::Str),
        always("generation_id_or_member_epoch", Kind::I32),
        always("member_id", Kind::Str),
        since("group_instance_id", Kind::Str, 7),
        between("retention_time_ms", Kind::I64, 2, 4),
        always("topics", Kind::Array(OFFSET_COMMIT_TOPIC)),
    ],
    first_flexible_version: 8,
};

const OFFSET_FETCH_TOPIC: &[Field] = &[always("name", Kind::Str), always("partition_indexes", Kind::Int32Array)];
const OFFSET_FETCH_GROUP: &[Field] = &[
    always("group_id", Kind::Str),
    since("member_id", Kind::Str, 9),
    since("member_epoch", Kind::I32, 9),
    always("topics", Kind::Array(OFFSET_FETCH_TOPIC)),
];
/// OffsetFetchRequest v1–9.
pub const OFFSET_FETCH: Schema = Schema {
    fields: &[
        between("group_id", Kind::Str, 0, 7),
        between("topics", Kind::Array(OFFSET_FETCH_TOPIC), 0, 7),
        since("groups", Kind::Array(OFFSET_FETCH_GROUP), 8),
        since("require_stable", Kind::I8, 7),
    ],
    first_flexible_version: 6,
};

/// ListGroupsRequest v0–5.
pub const LIST_GROUPS: Schema = Schema {
    fields: &[since("states_filter", Kind::StrArray, 4), since("types_filter", Kind::StrArray, 5)],
    first_flexible_version: 3,
};

/// DescribeGroupsRequest v0–6.
pub const DESCRIBE_GROUPS: Schema = Schema {
    fields: &[always("groups", Kind::StrArray), since("include_authorized_operations", Kind::I8, 3)],
    first_flexible_version: 5,
};

/// DeleteGroupsRequest v0–2.
pub const DELETE_GROUPS: Schema =
    Schema { fields: &[always("groups_names", Kind::StrArray)], first_flexible_version: 2 };

const OFFSET_DELETE_PARTITION: &[Field] = &[always("partition_index", Kind::I32)];
const OFFSET_DELETE_TOPIC: &[Field] =
    &[always("name", Kind::Str), always("partitions", Kind::Array(OFFSET_DELETE_PARTITION))];
/// OffsetDeleteRequest v0 (no flexible version).
pub const OFFSET_DELETE: Schema = Schema {
    fields: &[always("group_id", Kind::Str), always("topics", Kind::Array(OFFSET_DELETE_TOPIC))],
    first_flexible_version: i16::MAX,
};

const CONSUMER_GROUP_HEARTBEAT_TOPIC: &[Field] =
    &[always("topic_id", Kind::Uuid), always("partitions", Kind::Int32Array)];
/// ConsumerGroupHeartbeatRequest v0–1 (flexible from v0).
pub const CONSUMER_GROUP_HEARTBEAT: Schema = Schema {
    fields: &[
        always("group_id", Kind::Str),
        always("member_id", Kind::Str),
        always("member_epoch", Kind::I32),
        always("instance_id", Kind::Str),
        always("rack_id", Kind::Str),
        always("rebalance_timeout_ms", Kind::I32),
        always("subscribed_topic_names", Kind::StrArray),
        since("subscribed_topic_regex", Kind::Str, 1),
        always("server_assignor", Kind::Str),
        always("topic_partitions", Kind::Array(CONSUMER_GROUP_HEARTBEAT_TOPIC)),
    ],
    first_flexible_version: 0,
};

/// ConsumerGroupDescribeRequest v0–1 (flexible from v0).
pub const CONSUMER_GROUP_DESCRIBE: Schema = Schema {
    fields: &[always("group_ids", Kind::StrArray), always("include_authorized_operations", Kind::I8)],
    first_flexible_version: 0,
};

#[cfg(test)]
#[path = "group_schema_tests.rs"]
mod group_tests;

#[cfg(test)]
#[path = "admin_schema_tests.rs"]
mod admin_tests;

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
    };
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use uuid::Uuid;

    use super::super::walk::{check_body, BodyError};
    use super::*;

    fn name(text: &'static str) -> TopicName {
        TopicName(StrBytes::from_static_str(text))
    }

    pub(super) fn text(value: &'static str) -> StrBytes {
        StrBytes::from_static_str(value)
    }

    pub(super) fn encode(message: &impl Encodable, version: i16) -> Vec<u8> {
        let mut out = BytesMut::new();
        message.encode(&mut out, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        out.to_vec()
    }

    /// The walk consumes exactly the crate's encoding, and refuses every proper prefix of it.
    pub(super) fn assert_walks(schema: &Schema, version: i16, body: &[u8]) {
        assert_eq!(check_body(schema, version, body), Ok(body.len()), "v{version}");
        for cut in [0, 1, body.len() / 2, body.len() - 1] {
            if cut < body.len() {
                assert!(check_body(schema, version, &body[..cut]).is_err(), "v{version} cut at {cut}");
            }
        }
    }

    /// [`assert_walks`] on the crate's encoding of `message`.
    pub(super) fn assert_encoded_walks(schema: &Schema, version: i16, message: &impl Encodable) {
        assert_walks(schema, version, &encode(message, version));
    }

    #[test]
    fn produce_matches_the_crate() {
        for version in 3..=13 {
            let partition =
                PartitionProduceData::default().with_index(2).with_records(Some(Bytes::from_static(b"abc")));
            let mut topic = TopicProduceData::default().with_partition_data(vec![partition.clone(), partition]);
            if version <= 12 {
                topic = topic.with_name(name("t"));
            } else {
                topic = topic.with_topic_id(Uuid::from_u128(7));
            }
            let request = ProduceRequest::default()
                .with_transactional_id(Some(StrBytes::from_static_str("tx").into()))
                .with_acks(-1)
                .with_topic_data(vec![topic.clone(), topic]);
            assert_walks(&PRODUCE, version, &encode(&request, version));
        }
    }

    #[test]
    fn fetch_matches_the_crate() {
        for version in 4..=18 {
            let partition =
                FetchPartition::default().with_partition(1).with_fetch_offset(5).with_partition_max_bytes(9);
            let mut topic = FetchTopic::default().with_partitions(vec![partition.clone(), partition]);
            let mut forgotten = ForgottenTopic::default();
            if version >= 7 {
                forgotten = forgotten.with_partitions(vec![1, 2, 3]);
            }
            if version <= 12 {
                topic = topic.with_topic(name("t"));
                if version >= 7 {
                    forgotten = forgotten.with_topic(name("f"));
                }
            } else {
                topic = topic.with_topic_id(Uuid::from_u128(3));
                forgotten = forgotten.with_topic_id(Uuid::from_u128(4));
            }
            let mut request = FetchRequest::default().with_max_wait_ms(500).with_topics(vec![topic]);
            if version >= 7 {
                request = request.with_forgotten_topics_data(vec![forgotten]);
            }
            if version >= 11 {
                request = request.with_rack_id(StrBytes::from_static_str("rack"));
            }
            if version >= 12 {
                request = request.with_cluster_id(Some(StrBytes::from_static_str("cluster")));
            }
            if version >= 15 {
                request = request.with_replica_id(BrokerId(-1));
            }
            assert_walks(&FETCH, version, &encode(&request, version));
        }
    }

    #[test]
    fn list_offsets_matches_the_crate() {
        for version in 1..=10 {
            let partition = ListOffsetsPartition::default().with_partition_index(3).with_timestamp(-1);
            let topic =
                ListOffsetsTopic::default().with_name(name("t")).with_partitions(vec![partition.clone(), partition]);
            let request = ListOffsetsRequest::default().with_topics(vec![topic.clone(), topic]);
            assert_walks(&LIST_OFFSETS, version, &encode(&request, version));
        }
    }

    #[test]
    fn create_topics_matches_the_crate() {
        for version in 2..=7 {
            let topic = CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_assignments(vec![CreatableReplicaAssignment::default().with_broker_ids(vec![BrokerId(0)])])
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_value(Some(StrBytes::from_static_str("1"))),
                    CreatableTopicConfig::default().with_name(StrBytes::from_static_str("x")).with_value(None),
                ]);
            let request =
                CreateTopicsRequest::default().with_topics(vec![topic.clone(), topic]).with_validate_only(true);
            assert_walks(&CREATE_TOPICS, version, &encode(&request, version));
        }
    }

    #[test]
    fn metadata_matches_the_crate() {
        for version in 0..=13 {
            let topic = MetadataRequestTopic::default().with_name(Some(name("t")));
            let mut request = MetadataRequest::default().with_topics(Some(vec![topic.clone(), topic]));
            request.allow_auto_topic_creation = version < 4;
            assert_walks(&METADATA, version, &encode(&request, version));
        }
    }

    #[test]
    fn nested_lies_are_caught() {
        // Produce v3: null transactional id, acks, timeout, one topic "t" whose partitions array
        // claims 2^31 - 1 entries.
        let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't'];
        body.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        let error = check_body(&PRODUCE, 3, &body).unwrap_err();
        assert!(matches!(error, BodyError::ArrayTooLong { field: "partition_data", .. }), "{error}");
        assert!(error.to_string().starts_with("partition_data: array claims 2147483647 elements"), "{error}");
        // The same in a flexible version, with a varint the crate reads as u32::MAX.
        let body = [0x00, 0, 1, 0, 0, 0, 0, 0x02, 0x02, b't', 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(check_body(&PRODUCE, 9, &body), Err(BodyError::ArrayTooLong { .. })));
        // A tagged-field count no body could hold.
        let body = [0x00, 0, 1, 0, 0, 0, 0, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(check_body(&PRODUCE, 9, &body), Err(BodyError::ArrayTooLong { field: "request", .. })));
        // CreateTopics: one topic whose broker_ids claim a million entries.
        let mut body = vec![0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        body.extend_from_slice(&1_000_000i32.to_be_bytes());
        assert!(matches!(
            check_body(&CREATE_TOPICS, 2, &body),
            Err(BodyError::ArrayTooLong { field: "broker_ids", .. })
        ));
        // Records whose length runs past the body.
        let body = [0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        assert_eq!(check_body(&PRODUCE, 3, &body), Err(BodyError::Truncated { field: "records" }));
    }
}
