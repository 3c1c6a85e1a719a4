//! Fuzz target: arbitrary client bytes through the broker's request path, up to the point where a
//! handler would act on the decoded request.
//!
//! The input is the byte stream a client sends on one connection. It is split into frames by
//! [`FrameDecoder`] (1 MiB limit), and each frame goes through [`route`] (header parse, API and
//! version checks; ApiVersions is answered in full there), then, for a request routed to a handler,
//! through the same guard + `kafka-protocol` decode that handler runs first. The handlers themselves
//! are async and need a shard, so the target stops after the decode.
//!
//! The property: no panic and no abort. A guard miss (an array count the guard lets through to the
//! crate's `Vec::with_capacity`) shows up as a huge allocation, which libFuzzer reports when run
//! with `-malloc_limit_mb` (see README.md).

#![no_main]

use bytes::BytesMut;
use kafka_protocol::messages::*;
use libfuzzer_sys::fuzz_target;
use net::dispatch::{route, Routed};
use net::frame::{FrameDecoder, SIZE_PREFIX_BYTES};
use net::guard::schemas::*;
use net::handlers::{decode_checked, metadata, HandlerError};
use net::header::Request;
use net::versions;

const MAX_FRAME_BYTES: usize = 1 << 20;

/// APIs answered inside `route` itself.
const ANSWERED_BY_ROUTE: &[ApiKey] = &[ApiKey::ApiVersions];
/// APIs whose body decode [`decode_body`] reproduces.
const DECODED_HERE: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::CreateTopics,
    ApiKey::FindCoordinator,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::InitProducerId,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::DescribeLogDirs,
    ApiKey::CreatePartitions,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::DescribeCluster,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
];

/// The decode each handler in `net::handlers` runs before anything else (keep in step with
/// `net::dispatch::dispatch` and the handlers' `handle` functions).
fn decode_body(request: &Request) -> Result<(), HandlerError> {
    let header = &request.header;
    let body = request.body.clone();
    match header.api_key {
        ApiKey::Produce => decode_checked::<ProduceRequest>(header, &PRODUCE, body).map(drop),
        ApiKey::Fetch => decode_checked::<FetchRequest>(header, &FETCH, body).map(drop),
        ApiKey::ListOffsets => decode_checked::<ListOffsetsRequest>(header, &LIST_OFFSETS, body).map(drop),
        ApiKey::Metadata => metadata::decode_request(header.api_version, body).map(drop),
        ApiKey::CreateTopics => decode_checked::<CreateTopicsRequest>(header, &CREATE_TOPICS, body).map(drop),
        ApiKey::FindCoordinator => decode_checked::<FindCoordinatorRequest>(header, &FIND_COORDINATOR, body).map(drop),
        ApiKey::DeleteTopics => decode_checked::<DeleteTopicsRequest>(header, &DELETE_TOPICS, body).map(drop),
        ApiKey::DeleteRecords => decode_checked::<DeleteRecordsRequest>(header, &DELETE_RECORDS, body).map(drop),
        ApiKey::InitProducerId => decode_checked::<InitProducerIdRequest>(header, &INIT_PRODUCER_ID, body).map(drop),
        ApiKey::DescribeConfigs => decode_checked::<DescribeConfigsRequest>(header, &DESCRIBE_CONFIGS, body).map(drop),
        ApiKey::AlterConfigs => decode_checked::<AlterConfigsRequest>(header, &ALTER_CONFIGS, body).map(drop),
        ApiKey::DescribeLogDirs => decode_checked::<DescribeLogDirsRequest>(header, &DESCRIBE_LOG_DIRS, body).map(drop),
        ApiKey::CreatePartitions => {
            decode_checked::<CreatePartitionsRequest>(header, &CREATE_PARTITIONS, body).map(drop)
        }
        ApiKey::IncrementalAlterConfigs => {
            decode_checked::<IncrementalAlterConfigsRequest>(header, &INCREMENTAL_ALTER_CONFIGS, body).map(drop)
        }
        ApiKey::DescribeCluster => decode_checked::<DescribeClusterRequest>(header, &DESCRIBE_CLUSTER, body).map(drop),
        ApiKey::OffsetCommit => decode_checked::<OffsetCommitRequest>(header, &OFFSET_COMMIT, body).map(drop),
        ApiKey::OffsetFetch => decode_checked::<OffsetFetchRequest>(header, &OFFSET_FETCH, body).map(drop),
        ApiKey::JoinGroup => decode_checked::<JoinGroupRequest>(header, &JOIN_GROUP, body).map(drop),
        ApiKey::Heartbeat => decode_checked::<HeartbeatRequest>(header, &HEARTBEAT, body).map(drop),
        ApiKey::LeaveGroup => decode_checked::<LeaveGroupRequest>(header, &LEAVE_GROUP, body).map(drop),
        ApiKey::SyncGroup => decode_checked::<SyncGroupRequest>(header, &SYNC_GROUP, body).map(drop),
        api_key => unreachable!("{api_key:?} is routed to a handler but this target does not decode it"),
    }
}

fuzz_target!(
    init: {
        // A newly implemented API must be added to `decode_body`, or its decode goes unfuzzed.
        for support in versions::advertised() {
            assert!(
                ANSWERED_BY_ROUTE.contains(&support.api_key) || DECODED_HERE.contains(&support.api_key),
                "{:?} is advertised; add its body decode to fuzz/fuzz_targets/request_decode.rs",
                support.api_key
            );
        }
    },
    |data: &[u8]| {
        let decoder = FrameDecoder::new(MAX_FRAME_BYTES);
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            let needed = decoder.bytes_needed(&buf);
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert_eq!(needed, Ok(0), "a complete frame needs no more bytes");
                    assert!(frame.len() <= MAX_FRAME_BYTES);
                    assert_eq!(buf.len(), before - SIZE_PREFIX_BYTES - frame.len());
                    match route(frame) {
                        Ok(Routed::Answered(chunks)) => {
                            let response = chunks.concat();
                            let size = response.first_chunk::<4>().map(|prefix| i32::from_be_bytes(*prefix));
                            assert_eq!(size, Some((response.len() - SIZE_PREFIX_BYTES) as i32), "response framing");
                        }
                        Ok(Routed::Request(request)) => {
                            if decode_body(&request).is_err() {
                                return; // The broker closes the connection on a malformed body.
                            }
                        }
                        // The connection would be closed: nothing further arrives on it.
                        Err(_) => return,
                    }
                }
                Ok(None) => {
                    assert!(matches!(needed, Ok(n) if n > 0), "an incomplete frame needs more bytes");
                    assert_eq!(buf.len(), before, "an incomplete frame is not consumed");
                    return;
                }
                Err(error) => {
                    assert_eq!(needed, Err(error));
                    assert_eq!(buf.len(), before, "a refused frame is not consumed");
                    return;
                }
            }
        }
    }
);
