//! The admin listener (`admin_listen`, default 127.0.0.1:9644, Redpanda's admin port): `GET /metrics`
//! (Prometheus/OpenMetrics text), `GET /healthz` (the process is up) and `GET /readyz` (every shard
//! recovered its logs and accepts clients; 503 until then).
//!
//! A plain thread with a blocking listener, off the shards: a scrape never competes with a shard's
//! executor except for the metric atomics it reads. One request per connection, each bounded by a
//! read timeout and a small request size, so a slow or hostile client cannot hold the thread long.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::Metrics;

/// The largest request head read.
const MAX_REQUEST_BYTES: usize = 8192;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `address` (reported before any shard starts, like the Kafka listener).
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(address)
}

/// Serves `listener` on a new thread for the life of the process.
pub fn spawn(listener: TcpListener, metrics: Arc<Metrics>) -> io::Result<()> {
    std::thread::Builder::new().name("spate-admin".into()).spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => {
                    if let Err(error) = serve(stream, &metrics) {
                        debug!("admin connection failed: {error}");
                    }
                }
                Err(error) => {
                    warn!("admin listener: accept failed: {error}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    })?;
    Ok(())
}

fn serve(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
        if head.len() > MAX_REQUEST_BYTES {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", b"request too large\n");
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next().unwrap_or_default().split_whitespace();
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", b"only GET\n");
    }
    match path {
        "/metrics" => respond(
            &mut stream,
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode().as_bytes(),
        ),
        "/healthz" => respond(&mut stream, "200 OK", "text/plain", b"ok\n"),
        "/readyz" if metrics.is_ready() => respond(&mut stream, "200 OK", "text/plain", b"ready\n"),
        "/readyz" => respond(&mut stream, "503 Service Unavailable", "text/plain", b"starting\n"),
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"try /metrics, /healthz or /readyz\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}
