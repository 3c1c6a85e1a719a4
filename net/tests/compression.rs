//! Broker-side batch rules against the real `spate serve`, with kcat (librdkafka) as the producer:
//! a topic's `compression.type` makes the broker recompress batches sent in another codec (as
//! Kafka does), and a compacted topic refuses records without a key (`INVALID_RECORD`, nothing of
//! the batch stored).

mod common;

use bytes::Bytes;
use common::{create_topic, kcat, kcat_with_input, Broker, Client};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spate_core::batch::{build_batch, split_record_set, BatchOptions, BatchView, Compression};
use spate_core::compression::batch_records;
use spate_core::record::{RecordIter, RecordSpec};

const INVALID_RECORD: i16 = 87;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// The stored batches of partition 0 of `topic`, from offset 0.
fn fetch_batches(client: &mut Client, topic: &str) -> Vec<Vec<u8>> {
    let partition = FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20);
    let request =
        FetchRequest::default().with_replica_id(BrokerId(-1)).with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(
            vec![FetchTopic::default().with_topic(TopicName(text(topic))).with_partitions(vec![partition])],
        );
    let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
    let records = response.responses[0].partitions[0].records.clone().unwrap_or_default();
    split_record_set(&records).map(|batch| batch.expect("whole batches").to_vec()).collect()
}

/// One batch's codec and (key, value) records.
type DecodedBatch = (Option<Compression>, Vec<(String, String)>);

fn decoded(batches: &[Vec<u8>]) -> Vec<DecodedBatch> {
    batches
        .iter()
        .map(|batch| {
            let view = BatchView::check_stored(batch).expect("a stored batch with a good CRC");
            let raw = batch_records(&view.header, batch, 1 << 24).expect("records");
            let records = RecordIter::new(&raw)
                .map(|record| record.expect("a record"))
                .map(|record| {
                    let key = String::from_utf8_lossy(record.key.unwrap_or_default()).into_owned();
                    (key, String::from_utf8_lossy(record.value.unwrap_or_default()).into_owned())
                })
                .collect();
            (view.header.compression(), records)
        })
        .collect()
}

fn kcat_produce(broker: &Broker, topic: &str, lines: &[String], codec: &str) -> String {
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let bootstrap = broker.bootstrap();
    let args = [
        "-P",
        "-b",
        &bootstrap,
        "-t",
        topic,
        "-K:",
        "-z",
        codec,
        "-X",
        "linger.ms=50",
        "-X",
        "message.timeout.ms=10000",
    ];
    let output = kcat_with_input(&args, Some(input.as_bytes()));
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn kcat_consume(broker: &Broker, topic: &str) -> Vec<String> {
    let bootstrap = broker.bootstrap();
    let output = kcat(&["-C", "-b", &bootstrap, "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s\\n"]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn a_topic_codec_recompresses_batches_sent_in_another() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(&broker);
    let lines: Vec<String> = (0..50).map(|i| format!("key-{i}:value-{i}-{}", "x".repeat(i))).collect();
    for (topic, topic_codec, producer_codec, stored) in [
        ("to-zstd", "zstd", "gzip", Compression::Zstd),
        ("to-gzip", "gzip", "lz4", Compression::Gzip),
        ("to-lz4", "lz4", "snappy", Compression::Lz4),
        ("to-snappy", "snappy", "zstd", Compression::Snappy),
        ("to-none", "uncompressed", "gzip", Compression::None),
        ("as-sent", "producer", "lz4", Compression::Lz4),
    ] {
        create_topic(&mut client, topic, 1, &[("compression.type", topic_codec), ("compression.zstd.level", "7")]);
        let stderr = kcat_produce(&broker, topic, &lines, producer_codec);
        assert!(!stderr.contains("failed"), "{topic}: {stderr}");
        let batches = fetch_batches(&mut client, topic);
        let decoded = decoded(&batches);
        assert!(!decoded.is_empty(), "{topic}");
        let mut records = Vec::new();
        for (codec, batch_records) in decoded {
            assert_eq!(codec, Some(stored), "{topic}: every batch stored in the topic's codec");
            records.extend(batch_records);
        }
        let expected: Vec<(String, String)> = lines
            .iter()
            .map(|line| {
                let (key, value) = line.split_once(':').unwrap();
                (key.to_owned(), value.to_owned())
            })
            .collect();
        assert_eq!(records, expected, "{topic}");
        // A client reads them back as sent.
        let consumed = kcat_consume(&broker, topic);
        let expected_lines: Vec<String> = lines.iter().map(|line| line.replacen(':', "=", 1)).collect();
        assert_eq!(consumed, expected_lines, "{topic}");
    }
}

#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    let broker = Broker::start(&[]);
    let mut client = Client::connect(&broker);
    create_topic(&mut client, "keyed", 1, &[("cleanup.policy", "compact")]);
    let produce = |client: &mut Client, records: Vec<u8>| {
        let data = PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(records)));
        let request =
            ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_transactional_id(None).with_topic_data(
                vec![TopicProduceData::default().with_name(TopicName(text("keyed"))).with_partition_data(vec![data])],
            );
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, &request);
        response.responses[0].partition_responses[0].error_code
    };
    let record = |key: Option<&'static [u8]>| RecordSpec { key, value: Some(b"v"), headers: &[], timestamp_ms: 1 };
    // One keyless record among keyed ones: the whole batch is refused.
    let mixed = build_batch(&[record(Some(b"a")), record(None), record(Some(b"b"))], BatchOptions::default());
    assert_eq!(produce(&mut client, mixed), INVALID_RECORD);
    assert!(fetch_batches(&mut client, "keyed").is_empty(), "nothing of the refused batch is stored");
    let keyed = build_batch(&[record(Some(b"a")), record(Some(b"b"))], BatchOptions::default());
    assert_eq!(produce(&mut client, keyed), 0);
    assert_eq!(fetch_batches(&mut client, "keyed").len(), 1);

    // kcat: keyed messages (compressed too) go in; a keyless one is refused with INVALID_RECORD.
    let stderr = kcat_produce(&broker, "keyed", &["k1:v1".to_owned(), "k2:v2".to_owned()], "zstd");
    assert!(!stderr.contains("failed"), "{stderr}");
    let bootstrap = broker.bootstrap();
    let output = kcat_with_input(
        &["-P", "-b", &bootstrap, "-t", "keyed", "-z", "gzip", "-X", "message.timeout.ms=10000"],
        Some(b"no-key\n"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    // librdkafka names INVALID_RECORD "Broker failed to validate record".
    assert!(stderr.contains("failed to validate record"), "{stderr}");
    assert_eq!(kcat_consume(&broker, "keyed"), vec!["a=v", "b=v", "k1=v1", "k2=v2"]);
}
