//! Request-path micro-benchmarks: what every request pays before its handler does any work.
//!
//! The input is a realistic Produce request, the kind a Java producer sends with `acks=1` and
//! `linger.ms=5` at full load: Produce v9 (flexible header and body), one topic, 4 partitions,
//! each a batch of 16 records of 1 KiB (about 66 KiB in all). Stages, each on its own and then
//! together:
//!
//! - `length_prefix`: [`FrameDecoder::decode`] splits the frame off a read buffer (size prefix
//!   checked, no copy).
//! - `header`: [`parse_request`] reads the v2 request header.
//! - `route`: [`route`] = header + API/version check against the version table.
//! - `guard`: [`check_body`] walks the body against the Produce schema (every array length backed).
//! - `decode`: `kafka-protocol` decodes the body into a `ProduceRequest` (records stay `Bytes`).
//! - `full`: all of the above, as a connection does it ([`decode_checked`] = guard + decode).
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use net::dispatch::{route, Routed};
use net::frame::FrameDecoder;
use net::guard::check_body;
use net::guard::schemas::PRODUCE;
use net::handlers::decode_checked;
use net::header::parse_request;
use spate_core::batch::{build_batch, BatchOptions};
use spate_core::record::RecordSpec;

const VERSION: i16 = 9;
const PARTITIONS: i32 = 4;
const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1024;

/// One record batch of `RECORDS_PER_BATCH` values of `VALUE_BYTES`, as a producer builds it.
fn batch() -> Bytes {
    let value = vec![0x5a; VALUE_BYTES];
    let specs: Vec<RecordSpec<'_>> = (0..RECORDS_PER_BATCH)
        .map(|i| RecordSpec {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp_ms: 1_700_000_000_000 + i as i64,
        })
        .collect();
    Bytes::from(build_batch(&specs, BatchOptions::default()))
}

/// The whole request on the wire: size prefix, header v2, Produce v9 body.
fn produce_wire() -> Bytes {
    let records = batch();
    let partitions = (0..PARTITIONS)
        .map(|index| PartitionProduceData::default().with_index(index).with_records(Some(records.clone())))
        .collect();
    let request = ProduceRequest::default().with_acks(1).with_timeout_ms(30_000).with_topic_data(vec![
        TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bench-produce-1k")))
            .with_partition_data(partitions),
    ]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(VERSION)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("producer-1")));
    let mut frame = BytesMut::new();
    header.encode(&mut frame, ApiKey::Produce.request_header_version(VERSION)).expect("header encodes");
    request.encode(&mut frame, VERSION).expect("request encodes");
    let size = i32::try_from(frame.len()).expect("frame fits an i32");
    let mut wire = BytesMut::with_capacity(4 + frame.len());
    wire.extend_from_slice(&size.to_be_bytes());
    wire.extend_from_slice(&frame);
    wire.freeze()
}

fn produce_request(c: &mut Criterion) {
    let wire = produce_wire();
    let decoder = FrameDecoder::default();
    let frame = decoder.decode(&mut BytesMut::from(&wire[..])).expect("valid frame").expect("complete frame");
    let request = parse_request(frame.clone()).expect("valid header");
    let body = request.body.clone();

    let mut group = c.benchmark_group("produce_v9_4x16x1KiB");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("length_prefix", |b| {
        // A read buffer per iteration, as a connection has after a read; building it is a memcpy
        // of the frame, which is part of what the connection pays anyway.
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| decoder.decode(black_box(&mut buf)),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("header", |b| b.iter(|| parse_request(black_box(frame.clone()))));
    group.bench_function("route", |b| b.iter(|| matches!(route(black_box(frame.clone())), Ok(Routed::Request(_)))));
    group.bench_function("guard", |b| b.iter(|| check_body(&PRODUCE, VERSION, black_box(&body))));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut cursor = black_box(body.clone());
            ProduceRequest::decode(&mut cursor, VERSION)
        })
    });
    group.bench_function("full", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| {
                let frame = decoder.decode(&mut buf).expect("valid frame").expect("complete frame");
                let Ok(Routed::Request(request)) = route(frame) else {
                    panic!("a Produce request is routed to its handler")
                };
                decode_checked::<ProduceRequest>(&request.header, &PRODUCE, request.body).expect("valid body")
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, produce_request);
criterion_main!(benches);
