//! Each handler's edge cases on the wire, against the real `spate serve`: requests encoded at exact
//! versions with `kafka-protocol`, responses checked field by field (error codes, offsets, configs,
//! topic ids, the bytes fetched).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Broker, Client};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_core::batch::{build_batch, BatchOptions};
use spate_core::record::RecordSpec;
use uuid::Uuid;

/// A raw Kafka connection.
fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

fn new_topic(topic: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

fn config(key: &str, value: Option<&str>) -> CreatableTopicConfig {
    CreatableTopicConfig::default()
        .with_name(StrBytes::from_string(key.to_owned()))
        .with_value(value.map(|value| StrBytes::from_string(value.to_owned())))
}

fn create(client: &mut Client, version: i16, topics: Vec<CreatableTopic>, validate_only: bool) -> CreateTopicsResponse {
    let request =
        CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(5_000).with_validate_only(validate_only);
    client.call(ApiKey::CreateTopics, version, &request)
}

fn batch(values: &[&str], timestamp_ms: i64) -> Vec<u8> {
    let records: Vec<RecordSpec<'_>> = values
        .iter()
        .map(|value| RecordSpec { key: Some(b"k"), value: Some(value.as_bytes()), headers: &[], timestamp_ms })
        .collect();
    build_batch(&records, BatchOptions::default())
}

fn produce_request(topic: &str, partition: i32, acks: i16, records: Vec<u8>) -> ProduceRequest {
    let data = PartitionProduceData::default().with_index(partition).with_records(Some(Bytes::from(records)));
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(name(topic)).with_partition_data(vec![data])])
}

fn partition_error(response: &ProduceResponse) -> (i16, i64) {
    let partition = &response.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn create_topics_validates_like_kafka() {
    let broker = Broker::start_with_config("auto_create_topics_enable = false\nnum_partitions = 2\n", &[]);
    let mut client = Client::connect(&broker);
    let response = create(
        &mut client,
        7,
        vec![
            new_topic("orders", 3, 1).with_configs(vec![config("retention.ms", Some("1000"))]),
            new_topic("defaults", -1, -1),
            new_topic("dup", 1, 1),
            new_topic("dup", 1, 1),
            new_topic("bad/name", 1, 1),
            new_topic(&"x".repeat(250), 1, 1),
            new_topic("three-copies", 1, 3),
            new_topic("no-partitions", 0, 1),
            new_topic("bad-config", 1, 1).with_configs(vec![config("retention.ms", Some("soon"))]),
            new_topic("unknown-config", 1, 1).with_configs(vec![config("colour", Some("blue"))]),
            new_topic("null-config", 1, 1).with_configs(vec![config("retention.ms", None)]),
        ],
        false,
    );
    let codes: Vec<(String, i16)> = response
        .topics
        .iter()
        .map(|topic| (topic.name.to_string().chars().take(20).collect(), topic.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("orders".into(), 0),
            ("defaults".into(), 0),
            ("dup".into(), 42),
            ("dup".into(), 42),
            ("bad/name".into(), 17),
            ("x".repeat(20), 17),
            ("three-copies".into(), 38),
            ("no-partitions".into(), 37),
            ("bad-config".into(), 40),
            ("unknown-config".into(), 40),
            ("null-config".into(), 40),
        ]
    );
    let orders = &response.topics[0];
    assert_eq!((orders.num_partitions, orders.replication_factor), (3, 1));
    assert!(!orders.topic_id.is_nil());
    let configs = orders.configs.as_ref().unwrap();
    let retention = configs.iter().find(|entry| entry.name.as_str() == "retention.ms").unwrap();
    assert_eq!((retention.value.as_deref(), retention.config_source), (Some("1000"), 1), "a topic override");
    let segment = configs.iter().find(|entry| entry.name.as_str() == "segment.bytes").unwrap();
    assert_eq!((segment.value.as_deref(), segment.config_source), (Some("1073741824"), 5), "Kafka's default");
    assert!(configs.iter().any(|entry| entry.name.as_str() == "spate.acks.all.flush"));
    assert_eq!(response.topics[1].num_partitions, 2, "-1 takes num_partitions from the broker config");
    assert!(response.topics[8].error_message.as_deref().unwrap_or("").contains("retention.ms"));

    // Again: now it exists. validate_only creates nothing and answers a nil id.
    let again = create(&mut client, 7, vec![new_topic("orders", 1, 1)], false);
    assert_eq!(again.topics[0].error_code, 36);
    let checked = create(&mut client, 7, vec![new_topic("only-checked", 4, 1)], true);
    assert_eq!((checked.topics[0].error_code, checked.topics[0].num_partitions), (0, 4));
    assert!(checked.topics[0].topic_id.is_nil());
    // Older versions: no configs in the answer.
    let v2 = create(&mut client, 2, vec![new_topic("old-client", 1, 1)], false);
    assert_eq!(v2.topics[0].error_code, 0);

    // Metadata v12 reports the same id, the partitions, and nothing for the validate_only topic.
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("orders"))),
            MetadataRequestTopic::default().with_name(Some(name("only-checked"))),
        ]))
        .with_allow_auto_topic_creation(true);
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 12, &request);
    assert_eq!(metadata.topics[0].topic_id, orders.topic_id);
    assert_eq!(metadata.topics[0].partitions.len(), 3);
    assert_eq!(metadata.topics[1].error_code, 3, "auto-creation is off in this broker's config");
}

