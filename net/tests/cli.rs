//! The admin CLI (`spate topic|group|cluster|produce|consume`) against the real broker: every command's
//! table and JSON output, the errors (naming the broker and the Kafka error), and offset resets proven
//! by consumers (`spate consume --group`, and kcat in a balanced group) that then read from the new
//! position.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{kcat, Broker};
use serde_json::Value;

fn spate(broker: &Broker, args: &[&str]) -> Output {
    spate_with_input(&broker.bootstrap(), args, None)
}

/// Runs `spate ARGS --bootstrap B`, feeding `input` on stdin.
fn spate_with_input(bootstrap: &str, args: &[&str], input: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
        .args(args)
        .args(["--bootstrap", bootstrap])
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_owned();
        std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    }
    child.wait_with_output().unwrap()
}

/// stdout of a command that must succeed.
fn ok(broker: &Broker, args: &[&str]) -> String {
    ok_output(args, spate(broker, args))
}

fn ok_output(args: &[&str], output: Output) -> String {
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "spate {args:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The JSON document printed by a command that must succeed (`--json` is added).
fn json(broker: &Broker, args: &[&str]) -> Value {
    let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let stdout = ok(broker, &args);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// stderr of a command that must fail with status 1.
fn fails(broker: &Broker, args: &[&str]) -> String {
    let output = spate(broker, args);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "spate {args:?} should fail:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// The table row whose first cells are `first` (cells split at runs of spaces).
fn row<'a>(table: &'a str, first: &[&str]) -> Vec<&'a str> {
    table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.len() >= first.len() && cells[..first.len()] == *first)
        .unwrap_or_else(|| panic!("no row starting {first:?} in:\n{table}"))
}

/// `(partition, offset)` of each line `P O ...` that `spate consume --format '%p %o'` printed.
fn partition_offsets(text: &str) -> Vec<(i32, i64)> {
    let mut found: Vec<(i32, i64)> = text
        .lines()
        .map(|line| {
            let mut cells = line.split_whitespace();
            (cells.next().unwrap().parse().unwrap(), cells.next().unwrap().parse().unwrap())
        })
        .collect();
    found.sort_unstable();
    found
}

