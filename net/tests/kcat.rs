//! The data path with a real client: kcat (librdkafka) producing to and consuming from the real
//! `spate serve` process — keyed round trips over several partitions, restarts, kill -9, offsets by
//! time and position, long polling.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::{kcat, kcat_with_input, Broker};

/// Produces `lines` (`key:value`, one per line) to `topic` with kcat, asserting every message was
/// delivered (kcat exits 0 and reports no failure).
fn produce(broker: &Broker, topic: &str, lines: &[String], extra: &[&str]) {
    let input = lines.iter().map(|line| format!("{line}\n")).collect::<String>();
    let bootstrap = broker.bootstrap();
    let mut args = vec!["-P", "-b", bootstrap.as_str(), "-t", topic, "-K:", "-X", "message.timeout.ms=20000"];
    args.extend_from_slice(extra);
    let output = kcat_with_input(&args, Some(input.as_bytes()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("failed"),
        "kcat -P failed ({}):\n{stderr}\nspate:\n{}",
        output.status,
        broker.stderr()
    );
}

/// One consumed message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Consumed {
    partition: i32,
    offset: i64,
    key: String,
    value: String,
}

/// Consumes `topic` from `start` (kcat `-o`) to the end of every partition.
fn consume(broker: &Broker, topic: &str, start: &str) -> Vec<Consumed> {
    let bootstrap = broker.bootstrap();
    let output = kcat(&["-C", "-b", &bootstrap, "-t", topic, "-o", start, "-e", "-q", "-f", "%p %o %k %s\\n"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "kcat -C failed ({}):\n{}\nspate:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        broker.stderr()
    );
    stdout
        .lines()
        .map(|line| {
            let mut fields = line.splitn(4, ' ');
            let mut next = || fields.next().unwrap_or_else(|| panic!("bad kcat line {line:?}"));
            Consumed {
                partition: next().parse().unwrap(),
                offset: next().parse().unwrap(),
                key: next().to_owned(),
                value: next().to_owned(),
            }
        })
        .collect()
}

fn keyed_lines(range: std::ops::Range<usize>, keys: usize) -> Vec<String> {
    range.map(|i| format!("key{}:value-{i}", i % keys)).collect()
}

fn sequence(value: &str) -> usize {
    value.rsplit('-').next().unwrap().parse().unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn ten_thousand_keyed_messages_round_trip_in_partition_order() {
    let broker = Broker::start_with_config("num_partitions = 3\n", &[]);
    let lines = keyed_lines(0..10_000, 97);
    // The topic does not exist: librdkafka's Metadata request creates it, with 3 partitions.
    produce(&broker, "keyed", &lines, &[]);

    let listing = kcat(&["-L", "-b", &broker.bootstrap(), "-t", "keyed"]);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("topic \"keyed\" with 3 partitions"), "{listing}");

    let consumed = consume(&broker, "keyed", "beginning");
    assert_eq!(consumed.len(), 10_000, "every message came back once");
    let mut values: Vec<usize> = consumed.iter().map(|message| sequence(&message.value)).collect();
    values.sort_unstable();
    assert_eq!(values, (0..10_000).collect::<Vec<_>>());

    let mut partition_of_key: HashMap<&str, i32> = HashMap::new();
    let mut by_partition: BTreeMap<i32, Vec<&Consumed>> = BTreeMap::new();
    for message in &consumed {
        let owner = *partition_of_key.entry(&message.key).or_insert(message.partition);
        assert_eq!(owner, message.partition, "key {} seen in two partitions", message.key);
        assert_eq!(message.key, format!("key{}", sequence(&message.value) % 97), "key and value stay paired");
        by_partition.entry(message.partition).or_default().push(message);
    }
    assert!(by_partition.len() > 1, "97 keys spread over more than one partition: {:?}", by_partition.keys());
    for (partition, messages) in &by_partition {
        let offsets: Vec<i64> = messages.iter().map(|message| message.offset).collect();
        assert_eq!(offsets, (0..messages.len() as i64).collect::<Vec<_>>(), "partition {partition}: offsets");
        // Produce order is kept within the partition (and so within each key).
        let sequences: Vec<usize> = messages.iter().map(|message| sequence(&message.value)).collect();
        assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]), "partition {partition} out of order");
    }
}