#[test]
fn produce_errors_and_acks() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(&broker);
    create(&mut client, 7, vec![new_topic("p", 2, 1)], false);

    let ok: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("p", 1, -1, batch(&["a", "b"], 1_000)));
    assert_eq!(partition_error(&ok), (0, 0));
    let next: ProduceResponse = client.call(ApiKey::Produce, 3, &produce_request("p", 1, 1, batch(&["c"], 1_001)));
    assert_eq!(partition_error(&next), (0, 2), "offsets continue");

    let unknown: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("nope", 0, 1, batch(&["x"], 1)));
    assert_eq!(partition_error(&unknown), (3, -1), "produce never creates topics");
    let no_partition: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("p", 2, 1, batch(&["x"], 1)));
    assert_eq!(partition_error(&no_partition).0, 3);
    let bad_acks: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("p", 0, 2, batch(&["x"], 1)));
    assert_eq!(partition_error(&bad_acks).0, 21, "INVALID_REQUIRED_ACKS");
    let mut corrupt = batch(&["x"], 1);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let corrupt: ProduceResponse = client.call(ApiKey::Produce, 11, &produce_request("p", 0, 1, corrupt));
    assert_eq!(partition_error(&corrupt).0, 2, "CORRUPT_MESSAGE: the CRC does not match");

    // acks=0: no response at all; the next request's answer is the next frame.
    client.send(ApiKey::Produce, 9, &produce_request("p", 0, 0, batch(&["quiet"], 1)));
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 1, &MetadataRequest::default().with_topics(None));
    assert_eq!(metadata.topics.len(), 1);
    let quiet: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("p", 0, 1, batch(&["after"], 1)));
    assert_eq!(partition_error(&quiet), (0, 1), "the acks=0 batch was stored at offset 0");

    // acks=0 that fails: Kafka closes the connection so the producer refreshes its metadata.
    client.send(ApiKey::Produce, 9, &produce_request("nope", 0, 0, batch(&["lost"], 1)));
    let mut rest = Vec::new();
    let closed = std::io::Read::read_to_end(client.stream(), &mut rest);
    assert!(matches!(closed, Ok(0)) || closed.is_err(), "connection closed, nothing sent: {closed:?} {rest:?}");
    assert!(broker.stderr().contains("acks=0 produce failed"), "{}", broker.stderr());
}

