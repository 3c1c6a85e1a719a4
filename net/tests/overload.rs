//! Overload against the real `spate serve` with a 16 MiB memory budget per shard: thousands of idle
//! connections, a producer faster than the disk that never reads its responses, consumers that
//! never read (while another client's round trips must keep completing), and one request larger than
//! the budget. The broker's resident memory (VmRSS) is
//! printed (run with `--nocapture` to see it) and checked against bounds argued at each assertion.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{read_response, request, send_and_expect_close, Broker, IO_TIMEOUT};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use spate_core::batch::{build_batch, BatchOptions};
use spate_core::record::RecordSpec;

const BUDGET_BYTES: usize = 16 << 20;
const CACHE_BYTES: usize = 16 << 20;
const MIB: f64 = (1 << 20) as f64;

/// One shard with a 16 MiB budget and a 16 MiB batch cache; topics take batches of up to 8 MiB.
fn start() -> Broker {
    let config = format!(
        "memory_budget_bytes_per_shard = {BUDGET_BYTES}\nbatch_cache_bytes_per_shard = {CACHE_BYTES}\n\
         [topic_defaults]\n\"max.message.bytes\" = 8388608\n"
    );
    Broker::start_with_config(&config, &["--cores", "1"])
}

/// The broker's resident memory, in bytes.
fn rss_bytes(broker: &Broker) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", broker.pid())).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    let kib: usize = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn open_fds(broker: &Broker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", broker.pid())).unwrap().count()
}

/// Raises this process's soft open-file limit to its hard limit (the broker inherits it).
fn raise_fd_limit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

fn send<R: Encodable>(stream: &mut TcpStream, api_key: ApiKey, version: i16, correlation_id: i32, body: &R) {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("overload-test")));
    let mut frame = BytesMut::new();
    header.encode(&mut frame, api_key.request_header_version(version)).unwrap();
    body.encode(&mut frame, version).unwrap();
    let mut wire = (frame.len() as i32).to_be_bytes().to_vec();
    wire.extend_from_slice(&frame);
    stream.write_all(&wire).unwrap();
}

/// One ApiVersions round trip on a new connection; how long it took.
fn api_versions_round_trip(broker: &Broker) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(&request(18, 0, 7, &[])).unwrap();
    assert_eq!(read_response(&mut stream).0, 7);
    started.elapsed()
}

fn topic_name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

/// Creates `topic` (one partition) through Metadata auto-creation.
fn create_topic(broker: &Broker, topic: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name(topic)))]))
        .with_allow_auto_topic_creation(true);
    send(&mut stream, ApiKey::Metadata, 4, 1, &request);
    assert_eq!(read_response(&mut stream).0, 1);
}

#[test]
fn thousands_of_idle_connections_cost_little_memory() {
    let wanted = 2_000;
    let limit = raise_fd_limit();
    let connections = wanted.min(limit.saturating_sub(200));
    let broker = start();
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(&broker);
    let fds_before = open_fds(&broker);
    // Each connection is served once (so it had a read buffer), then stays idle.
    let mut idle = Vec::with_capacity(connections);
    for id in 0..connections {
        let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.write_all(&request(18, 0, id as i32, &[])).unwrap();
        assert_eq!(read_response(&mut stream).0, id as i32);
        idle.push(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(&broker) < fds_before + connections && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_bytes(&broker);
    let per_connection = after.saturating_sub(before) / connections;
    eprintln!(
        "idle connections: {connections}; broker RSS {:.1} MiB before, {:.1} MiB after; {per_connection} bytes each",
        before as f64 / MIB,
        after as f64 / MIB
    );
    // An idle connection holds its task, its socket's reactor state and no read buffer. 8 KiB each
    // allows for allocator slack; one 64 KiB (or even 4 KiB zero-filled) buffer kept per connection
    // would be over it.
    assert!(per_connection < 8 * 1024, "{per_connection} bytes per idle connection");
    assert!(api_versions_round_trip(&broker) < Duration::from_secs(2));
    drop(idle);
}

fn produce_request(topic: &str, records: &[u8]) -> ProduceRequest {
    let data = PartitionProduceData::default().with_index(0).with_records(Some(bytes::Bytes::copy_from_slice(records)));
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![data])])
}