#[test]
fn topic_commands() {
    let broker = Broker::start(&[]);
    let stdout = ok(&broker, &["topic", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000"]);
    assert_eq!(stdout, "created topic \"orders\" with 3 partitions\n");
    let created = json(&broker, &["topic", "create", "payments"]);
    assert_eq!(created["topic"], "payments");
    assert_eq!(created["partitions"], 1, "the broker's default: {created}");
    assert_eq!(created["replication_factor"], 1);

    let stderr = fails(&broker, &["topic", "create", "orders", "--partitions", "3"]);
    let expected =
        format!("error: broker {}: CreateTopics \"orders\": TOPIC_ALREADY_EXISTS (36): ", broker.bootstrap());
    assert!(stderr.starts_with(&expected), "{stderr}");
    let stderr = fails(&broker, &["topic", "create", "bad", "--config", "retention.ms=soon"]);
    assert!(stderr.contains("CreateTopics \"bad\": INVALID_CONFIG (40)"), "{stderr}");

    let table = ok(&broker, &["topic", "list"]);
    assert_eq!(
        table.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["TOPIC", "PARTITIONS", "REPLICATION", "INTERNAL"]
    );
    assert_eq!(row(&table, &["orders"]), ["orders", "3", "1", "no"]);
    assert_eq!(row(&table, &["payments"]), ["payments", "1", "1", "no"]);
    let listed = json(&broker, &["topic", "list", "--exclude-internal"]);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|topic| topic["topic"].as_str().unwrap()).collect();
    assert_eq!(names, ["orders", "payments"]);
    assert_eq!(listed[0]["partitions"], 3);
    assert_eq!(listed[0]["internal"], false);

    let input: String = (0..7).map(|index| format!("value-{index}\n")).collect();
    let output = spate_with_input(&broker.bootstrap(), &["produce", "orders", "--partition", "1"], Some(&input));
    ok_output(&["produce"], output);

    let text = ok(&broker, &["topic", "describe", "orders"]);
    assert!(text.starts_with("Topic: orders  id: "), "{text}");
    assert!(text.contains("partitions: 3  replication factor: 1"), "{text}");
    assert_eq!(row(&text, &["PARTITION"]), ["PARTITION", "LEADER", "REPLICAS", "ISR", "START-OFFSET", "END-OFFSET"]);
    assert_eq!(row(&text, &["0", "0"]), ["0", "0", "0", "0", "0", "0"]);
    assert_eq!(row(&text, &["1", "0"]), ["1", "0", "0", "0", "0", "7"]);
    assert_eq!(row(&text, &["retention.ms"]), ["retention.ms", "60000", "topic"]);
    assert!(!text.contains("segment.bytes"), "defaults only with --all-configs:\n{text}");
    let text = ok(&broker, &["topic", "describe", "orders", "--all-configs"]);
    assert_eq!(row(&text, &["segment.bytes"])[2], "default", "{text}");

    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(described["topic"], "orders");
    assert_eq!(described["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(described["partitions"][1]["end_offset"], 7);
    assert_eq!(described["partitions"][1]["start_offset"], 0);
    assert_eq!(described["partitions"][1]["leader"], 0);
    assert_eq!(described["partitions"][1]["isr"], serde_json::json!([0]));
    assert_eq!(described["configs"]["retention.ms"]["value"], "60000");
    assert_eq!(described["configs"]["retention.ms"]["source"], "topic");
    assert_eq!(described["configs"]["cleanup.policy"]["source"], "default");

    let stdout = ok(
        &broker,
        &["topic", "alter-config", "orders", "--set", "cleanup.policy=compact", "--delete", "retention.ms"],
    );
    assert_eq!(stdout, "altered topic \"orders\": set cleanup.policy=compact, deleted retention.ms\n");
    let described = json(&broker, &["topic", "describe", "orders"]);
    assert_eq!(described["configs"]["cleanup.policy"]["value"], "compact");
    assert_eq!(described["configs"]["cleanup.policy"]["source"], "topic");
    assert_eq!(described["configs"]["retention.ms"]["source"], "default");
    let altered = json(&broker, &["topic", "alter-config", "orders", "--set", "retention.ms=1000"]);
    assert_eq!(altered["set"]["retention.ms"], "1000");
    let stderr = fails(&broker, &["topic", "alter-config", "orders", "--set", "retention.ms=soon"]);
    assert!(stderr.contains("IncrementalAlterConfigs \"orders\": INVALID_CONFIG (40)"), "{stderr}");
    let stderr = fails(&broker, &["topic", "alter-config", "nothere", "--set", "retention.ms=1"]);
    assert!(stderr.contains("UNKNOWN_TOPIC_OR_PARTITION (3)"), "{stderr}");

    assert_eq!(
        ok(&broker, &["topic", "add-partitions", "orders", "--total", "5"]),
        "topic \"orders\" now has 5 partitions\n"
    );
    assert_eq!(json(&broker, &["topic", "describe", "orders"])["partitions"].as_array().unwrap().len(), 5);
    let stderr = fails(&broker, &["topic", "add-partitions", "orders", "--total", "2"]);
    assert!(stderr.contains("CreatePartitions \"orders\": INVALID_PARTITIONS (37)"), "{stderr}");

    assert_eq!(ok(&broker, &["topic", "delete", "orders"]), "deleted topic \"orders\"\n");
    assert_eq!(json(&broker, &["topic", "delete", "payments"])["deleted"], "payments");
    let listed = json(&broker, &["topic", "list", "--exclude-internal"]);
    assert_eq!(listed, serde_json::json!([]));
    let stderr = fails(&broker, &["topic", "delete", "orders"]);
    assert!(stderr.contains("DeleteTopics \"orders\": UNKNOWN_TOPIC_OR_PARTITION (3)"), "{stderr}");
    let stderr = fails(&broker, &["topic", "describe", "orders"]);
    let expected = format!("error: broker {}: Metadata \"orders\": UNKNOWN_TOPIC_OR_PARTITION (3)", broker.bootstrap());
    assert!(stderr.starts_with(&expected), "{stderr}");
}

#[test]
fn produce_and_consume() {
    let broker = Broker::start(&[]);
    ok(&broker, &["topic", "create", "keyed", "--partitions", "4"]);
    let input: String = (0..40).map(|index| format!("key-{index}:value {index}\n")).collect();
    let output = spate_with_input(
        &broker.bootstrap(),
        &["produce", "keyed", "--key-separator", ":", "--compression", "zstd", "--json"],
        Some(&input),
    );
    let summary: Value = serde_json::from_str(&ok_output(&["produce"], output)).unwrap();
    assert_eq!(summary["records"], 40);
    assert_eq!(summary["acks"], "all");
    let per_partition: u64 =
        summary["partitions"].as_array().unwrap().iter().map(|p| p["records"].as_u64().unwrap()).sum();
    assert_eq!(per_partition, 40);

    // Every key is where Kafka's default partitioner puts it, as the CLI and kcat both read back.
    let lines = ok(&broker, &["consume", "keyed", "--from-beginning", "--until-end", "--format", "%k %p %v"]);
    assert_eq!(lines.lines().count(), 40, "{lines}");
    for line in lines.lines() {
        let (key, rest) = line.split_once(' ').unwrap();
        let (partition, value) = rest.split_once(' ').unwrap();
        assert_eq!(bench::producer::key_partition(key.as_bytes(), 4), partition.parse::<i32>().unwrap(), "{line}");
        assert_eq!(value, format!("value {}", &key[4..]));
    }
    let output = kcat(&["-C", "-b", &broker.bootstrap(), "-t", "keyed", "-e", "-q", "-f", "%k %p %s\n"]);
    let mut from_kcat: Vec<&str> = std::str::from_utf8(&output.stdout).unwrap().lines().collect();
    let mut from_cli: Vec<&str> = lines.lines().collect();
    from_kcat.sort_unstable();
    from_cli.sort_unstable();
    assert_eq!(from_kcat, from_cli);

    // The summary table, keyless round-robin, headers, binary values in hex.
    ok(&broker, &["topic", "create", "plain", "--partitions", "2"]);
    let output = spate_with_input(
        &broker.bootstrap(),
        &["produce", "plain", "--value-format", "hex", "--header", "source=test"],
        Some("00ff\n0102\n0a0b\n"),
    );
    let table = ok_output(&["produce"], output);
    assert_eq!(row(&table, &["PARTITION"]), ["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
    assert_eq!(row(&table, &["0"]), ["0", "2", "0", "1"]);
    assert_eq!(row(&table, &["1"]), ["1", "1", "0", "0"]);
    assert!(table.ends_with("produced 3 records to \"plain\"\n"), "{table}");
    let lines = ok(
        &broker,
        &[
            "consume",
            "plain",
            "--partition",
            "0",
            "--offset",
            "1",
            "--until-end",
            "--value-format",
            "hex",
            "--format",
            "%p@%o %v %h",
        ],
    );
    assert_eq!(lines, "0@1 0a0b source=test\n");

    // One JSON object per record; --max-messages stops early.
    let output = spate_with_input(
        &broker.bootstrap(),
        &["produce", "plain", "--partition", "1", "--value-format", "json"],
        Some("{\"n\":1}\n[2]\n\"three\"\n"),
    );
    ok_output(&["produce"], output);
    let lines = ok(
        &broker,
        &[
            "consume",
            "plain",
            "--partition",
            "1",
            "--from-beginning",
            "--max-messages",
            "3",
            "--value-format",
            "json",
            "--json",
        ],
    );
    let records: Vec<Value> = lines.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(records.len(), 3, "{lines}");
    assert_eq!(records[0]["value"], "\u{1}\u{2}", "not JSON: shown as text");
    assert_eq!(records[1]["value"], serde_json::json!({"n": 1}));
    assert_eq!(records[2]["value"], serde_json::json!([2]));
    assert_eq!((records[2]["partition"].as_i64(), records[2]["offset"].as_i64()), (Some(1), Some(2)));
    assert_eq!(records[0]["key"], Value::Null);
    assert!(records[0]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);

    // Bad input: the line is named, what came before it was produced.
    let output =
        spate_with_input(&broker.bootstrap(), &["produce", "plain", "--value-format", "json"], Some("1\n{oops\n2\n"));
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("stdin line 2: value: not JSON"), "{stderr}");
    assert!(stderr.contains("(1 records before it were produced)"), "{stderr}");
    let output =
        spate_with_input(&broker.bootstrap(), &["produce", "plain", "--key-separator", "="], Some("no separator\n"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("stdin line 1: no key separator \"=\""));
    let stderr = fails(&broker, &["produce", "nothere"]);
    assert!(stderr.contains("Metadata \"nothere\": UNKNOWN_TOPIC_OR_PARTITION (3)"), "{stderr}");
    let stderr = fails(&broker, &["consume", "plain", "--partition", "0", "--offset", "9"]);
    assert!(stderr.contains("offset 9 is outside partition 0 of \"plain\": its offsets are 0..3"), "{stderr}");
    let stderr = fails(&broker, &["consume", "plain", "--partition", "7"]);
    assert!(stderr.contains("topic \"plain\" has no partition 7"), "{stderr}");

    // Without --from-beginning only new records come; --timeout-ms ends a quiet wait.
    let started = Instant::now();
    let output = spate(&broker, &["consume", "plain", "--timeout-ms", "300"]);
    assert_eq!(ok_output(&["consume"], output.clone()), "");
    assert!(String::from_utf8_lossy(&output.stderr).contains("consumed 0 records"));
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Starts kcat as a member of `group` (balanced consumer) reading `topic`.
fn kcat_member(broker: &Broker, group: &str, topic: &str) -> Child {
    Command::new("kcat")
        .args(["-b", &broker.bootstrap(), "-G", group, "-q", "-X", "session.timeout.ms=6000", topic])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kcat is installed (scripts/install-deps.sh)")
}

/// Polls `group describe --json` until `done` holds for it (the group may not exist at first).
fn wait_for_group(broker: &Broker, group: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = spate(broker, &["group", "describe", group, "--json"]);
        let described: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if done(&described) {
            return described;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(Instant::now() < deadline, "group {group} never {what}: {described} {stderr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn groups_and_offset_resets() {
    let broker = Broker::start(&[]);
    ok(&broker, &["topic", "create", "events", "--partitions", "2"]);
    for partition in ["0", "1"] {
        let input: String = (0..10).map(|index| format!("p{partition}-{index}\n")).collect();
        let output =
            spate_with_input(&broker.bootstrap(), &["produce", "events", "--partition", partition], Some(&input));
        ok_output(&["produce"], output);
    }

    // A consumer of group g reads everything and commits where it stopped.
    let read = ok(
        &broker,
        &["consume", "events", "--group", "g", "--from-beginning", "--until-end", "--commit", "--format", "%p %o"],
    );
    assert_eq!(partition_offsets(&read).len(), 20);
    let described = json(&broker, &["group", "describe", "g"]);
    assert_eq!(described["state"], "Empty", "{described}");
    assert_eq!(described["coordinator"], broker.bootstrap());
    assert_eq!(described["members"], serde_json::json!([]));
    assert_eq!(described["total_lag"], 0);
    assert_eq!(described["partitions"][1]["committed_offset"], 10);
    assert_eq!(described["partitions"][1]["end_offset"], 10);
    let text = ok(&broker, &["group", "describe", "g"]);
    assert!(text.starts_with("Group: g  state: Empty"), "{text}");
    assert!(text.contains("No active members."), "{text}");
    assert_eq!(row(&text, &["events", "0"]), ["events", "0", "10", "10", "0", "-"]);
    assert_eq!(row(&ok(&broker, &["group", "list"]), &["g"]), ["g", "Empty", "-"], "only commits, no protocol");
    let listed = json(&broker, &["group", "list"]);
    assert!(
        listed.as_array().unwrap().iter().any(|group| group["group"] == "g" && group["state"] == "Empty"),
        "{listed}"
    );

    // A dry run shows the plan and commits nothing.
    let plan = ok(&broker, &["group", "reset-offsets", "g", "--topic", "events", "--to-earliest"]);
    assert_eq!(row(&plan, &["TOPIC"]), ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
    assert_eq!(row(&plan, &["events", "1"]), ["events", "1", "10", "0"]);
    assert!(plan.contains("Dry run: nothing committed. Add --execute"), "{plan}");
    assert_eq!(json(&broker, &["group", "describe", "g"])["total_lag"], 0);

    // --to-offset: a consumer of the group then reads from offset 4 of each partition.
    let plan = ok(&broker, &["group", "reset-offsets", "g", "--topic", "events", "--to-offset", "4", "--execute"]);
    assert_eq!(row(&plan, &["events", "0"]), ["events", "0", "10", "4"]);
    assert!(plan.contains("Committed the new offsets of 2 partition(s) for group \"g\"."), "{plan}");
    assert_eq!(json(&broker, &["group", "describe", "g"])["total_lag"], 12);
    let read = ok(&broker, &["consume", "events", "--group", "g", "--until-end", "--commit", "--format", "%p %o"]);
    let expected: Vec<(i32, i64)> = (0..2).flat_map(|p| (4..10).map(move |o| (p, o))).collect();
    assert_eq!(partition_offsets(&read), expected);

    // --to-datetime: to the first record at or after the time of partition 0's offset 6.
    let times = ok(
        &broker,
        &["consume", "events", "--partition", "0", "--from-beginning", "--until-end", "--format", "%o %D %T"],
    );
    let times: Vec<(i64, String, i64)> = times
        .lines()
        .map(|line| {
            let cells: Vec<&str> = line.split(' ').collect();
            (cells[0].parse().unwrap(), cells[1].to_owned(), cells[2].parse().unwrap())
        })
        .collect();
    let (_, iso, at_ms) = &times[6];
    let first_at_or_after = times.iter().find(|(_, _, ms)| ms >= at_ms).unwrap().0;
    let moved = json(
        &broker,
        &["group", "reset-offsets", "g", "--topic", "events", "--partition", "0", "--to-datetime", iso, "--execute"],
    );
    assert_eq!(moved["executed"], true);
    assert_eq!(moved["partitions"].as_array().unwrap().len(), 1);
    assert_eq!(moved["partitions"][0]["current_offset"], 10);
    assert_eq!(moved["partitions"][0]["new_offset"], first_at_or_after);
    let read = ok(&broker, &["consume", "events", "--group", "g", "--until-end", "--format", "%p %o"]);
    let expected: Vec<(i32, i64)> = (first_at_or_after..10).map(|o| (0, o)).collect();
    assert_eq!(partition_offsets(&read), expected, "without --commit nothing moved, so this reads again");

    // --to-latest, then --shift-by back 3; kcat in the group reads from there.
    ok(&broker, &["group", "reset-offsets", "g", "--topic", "events", "--to-latest", "--execute"]);
    assert_eq!(json(&broker, &["group", "describe", "g"])["total_lag"], 0);
    let moved = json(&broker, &["group", "reset-offsets", "g", "--topic", "events", "--shift-by", "-3", "--execute"]);
    assert_eq!(moved["partitions"][0]["new_offset"], 7);
    let output = kcat(&["-b", &broker.bootstrap(), "-G", "g", "-e", "-q", "-f", "%p %o\n", "events"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected: Vec<(i32, i64)> = (0..2).flat_map(|p| (7..10).map(move |o| (p, o))).collect();
    assert_eq!(partition_offsets(&String::from_utf8_lossy(&output.stdout)), expected);

    // A group with a live member: described with its assignment; resets and deletes are refused.
    let mut member = kcat_member(&broker, "live", "events");
    let described = wait_for_group(&broker, "live", "became stable", |group| {
        group["state"] == "Stable" && group["members"][0]["assignment"]["events"] == serde_json::json!([0, 1])
    });
    assert_eq!(described["members"].as_array().unwrap().len(), 1);
    assert_eq!(described["members"][0]["client_id"], "rdkafka");
    assert_eq!(described["protocol_type"], "consumer");
    let text = ok(&broker, &["group", "describe", "live"]);
    assert!(text.starts_with("Group: live  state: Stable  protocol: consumer/"), "{text}");
    let member_id = described["members"][0]["member_id"].as_str().unwrap();
    assert_eq!(row(&text, &[member_id])[1..], ["rdkafka", "/127.0.0.1", "events:0,1"]);
    let stderr = fails(&broker, &["group", "reset-offsets", "live", "--topic", "events", "--to-earliest", "--execute"]);
    assert!(stderr.contains("group \"live\" is Stable with 1 member(s)"), "{stderr}");
    let stderr = fails(&broker, &["group", "delete", "live"]);
    assert!(
        stderr.contains(&format!("broker {}: DeleteGroups \"live\": NON_EMPTY_GROUP (68)", broker.bootstrap())),
        "{stderr}"
    );
    // SIGTERM: kcat closes its consumer, leaving the group.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(member.id() as libc::pid_t, libc::SIGTERM) }, 0);
    member.wait().unwrap();
    wait_for_group(&broker, "live", "emptied", |group| group["state"] == "Empty");

    // Deleting groups.
    assert_eq!(ok(&broker, &["group", "delete", "live"]), "deleted group \"live\"\n");
    assert_eq!(json(&broker, &["group", "delete", "g"])["deleted"], "g");
    let stderr = fails(&broker, &["group", "describe", "g"]);
    assert!(stderr.contains("group \"g\" does not exist"), "{stderr}");
    let stderr = fails(&broker, &["group", "delete", "g"]);
    assert!(stderr.contains("DeleteGroups \"g\": GROUP_ID_NOT_FOUND (69)"), "{stderr}");
    let listed: BTreeMap<String, Value> = json(&broker, &["group", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|group| (group["group"].as_str().unwrap().to_owned(), group.clone()))
        .collect();
    assert!(!listed.contains_key("g") && !listed.contains_key("live"), "{listed:?}");
}

#[test]
fn cluster_info_and_connection_errors() {
    let broker = Broker::start(&[]);
    let text = ok(&broker, &["cluster", "info"]);
    assert!(text.starts_with("Cluster id: "), "{text}");
    assert!(text.contains("Controller: 0\n"), "{text}");
    assert_eq!(row(&text, &["0"]), ["0", "127.0.0.1", &broker.port.to_string(), "-"]);
    assert!(!text.contains("API versions"), "{text}");
    let info = json(&broker, &["cluster", "info", "--verbose"]);
    assert_eq!(info["controller_id"], 0);
    assert_eq!(info["brokers"][0]["port"], broker.port);
    assert!(info["cluster_id"].as_str().is_some_and(|id| !id.is_empty()), "{info}");
    let apis = info["api_versions"].as_array().unwrap();
    let metadata = apis.iter().find(|api| api["api"] == "Metadata").unwrap();
    assert_eq!((metadata["key"].as_i64(), metadata["max_version"].as_i64()), (Some(3), Some(12)));
    assert_eq!(metadata["cli_version"], 12);
    let join_group = apis.iter().find(|api| api["api"] == "JoinGroup").unwrap();
    assert_eq!(join_group["cli_version"], Value::Null, "the CLI does not join groups");
    let text = ok(&broker, &["cluster", "info", "--verbose"]);
    assert_eq!(row(&text, &["Metadata"]), ["Metadata", "3", "0", "12", "12"]);

    // Nothing listening: the error names the address.
    let output = spate_with_input("127.0.0.1:1", &["topic", "list"], None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("error: cannot connect to 127.0.0.1:1: "), "{stderr}");
    // Bad usage is clap's status 2.
    let output = spate(&broker, &["group", "reset-offsets", "g", "--topic", "t"]);
    assert_eq!(output.status.code(), Some(2));
}