/// `timeout_ms` bounds only the acks=-1 wait for the fdatasync (unit tests in `produce.rs` cover a flush
/// that outlasts it); the answers here do not depend on how fast this machine's fsync is.
#[test]
fn produce_timeout_bounds_only_the_acks_all_flush() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(&broker);
    let synced = new_topic("synced", 1, 1).with_configs(vec![config("flush.messages", Some("1"))]);
    let created = create(&mut client, 7, vec![new_topic("t", 1, 1), synced], false);
    assert!(created.topics.iter().all(|topic| topic.error_code == 0), "{created:?}");

    // A normal timeout: the group-committed fdatasync is well within it.
    let request = produce_request("t", 0, -1, batch(&["a"], 1)).with_timeout_ms(30_000);
    let all: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    assert_eq!(partition_error(&all), (0, 0));
    // acks=1 ignores timeout_ms, as Kafka does.
    for timeout_ms in [0, -1] {
        let request = produce_request("t", 0, 1, batch(&["b"], 1)).with_timeout_ms(timeout_ms);
        let one: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
        assert_eq!(partition_error(&one).0, 0, "acks=1, timeout_ms {timeout_ms}");
    }
    // acks=-1 on a topic that fdatasyncs every append: nothing is left to wait for once the append
    // returns, so even no time at all is enough (Kafka too answers at once when the acks are met).
    for (timeout_ms, offset) in [(0, 0), (-1, 1)] {
        let request = produce_request("synced", 0, -1, batch(&["c"], 1)).with_timeout_ms(timeout_ms);
        let durable: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
        assert_eq!(partition_error(&durable), (0, offset), "acks=-1, timeout_ms {timeout_ms}, already durable");
    }
}

#[test]
fn fetch_returns_stored_batches_and_long_polls() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(&broker);
    let created = create(&mut client, 7, vec![new_topic("f", 1, 1)], false);
    let topic_id: Uuid = created.topics[0].topic_id;
    let first = batch(&["one", "two"], 5_000);
    let second = batch(&["three"], 6_000);
    for records in [first.clone(), second.clone()] {
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("f", 0, -1, records));
        assert_eq!(partition_error(&response).0, 0);
    }
    // What was stored: the batches as sent, with base offsets and the leader epoch (0) filled in.
    let mut expected = first.clone();
    expected[12..16].copy_from_slice(&0i32.to_be_bytes());
    let mut expected_second = second.clone();
    expected_second[..8].copy_from_slice(&2i64.to_be_bytes());
    expected_second[12..16].copy_from_slice(&0i32.to_be_bytes());
    expected.extend_from_slice(&expected_second);

    let fetch = |topic: FetchTopic, offset: i64, max_wait_ms: i32| {
        let partition =
            FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20);
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![topic.with_partitions(vec![partition])])
    };
    for version in [4, 11, 12] {
        let response: FetchResponse =
            client.call(ApiKey::Fetch, version, &fetch(FetchTopic::default().with_topic(name("f")), 0, 0));
        let partition = &response.responses[0].partitions[0];
        assert_eq!(
            (partition.error_code, partition.high_watermark, partition.last_stable_offset),
            (0, 3, 3),
            "v{version}"
        );
        assert_eq!(partition.records.as_deref(), Some(&expected[..]), "v{version}: stored bytes, as they are");
    }
    // v13+: by topic id; an unknown id is UNKNOWN_TOPIC_ID.
    let by_id: FetchResponse =
        client.call(ApiKey::Fetch, 16, &fetch(FetchTopic::default().with_topic_id(topic_id), 2, 0));
    let partition = &by_id.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.records.as_ref().map(Bytes::len)), (0, Some(expected_second.len())));
    let unknown: FetchResponse =
        client.call(ApiKey::Fetch, 13, &fetch(FetchTopic::default().with_topic_id(Uuid::from_u128(5)), 0, 0));
    assert_eq!(unknown.responses[0].partitions[0].error_code, 100);
    // Beyond the end: OFFSET_OUT_OF_RANGE, at once.
    let out_of_range: FetchResponse =
        client.call(ApiKey::Fetch, 12, &fetch(FetchTopic::default().with_topic(name("f")), 99, 5_000));
    assert_eq!(out_of_range.responses[0].partitions[0].error_code, 1);
    // An incremental fetch session is not kept: FETCH_SESSION_ID_NOT_FOUND.
    let session: FetchResponse = client.call(
        ApiKey::Fetch,
        12,
        &fetch(FetchTopic::default().with_topic(name("f")), 0, 0).with_session_id(7).with_session_epoch(1),
    );
    assert_eq!((session.error_code, session.responses.len()), (70, 0));

    // Long poll at the end of the log: waits max_wait_ms for nothing...
    let started = Instant::now();
    let empty: FetchResponse =
        client.call(ApiKey::Fetch, 12, &fetch(FetchTopic::default().with_topic(name("f")), 3, 300));
    assert!(started.elapsed() >= Duration::from_millis(280), "{:?}", started.elapsed());
    assert_eq!(empty.responses[0].partitions[0].records.as_ref().map(Bytes::len), Some(0));
    // ...and is answered as soon as an append (on another connection) lands.
    let waiting = client.send(ApiKey::Fetch, 12, &fetch(FetchTopic::default().with_topic(name("f")), 3, 10_000));
    std::thread::sleep(Duration::from_millis(300));
    let appended_at = Instant::now();
    let mut producer = Client::connect(&broker);
    let _: ProduceResponse = producer.call(ApiKey::Produce, 9, &produce_request("f", 0, 1, batch(&["four"], 7_000)));
    let woken: FetchResponse = client.receive(ApiKey::Fetch, 12, waiting);
    assert!(appended_at.elapsed() < Duration::from_secs(3), "woken by the append: {:?}", appended_at.elapsed());
    let partition = &woken.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 4));
    assert!(partition.records.as_ref().is_some_and(|records| !records.is_empty()));
}