fn fetch_request(topic: &str, max_bytes: i32) -> FetchRequest {
    let partition =
        FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(max_bytes);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(vec![partition])])
}

#[test]
fn producers_and_consumers_that_never_read_get_backpressure_not_memory() {
    let mut broker = start();
    create_topic(&broker, "load");
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(&broker);

    // ~5 MiB batches: 50 records of 100 KiB.
    let value = vec![b'v'; 100 * 1024];
    let records: Vec<RecordSpec<'_>> =
        (0..50).map(|_| RecordSpec { key: None, value: Some(&value), headers: &[], timestamp_ms: 1 }).collect();
    let batch = build_batch(&records, BatchOptions::default());
    let requests = 48;
    let port = broker.port;
    // Two producers pipelining 5 MiB requests as fast as the socket takes them, reading nothing.
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let produce = produce_request("load", &batch);
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                for id in 0..requests {
                    send(&mut stream, ApiKey::Produce, 7, id, &produce);
                }
                stream
            })
        })
        .collect();
    // Consumers that send fetches for 1 MiB and never read the answers. Each holds at most its share
    // of the budget (2 MiB) until the write stall limit closes it, each answer at most the 256 KiB its
    // fetch reserved (plus a first batch larger than that).
    let mut consumers = Vec::new();
    let fetch = fetch_request("load", 1 << 20);
    for _ in 0..2 {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for id in 0..50 {
            send(&mut stream, ApiKey::Fetch, 4, id, &fetch);
        }
        consumers.push(stream);
    }

    // Meanwhile, other clients are served, if more slowly.
    let started = Instant::now();
    let mut peak = before;
    let mut slowest = Duration::ZERO;
    let mut round_trips = 0;
    while producers.iter().any(|producer| !producer.is_finished()) {
        slowest = slowest.max(api_versions_round_trip(&broker));
        round_trips += 1;
        peak = peak.max(rss_bytes(&broker));
        std::thread::sleep(Duration::from_millis(50));
    }
    let producers: Vec<TcpStream> = producers.into_iter().map(|producer| producer.join().unwrap()).collect();
    // Every request was appended (the producers' connections were slowed, not dropped).
    let expected_offset = 2 * i64::from(requests) * records.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while latest_offset(&broker, "load") < expected_offset {
        assert!(
            Instant::now() < deadline,
            "only {} of {expected_offset} records appended",
            latest_offset(&broker, "load")
        );
        peak = peak.max(rss_bytes(&broker));
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    for _ in 0..10 {
        peak = peak.max(rss_bytes(&broker));
        std::thread::sleep(Duration::from_millis(50));
    }
    let produced_mib = (2 * requests as usize * batch.len()) as f64 / MIB;
    eprintln!(
        "2 producers x {requests} x {:.1} MiB ({produced_mib:.0} MiB in {elapsed:?}) unread, 2 consumers x 50 fetches unread: broker RSS \
         {:.1} MiB before, peak {:.1} MiB; slowest of {round_trips} ApiVersions round trips meanwhile: {slowest:?}",
        batch.len() as f64 / MIB,
        before as f64 / MIB,
        peak as f64 / MIB
    );
    // Held at most: the budget (16 MiB of frames and answers, plus the first batches it may be
    // overdrawn by), the batch cache (16 MiB), the log's write buffer and the allocator's slack: well
    // under 100 MiB. What must not happen is memory growing with what the clients sent (469 MiB).
    assert!(peak - before < 100 << 20, "RSS grew by {:.1} MiB", (peak - before) as f64 / MIB);
    assert!(slowest < Duration::from_secs(5), "an ApiVersions round trip took {slowest:?}");
    drop((producers, consumers));
    broker.assert_running();
}

/// The partition's high watermark (ListOffsets v1, latest).
fn latest_offset(broker: &Broker, topic: &str) -> i64 {
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let partition = ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1);
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default().with_name(topic_name(topic)).with_partitions(vec![partition])]);
    send(&mut stream, ApiKey::ListOffsets, 1, 1, &request);
    let (_, body) = read_response(&mut stream);
    let response = ListOffsetsResponse::decode(&mut bytes::Bytes::from(body), 1).unwrap();
    response.topics[0].partitions[0].offset
}

