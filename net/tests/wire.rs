//! Byte-level protocol tests: hand-written request frames in, exact response bytes out.
//!
//! The expected bytes are written out by hand from the Kafka message JSON schemas, not produced
//! by `kafka-protocol`'s encoder, so a change in how the crate encodes shows up here.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use net::frame::{FrameDecoder, FrameError, DEFAULT_MAX_FRAME_BYTES};
use net::handlers::{api_versions, HandlerError};
use net::header::{decode_header, parse_request, HeaderError, HeaderVersion};

/// Runs one wire frame through decoder, header parser and the ApiVersions handler.
fn respond(wire: &[u8]) -> Vec<u8> {
    let decoder = FrameDecoder::default();
    let mut read_buf = BytesMut::from(wire);
    let frame = decoder.decode(&mut read_buf).unwrap().unwrap();
    assert!(read_buf.is_empty(), "test frame has trailing bytes");
    let request = parse_request(frame).unwrap();
    let mut out = BytesMut::new();
    api_versions::handle(&request.header, request.body, &mut out).unwrap();
    out.to_vec()
}

#[rustfmt::skip]
const API_VERSIONS_V0_REQUEST: [u8; 18] = [
    0x00, 0x00, 0x00, 0x0e, // size 14
    0x00, 0x12,             // api_key 18 (ApiVersions)
    0x00, 0x00,             // api_version 0 -> request header v1
    0x00, 0x00, 0x00, 0x07, // correlation_id 7
    0x00, 0x04, b'k', b'c', b'a', b't', // client_id "kcat"
    // v0 body is empty
];

#[test]
fn api_versions_v0_exact_response() {
    #[rustfmt::skip]
    let expected = [
        0x00, 0x00, 0x00, 0xb2, // size 178
        0x00, 0x00, 0x00, 0x07, // response header v0: correlation_id 7
        0x00, 0x00,             // error_code 0
        0x00, 0x00, 0x00, 0x1c, // api_keys: INT32 count 28, implemented APIs in key order
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, // Produce 0..11 (0-2 advertised for old librdkafka, refused)
        0x00, 0x01, 0x00, 0x04, 0x00, 0x10, // Fetch 4..16
        0x00, 0x02, 0x00, 0x01, 0x00, 0x08, // ListOffsets 1..8
        0x00, 0x03, 0x00, 0x00, 0x00, 0x0c, // Metadata 0..12
        0x00, 0x08, 0x00, 0x02, 0x00, 0x09, // OffsetCommit 2..9
        0x00, 0x09, 0x00, 0x01, 0x00, 0x09, // OffsetFetch 1..9
        0x00, 0x0a, 0x00, 0x00, 0x00, 0x04, // FindCoordinator 0..4
        0x00, 0x0b, 0x00, 0x00, 0x00, 0x09, // JoinGroup 0..9
        0x00, 0x0c, 0x00, 0x00, 0x00, 0x04, // Heartbeat 0..4
        0x00, 0x0d, 0x00, 0x00, 0x00, 0x05, // LeaveGroup 0..5
        0x00, 0x0e, 0x00, 0x00, 0x00, 0x05, // SyncGroup 0..5
        0x00, 0x0f, 0x00, 0x00, 0x00, 0x06, // DescribeGroups 0..6
        0x00, 0x10, 0x00, 0x00, 0x00, 0x05, // ListGroups 0..5
        0x00, 0x12, 0x00, 0x00, 0x00, 0x04, // ApiVersions 0..4
        0x00, 0x13, 0x00, 0x02, 0x00, 0x07, // CreateTopics 2..7
        0x00, 0x14, 0x00, 0x01, 0x00, 0x06, // DeleteTopics 1..6
        0x00, 0x15, 0x00, 0x00, 0x00, 0x02, // DeleteRecords 0..2
        0x00, 0x16, 0x00, 0x00, 0x00, 0x05, // InitProducerId 0..5
        0x00, 0x20, 0x00, 0x01, 0x00, 0x04, // DescribeConfigs 1..4
        0x00, 0x21, 0x00, 0x00, 0x00, 0x02, // AlterConfigs 0..2
        0x00, 0x23, 0x00, 0x01, 0x00, 0x04, // DescribeLogDirs 1..4
        0x00, 0x25, 0x00, 0x00, 0x00, 0x03, // CreatePartitions 0..3
        0x00, 0x2a, 0x00, 0x00, 0x00, 0x02, // DeleteGroups 0..2
        0x00, 0x2c, 0x00, 0x00, 0x00, 0x01, // IncrementalAlterConfigs 0..1
        0x00, 0x2f, 0x00, 0x00, 0x00, 0x00, // OffsetDelete 0..0
        0x00, 0x3c, 0x00, 0x00, 0x00, 0x01, // DescribeCluster 0..1
        0x00, 0x44, 0x00, 0x00, 0x00, 0x01, // ConsumerGroupHeartbeat 0..1
        0x00, 0x45, 0x00, 0x00, 0x00, 0x01, // ConsumerGroupDescribe 0..1
    ];
    assert_eq!(respond(&API_VERSIONS_V0_REQUEST), expected);
}

