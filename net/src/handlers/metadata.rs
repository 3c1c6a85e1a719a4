//! Metadata (key 3): the brokers, the controller, the cluster id and the topics a client asked about.
//!
//! Versions 0–12 (`versions.rs`). What the request means, per Kafka's `MetadataRequest.json` and
//! `KafkaApis.handleTopicMetadataRequest`:
//!
//! - **Which topics.** v0: an empty array means *all topics* (v0 has no null). v1+: a null array means
//!   all topics, an empty one means none. Duplicate names are answered once, in first-seen order.
//! - **Topic ids.** v10+ entries carry a topic id and a nullable name. Lookups by id are allowed from
//!   v12 only; in v10–11 a null name or a non-zero id makes the whole request invalid, and every
//!   requested topic is answered with `INVALID_REQUEST` (what Kafka's error response does).
//! - **Auto-creation** (`allow_auto_topic_creation`, v4+) is ignored in this milestone: no topic
//!   exists yet, so every named topic gets `UNKNOWN_TOPIC_OR_PARTITION` (3), every id
//!   `UNKNOWN_TOPIC_ID` (100), and "all topics" is an empty list.
//!
//! The answer always lists this broker alone (rack null), the cluster id from `meta.properties`, and
//! this broker as controller. Authorized-operations fields keep their "not provided" default
//! (`i32::MIN`) until ACLs exist.
//!
//! The request's topics array is checked with [`crate::guard`] before the crate decodes it.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::HandlerError;
use crate::broker::BrokerInfo;
use crate::guard::check_array_prefix;
use crate::header::RequestHeader;
use crate::response::encode_response;

/// First version whose topics array is compact (flexible versions).
const FIRST_FLEXIBLE_VERSION: i16 = 9;
/// First version whose topic entries carry a topic id (16 bytes).
const FIRST_TOPIC_ID_VERSION: i16 = 10;
/// First version that may look topics up by id.
const FIRST_ID_LOOKUP_VERSION: i16 = 12;

/// Answers one Metadata request, appending the response frame to `out`.
///
/// # Panics
/// If `header` is not a Metadata header: dispatch sent the wrong request here.
pub fn handle(
    header: &RequestHeader,
    body: Bytes,
    broker: &BrokerInfo,
    out: &mut BytesMut,
) -> Result<(), HandlerError> {
    assert_eq!(header.api_key, ApiKey::Metadata, "misrouted request");
    let version = header.api_version;
    let request = decode_request(version, body)?;
    let response = build_response(version, &request, broker);
    encode_response(out, ApiKey::Metadata, version, header.correlation_id, &response)?;
    Ok(())
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
    let mut cursor = body;
    // Trailing bytes are ignored, as Kafka's generated parsers do.
    MetadataRequest::decode(&mut cursor, version).map_err(|error| malformed(error.to_string()))
}

/// The response to `request` at `version`.
pub fn build_response(version: i16, request: &MetadataRequest, broker: &BrokerInfo) -> MetadataResponse {
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
        .with_topics(topic_answers(version, request))
}

fn topic_answers(version: i16, request: &MetadataRequest) -> Vec<MetadataResponseTopic> {
    let Some(requested) = &request.topics else {
        return Vec::new(); // v1+ null: all topics, and there are none.
    };
    if version == 0 && requested.is_empty() {
        return Vec::new(); // v0 empty: all topics.
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
            unknown(ResponseError::UnknownTopicOrPartition.code()).with_name(Some(name.clone()))
        } else {
            if !seen_ids.insert(topic.topic_id) {
                continue;
            }
            unknown(ResponseError::UnknownTopicId.code()).with_name(None).with_topic_id(topic.topic_id)
        };
        answers.push(answer);
    }
    answers
}

fn unknown(error_code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_error_code(error_code).with_is_internal(false).with_partitions(Vec::new())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::protocol::Encodable;
    use uuid::Uuid;

    use super::*;

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
            let response = build_response(version, &MetadataRequest::default().with_topics(None), &broker());
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
    fn all_topics_is_empty_for_now_and_v0_empty_means_all() {
        let empty = MetadataRequest::default().with_topics(Some(Vec::new()));
        assert!(build_response(0, &empty, &broker()).topics.is_empty(), "v0 empty = all topics");
        assert!(build_response(1, &empty, &broker()).topics.is_empty(), "v1 empty = no topics");
    }

    #[test]
    fn named_topics_are_unknown_and_deduplicated() {
        let request = MetadataRequest::default().with_topics(Some(vec![named("a"), named("b"), named("a")]));
        for version in [0, 1, 4, 9, 12] {
            let response = build_response(version, &request, &broker());
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

        let v12 = build_response(12, &request, &broker());
        assert_eq!(errors_and_names(&v12), vec![(100, None), (3, Some("a".into()))]);
        assert_eq!(v12.topics[0].topic_id, id);
        v12.encode(&mut BytesMut::new(), 12).unwrap();

        for version in [10, 11] {
            let response = build_response(version, &request, &broker());
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
