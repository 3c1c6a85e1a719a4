//! One client connection: read frames, answer them in order, write the answers.
//!
//! Requests are processed one at a time, in arrival order; a client may pipeline (send several
//! before reading), and every complete frame already read is answered, in order, before the next
//! read. Responses to one read's worth of requests go out in one write.
//!
//! The connection ends, after a log line naming the peer, when:
//! - the peer closes (debug; a frame cut short by the close is noted),
//! - a size prefix is negative or over `socket.request.max.bytes` (warn),
//! - a request cannot be answered: bad header, unknown API, unsupported version, bad body (warn; an
//!   encoding failure, a Spate bug, is an error),
//! - a socket read or write fails (debug: the peer reset or vanished),
//! - the shard shuts down: once the requests already read are answered, reading stops.
//!
//! Memory: the read buffer grows only as bytes arrive (never for an announced size alone) and is
//! refilled in chunks of at most [`READ_CHUNK_MAX_BYTES`].

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use spate_core::runtime::LocalSignal;
use tracing::{debug, error, warn};

use crate::broker::BrokerInfo;
use crate::dispatch::{dispatch, DispatchError};
use crate::frame::FrameDecoder;
use crate::handlers::HandlerError;

/// Smallest read: enough for a few small pipelined requests.
pub const READ_CHUNK_MIN_BYTES: usize = 4 * 1024;
/// Largest single read into the buffer; a bigger frame takes several.
pub const READ_CHUNK_MAX_BYTES: usize = 64 * 1024;

/// Why a connection ended.
#[derive(Debug)]
pub enum ConnectionEnd {
    /// The peer closed between requests.
    PeerClosed,
    /// The peer closed with this many bytes of an unfinished frame unread.
    PeerClosedMidFrame(usize),
    /// A bad size prefix or an unanswerable request; the connection was closed.
    Refused(String),
    /// The socket failed.
    Io(io::Error),
    /// The shard is shutting down.
    Shutdown,
}

/// Serves `stream` until it ends (see the module docs). Never panics on client input.
pub async fn serve<S>(
    stream: &mut S,
    peer: SocketAddr,
    broker: &BrokerInfo,
    decoder: FrameDecoder,
    shutdown: &LocalSignal,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let end = run(stream, peer, broker, decoder, shutdown).await;
    match &end {
        ConnectionEnd::PeerClosed => debug!(%peer, "connection closed by peer"),
        ConnectionEnd::PeerClosedMidFrame(bytes) => {
            debug!(%peer, unread_bytes = bytes, "connection closed by peer in the middle of a frame")
        }
        ConnectionEnd::Refused(reason) => warn!(%peer, "closing connection: {reason}"),
        ConnectionEnd::Io(error) => debug!(%peer, "connection failed: {error}"),
        ConnectionEnd::Shutdown => debug!(%peer, "closing connection for shutdown"),
    }
    end
}

async fn run<S>(
    stream: &mut S,
    peer: SocketAddr,
    broker: &BrokerInfo,
    decoder: FrameDecoder,
    shutdown: &LocalSignal,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut read_buf = BytesMut::new();
    let mut write_buf = BytesMut::new();
    loop {
        // Answer every complete frame already read, in order.
        let refusal = answer_buffered(&mut read_buf, &mut write_buf, &decoder, broker, peer);
        if !write_buf.is_empty() {
            // Responses to the requests before a refused one still go out.
            if let Err(error) = stream.write_all(&write_buf).await {
                return ConnectionEnd::Io(error);
            }
            write_buf.clear();
        }
        if let Some(reason) = refusal {
            return ConnectionEnd::Refused(reason);
        }
        if shutdown.is_triggered() {
            return ConnectionEnd::Shutdown;
        }

        // Read at least what the next frame still needs, within the chunk bounds. The buffer grows
        // by what arrives, not by what a size prefix announces.
        let needed = decoder.bytes_needed(&read_buf).unwrap_or(0);
        let chunk = needed.clamp(READ_CHUNK_MIN_BYTES, READ_CHUNK_MAX_BYTES);
        let filled = read_buf.len();
        read_buf.resize(filled + chunk, 0);
        let read = futures_lite::future::or(async { Some(stream.read(&mut read_buf[filled..]).await) }, async {
            shutdown.wait().await;
            None
        })
        .await;
        match read {
            None => return ConnectionEnd::Shutdown,
            Some(Err(error)) => return ConnectionEnd::Io(error),
            Some(Ok(0)) if filled == 0 => return ConnectionEnd::PeerClosed,
            Some(Ok(0)) => return ConnectionEnd::PeerClosedMidFrame(filled),
            Some(Ok(bytes)) => read_buf.truncate(filled + bytes),
        }
    }
}