#[test]
fn api_versions_v0_header_fields() {
    let frame = Bytes::copy_from_slice(&API_VERSIONS_V0_REQUEST[4..]);
    let request = parse_request(frame).unwrap();
    assert_eq!(request.header.api_key, ApiKey::ApiVersions);
    assert_eq!(request.header.api_version, 0);
    assert_eq!(request.header.correlation_id, 7);
    assert_eq!(request.header.client_id.as_deref(), Some("kcat"));
    assert_eq!(request.header.header_version, HeaderVersion::V1);
    assert!(request.body.is_empty());
}

#[rustfmt::skip]
const API_VERSIONS_V3_REQUEST: [u8; 44] = [
    0x00, 0x00, 0x00, 0x28, // size 40
    0x00, 0x12,             // api_key 18
    0x00, 0x03,             // api_version 3 -> request header v2
    0x00, 0x00, 0x00, 0x2a, // correlation_id 42
    0x00, 0x07, b'r', b'd', b'k', b'a', b'f', b'k', b'a', // client_id: i16-length string
    0x01, 0x05, 0x02, 0xab, 0xcd, // header tags: 1 field, tag 5, 2 bytes (unknown, skipped)
    // body
    0x0b, b'l', b'i', b'b', b'r', b'd', b'k', b'a', b'f', b'k', b'a', // compact "librdkafka"
    0x06, b'2', b'.', b'0', b'.', b'2', // compact "2.0.2"
    0x00,                   // body tags: none
];

