//! The load generator (`spate bench`) against the real broker: the JSON contract, keyed partitioning
//! as Kafka's partitioner does it, the fixed-rate schedule, catch-up reads, and latency that is charged
//! for a stalled broker (no coordinated omission).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{kcat, Broker};
use serde_json::Value;

/// The generator and its broker take both cores; these tests time things, so they run one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn workload(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/workloads").join(format!("{name}.toml"))
}

/// Runs `spate bench run` and returns its JSON line.
fn bench_run(broker: &Broker, name: &str, extra: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "run", "--quiet", "--json", "--bootstrap", &broker.bootstrap(), "--workload"])
        .arg(workload(name))
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "spate bench {name}: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"))
}

fn number(value: &Value, path: &[&str]) -> f64 {
    let mut at = value;
    for key in path {
        at = &at[key];
    }
    at.as_f64().unwrap_or_else(|| panic!("{path:?} is not a number in {value}"))
}

#[test]
fn smoke_workload_reports_and_partitions_by_murmur2() {
    let _serial = serial();
    let broker = Broker::start(&[]);
    let summary = bench_run(&broker, "smoke", &["--keep-topic"]);
    assert_eq!(summary["spate_bench"], 1);
    assert_eq!(summary["workload"], "smoke");
    assert_eq!(summary["mode"], "max");
    assert!(number(&summary, &["produce", "messages"]) > 0.0, "{summary}");
    assert_eq!(number(&summary, &["produce", "errors"]), 0.0);
    assert!(number(&summary, &["consume", "messages"]) > 0.0, "{summary}");
    for key in ["p50", "p99", "p999", "p9999", "max"] {
        let produce = number(&summary, &["produce", "latency_ms", key]);
        let e2e = number(&summary, &["e2e_latency_ms", key]);
        assert!(produce > 0.0 && e2e > 0.0, "{key}: {summary}");
    }
    assert!(number(&summary, &["produce", "latency_ms", "p50"]) <= number(&summary, &["produce", "latency_ms", "max"]));

    // Every record the generator wrote (zstd, idempotent) is where Kafka's partitioner puts its key.
    let topic = summary["topic"].as_str().unwrap();
    let output = kcat(&["-C", "-b", &broker.bootstrap(), "-t", topic, "-e", "-q", "-f", "%k %p\n"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut records = 0;
    for line in text.lines() {
        let (key, partition) = line.split_once(' ').unwrap();
        assert_eq!(bench::producer::key_partition(key.as_bytes(), 4), partition.parse::<i32>().unwrap(), "{line}");
        records += 1;
    }
    assert!(records as f64 >= number(&summary, &["produce", "messages"]), "{records} records stored, {summary}");
}

#[test]
fn fixed_rate_holds_its_schedule() {
    let _serial = serial();
    let broker = Broker::start(&[]);
    let summary = bench_run(&broker, "latency-1k-16p", &["--rate", "2000", "--duration-s", "2", "--warmup-s", "0.5"]);
    assert_eq!(summary["mode"], "fixed");
    let rate = number(&summary, &["produce", "msgs_per_s"]);
    // A schedule far below what the broker takes (thousands of times that at max rate), so it is met; a
    // loaded CI machine delays acknowledgements past the window's end or makes the generator catch up
    // inside it, hence the margins.
    assert!((1400.0..=3000.0).contains(&rate), "{rate} msg/s for a 2000 msg/s schedule");
    assert!(number(&summary, &["consume", "messages"]) > 0.0);
    // Without --keep-topic the run deletes its topic, so that a series of runs does not fill the disk.
    let topic = summary["topic"].as_str().unwrap();
    let listing = kcat(&["-L", "-b", &broker.bootstrap()]);
    assert!(listing.status.success());
    assert!(!String::from_utf8_lossy(&listing.stdout).contains(topic), "{topic} was deleted");
}

#[test]
fn a_stalled_broker_is_charged_for_every_message_scheduled_meanwhile() {
    let _serial = serial();
    let broker = Broker::start(&[]);
    let pid = broker.pid() as libc::pid_t;
    let stall = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        // SAFETY: plain signals to our own child process.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        std::thread::sleep(Duration::from_millis(1000));
        unsafe { libc::kill(pid, libc::SIGCONT) };
    });
    let summary = bench_run(&broker, "latency-1k-16p", &["--rate", "1000", "--duration-s", "3", "--warmup-s", "0.5"]);
    stall.join().unwrap();
    // A third of the measured messages were scheduled during the 1 s stall and waited up to 1 s. A
    // generator that timed from the actual send would see a handful of slow requests and a low p99.
    let p99 = number(&summary, &["produce", "latency_ms", "p99"]);
    let p50 = number(&summary, &["produce", "latency_ms", "p50"]);
    assert!(p99 >= 800.0, "p99 {p99} ms after a 1 s stall: {summary}");
    assert!(p50 < p99, "{summary}");
}

#[test]
fn catch_up_reads_the_whole_backlog() {
    let _serial = serial();
    let broker = Broker::start(&[]);
    let summary = bench_run(&broker, "catchup-1k-16p", &["--backlog-bytes", "20000000"]);
    let backlog = number(&summary, &["backlog", "messages"]);
    assert!(backlog >= 19_000.0, "{summary}");
    assert_eq!(number(&summary, &["consume", "messages"]), backlog, "{summary}");
    assert!(number(&summary, &["consume", "mib_per_s"]) > 0.0);
    assert!(summary["e2e_latency_ms"].is_null(), "a backlog has no end-to-end latency");
}

#[test]
fn loopback_baseline_and_bad_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "loopback", "--duration-s", "0.3", "--json"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["baseline"], "loopback_tcp");
    assert!(number(&summary, &["mib_per_s"]) > 0.0);

    let missing = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "run", "--workload", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.toml"));
    let refused = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(["bench", "run", "--bootstrap", "127.0.0.1:1", "--workload"])
        .arg(workload("smoke"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("127.0.0.1:1"), "names the broker");
}