#[test]
fn list_offsets_positions_times_and_versions() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(&broker);
    create(&mut client, 7, vec![new_topic("l", 1, 1)], false);
    for (values, timestamp) in [(vec!["a", "b"], 1_000), (vec!["c"], 9_000), (vec!["d"], 5_000)] {
        let _: ProduceResponse =
            client.call(ApiKey::Produce, 9, &produce_request("l", 0, 1, batch(&values, timestamp)));
    }
    let ask = |version: i16, timestamp: i64| {
        let partition = ListOffsetsPartition::default().with_partition_index(0).with_timestamp(timestamp);
        let topic = ListOffsetsTopic::default().with_name(name("l")).with_partitions(vec![partition]);
        (version, ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![topic]))
    };
    let mut answer = |(version, request): (i16, ListOffsetsRequest)| {
        let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, version, &request);
        let partition = &response.topics[0].partitions[0];
        (partition.error_code, partition.offset, partition.timestamp)
    };
    assert_eq!(answer(ask(1, -2)), (0, 0, -1), "earliest");
    assert_eq!(answer(ask(8, -1)), (0, 4, -1), "latest");
    assert_eq!(answer(ask(7, -3)), (0, 2, 9_000), "max timestamp");
    assert_eq!(answer(ask(6, -3)).0, 35, "max timestamp needs v7");
    assert_eq!(answer(ask(8, -4)), (0, 0, -1), "earliest local");
    assert_eq!(answer(ask(5, 2_000)), (0, 2, 9_000), "first batch reaching the time");
    assert_eq!(answer(ask(5, 10_000)), (0, -1, -1), "nothing that late");
    let missing = ListOffsetsTopic::default()
        .with_name(name("missing"))
        .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]);
    let response: ListOffsetsResponse =
        client.call(ApiKey::ListOffsets, 5, &ListOffsetsRequest::default().with_topics(vec![missing]));
    assert_eq!(response.topics[0].partitions[0].error_code, 3);
}

#[test]
fn nested_lying_counts_close_only_that_connection() {
    let mut broker = Broker::start(&[]);
    // Produce v3: null transactional id, acks 1, timeout, one topic "t" whose partitions array claims
    // 2^31 - 1 entries in a few bytes.
    let mut body = vec![0xff, 0xff, 0, 1, 0, 0, 0x13, 0x88, 0, 0, 0, 1, 0, 1, b't'];
    body.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
    assert!(common::send_and_expect_close(broker.port, &common::request(0, 3, 1, &body), false).is_empty());
    broker.assert_running();
    assert!(broker.stderr().contains("partition_data: array claims 2147483647 elements"), "{}", broker.stderr());
    broker.assert_kcat_lists_broker(0);
}

#[test]
fn an_io_error_on_a_log_exits_the_process_with_74() {
    let mut broker = Broker::start_with_config("[topic_defaults]\n\"segment.bytes\" = 20000\n", &[]);
    let mut client = Client::connect(&broker);
    create(&mut client, 7, vec![new_topic("doomed", 1, 1)], false);
    let value = "v".repeat(8_000);
    let first: ProduceResponse = client.call(ApiKey::Produce, 9, &produce_request("doomed", 0, 1, batch(&[&value], 1)));
    assert_eq!(partition_error(&first), (0, 0));
    // The partition's directory vanishes under the broker: the next segment roll cannot write the
    // sealed segment's indexes or create the new segment.
    std::fs::remove_dir_all(broker.data_dir().join("doomed-0")).unwrap();
    // The first of these may already kill the broker: later sends may then find the socket closed.
    for _ in 0..3 {
        if client.try_send(ApiKey::Produce, 9, &produce_request("doomed", 0, 1, batch(&[&value], 1))).is_err() {
            break;
        }
    }
    let status = broker.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(74), "{}", broker.stderr());
    let log = broker.stderr();
    assert!(log.contains("fatal I/O error, exiting") && log.contains("doomed-0"), "{log}");
}