#[rustfmt::skip]
const API_VERSIONS_FLEXIBLE_RESPONSE: [u8; 212] = [
    0x00, 0x00, 0x00, 0xd0, // size 208
    0x00, 0x00, 0x00, 0x2a, // response header v0 even though v3 is flexible: no tag byte
    0x00, 0x00,             // error_code 0
    0x1d,                   // api_keys: compact array, 28 entries
    0x00, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x00, // Produce 0..11, no entry tags
    0x00, 0x01, 0x00, 0x04, 0x00, 0x10, 0x00, // Fetch 4..16
    0x00, 0x02, 0x00, 0x01, 0x00, 0x08, 0x00, // ListOffsets 1..8
    0x00, 0x03, 0x00, 0x00, 0x00, 0x0c, 0x00, // Metadata 0..12
    0x00, 0x08, 0x00, 0x02, 0x00, 0x09, 0x00, // OffsetCommit 2..9
    0x00, 0x09, 0x00, 0x01, 0x00, 0x09, 0x00, // OffsetFetch 1..9
    0x00, 0x0a, 0x00, 0x00, 0x00, 0x04, 0x00, // FindCoordinator 0..4
    0x00, 0x0b, 0x00, 0x00, 0x00, 0x09, 0x00, // JoinGroup 0..9
    0x00, 0x0c, 0x00, 0x00, 0x00, 0x04, 0x00, // Heartbeat 0..4
    0x00, 0x0d, 0x00, 0x00, 0x00, 0x05, 0x00, // LeaveGroup 0..5
    0x00, 0x0e, 0x00, 0x00, 0x00, 0x05, 0x00, // SyncGroup 0..5
    0x00, 0x0f, 0x00, 0x00, 0x00, 0x06, 0x00, // DescribeGroups 0..6
    0x00, 0x10, 0x00, 0x00, 0x00, 0x05, 0x00, // ListGroups 0..5
    0x00, 0x12, 0x00, 0x00, 0x00, 0x04, 0x00, // ApiVersions 0..4
    0x00, 0x13, 0x00, 0x02, 0x00, 0x07, 0x00, // CreateTopics 2..7
    0x00, 0x14, 0x00, 0x01, 0x00, 0x06, 0x00, // DeleteTopics 1..6
    0x00, 0x15, 0x00, 0x00, 0x00, 0x02, 0x00, // DeleteRecords 0..2
    0x00, 0x16, 0x00, 0x00, 0x00, 0x05, 0x00, // InitProducerId 0..5
    0x00, 0x20, 0x00, 0x01, 0x00, 0x04, 0x00, // DescribeConfigs 1..4
    0x00, 0x21, 0x00, 0x00, 0x00, 0x02, 0x00, // AlterConfigs 0..2
    0x00, 0x23, 0x00, 0x01, 0x00, 0x04, 0x00, // DescribeLogDirs 1..4
    0x00, 0x25, 0x00, 0x00, 0x00, 0x03, 0x00, // CreatePartitions 0..3
    0x00, 0x2a, 0x00, 0x00, 0x00, 0x02, 0x00, // DeleteGroups 0..2
    0x00, 0x2c, 0x00, 0x00, 0x00, 0x01, 0x00, // IncrementalAlterConfigs 0..1
    0x00, 0x2f, 0x00, 0x00, 0x00, 0x00, 0x00, // OffsetDelete 0..0
    0x00, 0x3c, 0x00, 0x00, 0x00, 0x01, 0x00, // DescribeCluster 0..1
    0x00, 0x44, 0x00, 0x00, 0x00, 0x01, 0x00, // ConsumerGroupHeartbeat 0..1
    0x00, 0x45, 0x00, 0x00, 0x00, 0x01, 0x00, // ConsumerGroupDescribe 0..1
    0x00, 0x00, 0x00, 0x00, // throttle_time_ms 0
    0x00,                   // body tags: none (no features, epoch, zk flag)
];

#[test]
fn api_versions_v3_with_client_software_fields() {
    let frame = Bytes::copy_from_slice(&API_VERSIONS_V3_REQUEST[4..]);
    let request = parse_request(frame).unwrap();
    assert_eq!(request.header.header_version, HeaderVersion::V2);
    assert_eq!(request.header.client_id.as_deref(), Some("rdkafka"));
    assert_eq!(request.body[0], 0x0b, "body starts after the header tags");

    assert_eq!(respond(&API_VERSIONS_V3_REQUEST), API_VERSIONS_FLEXIBLE_RESPONSE);
}

#[test]
fn api_versions_v4_has_the_same_layout_as_v3() {
    let mut wire = API_VERSIONS_V3_REQUEST;
    wire[7] = 0x04;
    assert_eq!(respond(&wire), API_VERSIONS_FLEXIBLE_RESPONSE);
}

#[test]
fn flexible_response_carries_no_default_tagged_fields() {
    // librdkafka < 2.2 misparses any tagged field it does not know; the reply must end with
    // throttle_time_ms followed by a zero tag count, for every flexible version.
    for version in [3u8, 4] {
        let mut wire = API_VERSIONS_V3_REQUEST;
        wire[7] = version;
        let response = respond(&wire);
        assert_eq!(&response[response.len() - 5..], &[0, 0, 0, 0, 0x00]);
    }
}

