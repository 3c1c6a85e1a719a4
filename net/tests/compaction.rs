//! Log compaction against the real broker: a `cleanup.policy=compact` topic with tiny segments and an eager
//! cleaner, keyed values and tombstones produced with kcat, then read back from the beginning with kcat.
//! Checked: every record read is the one produced at that offset (offsets preserved, gaps allowed), each
//! key's latest value survives, superseded records below the active segment are gone, tombstones go once
//! `delete.retention.ms` has passed, and kill -9 while the cleaner works leaves a log with the same
//! properties after a restart.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{kcat, kcat_with_input, Broker, Client};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const TOPIC: &str = "compacted";
const DELETE_RETENTION_MS: u64 = 3_000;
const KEYS: usize = 12;

/// One record as produced (`None`: a tombstone).
type Produced = BTreeMap<i64, (String, Option<String>)>;

fn start() -> Broker {
    Broker::start_with_config("log_cleaner_backoff_ms = 100\n", &["--cores", "1"])
}

fn create_topic(broker: &Broker) {
    let config = |key: &str, value: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(key.to_owned()))
            .with_value(Some(StrBytes::from_string(value.to_owned())))
    };
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(TOPIC.to_owned())))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![
            config("cleanup.policy", "compact"),
            // A few hundred small records fill several segments (kcat's batches are kept below this).
            config("segment.bytes", "8192"),
            config("min.cleanable.dirty.ratio", "0.01"),
            config("delete.retention.ms", &DELETE_RETENTION_MS.to_string()),
        ]);
    let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(5_000);
    let response: CreateTopicsResponse = Client::connect(broker).call(ApiKey::CreateTopics, 5, &request);
    assert_eq!(response.topics[0].error_code, 0, "{:?}", response.topics[0].error_message);
}

/// Produces `records` in order with kcat (one partition, so offsets follow the order) and adds them to
/// `produced` from offset `next`.
fn produce(broker: &Broker, produced: &mut Produced, records: &[(String, Option<String>)]) {
    let input: String =
        records.iter().map(|(key, value)| format!("{key}:{}\n", value.as_deref().unwrap_or(""))).collect();
    let bootstrap = broker.bootstrap();
    let args = [
        "-P",
        "-b",
        &bootstrap,
        "-t",
        TOPIC,
        "-p",
        "0",
        "-K:",
        "-Z",
        "-X",
        "message.timeout.ms=20000",
        "-X",
        "batch.size=1500",
    ];
    let output = kcat_with_input(&args, Some(input.as_bytes()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !stderr.contains("failed"), "kcat -P: {stderr}\nspate:\n{}", broker.stderr());
    let first = produced.keys().next_back().map_or(0, |last| last + 1);
    for (offset, record) in (first..).zip(records) {
        produced.insert(offset, record.clone());
    }
}

/// Reads the whole partition: (offset, key, value) with `None` for a null value.
fn consume(broker: &Broker) -> Vec<(i64, String, Option<String>)> {
    let bootstrap = broker.bootstrap();
    let output = kcat(&["-C", "-b", &bootstrap, "-t", TOPIC, "-o", "beginning", "-e", "-q", "-f", "%o %k %S %s\\n"]);
    assert!(
        output.status.success(),
        "kcat -C: {}\nspate:\n{}",
        String::from_utf8_lossy(&output.stderr),
        broker.stderr()
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut fields = line.splitn(4, ' ');
            let offset = fields.next().and_then(|o| o.parse().ok()).unwrap_or_else(|| panic!("bad line {line:?}"));
            let key = fields.next().unwrap_or_default().to_owned();
            let length: i64 = fields.next().and_then(|l| l.parse().ok()).unwrap_or_else(|| panic!("bad line {line:?}"));
            let value = (length >= 0).then(|| fields.next().unwrap_or_default().to_owned());
            (offset, key, value)
        })
        .collect()
}

