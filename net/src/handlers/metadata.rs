//! Metadata (key 3): the brokers, the controller, the cluster id and the topics a client asked about.
//!
//! Versions 0–12 (`versions.rs`). What the request means, per Kafka's `MetadataRequest.json` and
//! `KafkaApis.handleTopicMetadataRequest`:
//!
//! - **Which topics.** v0: an empty array means *all topics* (v0 has no null). v1+: a null array means
//!   all topics, an empty one means none. Duplicate names are answered once, in first-seen order.
//! - **Topic ids.** v10+ entries carry a topic id and a nullable name. Lookups by id are allowed from
//!   v12 only; in v10–11 a null name or a non-zero id makes the whole request invalid, and every
//!   requested topic is answered with `INVALID_REQUEST` (what Kafka's error response does). An
//!   unknown id is `UNKNOWN_TOPIC_ID` (100).
//! - **Auto-creation.** A named topic that does not exist is created (with `num_partitions`
//!   partitions and the broker's topic defaults, through the controller on shard 0) when the broker
//!   allows it (`auto_create_topics_enable`, default true) and the request does (always before v4;
//!   `allow_auto_topic_creation` from v4). The answer then describes the new topic, whose partitions
//!   are already open. An invalid name is `INVALID_TOPIC_EXCEPTION` (17) when creation was allowed,
//!   `UNKNOWN_TOPIC_OR_PARTITION` (3) otherwise, as in Kafka.
//!
//! Every partition is led by this broker, with replicas and ISR `[this node]`, leader epoch 0 and no
//! offline replicas. The answer lists this broker alone (rack null), the cluster id from
//! `meta.properties`, and this broker as controller. Authorized-operations fields keep their "not
//! provided" default (`i32::MIN`) until ACLs exist.
//!
//! The request's topics array is checked with [`crate::guard`] before the crate decodes it.

use std::collections::HashSet;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};
use spate_core::runtime::ShardId;

use super::{respond, HandlerError};
use crate::broker::BrokerInfo;
use crate::guard::check_array_prefix;
use crate::header::RequestHeader;
use crate::shard::controller::{CreateTopicsCall, NewTopic};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::topics::{validate_topic_name, TopicEntry, TopicTable};
use crate::shard::ShardContext;

/// First version whose topics array is compact (flexible versions).
const FIRST_FLEXIBLE_VERSION: i16 = 9;
/// First version whose topic entries carry a topic id (16 bytes).
const FIRST_TOPIC_ID_VERSION: i16 = 10;
/// First version that may look topics up by id.
const FIRST_ID_LOOKUP_VERSION: i16 = 12;
/// First version with `allow_auto_topic_creation`.
const FIRST_AUTO_CREATE_FLAG_VERSION: i16 = 4;

/// Answers one Metadata request.
///
/// # Panics
/// If `header` is not a Metadata header: dispatch sent the wrong request here.
pub async fn handle(
    context: &ShardContext,
    header: &RequestHeader,
    body: Bytes,
) -> Result<Option<Vec<Bytes>>, HandlerError> {
    assert_eq!(header.api_key, ApiKey::Metadata, "misrouted request");
    let version = header.api_version;
    let request = decode_request(version, body)?;
    let allow_creation =
        context.settings.auto_create && (version < FIRST_AUTO_CREATE_FLAG_VERSION || request.allow_auto_topic_creation);
    let mut failed = Vec::new();
    if allow_creation {
        let table = context.topics();
        let missing: Vec<String> = requested_names(&request)
            .filter(|name| table.get(name).is_none() && validate_topic_name(name).is_ok())
            .collect();
        if !missing.is_empty() {
            failed = auto_create(context, missing).await;
        }
    }
    let response = build_response(version, &request, &context.broker, &context.topics(), allow_creation, &failed);
    respond(header, &response)
}

/// Names the request asks for (not ids), deduplicated; none for "all topics".
fn requested_names(request: &MetadataRequest) -> impl Iterator<Item = String> + '_ {
    let mut seen = HashSet::new();
    request.topics.iter().flatten().filter_map(|topic| topic.name.as_ref()).filter_map(move |name| {
        let name = name.0.to_string();
        seen.insert(name.clone()).then_some(name)
    })
}