#[test]
fn one_request_spans_partitions_on_every_shard() {
    // 16 partitions: with the placement hash, every shard of this machine owns some (all on one of
    // two shards has probability 2^-15), so these requests are split and reassembled.
    let broker = Broker::start(&[]);
    let mut client = Client::connect(&broker);
    create(&mut client, 7, vec![new_topic("wide", 16, 1)], false);
    let partitions: Vec<PartitionProduceData> = (0..16)
        .rev()
        .map(|index| {
            let value = format!("p{index}");
            PartitionProduceData::default().with_index(index).with_records(Some(Bytes::from(batch(&[&value], 1))))
        })
        .collect();
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default().with_name(name("wide")).with_partition_data(partitions)]);
    let produced: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
    let answered: Vec<(i32, i16, i64)> = produced.responses[0]
        .partition_responses
        .iter()
        .map(|partition| (partition.index, partition.error_code, partition.base_offset))
        .collect();
    assert_eq!(answered, (0..16).rev().map(|index| (index, 0, 0)).collect::<Vec<_>>(), "in request order");

    let fetch_partitions: Vec<FetchPartition> = (0..16)
        .map(|index| {
            FetchPartition::default().with_partition(index).with_fetch_offset(0).with_partition_max_bytes(1 << 20)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name("wide")).with_partitions(fetch_partitions)]);
    let fetched: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
    for (index, partition) in fetched.responses[0].partitions.iter().enumerate() {
        assert_eq!((partition.partition_index, partition.error_code, partition.high_watermark), (index as i32, 0, 1));
        let records = partition.records.as_ref().unwrap();
        // The record ends with its value and an empty header count.
        let tail = format!("p{index}\0");
        assert!(records.ends_with(tail.as_bytes()), "partition {index}");
    }
}

#[test]
fn fetch_max_bytes_caps_responses_and_every_batch_still_arrives() {
    // 300 bytes per response at most (after the first batch): far below the partitions' maximums, so
    // owners read partition by partition within what is left (the budgeted read) and report the rest
    // by offsets only.
    let broker = Broker::start_with_config("fetch_max_bytes = 300\n", &["--cores", "2"]);
    let mut client = Client::connect(&broker);
    create(&mut client, 7, vec![new_topic("capped", 4, 1)], false);
    let value = "v".repeat(60);
    for partition in 0..4 {
        for _ in 0..5 {
            let request = produce_request("capped", partition, 1, batch(&[value.as_str()], 1_000));
            let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
            assert_eq!(partition_error(&response).0, 0);
        }
    }
    let one_batch = batch(&[value.as_str()], 1_000).len();
    let mut offsets = [0i64; 4];
    let mut fetches = 0;
    while offsets.iter().any(|&offset| offset < 5) {
        fetches += 1;
        assert!(fetches < 50, "stuck at {offsets:?}");
        let partitions = (0..4)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offsets[p as usize])
                    .with_partition_max_bytes(1 << 20)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(name("capped")).with_partitions(partitions)]);
        let response: FetchResponse = client.call(ApiKey::Fetch, 12, &request);
        let mut total = 0;
        for partition in &response.responses[0].partitions {
            assert_eq!((partition.error_code, partition.high_watermark), (0, 5), "every partition reports its offsets");
            let records = partition.records.clone().unwrap_or_default();
            total += records.len();
            assert_eq!(records.len() % one_batch, 0, "whole batches only");
            offsets[partition.partition_index as usize] += (records.len() / one_batch) as i64;
        }
        assert!(total > 0, "progress on every fetch");
        assert!(total <= 300 + one_batch, "{total} bytes: at most the first batch plus fetch_max_bytes");
    }
    assert_eq!(offsets, [5; 4]);
    assert!(fetches >= 20 / (300 / one_batch + 1), "{fetches} fetches: the cap was applied");
}