#[test]
fn unsupported_version_gets_v0_body_with_error_35() {
    #[rustfmt::skip]
    let wire = [
        0x00, 0x00, 0x00, 0x13, // size 19
        0x00, 0x12,             // api_key 18
        0x00, 0x63,             // api_version 99 -> request header v2 (flexible from 3)
        0x00, 0x00, 0x00, 0x01, // correlation_id 1
        0x00, 0x04, b'k', b'c', b'a', b't', // client_id
        0x00,                   // header tags: none
        0xde, 0xad, 0xbe, 0xef, // a body from the future: never parsed
    ];
    #[rustfmt::skip]
    let expected = [
        0x00, 0x00, 0x00, 0x10, // size 16
        0x00, 0x00, 0x00, 0x01, // response header v0
        0x00, 0x23,             // error_code 35 UNSUPPORTED_VERSION
        0x00, 0x00, 0x00, 0x01, // v0 api_keys: INT32 count 1
        0x00, 0x12, 0x00, 0x00, 0x00, 0x04, // only ApiVersions 0..4 (KIP-511)
    ];
    assert_eq!(respond(&wire), expected);
}

#[test]
fn invalid_client_software_name_gets_invalid_request() {
    #[rustfmt::skip]
    let wire = [
        0x00, 0x00, 0x00, 0x1b, // size 27
        0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x09, // ApiVersions v3, correlation_id 9
        0xff, 0xff,             // client_id null
        0x00,                   // header tags
        0x09, b'b', b'a', b'd', b' ', b'n', b'a', b'm', b'e', // "bad name": space not allowed
        0x06, b'2', b'.', b'0', b'.', b'2',
        0x00,
    ];
    #[rustfmt::skip]
    let expected = [
        0x00, 0x00, 0x00, 0x0c, // size 12
        0x00, 0x00, 0x00, 0x09,
        0x00, 0x2a,             // error_code 42 INVALID_REQUEST
        0x01,                   // api_keys: empty compact array
        0x00, 0x00, 0x00, 0x00, // throttle_time_ms
        0x00,
    ];
    assert_eq!(respond(&wire), expected);
}

#[test]
fn null_client_id_is_none() {
    let frame = Bytes::from_static(&[0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff]);
    let request = parse_request(frame).unwrap();
    assert_eq!(request.header.client_id, None);
}

#[test]
fn truncated_v3_body_closes_the_connection() {
    let mut wire = API_VERSIONS_V3_REQUEST[..API_VERSIONS_V3_REQUEST.len() - 3].to_vec();
    wire[3] -= 3;
    let frame = FrameDecoder::default().decode(&mut BytesMut::from(&wire[..])).unwrap().unwrap();
    let request = parse_request(frame).unwrap();
    let mut out = BytesMut::new();
    let error = api_versions::handle(&request.header, request.body, &mut out).unwrap_err();
    assert!(matches!(error, HandlerError::MalformedBody { .. }));
    assert!(out.is_empty());
}

#[test]
fn oversized_frame_is_rejected_before_allocation() {
    let decoder = FrameDecoder::new(1024);
    // 1 GiB announced in 4 bytes.
    let mut read_buf = BytesMut::with_capacity(4);
    read_buf.extend_from_slice(&[0x40, 0x00, 0x00, 0x00]);
    let capacity_before = read_buf.capacity();
    let too_large = FrameError::TooLarge { size: 1 << 30, max: 1024 };
    assert_eq!(decoder.bytes_needed(&read_buf), Err(too_large));
    assert_eq!(decoder.decode(&mut read_buf), Err(too_large));
    assert_eq!(read_buf.capacity(), capacity_before);
    assert_eq!(FrameDecoder::default().max_frame_bytes(), DEFAULT_MAX_FRAME_BYTES);
}