#[test]
fn sigterm_restart_keeps_everything_and_offsets_continue() {
    let mut broker = Broker::start(&[]);
    produce(&broker, "durable", &keyed_lines(0..1_000, 10), &[]);
    broker.stop();
    assert!(broker.stderr().contains("closed logs"), "{}", broker.stderr());
    let topics = std::fs::read_to_string(broker.data_dir().join("__cluster_metadata/topics.json")).unwrap();
    assert!(topics.contains("\"durable\""), "{topics}");

    broker.restart();
    let consumed = consume(&broker, "durable", "beginning");
    let log = broker.stderr();
    assert!(log.contains("durable-0 clean=true"), "a clean start skips recovery:\n{log}");
    assert_eq!(consumed.iter().map(|message| message.offset).collect::<Vec<_>>(), (0..1_000).collect::<Vec<_>>());

    produce(&broker, "durable", &keyed_lines(1_000..1_010, 10), &[]);
    let tail = consume(&broker, "durable", "1000");
    assert_eq!(tail.iter().map(|message| message.offset).collect::<Vec<_>>(), (1_000..1_010).collect::<Vec<_>>());
    assert_eq!(tail[0].value, "value-1000");
}

#[test]
fn kill_9_keeps_every_acknowledged_message() {
    // flush.messages=1 for every topic: each append is fdatasync'd before it is acknowledged.
    let mut broker = Broker::start_with_config("[topic_defaults]\n\"flush.messages\" = 1\n", &[]);
    for round in 0..3 {
        let lines = keyed_lines(round * 500..(round + 1) * 500, 7);
        produce(&broker, "crash", &lines, &["-X", "acks=all", "-X", "enable.idempotence=false"]);
    }
    broker.kill9();
    broker.restart();
    let consumed = consume(&broker, "crash", "beginning");
    let log = broker.stderr();
    let reopened = log.rsplit("starting listen=").next().unwrap_or_default();
    assert!(reopened.contains("crash-0 clean=false"), "after kill -9 the log is recovered:\n{log}");
    assert_eq!(consumed.len(), 1_500, "every acknowledged message survived");
    assert_eq!(consumed.iter().map(|message| message.offset).collect::<Vec<_>>(), (0..1_500).collect::<Vec<_>>());
    assert_eq!(
        consumed.iter().map(|message| sequence(&message.value)).collect::<Vec<_>>(),
        (0..1_500).collect::<Vec<_>>()
    );
    // And the log goes on from where it was.
    produce(&broker, "crash", &keyed_lines(1_500..1_501, 7), &[]);
    let tail = consume(&broker, "crash", "1500");
    assert_eq!((tail.len(), tail[0].offset), (1, 1_500));
}

#[test]
fn offsets_by_time_and_by_position() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    produce(&broker, "times", &keyed_lines(0..5, 5), &[]);
    std::thread::sleep(Duration::from_millis(50));
    let middle = now_ms();
    std::thread::sleep(Duration::from_millis(50));
    produce(&broker, "times", &keyed_lines(5..10, 5), &[]);

    let query = |spec: String| {
        let output = kcat(&["-Q", "-b", &bootstrap, "-t", &spec]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(query(format!("times:0:{middle}")), "times [0] offset 5", "first message at or after the time");
    assert_eq!(query("times:0:0".into()), "times [0] offset 0");
    assert_eq!(query("times:0:-1".into()), "times [0] offset 10", "latest = high watermark");
    assert_eq!(query("times:0:-2".into()), "times [0] offset 0", "earliest");
    assert_eq!(query(format!("times:0:{}", now_ms() + 3_600_000)), "times [0] offset -1", "nothing that late");

    let last = consume(&broker, "times", "-1");
    assert_eq!(last.len(), 1);
    assert_eq!((last[0].offset, last[0].value.as_str()), (9, "value-9"));
    assert_eq!(consume(&broker, "times", "beginning").len(), 10);
}

#[test]
fn a_waiting_consumer_is_woken_by_the_append() {
    let broker = Broker::start(&[]);
    produce(&broker, "live", &keyed_lines(0..1, 1), &[]);
    let bootstrap = broker.bootstrap();
    // The consumer long-polls with a 10 s max wait: without a wake-up it would see the next message
    // only after 10 s.
    let consumer = std::thread::spawn(move || {
        kcat(&[
            "-C",
            "-b",
            &bootstrap,
            "-t",
            "live",
            "-o",
            "1",
            "-c",
            "1",
            "-q",
            "-f",
            "%o %s\\n",
            "-X",
            "fetch.wait.max.ms=10000",
        ])
    });
    std::thread::sleep(Duration::from_millis(1_500)); // the consumer is waiting in a fetch by now
    let produced_at = Instant::now();
    produce(&broker, "live", &["k:wake-up".to_owned()], &[]);
    let output = consumer.join().unwrap();
    let latency = produced_at.elapsed();
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1 wake-up");
    assert!(latency < Duration::from_secs(5), "the fetch was not woken by the append: {latency:?}");
}