#[test]
fn a_request_larger_than_the_budget_closes_its_connection() {
    let mut broker = start();
    // 20 MiB announced: under socket.request.max.bytes (100 MiB), over the 16 MiB budget.
    let mut bytes = (20i32 << 20).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0; 1024]);
    assert!(send_and_expect_close(broker.port, &bytes, false).is_empty());
    assert!(api_versions_round_trip(&broker) < Duration::from_secs(2));
    broker.assert_running();
    let log = broker.stderr();
    assert!(
        log.contains("closing connection: frame of 20971520 bytes exceeds the shard's memory budget of 16777216 bytes"),
        "{log}"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut nothing = [0u8; 1];
    stream.write_all(&request(18, 0, 1, &[])).unwrap();
    assert!(stream.read(&mut nothing).unwrap() > 0);
}

/// Sends `body` and reads its response on `stream`; how long the round trip took.
fn round_trip<R: Encodable>(stream: &mut TcpStream, api_key: ApiKey, version: i16, id: i32, body: &R) -> Duration {
    let started = Instant::now();
    send(stream, api_key, version, id, body);
    assert_eq!(read_response(stream).0, id, "{api_key:?}");
    started.elapsed()
}

#[test]
fn consumers_that_never_read_do_not_stall_the_other_clients() {
    let mut broker = start();
    create_topic(&broker, "drain");
    // 16 MiB stored: 16 requests of 16 batches of 64 records of 1 KiB (~65 KiB a batch).
    let value = vec![b'v'; 1024];
    let records: Vec<RecordSpec<'_>> =
        (0..64).map(|_| RecordSpec { key: None, value: Some(&value), headers: &[], timestamp_ms: 1 }).collect();
    let batch = build_batch(&records, BatchOptions::default());
    let batches = batch.repeat(16);
    let mut client = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    // Long enough to measure a stall rather than fail on it.
    client.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    for id in 0..16 {
        round_trip(&mut client, ApiKey::Produce, 7, id, &produce_request("drain", &batches));
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_bytes(&broker);

    // Consumers that pipeline fetches for 8 MiB each and read none of the answers. Without a
    // reservation each answer would be 8 MiB; one such consumer's five would exceed the 16 MiB budget and
    // every other client would wait for the 30 s write-stall limit to close it.
    let consumers_count = 6;
    let fetch = fetch_request("drain", 8 << 20);
    let mut consumers = Vec::new();
    for _ in 0..consumers_count {
        let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
        for id in 0..50 {
            send(&mut stream, ApiKey::Fetch, 4, id, &fetch);
        }
        consumers.push(stream);
    }

    // Meanwhile another client's round trips keep completing.
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name("drain")))]));
    let small = produce_request("drain", &build_batch(&records[..1], BatchOptions::default()));
    let api_versions = ApiVersionsRequest::default();
    let (mut slowest, mut peak, mut round_trips) = ([Duration::ZERO; 3], before, 0);
    let started = Instant::now();
    let mut id = 100;
    while started.elapsed() < Duration::from_secs(5) {
        let times = [
            round_trip(&mut client, ApiKey::ApiVersions, 0, id, &api_versions),
            round_trip(&mut client, ApiKey::Metadata, 4, id + 1, &metadata),
            round_trip(&mut client, ApiKey::Produce, 7, id + 2, &small),
        ];
        for (slow, time) in slowest.iter_mut().zip(times) {
            *slow = (*slow).max(time);
        }
        id += 3;
        round_trips += 1;
        peak = peak.max(rss_bytes(&broker));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{consumers_count} consumers x 50 unread 8 MiB fetches: slowest of {round_trips} ApiVersions / Metadata / \
         Produce round trips meanwhile: {:?} / {:?} / {:?}; broker RSS {:.1} MiB before, peak {:.1} MiB",
        slowest[0],
        slowest[1],
        slowest[2],
        before as f64 / MIB,
        peak as f64 / MIB
    );
    for (api, slow) in ["ApiVersions", "Metadata", "Produce"].iter().zip(slowest) {
        assert!(slow < Duration::from_secs(3), "a {api} round trip took {slow:?}");
    }
    // Each consumer holds at most its share of the budget (2 MiB) plus what its socket took: the
    // budget, the 16 MiB batch cache and allocator slack are well under 100 MiB.
    assert!(peak - before < 100 << 20, "RSS grew by {:.1} MiB", (peak - before) as f64 / MIB);
    drop(consumers);
    broker.assert_running();
}