#[test]
fn negative_size_is_rejected() {
    let mut read_buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe, 0x00, 0x12][..]);
    assert_eq!(FrameDecoder::default().decode(&mut read_buf), Err(FrameError::NegativeSize(-2)));
}

#[test]
fn every_truncation_of_a_header_is_reported() {
    let header = &API_VERSIONS_V3_REQUEST[4..26]; // up to and including the header tags
    for len in 0..header.len() {
        let error = parse_request(Bytes::copy_from_slice(&header[..len])).unwrap_err();
        assert_eq!(error, HeaderError::Truncated { frame_bytes: len }, "prefix of {len}");
    }
    assert!(parse_request(Bytes::copy_from_slice(header)).is_ok());
}

#[test]
fn unknown_api_keys_are_a_distinct_error() {
    #[rustfmt::skip]
    let cases: [(&[u8], HeaderError); 4] = [
        // 999: never assigned
        (&[0x03, 0xe7, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00],
         HeaderError::UnknownApiKey { api_key: 999, api_version: 1, correlation_id: Some(5) }),
        // 4 (LeaderAndIsr): removed in Kafka 4, unknown to kafka-protocol 0.18
        (&[0x00, 0x04, 0x00, 0x07, 0x00, 0x00, 0x00, 0x06],
         HeaderError::UnknownApiKey { api_key: 4, api_version: 7, correlation_id: Some(6) }),
        // negative key, frame too short for a correlation id
        (&[0xff, 0xff, 0x00, 0x00, 0x00],
         HeaderError::UnknownApiKey { api_key: -1, api_version: 0, correlation_id: None }),
        (&[0x7f, 0xff, 0x80, 0x00],
         HeaderError::UnknownApiKey { api_key: i16::MAX, api_version: i16::MIN, correlation_id: None }),
    ];
    for (frame, expected) in cases {
        assert_eq!(parse_request(Bytes::copy_from_slice(frame)).unwrap_err(), expected);
    }
}

#[test]
fn invalid_utf8_client_id_is_malformed() {
    let frame = Bytes::from_static(&[0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x02, 0xc3, 0x28]);
    let error = parse_request(frame).unwrap_err();
    assert!(
        matches!(error, HeaderError::Malformed { api_key: ApiKey::ApiVersions, api_version: 0, correlation_id: 3, .. }),
        "{error:?}"
    );
}

#[test]
fn negative_client_id_length_is_malformed() {
    let frame = Bytes::from_static(&[0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xff, 0xfe]);
    assert!(matches!(parse_request(frame).unwrap_err(), HeaderError::Malformed { .. }));
}

#[test]
fn header_v0_has_no_client_id() {
    let mut buf = Bytes::from_static(&[0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0xaa]);
    let header = decode_header(&mut buf, HeaderVersion::V0).unwrap();
    assert_eq!(header.api_key, ApiKey::Metadata);
    assert_eq!(header.api_version, 1);
    assert_eq!(header.correlation_id, 256);
    assert_eq!(header.client_id, None);
    assert_eq!(&buf[..], &[0xaa], "body follows the 8 fixed bytes");
}

#[test]
fn client_id_and_body_share_the_frame_allocation() {
    let frame = Bytes::copy_from_slice(&API_VERSIONS_V3_REQUEST[4..]);
    let frame_range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
    let request = parse_request(frame).unwrap();
    let client_id = request.header.client_id.unwrap().into_bytes();
    assert!(frame_range.contains(&(client_id.as_ptr() as usize)));
    assert!(frame_range.contains(&(request.body.as_ptr() as usize)));
}

