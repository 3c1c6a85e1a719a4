//! Helpers shared by the tests that run the real `spate` binary: start, stop, restart and kill a
//! broker on a free port with its own data directory; run kcat; speak raw Kafka frames.
//!
//! kcat must be on PATH (Debian package `kcat`; `scripts/install-deps.sh` installs it). Without it
//! the tests that use it fail, on purpose: a silent skip would hide that the client path is untested.

#![allow(dead_code)] // Each test file uses a different subset.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod groups;

pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A broker process. Dropping it kills the process, so a failed assertion never leaks one.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    stderr_path: PathBuf,
    extra: Vec<String>,
    dirs: TempDir,
}

impl Broker {
    /// Starts `spate serve` on a free port with a fresh data directory and `extra` arguments, and
    /// waits until the port accepts connections.
    pub fn start(extra: &[&str]) -> Broker {
        let dirs = tempfile::tempdir().unwrap();
        let stderr_path = dirs.path().join("stderr.log");
        let extra = extra.iter().map(|arg| (*arg).to_owned()).collect();
        let mut broker = Broker { child: None, port: free_port(), stderr_path, extra, dirs };
        broker.launch();
        broker
    }

    /// Like [`Broker::start`], with `config` (TOML) as the `--config` file.
    pub fn start_with_config(config: &str, extra: &[&str]) -> Broker {
        let dirs = tempfile::tempdir().unwrap();
        let config_path = dirs.path().join("spate.toml");
        std::fs::write(&config_path, config).unwrap();
        let stderr_path = dirs.path().join("stderr.log");
        let mut args = vec!["--config".to_owned(), config_path.to_str().unwrap().to_owned()];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let mut broker = Broker { child: None, port: free_port(), stderr_path, extra: args, dirs };
        broker.launch();
        broker
    }

    /// `spate serve` on this broker's port and data directory, logging to its stderr file.
    fn spawn(&self) -> Child {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&self.stderr_path).unwrap();
        Command::new(env!("CARGO_BIN_EXE_spate"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            // Tests run brokers side by side: each gets its own admin port.
            .args(["--admin-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap()
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.child = Some(self.spawn());
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                panic!("spate exited during startup ({status}):\n{}", self.stderr());
            }
            assert!(Instant::now() < deadline, "spate did not accept on {}:\n{}", self.port, self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the broker is not running")
    }

    /// Starts the broker again on the same port and data directory (after it exited).
    pub fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            assert!(child.try_wait().unwrap().is_some(), "restart of a running broker");
        }
        // The kernel closes a killed broker's listeners a moment after the process is gone (its io_uring
        // is torn down asynchronously); until then a connection would reach the old listener and be
        // reset, so the readiness check below must not start before the port is free.
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "port {} still accepting after the broker exited", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.launch();
    }

    /// Starts the broker again right after it exited, as systemd's `Restart=` would, without waiting
    /// for the kernel to close the old process's listeners, and waits until every shard of the new
    /// one logs that it accepts (a readiness connect could still reach an old listener).
    pub fn restart_at_once(&mut self, shards: usize) {
        let accepting_before = self.stderr().matches("net::server: accepting").count();
        let child = self.child.take().expect("the broker was never started");
        drop(child);
        self.child = Some(self.spawn());
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while self.stderr().matches("net::server: accepting").count() < accepting_before + shards {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                panic!("spate exited during startup ({status}):\n{}", self.stderr());
            }
            assert!(Instant::now() < deadline, "spate did not start accepting:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dirs.path().join("data")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is not running").id()
    }

    pub fn assert_running(&mut self) {
        if let Some(status) = self.child_mut().try_wait().unwrap() {
            panic!("spate exited ({status}):\n{}", self.stderr());
        }
    }

    pub fn signal(&mut self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child_mut().id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child_mut().try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "spate still running after {timeout:?}:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and the clean exit (status 0) it must lead to.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(15));
        assert_eq!(status.code(), Some(0), "{}", self.stderr());
    }

    /// SIGKILL: no shutdown at all.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(5));
    }

    /// `kcat -L` against this broker, asserting it succeeds and lists this broker.
    pub fn assert_kcat_lists_broker(&self, node_id: i32) -> String {
        let output = kcat(&["-L", "-b", &self.bootstrap(), "-m", "5"]);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "kcat -L failed ({}):\n{stdout}\n{stderr}\nspate:\n{}",
            output.status,
            self.stderr()
        );
        let expected = format!("broker {node_id} at 127.0.0.1:{}", self.port);
        assert!(stdout.contains(&expected), "kcat -L output lacks {expected:?}:\n{stdout}\n{stderr}");
        stdout
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failing test shows what the broker logged: CI keeps nothing else.
        if std::thread::panicking() {
            let log = self.stderr();
            let tail_start = log.len().saturating_sub(20_000);
            let tail_start = (tail_start..log.len()).find(|&i| log.is_char_boundary(i)).unwrap_or(log.len());
            eprintln!("--- spate stderr (last 20 kB) ---\n{}", &log[tail_start..]);
        }
    }
}