/// Creates `names` through the controller; returns the topics it could not create and why.
async fn auto_create(context: &ShardContext, names: Vec<String>) -> Vec<(String, i16)> {
    let topics = names
        .iter()
        .map(|name| NewTopic {
            name: name.clone(),
            num_partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: Vec::new(),
        })
        .collect();
    let call = CreateTopicsCall { topics, validate_only: false };
    match context.call(ShardId::new(0), ShardRequest::CreateTopics(call)).await {
        Ok(ShardReply::CreateTopics(outcomes)) => outcomes
            .into_iter()
            .filter_map(|outcome| match outcome.result {
                Ok(_) => None,
                Err((spate_core::ErrorCode::TopicAlreadyExists, _)) => None,
                Err((code, _)) => Some((outcome.name, code.code())),
            })
            .collect(),
        _ => names.into_iter().map(|name| (name, ResponseError::LeaderNotAvailable.code())).collect(),
    }
}

/// Decodes a request body at `version`, refusing impossible array lengths before the crate
/// allocates for them.
pub fn decode_request(version: i16, body: Bytes) -> Result<MetadataRequest, HandlerError> {
    let malformed =
        |reason: String| HandlerError::MalformedBody { api_key: ApiKey::Metadata, api_version: version, reason };
    // Least bytes per topic entry: a 2-byte string length (v0–8); a 1-byte compact length and a
    // 1-byte tag count (v9); plus a 16-byte topic id (v10+).
    let min_topic_bytes = match version {
        v if v >= FIRST_TOPIC_ID_VERSION => 18,
        _ => 2,
    };
    check_array_prefix(&body, version >= FIRST_FLEXIBLE_VERSION, min_topic_bytes)
        .map_err(|error| malformed(format!("topics: {error}")))?;
    crate::guard::check_body(&crate::guard::schemas::METADATA, version, &body)
        .map_err(|error| malformed(error.to_string()))?;
    let mut cursor = body;
    // Trailing bytes are ignored, as Kafka's generated parsers do.
    MetadataRequest::decode(&mut cursor, version).map_err(|error| malformed(error.to_string()))
}