#[test]
fn pipelined_frames_are_answered_in_order() {
    let mut read_buf = BytesMut::new();
    read_buf.extend_from_slice(&API_VERSIONS_V0_REQUEST);
    read_buf.extend_from_slice(&API_VERSIONS_V3_REQUEST);
    read_buf.extend_from_slice(&API_VERSIONS_V0_REQUEST[..6]); // a third, still arriving
    let decoder = FrameDecoder::default();
    let mut out = BytesMut::new();
    while let Some(frame) = decoder.decode(&mut read_buf).unwrap() {
        let request = parse_request(frame).unwrap();
        api_versions::handle(&request.header, request.body, &mut out).unwrap();
    }
    assert_eq!(decoder.bytes_needed(&read_buf).unwrap(), 12);
    let mut expected = respond(&API_VERSIONS_V0_REQUEST);
    expected.extend_from_slice(&API_VERSIONS_FLEXIBLE_RESPONSE);
    assert_eq!(&out[..], &expected[..]);
}

#[test]
fn kafka_protocol_writes_tagged_fields_only_when_not_default() {
    use kafka_protocol::messages::ApiVersionsResponse;
    use net::response::encode_response;

    let encode = |body: &ApiVersionsResponse| {
        let mut out = BytesMut::new();
        encode_response(&mut out, ApiKey::ApiVersions, 3, 0, body).unwrap();
        out.to_vec()
    };
    // Defaults (epoch -1, no features, zk flag false): the body ends with a zero tag count.
    #[rustfmt::skip]
    let default_body = [0x00, 0x00, 0x00, 0x0c, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0x00];
    assert_eq!(encode(&ApiVersionsResponse::default()), default_body);
    // Negative control: a set epoch becomes tag 1 with 8 bytes, which old librdkafka misreads.
    let with_epoch = encode(&ApiVersionsResponse::default().with_finalized_features_epoch(0));
    #[rustfmt::skip]
    let epoch_tail = [0x01, 0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(&with_epoch[with_epoch.len() - epoch_tail.len()..], epoch_tail);
    assert_eq!(encode(&ApiVersionsResponse::default().with_zk_migration_ready(false)), default_body);
}

#[test]
fn metadata_v1_all_topics_exact_response() {
    use net::broker::BrokerInfo;
    use net::handlers::metadata::{build_response, decode_request};
    use net::response::encode_response;
    use net::shard::topics::TopicTable;

    #[rustfmt::skip]
    let frame = [
        0x00, 0x03, 0x00, 0x01, // Metadata v1 -> request header v1
        0x00, 0x00, 0x00, 0x05, // correlation_id 5
        0x00, 0x01, b't',       // client_id "t"
        0xff, 0xff, 0xff, 0xff, // topics: null = all topics (v1+)
    ];
    #[rustfmt::skip]
    let expected = [
        0x00, 0x00, 0x00, 0x1d, // size 29
        0x00, 0x00, 0x00, 0x05, // response header v0
        0x00, 0x00, 0x00, 0x01, // brokers: 1
        0x00, 0x00, 0x00, 0x07, //   node_id 7
        0x00, 0x01, b'h',       //   host "h"
        0x00, 0x00, 0x23, 0x84, //   port 9092
        0xff, 0xff,             //   rack null (v1+)
        0x00, 0x00, 0x00, 0x07, // controller_id 7 (v1+; no cluster_id before v2)
        0x00, 0x00, 0x00, 0x00, // topics: none exist
    ];
    let broker = BrokerInfo { node_id: 7, advertised_host: "h".into(), advertised_port: 9092, cluster_id: "c".into() };
    let request = parse_request(Bytes::copy_from_slice(&frame)).unwrap();
    assert_eq!(request.header.api_key, ApiKey::Metadata);
    let decoded = decode_request(1, request.body).unwrap();
    let response = build_response(1, &decoded, &broker, &TopicTable::default(), false, &[]);
    let mut out = BytesMut::new();
    encode_response(&mut out, ApiKey::Metadata, 1, 5, &response).unwrap();
    assert_eq!(&out[..], &expected[..]);
}
