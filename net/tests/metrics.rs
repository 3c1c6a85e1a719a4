//! The admin listener of the real `spate serve`: `/metrics` parses as OpenMetrics text while kcat
//! produces and consumes, its counters and gauges move as they should (requests, bytes and records per
//! topic, log offsets, consumer group lag, connections), and `/healthz` and `/readyz` answer.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{kcat, kcat_with_input, Broker, Client};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

/// The admin address the broker logged.
fn admin_address(broker: &Broker) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = broker.stderr();
        if let Some(line) = log.lines().find(|line| line.contains("admin listener")) {
            let start = line.find("admin_listen=").expect("the address is logged") + "admin_listen=".len();
            return line[start..].split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no admin listener line:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (status code, body) of `method path`.
fn http(address: &str, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// Every sample of an OpenMetrics text, by `name{labels}`; panics on any line that is not a
/// descriptor, a sample or the final `# EOF`.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "OpenMetrics text ends with # EOF");
    for line in &lines[..lines.len() - 1] {
        if let Some(descriptor) = line.strip_prefix("# ") {
            let kind = descriptor.split_whitespace().next().unwrap();
            assert!(["HELP", "TYPE", "UNIT"].contains(&kind), "bad descriptor: {line}");
            assert!(descriptor.split_whitespace().nth(1).unwrap().starts_with("spate_"), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(name.starts_with("spate_") && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
            for pair in labels[1..labels.len() - 1].split("\",").filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label in {line}"));
                assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
                assert!(!value.trim_end_matches('"').contains('"'), "{line}");
            }
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        assert!(samples.insert(series.to_owned(), value).is_none(), "duplicate series {series}");
    }
    samples
}

/// The sum of every sample of `name` whose labels include all of `labels`.
fn sum(samples: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.split('{').next() == Some(name) && labels.iter().all(|label| series.contains(label))
        })
        .map(|(_, value)| value)
        .sum()
}

fn scrape(address: &str) -> BTreeMap<String, f64> {
    let (status, body) = http(address, "GET", "/metrics");
    assert_eq!(status, 200);
    parse(&body)
}

fn wait_for(address: &str, what: &str, mut check: impl FnMut(&BTreeMap<String, f64>) -> bool) -> BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let samples = scrape(address);
        if check(&samples) {
            return samples;
        }
        assert!(Instant::now() < deadline, "{what}: not within 15 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

#[test]
fn metrics_move_with_traffic_and_health_endpoints_answer() {
    let broker = Broker::start(&["--cores", "2"]);
    let admin = admin_address(&broker);
    assert_eq!(http(&admin, "GET", "/healthz").0, 200);
    wait_for(&admin, "ready", |_| http(&admin, "GET", "/readyz").0 == 200);
    assert_eq!(http(&admin, "GET", "/nope").0, 404);
    assert_eq!(http(&admin, "POST", "/metrics").0, 405);

    let bootstrap = broker.bootstrap();
    let input: String = (0..10).map(|i| format!("k{i}:value-{i}\n")).collect();
    let produced = kcat_with_input(&["-P", "-b", &bootstrap, "-t", "m", "-K:"], Some(input.as_bytes()));
    assert!(produced.status.success(), "{produced:?}");
    let samples = wait_for(&admin, "the end offset gauge", |samples| {
        sum(samples, "spate_log_end_offset", &["topic=\"m\""]) == 10.0
    });
    assert!(sum(&samples, "spate_requests_total", &["api=\"Produce\""]) >= 1.0);
    assert!(sum(&samples, "spate_requests_total", &["api=\"Metadata\""]) >= 1.0);
    assert_eq!(sum(&samples, "spate_topic_records_in_total", &["topic=\"m\""]), 10.0);
    let bytes_in = sum(&samples, "spate_topic_in_bytes_total", &["topic=\"m\""]);
    assert!(bytes_in > 10.0 * 7.0, "{bytes_in}");
    assert_eq!(sum(&samples, "spate_log_start_offset", &["topic=\"m\""]), 0.0);
    assert!(sum(&samples, "spate_log_size_bytes", &["topic=\"m\""]) >= bytes_in);
    assert!(sum(&samples, "spate_request_duration_seconds_count", &["api=\"Produce\""]) >= 1.0);
    assert!(sum(&samples, "spate_batch_cache_budget_bytes", &[]) > 0.0);
    let produce_requests = sum(&samples, "spate_requests_total", &["api=\"Produce\""]);

    // Consuming counts records out; a commit makes lag.
    let consumed = kcat(&["-C", "-b", &bootstrap, "-t", "m", "-o", "beginning", "-e"]);
    assert!(consumed.status.success());
    let mut client = Client::connect(&broker);
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text("lagging")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_topics(vec![OffsetCommitRequestTopic::default().with_name(TopicName(text("m"))).with_partitions(vec![
            OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(4),
        ])]);
    let committed: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let samples = wait_for(&admin, "the group's lag", |samples| {
        sum(samples, "spate_consumer_group_lag", &["group=\"lagging\"", "topic=\"m\""]) == 6.0
    });
    assert_eq!(sum(&samples, "spate_topic_records_out_total", &["topic=\"m\""]), 10.0);
    assert!(sum(&samples, "spate_topic_out_bytes_total", &["topic=\"m\""]) >= bytes_in);
    assert!(sum(&samples, "spate_connections_open", &[]) >= 1.0, "this test's client is connected");
    assert!(sum(&samples, "spate_fdatasync_duration_seconds_count", &[]) >= 1.0, "the commit was flushed");

    // More produce requests: the counter moves on.
    let produced = kcat_with_input(&["-P", "-b", &bootstrap, "-t", "m", "-K:"], Some(b"k:v\n"));
    assert!(produced.status.success());
    let samples = wait_for(&admin, "lag follows the end offset", |samples| {
        sum(samples, "spate_consumer_group_lag", &["group=\"lagging\""]) == 7.0
    });
    assert!(sum(&samples, "spate_requests_total", &["api=\"Produce\""]) > produce_requests);

    // Every series the Grafana dashboard plots exists.
    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/spate-dashboard.json"))
            .expect("the dashboard");
    let mut names: Vec<&str> = dashboard
        .match_indices("spate_")
        .map(|(start, _)| {
            let rest = &dashboard[start..];
            &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())]
        })
        .filter(|name| *name != "spate_")
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let present = samples.keys().any(|series| series.split('{').next() == Some(name));
        assert!(present, "the dashboard plots {name}, which /metrics lacks");
    }
}

#[test]
fn json_logs_are_one_object_per_line_and_a_bad_client_gets_one_line_with_its_address() {
    let broker = Broker::start(&["--log-format", "json"]);
    // A frame with a negative size: the connection is refused and logged once, with the peer.
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    let local = stream.local_addr().unwrap().to_string();
    stream.write_all(&(-5i32).to_be_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let log = broker.stderr();
        let about_peer: Vec<String> = log.lines().filter(|line| line.contains(&local)).map(str::to_owned).collect();
        if !about_peer.is_empty() || Instant::now() > deadline {
            break about_peer;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(lines.len(), 1, "one line about the bad connection: {lines:?}");
    let line: serde_json::Value = serde_json::from_str(&lines[0]).expect("a JSON object");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["fields"]["peer"], local.as_str(), "{line}");
    for text in broker.stderr().lines() {
        let object: serde_json::Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        assert!(object["timestamp"].is_string() && object["level"].is_string() && object["target"].is_string());
    }
}