/// The response to `request` at `version`, from `table`. `allow_creation`: whether unknown named
/// topics were eligible for auto-creation; `failed`: those whose creation failed, with the code.
pub fn build_response(
    version: i16,
    request: &MetadataRequest,
    broker: &BrokerInfo,
    table: &TopicTable,
    allow_creation: bool,
    failed: &[(String, i16)],
) -> MetadataResponse {
    let this_broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker.node_id))
        .with_host(StrBytes::from_string(broker.advertised_host.clone()))
        .with_port(i32::from(broker.advertised_port))
        .with_rack(None);
    MetadataResponse::default()
        .with_throttle_time_ms(0)
        .with_brokers(vec![this_broker])
        .with_cluster_id(Some(StrBytes::from_string(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topic_answers(version, request, broker.node_id, table, allow_creation, failed))
}

fn topic_answers(
    version: i16,
    request: &MetadataRequest,
    node_id: i32,
    table: &TopicTable,
    allow_creation: bool,
    failed: &[(String, i16)],
) -> Vec<MetadataResponseTopic> {
    let all = || table.iter().map(|topic| describe(version, topic, node_id)).collect();
    let Some(requested) = &request.topics else {
        return all(); // v1+ null: all topics.
    };
    if version == 0 && requested.is_empty() {
        return all(); // v0 empty: all topics.
    }
    let by_id_before_allowed = version < FIRST_ID_LOOKUP_VERSION
        && requested.iter().any(|topic| topic.name.is_none() || !topic.topic_id.is_nil());
    let mut seen_names = HashSet::new();
    let mut seen_ids = HashSet::new();
    let mut answers = Vec::new();
    for topic in requested {
        let answer = if by_id_before_allowed {
            let name = topic.name.clone().unwrap_or_else(|| TopicName(StrBytes::from_static_str("")));
            unknown(ResponseError::InvalidRequest.code()).with_name(Some(name))
        } else if let Some(name) = &topic.name {
            if !seen_names.insert(name.clone()) {
                continue;
            }
            match table.get(name.as_str()) {
                Some(entry) => describe(version, entry, node_id),
                None => {
                    let code = match failed.iter().find(|(failed_name, _)| failed_name == name.as_str()) {
                        Some((_, code)) => *code,
                        None if allow_creation && validate_topic_name(name).is_err() => {
                            ResponseError::InvalidTopicException.code()
                        }
                        None => ResponseError::UnknownTopicOrPartition.code(),
                    };
                    unknown(code).with_name(Some(name.clone()))
                }
            }
        } else {
            if !seen_ids.insert(topic.topic_id) {
                continue;
            }
            match table.by_id(&topic.topic_id) {
                Some(entry) => describe(version, entry, node_id),
                None => unknown(ResponseError::UnknownTopicId.code()).with_name(None).with_topic_id(topic.topic_id),
            }
        };
        answers.push(answer);
    }
    answers
}

/// A topic as this single node leads it.
fn describe(version: i16, topic: &TopicEntry, node_id: i32) -> MetadataResponseTopic {
    let partitions = (0..topic.partitions)
        .map(|index| {
            let partition = MetadataResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(index)
                .with_leader_id(BrokerId(node_id))
                .with_replica_nodes(vec![BrokerId(node_id)])
                .with_isr_nodes(vec![BrokerId(node_id)]);
            if version >= 7 {
                partition.with_leader_epoch(0)
            } else {
                partition
            }
        })
        .collect();
    let answer = MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_is_internal(topic.name == crate::group::OFFSETS_TOPIC)
        .with_partitions(partitions);
    if version >= FIRST_TOPIC_ID_VERSION {
        answer.with_topic_id(topic.id)
    } else {
        answer
    }
}

fn unknown(error_code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_error_code(error_code).with_is_internal(false).with_partitions(Vec::new())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;
    use uuid::Uuid;

    use super::*;

    fn build(version: i16, request: &MetadataRequest) -> MetadataResponse {
        build_response(version, request, &broker(), &TopicTable::default(), false, &[])
    }

    fn table() -> TopicTable {
        let entry = |name: &str, partitions, id| TopicEntry {
            name: name.into(),
            id: Uuid::from_u128(id),
            partitions,
            overrides: BTreeMap::new(),
        };
        TopicTable::default().with_topics([entry("orders", 3, 11), entry("audit", 1, 12)])
    }

    #[test]
    fn lists_topics_with_partitions_led_by_this_node() {
        let table = table();
        for version in 0..=12 {
            let all = if version == 0 { Some(Vec::new()) } else { None };
            let response =
                build_response(version, &MetadataRequest::default().with_topics(all), &broker(), &table, false, &[]);
            let names: Vec<_> = errors_and_names(&response);
            assert_eq!(names, vec![(0, Some("audit".into())), (0, Some("orders".into()))], "v{version}");
            let orders = &response.topics[1];
            assert_eq!(orders.partitions.len(), 3);
            for (index, partition) in orders.partitions.iter().enumerate() {
                assert_eq!(partition.partition_index, index as i32);
                assert_eq!(partition.leader_id, BrokerId(7));
                assert_eq!(partition.replica_nodes, vec![BrokerId(7)]);
                assert_eq!(partition.isr_nodes, vec![BrokerId(7)]);
                assert_eq!(partition.leader_epoch, if version >= 7 { 0 } else { -1 });
            }
            let expected_id = if version >= 10 { Uuid::from_u128(11) } else { Uuid::nil() };
            assert_eq!(orders.topic_id, expected_id);
            response.encode(&mut BytesMut::new(), version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
        // By id (v12), known and unknown.
        let by_id = MetadataRequestTopic::default().with_topic_id(Uuid::from_u128(12)).with_name(None);
        let unknown_id = MetadataRequestTopic::default().with_topic_id(Uuid::from_u128(99)).with_name(None);
        let request = MetadataRequest::default().with_topics(Some(vec![by_id, unknown_id]));
        let response = build_response(12, &request, &broker(), &table, false, &[]);
        assert_eq!(errors_and_names(&response), vec![(0, Some("audit".into())), (100, None)]);
    }

    #[test]
    fn invalid_names_are_invalid_topic_when_creation_was_allowed() {
        let request = MetadataRequest::default().with_topics(Some(vec![named("bad/name"), named("ok")]));
        let allowed = build_response(4, &request, &broker(), &TopicTable::default(), true, &[("ok".into(), 56)]);
        assert_eq!(errors_and_names(&allowed), vec![(17, Some("bad/name".into())), (56, Some("ok".into()))]);
        let refused = build_response(4, &request, &broker(), &TopicTable::default(), false, &[]);
        assert_eq!(errors_and_names(&refused), vec![(3, Some("bad/name".into())), (3, Some("ok".into()))]);
    }

    fn broker() -> BrokerInfo {
        BrokerInfo {
            node_id: 7,
            advertised_host: "broker.example".into(),
            advertised_port: 9092,
            cluster_id: "cluster-x".into(),
        }
    }

    fn named(name: &'static str) -> MetadataRequestTopic {
        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_static_str(name))))
    }

    fn errors_and_names(response: &MetadataResponse) -> Vec<(i16, Option<String>)> {
        response.topics.iter().map(|t| (t.error_code, t.name.as_ref().map(|n| n.0.to_string()))).collect()
    }

    #[test]
    fn describes_this_broker_as_the_whole_cluster() {
        for version in 0..=12 {
            let response = build(version, &MetadataRequest::default().with_topics(None));
            assert_eq!(response.brokers.len(), 1);
            let this = &response.brokers[0];
            assert_eq!(
                (this.node_id, this.host.as_str(), this.port, &this.rack),
                (BrokerId(7), "broker.example", 9092, &None)
            );
            assert_eq!(response.controller_id, BrokerId(7));
            assert_eq!(response.cluster_id.as_deref(), Some("cluster-x"));
            assert!(response.topics.is_empty());
            let mut out = BytesMut::new();
            response.encode(&mut out, version).unwrap_or_else(|e| panic!("v{version}: {e}"));
        }
    }

    #[test]
    fn all_topics_of_an_empty_table_and_v0_empty_means_all() {
        let empty = MetadataRequest::default().with_topics(Some(Vec::new()));
        assert!(build(0, &empty).topics.is_empty(), "v0 empty = all topics");
        assert!(build(1, &empty).topics.is_empty(), "v1 empty = no topics");
    }

    #[test]
    fn named_topics_are_unknown_and_deduplicated() {
        let request = MetadataRequest::default().with_topics(Some(vec![named("a"), named("b"), named("a")]));
        for version in [0, 1, 4, 9, 12] {
            let response = build(version, &request);
            assert_eq!(errors_and_names(&response), vec![(3, Some("a".into())), (3, Some("b".into()))], "v{version}");
            let mut out = BytesMut::new();
            response.encode(&mut out, version).unwrap();
        }
    }

    #[test]
    fn topic_ids_are_unknown_from_v12_and_invalid_before() {
        let id = Uuid::from_u128(0x1234);
        let by_id = MetadataRequestTopic::default().with_topic_id(id).with_name(None);
        let request = MetadataRequest::default().with_topics(Some(vec![by_id, named("a")]));

        let v12 = build(12, &request);
        assert_eq!(errors_and_names(&v12), vec![(100, None), (3, Some("a".into()))]);
        assert_eq!(v12.topics[0].topic_id, id);
        v12.encode(&mut BytesMut::new(), 12).unwrap();

        for version in [10, 11] {
            let response = build(version, &request);
            assert_eq!(errors_and_names(&response), vec![(42, Some(String::new())), (42, Some("a".into()))]);
            response.encode(&mut BytesMut::new(), version).unwrap();
        }
    }

    #[test]
    fn impossible_topic_count_is_refused_before_decoding() {
        for version in 0..=12 {
            let body = if version >= FIRST_FLEXIBLE_VERSION {
                Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x07])
            } else {
                Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff])
            };
            let error = decode_request(version, body).unwrap_err();
            assert!(matches!(error, HandlerError::MalformedBody { api_version, .. } if api_version == version));
        }
        // A five-byte varint with the continuation bit still set: Kafka rejects it, kafka-protocol
        // reads it as u32::MAX. The guard must read it the crate's way.
        for version in 9..=12 {
            assert!(decode_request(version, Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff])).is_err());
        }
        // The exact body from the issue, at every version: an error, never an abort.
        for version in 0..=12 {
            assert!(decode_request(version, Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff])).is_err());
        }
    }

    #[test]
    fn decodes_what_clients_send() {
        for version in 0..=12 {
            // allow_auto_topic_creation exists from v4; before that it must keep its default.
            let request = MetadataRequest::default()
                .with_topics(Some(vec![named("t1")]))
                .with_allow_auto_topic_creation(version < 4);
            let mut body = BytesMut::new();
            request.encode(&mut body, version).unwrap();
            let decoded = decode_request(version, body.freeze()).unwrap();
            assert_eq!(decoded.topics.as_ref().map(Vec::len), Some(1), "v{version}");
        }
    }
}
