//! Retention against the real `spate serve` with kcat (librdkafka): by size and by time, checked by the
//! background task (`retention_check_interval_ms`). Old segments go, the log start offset advances,
//! new offsets keep increasing, and a consumer asking for an offset that is gone is reset to the start.

mod common;

use std::time::{Duration, Instant};

use common::{create_topic, kcat, kcat_with_input, Broker, Client};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// (log start offset, log end offset) of partition 0.
fn offsets(client: &mut Client, topic: &str) -> (i64, i64) {
    let mut ends = [0i64; 2];
    for (slot, timestamp) in ends.iter_mut().zip([-2i64, -1]) {
        let request =
            ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)])]);
        let response: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 5, &request);
        let partition = &response.topics[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        *slot = partition.offset;
    }
    (ends[0], ends[1])
}

/// Produces `count` messages `m<first>`.. with kcat, five per batch.
fn produce(broker: &Broker, topic: &str, first: usize, count: usize) {
    let input: String = (first..first + count).map(|i| format!("m{i}-{}\n", "p".repeat(80))).collect();
    let bootstrap = broker.bootstrap();
    let args = [
        "-P",
        "-b",
        &bootstrap,
        "-t",
        topic,
        "-p",
        "0",
        "-X",
        "batch.num.messages=5",
        "-X",
        "message.timeout.ms=10000",
    ];
    let output = kcat_with_input(&args, Some(input.as_bytes()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("failed"), "{stderr}");
}

/// kcat from offset 0 with `auto.offset.reset=smallest`: (offset, message number) of what it reads.
fn consume_from_zero(broker: &Broker, topic: &str) -> Vec<(i64, usize)> {
    let bootstrap = broker.bootstrap();
    let output = kcat(&[
        "-C",
        "-b",
        &bootstrap,
        "-t",
        topic,
        "-p",
        "0",
        "-o",
        "0",
        "-e",
        "-X",
        "topic.auto.offset.reset=smallest",
        "-f",
        "%o %s\\n",
    ]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let (offset, value) = line.split_once(' ').expect("offset and value");
            let number = value.trim_start_matches('m').split('-').next().unwrap().parse().expect("a message number");
            (offset.parse().expect("an offset"), number)
        })
        .collect()
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn retention_by_size_drops_old_segments_and_consumers_reset_to_the_start() {
    let broker = Broker::start_with_config("retention_check_interval_ms = 200\n", &[]);
    let mut client = Client::connect(&broker);
    create_topic(&mut client, "sized", 1, &[("segment.bytes", "4096"), ("retention.bytes", "8192")]);
    produce(&broker, "sized", 0, 300);
    // Checks may run while the records are still arriving: wait for the start to settle (unchanged over
    // three checks).
    wait_until("size retention moves the log start and settles", || {
        let before = offsets(&mut client, "sized");
        std::thread::sleep(Duration::from_millis(600));
        before.0 > 0 && offsets(&mut client, "sized") == before
    });
    let (start, end) = offsets(&mut client, "sized");
    assert_eq!(end, 300);
    // About 8 KiB of ~100-byte records is left: far fewer than 300, never fewer than retention.bytes holds.
    assert!((60..250).contains(&(end - start)), "start {start}, end {end}");

    // A consumer asking for offset 0 (gone) is reset to the log start and reads on from there, in order.
    let read = consume_from_zero(&broker, "sized");
    assert_eq!(read.first().map(|(offset, _)| *offset), Some(start));
    let expected: Vec<(i64, usize)> = (start..end).map(|offset| (offset, offset as usize)).collect();
    assert_eq!(read, expected);

    // New offsets carry on from the end.
    produce(&broker, "sized", 300, 10);
    assert_eq!(offsets(&mut client, "sized").1, 310);
    assert_eq!(consume_from_zero(&broker, "sized").last(), Some(&(309, 309)));
}

#[test]
fn retention_by_time_empties_the_log_and_offsets_keep_increasing() {
    let mut broker = Broker::start_with_config("retention_check_interval_ms = 200\n", &[]);
    let mut client = Client::connect(&broker);
    create_topic(&mut client, "timed", 1, &[("segment.bytes", "4096"), ("retention.ms", "1500")]);
    produce(&broker, "timed", 0, 100);
    assert_eq!(offsets(&mut client, "timed"), (0, 100));
    // Every segment expires, the active one included (rolled first, as Kafka does).
    wait_until("time retention empties the log", || offsets(&mut client, "timed") == (100, 100));
    assert!(consume_from_zero(&broker, "timed").is_empty());
    produce(&broker, "timed", 100, 5);
    assert_eq!(offsets(&mut client, "timed"), (100, 105));
    assert_eq!(consume_from_zero(&broker, "timed"), (100..105).map(|o| (o, o as usize)).collect::<Vec<_>>());
    // The start survives a restart.
    broker.stop();
    broker.restart();
    let mut client = Client::connect(&broker);
    assert_eq!(offsets(&mut client, "timed").1, 105);
    assert!(offsets(&mut client, "timed").0 >= 100);
}
