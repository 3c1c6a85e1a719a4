//! `spate tune` and `spate serve --profile`, on the real binary: a quick measurement writes a profile with
//! the baseline keys; the broker applies a measured or built-in profile, logs each value with its source,
//! and serves Kafka requests; bad profiles stop the start with exit code 1.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Broker, Client};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse};

/// The settings every profile sets, as the broker logs them.
const TUNING_KEYS: [&str; 10] = [
    "cores",
    "memory_budget_bytes_per_shard",
    "batch_cache_bytes_per_shard",
    "io_ring_depth",
    "io_memory_bytes_per_shard",
    "spin_before_park_us",
    "preempt_timer_ms",
    "group_commit_window_us",
    "socket_send_buffer_bytes",
    "socket_receive_buffer_bytes",
];

fn spate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spate")).args(args).output().unwrap()
}

fn tune_quick(dir: &Path) -> (Output, std::path::PathBuf) {
    let out = dir.join("profile.toml");
    let data = dir.join("data");
    let output = spate(&["tune", "--quick", "--data-dir", data.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    (output, out)
}

/// ApiVersions and Metadata answer.
fn assert_serves(broker: &Broker) {
    let mut client = Client::connect(broker);
    use kafka_protocol::protocol::StrBytes;
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("spate-tests"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    let versions: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 3, &request);
    assert_eq!(versions.error_code, 0);
    assert!(versions.api_keys.iter().any(|key| key.api_key == ApiKey::Metadata as i16));
    let metadata: MetadataResponse = client.call(ApiKey::Metadata, 1, &MetadataRequest::default().with_topics(None));
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(metadata.brokers[0].port, i32::from(broker.port));
}

#[test]
fn tune_quick_writes_a_profile_that_serve_applies() {
    let dir = tempfile::tempdir().unwrap();
    let (output, out) = tune_quick(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("fdatasync:") && stdout.contains("profile measured:"), "{stdout}");
    let names: Vec<String> = std::fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "the test file was deleted: {names:?}");

    let text = std::fs::read_to_string(&out).unwrap();
    let profile: toml::Value = toml::from_str(&text).unwrap();
    let measured = &profile["disk_measured"];
    for key in ["seq_write_1m_mib_s", "fdatasync_per_s", "fdatasync_p50_us", "fdatasync_p99_us"] {
        let value = measured[key].as_float().unwrap_or_else(|| panic!("{key} is a number:\n{text}"));
        assert!(value > 0.0, "{key} = {value}");
    }
    for key in TUNING_KEYS {
        assert!(profile["broker"].get(key).is_some(), "[broker] has {key}:\n{text}");
    }
    assert_eq!(profile["name"].as_str(), Some("measured"));

    let mut broker = Broker::start(&["--profile", out.to_str().unwrap()]);
    assert_serves(&broker);
    let log = broker.stderr();
    for key in TUNING_KEYS {
        let line = log
            .lines()
            .find(|line| line.contains(&format!("applied {key} = ")))
            .unwrap_or_else(|| panic!("{key}:\n{log}"));
        assert!(line.contains("(from profile "), "{line}");
    }
    let ring = profile["broker"]["io_ring_depth"].as_integer().unwrap();
    assert!(log.contains(&format!("applied io_ring_depth = {ring} (from profile")), "{log}");
    broker.stop();
}

#[test]
fn builtin_profiles_apply_under_config_and_flags() {
    let mut broker = Broker::start_with_config(
        "group_commit_window_us = 7\nsocket_receive_buffer_bytes = 65536\n",
        &["--profile", "latency", "--cores", "1"],
    );
    assert_serves(&broker);
    let log = broker.stderr();
    assert!(log.contains("applied group_commit_window_us = 7 (from config file)"), "{log}");
    assert!(log.contains("applied cores = 1 (from flag)"), "{log}");
    assert!(log.contains("applied spin_before_park_us = 200 (from profile latency)"), "{log}");
    assert!(log.contains("applied preempt_timer_ms = 5 (from profile latency)"), "{log}");
    assert!(log.contains("group_commit_window=7µs"), "the resolved runtime settings are logged:\n{log}");
    // The connections above got SO_RCVBUF (Linux reports twice the request) and kept SO_SNDBUF's default.
    assert!(log.contains("socket buffer sizes (as the kernel reports them)"), "{log}");
    assert!(log.contains("receive=131072"), "{log}");
    broker.stop();

    let mut broker = Broker::start(&["--profile", "throughput", "--cores", "1"]);
    assert_serves(&broker);
    assert!(broker.stderr().contains("applied io_ring_depth = 256 (from profile throughput)"));
    broker.stop();
}

#[test]
fn a_bad_profile_stops_the_start_with_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let serve = |profile: &str| {
        let output = spate(&[
            "serve",
            "--admin-listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--profile",
            profile,
        ]);
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let (code, stderr) = serve("fastest");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--profile: profile \"fastest\" is neither a built-in profile (latency, throughput, balanced) nor an existing file"), "{stderr}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[broker]\ncores = \"0\"\n").unwrap();
    let (code, stderr) = serve(bad.to_str().unwrap());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("bad.toml") && stderr.contains("missing field"), "{stderr}");

    let output = spate(&["tune", "--quick", "--data-dir", data.to_str().unwrap(), "--out", "/nonexistent/dir/p.toml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot write /nonexistent/dir/p.toml"));
}