/// Dispatches the complete frames at the front of `read_buf`, appending responses to `write_buf`.
/// Returns why the connection must close, if it must.
fn answer_buffered(
    read_buf: &mut BytesMut,
    write_buf: &mut BytesMut,
    decoder: &FrameDecoder,
    broker: &BrokerInfo,
    peer: SocketAddr,
) -> Option<String> {
    loop {
        let frame = match decoder.decode(read_buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(error) => return Some(error.to_string()),
        };
        if let Err(error) = dispatch(frame, broker, write_buf) {
            if let DispatchError::Handler(HandlerError::Encode(_)) = &error {
                error!(%peer, "cannot encode a response (a Spate bug): {error}");
            }
            return Some(error.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A scripted peer: reads come from `input` in `chunk`-byte pieces, then EOF; writes collect.
    struct Script {
        input: Vec<u8>,
        chunk: usize,
        output: Vec<u8>,
    }

    impl AsyncRead for Script {
        fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
            let take = self.chunk.min(buf.len()).min(self.input.len());
            buf[..take].copy_from_slice(&self.input[..take]);
            self.input.drain(..take);
            Poll::Ready(Ok(take))
        }
    }

    impl AsyncWrite for Script {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            self.output.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    const API_VERSIONS_V0: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 9, 0xff, 0xff];

    fn drive(input: Vec<u8>, chunk: usize) -> (ConnectionEnd, Vec<u8>) {
        let broker = BrokerInfo { node_id: 0, advertised_host: "h".into(), advertised_port: 1, cluster_id: "c".into() };
        let mut script = Script { input, chunk, output: Vec::new() };
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let signal = LocalSignal::new();
        let end = futures_lite::future::block_on(serve(&mut script, peer, &broker, FrameDecoder::new(1024), &signal));
        (end, script.output)
    }

    fn correlation_ids(mut output: &[u8]) -> Vec<i32> {
        let mut ids = Vec::new();
        while output.len() >= 8 {
            let size = i32::from_be_bytes(output[..4].try_into().unwrap()) as usize;
            ids.push(i32::from_be_bytes(output[4..8].try_into().unwrap()));
            output = &output[4 + size..];
        }
        ids
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_whatever_the_read_sizes() {
        let mut input = Vec::new();
        for correlation_id in 1..=5i32 {
            let mut request = API_VERSIONS_V0;
            request[8..12].copy_from_slice(&correlation_id.to_be_bytes());
            input.extend_from_slice(&request);
        }
        for chunk in [1, 3, 14, 1000] {
            let (end, output) = drive(input.clone(), chunk);
            assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
            assert_eq!(correlation_ids(&output), vec![1, 2, 3, 4, 5], "chunk {chunk}");
        }
    }

    #[test]
    fn oversized_frame_is_refused_after_answering_what_came_before() {
        let mut input = API_VERSIONS_V0.to_vec();
        input.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
        let (end, output) = drive(input, 1000);
        assert!(matches!(&end, ConnectionEnd::Refused(reason) if reason.contains("exceeds")), "{end:?}");
        assert_eq!(correlation_ids(&output), vec![9]);
    }

    #[test]
    fn truncated_frame_then_close_is_noted() {
        let (end, output) = drive(API_VERSIONS_V0[..7].to_vec(), 1000);
        assert!(matches!(end, ConnectionEnd::PeerClosedMidFrame(7)), "{end:?}");
        assert!(output.is_empty());
    }

    #[test]
    fn metadata_with_impossible_topic_count_is_refused() {
        let input = vec![0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff];
        let (end, output) = drive(input, 1000);
        assert!(matches!(&end, ConnectionEnd::Refused(reason) if reason.contains("topics")), "{end:?}");
        assert!(output.is_empty());
    }

    #[test]
    fn a_triggered_shutdown_stops_reading() {
        let broker = BrokerInfo { node_id: 0, advertised_host: "h".into(), advertised_port: 1, cluster_id: "c".into() };
        let mut script = Script { input: API_VERSIONS_V0.to_vec(), chunk: 1000, output: Vec::new() };
        let signal = LocalSignal::new();
        signal.trigger();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let end = futures_lite::future::block_on(serve(&mut script, peer, &broker, FrameDecoder::new(1024), &signal));
        assert!(matches!(end, ConnectionEnd::Shutdown), "{end:?}");
    }
}
