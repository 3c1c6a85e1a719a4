//! The real `spate serve` process, driven by kcat (librdkafka) and by raw sockets.
//!
//! Needs `kcat` on PATH (Debian package `kcat`; `scripts/install-deps.sh` installs it). Without it
//! these tests fail, on purpose: a silent skip would hide that the client path is untested.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{kcat, read_response, request, send_and_expect_close, Broker, Client, IO_TIMEOUT};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};

#[test]
fn kcat_lists_the_broker_and_unknown_topics() {
    let mut broker = Broker::start_with_config("auto_create_topics_enable = false\n", &[]);
    let all = broker.assert_kcat_lists_broker(0);
    assert!(all.contains("(controller)"), "{all}");
    assert!(all.contains(" 0 topics"), "{all}");

    // With auto-creation off, an unknown topic stays unknown.
    let output = kcat(&["-L", "-b", &broker.bootstrap(), "-m", "5", "-t", "no-such-topic"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("topic \"no-such-topic\""), "{stdout}");
    assert!(stdout.contains("Unknown topic or partition"), "{stdout}");

    let meta = std::fs::read_to_string(broker.data_dir().join("meta.properties")).unwrap();
    assert!(meta.starts_with("cluster.id=") && meta.ends_with("node.id=0\nversion=1\n"), "{meta}");
    broker.assert_running();
}

#[test]
fn bad_input_closes_only_that_connection() {
    let mut broker = Broker::start(&[]);
    let port = broker.port;

    // Not Kafka at all: "GET " read as a size prefix is over the 100 MiB limit.
    assert!(send_and_expect_close(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false).is_empty());
    // The largest size an i32 prefix can announce, with no body.
    assert!(send_and_expect_close(port, &[0x7f, 0xff, 0xff, 0xff], false).is_empty());
    // Negative sizes.
    assert!(send_and_expect_close(port, &[0xff, 0xff, 0xff, 0xff, 0, 0], false).is_empty());
    assert!(send_and_expect_close(port, &[0x80, 0, 0, 0], false).is_empty());
    // A frame cut short, then the client closes.
    let truncated = &request(18, 0, 1, &[])[..9];
    assert!(send_and_expect_close(port, truncated, true).is_empty());
    // An API key that does not exist.
    assert!(send_and_expect_close(port, &request(9999, 0, 2, &[]), false).is_empty());
    // A known API Spate does not implement yet (DescribeAcls v1, header v1).
    assert!(send_and_expect_close(port, &request(29, 1, 3, &[]), false).is_empty());
    // Produce v2: advertised for old librdkafka's sake, refused as Kafka 4 refuses it.
    assert!(send_and_expect_close(port, &request(0, 2, 8, &[]), false).is_empty());
    // Metadata at a version outside 0-12.
    assert!(send_and_expect_close(port, &request(3, 13, 4, &[0, 0]), false).is_empty());
    // Metadata whose topics array claims 2^31 - 1 entries in a 4-byte body.
    assert!(send_and_expect_close(port, &request(3, 1, 5, &[0x7f, 0xff, 0xff, 0xff]), false).is_empty());
    // Metadata v9 (header v2: empty tag section first) whose compact topics count is a 5-byte
    // varint that kafka-protocol reads as u32::MAX.
    assert!(send_and_expect_close(port, &request(3, 9, 6, &[0, 0xff, 0xff, 0xff, 0xff, 0xff]), false).is_empty());
    // Random bytes with a plausible size prefix.
    let mut noise = vec![0, 0, 0, 60];
    noise.extend((0u8..60).map(|i| i.wrapping_mul(151).wrapping_add(7)));
    assert!(send_and_expect_close(port, &noise, false).is_empty());
    // A request answered before a bad one still gets its answer.
    let mut good_then_bad = request(18, 0, 77, &[]);
    good_then_bad.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let received = send_and_expect_close(port, &good_then_bad, false);
    assert_eq!(&received[4..8], &77i32.to_be_bytes(), "ApiVersions answered before the close");

    broker.assert_running();
    broker.assert_kcat_lists_broker(0);
    let log = broker.stderr();
    for expected in [
        "closing connection: frame of 2147483647 bytes exceeds",
        "closing connection: frame size prefix is negative (-1)",
        "connection closed by peer in the middle of a frame",
        "closing connection: unknown api key 9999",
        "closing connection: DescribeAcls (v1, correlation id 3) is not implemented",
        "closing connection: Produce v2 (correlation id 8) is not supported (versions 3 to 11)",
        "closing connection: Metadata v13 (correlation id 4) is not supported (versions 0 to 12)",
        "closing connection: malformed Metadata v1 request body: topics: array claims 2147483647 elements",
    ] {
        assert!(log.contains(expected), "log lacks {expected:?}:\n{log}");
    }
    assert!(log.contains("peer=127.0.0.1:"), "log lines name the peer:\n{log}");
}

#[test]
fn api_versions_answers_an_unsupported_version_and_pipelined_requests_in_order() {
    let broker = Broker::start(&[]);
    let mut stream = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut burst = Vec::new();
    burst.extend(request(18, 0, 1, &[]));
    burst.extend(request(3, 1, 2, &[0xff, 0xff, 0xff, 0xff])); // Metadata v1, all topics
    burst.extend(request(18, 99, 3, &[0])); // ApiVersions from the future: header v2, empty tags
    burst.extend(request(3, 4, 4, &[0, 0, 0, 0, 1])); // Metadata v4, no topics, auto-create
    stream.write_all(&burst).unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (id, body) = read_response(&mut stream);
        if id == 3 {
            assert_eq!(&body[..2], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");
        }
        ids.push(id);
    }
    assert_eq!(ids, vec![1, 2, 3, 4]);
}

#[test]
fn config_file_sets_node_id_and_cores() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spate.toml");
    std::fs::write(&config, "node_id = 3\ncores = 1\nlisten = \"127.0.0.1:1\"\n").unwrap();
    // The --listen flag Broker::start passes overrides the file's.
    let mut broker = Broker::start(&["--config", config.to_str().unwrap()]);
    broker.assert_kcat_lists_broker(3);
    assert!(broker.stderr().contains("shards=1"), "{}", broker.stderr());
    broker.assert_running();
}