/// The base offset of the active (newest) segment, from the partition directory.
fn active_base(broker: &Broker) -> i64 {
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    common::list(&dir).iter().filter_map(|name| name.strip_suffix(".log")?.parse::<i64>().ok()).max().unwrap_or(0)
}

/// What must hold at any time: records read are the ones produced at their offsets, offsets increase,
/// and every key's latest record is there (a tombstone only until `delete.retention.ms` passed). Returns
/// whether the log is also fully compacted: below the active segment one record per key, and no tombstone
/// older than the retention.
fn check(broker: &Broker, produced: &Produced, tombstones_expired: bool) -> bool {
    let read = consume(broker);
    let mut last = -1;
    for (offset, key, value) in &read {
        assert!(*offset > last, "offsets must increase: {last} then {offset}");
        last = *offset;
        let expected = produced.get(offset).unwrap_or_else(|| panic!("offset {offset} was never produced"));
        assert_eq!((&expected.0, &expected.1), (key, value), "record at {offset}");
    }
    let present: BTreeMap<i64, &String> = read.iter().map(|(offset, key, _)| (*offset, key)).collect();
    let mut latest: BTreeMap<&String, i64> = BTreeMap::new();
    for (offset, (key, _)) in produced {
        latest.insert(key, *offset);
    }
    for (key, offset) in &latest {
        let tombstone = produced[offset].1.is_none();
        assert!(present.contains_key(offset) || tombstone, "the latest value of {key} at {offset} is missing");
        if !present.contains_key(offset) {
            let back: Vec<i64> = read.iter().filter(|(_, k, _)| k == *key).map(|(o, _, _)| *o).collect();
            assert!(back.is_empty(), "{key} was deleted at {offset} but {back:?} came back");
        }
    }
    let active = active_base(broker);
    let mut seen = BTreeMap::new();
    let mut compacted = read.len() < produced.len();
    for (offset, key, value) in read.iter().filter(|(offset, _, _)| *offset < active) {
        if seen.insert(key, offset).is_some() || (tombstones_expired && value.is_none()) {
            compacted = false;
        }
    }
    compacted
}

fn round(round: usize, records: usize) -> Vec<(String, Option<String>)> {
    (0..records)
        .map(|i| {
            let key = format!("key{}", (i * 7 + round) % KEYS);
            // Every 9th record of a round deletes its key.
            let value = (i % 9 != 8).then(|| format!("round{round}-value{i}-{}", "x".repeat(40)));
            (key, value)
        })
        .collect()
}

fn wait_until(what: &str, broker: &Broker, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}:\n{}", broker.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn compaction_keeps_the_latest_value_per_key_and_survives_kill_9() {
    let mut broker = start();
    create_topic(&broker);
    let mut produced = Produced::new();
    for r in 0..6 {
        produce(&broker, &mut produced, &round(r, 80));
    }
    // Filler of other keys, so the last tombstones land in sealed segments too.
    let filler: Vec<(String, Option<String>)> =
        (0..60).map(|i| (format!("filler{i}"), Some(format!("filler-{}", "y".repeat(60))))).collect();
    produce(&broker, &mut produced, &filler);
    wait_until("the sealed segments are compacted", &broker, || check(&broker, &produced, false));
    let started = Instant::now();
    wait_until("expired tombstones are removed", &broker, || {
        started.elapsed() > Duration::from_millis(DELETE_RETENTION_MS) && check(&broker, &produced, true)
    });
    assert!(broker.stderr().contains("cleaned a compacted log"), "{}", broker.stderr());

    // kill -9 at moments the cleaner is likely at work: right after new dirty data arrives.
    for (attempt, delay_ms) in [30u64, 120, 250, 60].into_iter().enumerate() {
        produce(&broker, &mut produced, &round(10 + attempt, 120));
        produce(&broker, &mut produced, &filler);
        std::thread::sleep(Duration::from_millis(delay_ms));
        broker.kill9();
        broker.restart();
        check(&broker, &produced, false);
    }
    wait_until("the log is compacted again after the restarts", &broker, || check(&broker, &produced, false));
    broker.stop();
}
