//! Random bytes never panic (or abort) the frame decoder, the header parser, dispatch or the handlers.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use net::broker::BrokerInfo;
use net::dispatch::dispatch;
use net::frame::{FrameDecoder, SIZE_PREFIX_BYTES};
use net::handlers::api_versions;
use net::header::parse_request;
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
        let mut out = BytesMut::new();
        if dispatch(Bytes::from(frame), &broker, &mut out).is_err() {
            prop_assert!(out.is_empty(), "no half-written response");
        }
    }
}