/// CreateTopics v7 of one topic with `partitions` and `configs`, asserting it succeeded.
pub fn create_topic(client: &mut Client, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let text = |value: &str| StrBytes::from_string(value.to_owned());
    let configs = configs
        .iter()
        .map(|(key, value)| CreatableTopicConfig::default().with_name(text(key)).with_value(Some(text(value))))
        .collect();
    let topic = CreatableTopic::default()
        .with_name(TopicName(text(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1)
        .with_configs(configs);
    let response: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic]));
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

/// A port no other broker of this test process will be given, even after this one stops for a restart:
/// taken from a per-process counter below the kernel's ephemeral range (so no client socket holds it
/// either), skipping ports something else is bound to.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ =
        NEXT.compare_exchange(0, 20_000 + (std::process::id() % 500) as u16 * 24, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_768, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Runs kcat; fails the test with an install hint if it is not there.
pub fn kcat(args: &[&str]) -> Output {
    kcat_with_input(args, None)
}

/// Runs kcat with `input` on its stdin (for `-P`).
pub fn kcat_with_input(args: &[&str], input: Option<&[u8]>) -> Output {
    let mut command = Command::new("kcat");
    command.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == ErrorKind::NotFound => panic!(
            "kcat is not installed, and these tests need it: run scripts/install-deps.sh or \
             `apt-get install -y kcat`"
        ),
        Err(error) => panic!("cannot run kcat: {error}"),
    };
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        // Feed stdin from a thread so a full stdout pipe cannot deadlock us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    child.wait_with_output().unwrap()
}

/// Sends `bytes` (then half-closes if `close_write`) and reads until the broker closes the
/// connection. Returns what came back first. Fails if the broker keeps the connection open.
pub fn send_and_expect_close(port: u16, bytes: &[u8], close_write: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(bytes).unwrap();
    if close_write {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => received,
        Err(error) if error.kind() == ErrorKind::ConnectionReset => received,
        Err(error) => panic!("the broker did not close the connection ({error}); received {received:?}"),
    }
}

/// A request frame: header v1 with client id "test", then `body`.
pub fn request(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&api_version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&[0, 4, b't', b'e', b's', b't']);
    frame.extend_from_slice(body);
    let mut wire = (frame.len() as i32).to_be_bytes().to_vec();
    wire.extend_from_slice(&frame);
    wire
}

/// Reads one response frame; returns its correlation id and the rest.
pub fn read_response(stream: &mut TcpStream) -> (i32, Vec<u8>) {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).unwrap();
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut frame).unwrap();
    (i32::from_be_bytes(frame[..4].try_into().unwrap()), frame[4..].to_vec())
}

/// Files in `dir`, for messages.
pub fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(Result::ok).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `client.id` every [`Client`] sends.
pub const CLIENT_ID: &str = "spate-test";

/// A Kafka client speaking hand-built requests to a broker, one connection, correlation ids in order.
pub struct Client {
    stream: TcpStream,
    next_id: i32,
}

impl Client {
    pub fn connect(broker: &Broker) -> Client {
        Client::connect_with_read_timeout(broker.port, IO_TIMEOUT)
    }

    /// For calls that legitimately wait long (a JoinGroup held until a rebalance completes).
    pub fn connect_with_read_timeout(port: u16, read_timeout: Duration) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(read_timeout)).unwrap();
        Client { stream, next_id: 1 }
    }

    /// The connection itself, for tests that watch it close or write raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Sends `request` at `version`; returns the correlation id used.
    pub fn send<R: kafka_protocol::protocol::Encodable>(
        &mut self,
        api_key: kafka_protocol::messages::ApiKey,
        version: i16,
        request: &R,
    ) -> i32 {
        self.try_send(api_key, version, request).unwrap()
    }

    /// Like [`Client::send`], with the socket error returned (for a broker that may already be gone).
    pub fn try_send<R: kafka_protocol::protocol::Encodable>(
        &mut self,
        api_key: kafka_protocol::messages::ApiKey,
        version: i16,
        request: &R,
    ) -> std::io::Result<i32> {
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let correlation_id = self.next_id;
        self.next_id += 1;
        let header = kafka_protocol::messages::RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut frame = bytes::BytesMut::new();
        header.encode(&mut frame, api_key.request_header_version(version)).unwrap();
        request.encode(&mut frame, version).unwrap();
        let mut wire = (frame.len() as i32).to_be_bytes().to_vec();
        wire.extend_from_slice(&frame);
        self.stream.write_all(&wire)?;
        Ok(correlation_id)
    }

    /// Reads the response to `correlation_id` at `version`.
    pub fn receive<R: kafka_protocol::protocol::Decodable>(
        &mut self,
        api_key: kafka_protocol::messages::ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> R {
        use bytes::Buf;
        let (id, body) = read_response(&mut self.stream);
        assert_eq!(id, correlation_id, "responses come back in request order");
        let mut body = bytes::Bytes::from(body);
        if api_key.response_header_version(version) >= 1 {
            assert_eq!(body.get_u8(), 0, "empty response header tag section");
        }
        R::decode(&mut body, version).unwrap_or_else(|error| panic!("{api_key:?} v{version}: {error}"))
    }

    pub fn call<Req: kafka_protocol::protocol::Encodable, Resp: kafka_protocol::protocol::Decodable>(
        &mut self,
        api_key: kafka_protocol::messages::ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        let id = self.send(api_key, version, request);
        self.receive(api_key, version, id)
    }
}
