//! Random bytes never panic (or abort) the frame decoder, the header parser, routing, or the
//! handlers' body checks and decoding.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::{CreateTopicsRequest, FetchRequest, ListOffsetsRequest, ProduceRequest};
use net::broker::BrokerInfo;
use net::dispatch::{route, Routed};
use net::frame::{FrameDecoder, SIZE_PREFIX_BYTES};
use net::guard::schemas;
use net::handlers::{api_versions, decode_checked, metadata};
use net::header::parse_request;
use net::shard::topics::TopicTable;
use proptest::prelude::*;

/// Runs the whole read path over `wire` the way a connection would, stopping at the first error.
fn drive(decoder: &FrameDecoder, wire: &[u8]) {
    let mut read_buf = BytesMut::from(wire);
    let mut out = BytesMut::new();
    loop {
        let needed = decoder.bytes_needed(&read_buf);
        match decoder.decode(&mut read_buf) {
            Ok(Some(frame)) => {
                assert_eq!(needed, Ok(0));
                assert!(frame.len() <= decoder.max_frame_bytes());
                let Ok(request) = parse_request(frame) else {
                    return;
                };
                if request.header.api_key == ApiKey::ApiVersions {
                    let before = out.len();
                    if api_versions::handle(&request.header, request.body, &mut out).is_err() {
                        assert_eq!(out.len(), before, "no half-written response");
                        return;
                    }
                }
            }
            Ok(None) => {
                let needed = needed.unwrap();
                assert!(needed > 0 && needed <= decoder.max_frame_bytes().max(SIZE_PREFIX_BYTES));
                return;
            }
            Err(error) => {
                assert_eq!(needed, Err(error));
                return;
            }
        }
    }
}

/// A small frame prefix followed by `payload`, so random data actually reaches the parsers.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut wire = (payload.len() as i32).to_be_bytes().to_vec();
    wire.extend_from_slice(payload);
    wire
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn raw_garbage(wire in proptest::collection::vec(any::<u8>(), 0..512)) {
        drive(&FrameDecoder::new(256), &wire);
    }

    #[test]
    fn framed_garbage(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        drive(&FrameDecoder::new(256), &framed(&payload));
    }

    #[test]
    fn known_key_then_garbage(
        key_index in 0usize..128,
        api_version in any::<i16>(),
        rest in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        let keys: Vec<ApiKey> = ApiKey::iter().collect();
        let api_key = keys[key_index % keys.len()];
        let mut payload = (api_key as i16).to_be_bytes().to_vec();
        payload.extend_from_slice(&api_version.to_be_bytes());
        payload.extend_from_slice(&rest);
        drive(&FrameDecoder::new(256), &framed(&payload));
    }

    #[test]
    fn api_versions_bodies(
        api_version in -2i16..8,
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let _ = api_versions::build_reply(api_version, Bytes::from(body));
    }

    /// Metadata bodies at every handled version: answered or refused, never a panic, and never an
    /// up-front allocation sized by a lying array count (that would abort the test process).
    #[test]
    fn metadata_bodies(
        api_version in 0i16..=12,
        // Lying counts: i32::MAX; a 4-byte varint; a 5-byte varint with its continuation bit set,
        // which Kafka rejects but kafka-protocol reads as u32::MAX; or just the random body.
        count_prefix in prop_oneof![
            Just(vec![0x7f, 0xff, 0xff, 0xff]),
            Just(vec![0xff, 0xff, 0xff, 0x0f]),
            Just(vec![0xff, 0xff, 0xff, 0xff, 0xff]),
            Just(vec![]),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let mut frame = 3i16.to_be_bytes().to_vec();
        frame.extend_from_slice(&api_version.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff]); // correlation id 1, null client id
        if api_version >= 9 {
            frame.push(0); // header v2: empty tag section
        }
        frame.extend_from_slice(&count_prefix);
        frame.extend_from_slice(&body);
        let broker = BrokerInfo { node_id: 0, advertised_host: "h".into(), advertised_port: 1, cluster_id: "c".into() };
        let Ok(Routed::Request(request)) = route(Bytes::from(frame)) else { return Ok(()) };
        if let Ok(decoded) = metadata::decode_request(api_version, request.body) {
            let response = metadata::build_response(api_version, &decoded, &broker, &TopicTable::default(), true, &[]);
            let mut out = BytesMut::new();
            prop_assert!(net::response::encode_response(&mut out, ApiKey::Metadata, api_version, 1, &response).is_ok());
        }
    }

    /// Produce, Fetch, ListOffsets and CreateTopics bodies at every handled version, with a lying
    /// count planted at a random depth: checked and decoded or refused, never a panic or an abort.
    #[test]
    fn nested_request_bodies(
        which in 0usize..4,
        api_version in 0i16..=16,
        lie_at in 0usize..48,
        lie in prop_oneof![
            Just(vec![0x7f, 0xff, 0xff, 0xff]),
            Just(vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
            Just(vec![0xff, 0xff, 0xff, 0xff, 0xff]),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let (api_key, range) = [
            (ApiKey::Produce, 3..=11),
            (ApiKey::Fetch, 4..=16),
            (ApiKey::ListOffsets, 1..=8),
            (ApiKey::CreateTopics, 2..=7),
        ][which].clone();
        let version = *range.start() + api_version.rem_euclid(*range.end() - *range.start() + 1);
        let mut planted = body.clone();
        let at = lie_at.min(planted.len());
        planted.splice(at..at, lie);
        for candidate in [body, planted] {
            let mut frame = (api_key as i16).to_be_bytes().to_vec();
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff]);
            if api_key.request_header_version(version) >= 2 {
                frame.push(0);
            }
            frame.extend_from_slice(&candidate);
            let Ok(Routed::Request(request)) = route(Bytes::from(frame)) else { continue };
            let header = &request.header;
            let body = request.body.clone();
            let _ = match api_key {
                ApiKey::Produce => decode_checked::<ProduceRequest>(header, &schemas::PRODUCE, body).map(drop),
                ApiKey::Fetch => decode_checked::<FetchRequest>(header, &schemas::FETCH, body).map(drop),
                ApiKey::ListOffsets => decode_checked::<ListOffsetsRequest>(header, &schemas::LIST_OFFSETS, body).map(drop),
                _ => decode_checked::<CreateTopicsRequest>(header, &schemas::CREATE_TOPICS, body).map(drop),
            };
        }
    }
}