#[test]
fn connections_beyond_the_limit_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spate.toml");
    std::fs::write(&config, "cores = 1\nmax_connections_per_shard = 2\n").unwrap();
    let mut broker = Broker::start(&["--config", config.to_str().unwrap()]);
    // Broker::start's probe connection may still be counted for a moment; wait until it is not.
    std::thread::sleep(Duration::from_millis(200));
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(("127.0.0.1", broker.port)).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    assert!(send_and_expect_close(broker.port, &request(18, 0, 1, &[]), false).is_empty(), "third connection closed");
    assert!(broker.stderr().contains("connection limit reached"), "{}", broker.stderr());
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    broker.assert_kcat_lists_broker(0);
    broker.assert_running();
}

#[test]
fn sigterm_stops_the_broker_cleanly() {
    let mut broker = Broker::start(&[]);
    broker.assert_kcat_lists_broker(0);
    // An idle client must not hold shutdown up.
    let mut idle = TcpStream::connect(("127.0.0.1", broker.port)).unwrap();
    idle.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    broker.signal(libc::SIGTERM);
    let status = broker.wait_exit(Duration::from_secs(8));
    assert_eq!(status.code(), Some(0), "{}", broker.stderr());
    let log = broker.stderr();
    assert!(log.contains("shutting down"), "{log}");
    let mut rest = Vec::new();
    assert!(matches!(idle.read_to_end(&mut rest), Ok(0)), "the idle connection was closed");
}

#[test]
fn startup_errors_exit_nonzero_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let run = |args: &[&str], data_dir: &Path| {
        Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(["serve", "--admin-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .output()
            .unwrap()
    };
    let in_use = run(&["--listen", &address], &dir.path().join("a"));
    assert_eq!(in_use.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&in_use.stderr).contains("cannot listen on"), "{in_use:?}");

    let bad_cores = run(&["--listen", "127.0.0.1:0", "--cores", "0,4096"], &dir.path().join("b"));
    assert_eq!(bad_cores.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_cores.stderr).contains("not available"), "{bad_cores:?}");

    // A data directory that belongs to node 0 refuses node 1.
    let owned = dir.path().join("c");
    std::fs::create_dir_all(&owned).unwrap();
    std::fs::write(owned.join("meta.properties"), "cluster.id=abc\nnode.id=0\nversion=1\n").unwrap();
    let wrong_node = run(&["--listen", "127.0.0.1:0", "--node-id", "1"], &owned);
    assert_eq!(wrong_node.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong_node.stderr).contains("does not match"), "{wrong_node:?}");
}

#[test]
fn a_second_broker_on_the_same_port_or_data_directory_refuses_to_start() {
    let broker = Broker::start(&[]);
    let other_dir = tempfile::tempdir().unwrap();
    // Bounded: a broker that wrongly starts is killed and the test fails rather than hangs.
    let run = |listen: &str, data_dir: &Path| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(["serve", "--admin-listen", "127.0.0.1:0", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                panic!("a second broker started on {listen} / {}", data_dir.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };
    // SO_REUSEPORT would let it bind and take half the connections; it must fail instead.
    let same_port = run(&broker.bootstrap(), other_dir.path());
    assert_eq!(same_port.status.code(), Some(1), "{same_port:?}");
    assert!(String::from_utf8_lossy(&same_port.stderr).contains("cannot listen on"), "{same_port:?}");

    let same_dir = run("127.0.0.1:0", &broker.data_dir());
    assert_eq!(same_dir.status.code(), Some(1), "{same_dir:?}");
    assert!(String::from_utf8_lossy(&same_dir.stderr).contains("in use by another broker"), "{same_dir:?}");
    broker.assert_kcat_lists_broker(0);
}

#[test]
fn an_immediate_restart_after_kill_9_binds_once_the_old_listeners_close() {
    let mut broker = Broker::start(&["--cores", "0,1"]);
    for round in 0..3 {
        // A log with data and an open connection: the killed process's io_uring holds its sockets for a
        // moment after it is gone.
        let produced = common::kcat_with_input(&["-P", "-b", &broker.bootstrap(), "-t", "restarts"], Some(b"x\n"));
        assert!(produced.status.success(), "{produced:?}");
        let _open = Client::connect(&broker);
        broker.kill9();
        broker.restart_at_once(2);
        let mut client = Client::connect(&broker);
        let versions: ApiVersionsResponse = client.call(ApiKey::ApiVersions, 2, &ApiVersionsRequest::default());
        assert_eq!(versions.error_code, 0, "round {round}");
    }
}
