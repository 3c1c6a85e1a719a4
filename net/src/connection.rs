//! One client connection: read frames, answer them in order, write the answers.
//!
//! Clients pipeline: up to [`MAX_IN_FLIGHT`] requests of one connection are processed at once (a
//! Produce waiting for its fdatasync does not hold up the Fetch behind it), and their responses leave
//! in request order. The in-flight requests are futures polled by the connection's own task, so a
//! connection is one task however many requests it has open; when it has [`MAX_IN_FLIGHT`], it stops
//! reading until the oldest is answered (backpressure through TCP). Several responses that are ready
//! together go out in one vectored write; a response's chunks (a Fetch response's stored batches)
//! are written as they are, without being copied together.
//!
//! The connection ends, after a log line naming the peer, when:
//! - the peer closes (debug; a frame cut short by the close is noted) — requests already read are
//!   still answered first,
//! - a size prefix is negative or over `socket.request.max.bytes` (warn),
//! - a request cannot be answered: bad header, unknown API, unsupported version, bad body, or a
//!   failed acks=0 produce (warn; an encoding failure, a Spate bug, is an error),
//! - a socket read or write fails (debug: the peer reset or vanished),
//! - the shard shuts down: once the requests already read are answered, reading stops.
//!
//! Responses to requests before a refused one are sent; requests after it are dropped. Dropping an
//! in-flight request is safe: everything it started on a partition runs as a detached task.
//!
//! Memory: the read buffer grows only as bytes arrive (never for an announced size alone) and is
//! refilled in chunks of at most [`READ_CHUNK_MAX_BYTES`].

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use spate_core::runtime::tcp::MAX_IOVECS;
use spate_core::runtime::LocalSignal;
use tracing::{debug, error, warn};

use crate::dispatch::{Answer, DispatchError, Dispatcher};
use crate::frame::FrameDecoder;
use crate::handlers::HandlerError;

/// Smallest read: enough for a few small pipelined requests.
pub const READ_CHUNK_MIN_BYTES: usize = 4 * 1024;
/// Largest single read into the buffer; a bigger frame takes several.
pub const READ_CHUNK_MAX_BYTES: usize = 64 * 1024;
/// Requests of one connection processed at once (Kafka clients send at most 5 by default).
pub const MAX_IN_FLIGHT: usize = 5;

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
pub async fn serve<S, D>(
    stream: &mut S,
    peer: SocketAddr,
    dispatcher: &D,
    decoder: FrameDecoder,
    shutdown: &LocalSignal,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Dispatcher,
{
    let end = run(stream, dispatcher, decoder, shutdown).await;
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

type Pending<'a> = Pin<Box<dyn Future<Output = Result<Answer, DispatchError>> + 'a>>;

/// Requests in flight, oldest first; each is polled whenever the connection wakes.
struct InFlight<'a> {
    slots: VecDeque<Slot<'a>>,
}

enum Slot<'a> {
    Running(Pending<'a>),
    Done(Result<Answer, DispatchError>),
}

impl<'a> InFlight<'a> {
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Polls every running request; returns the oldest one's result once it has one.
    fn poll_oldest(&mut self, cx: &mut Context<'_>) -> Poll<Result<Answer, DispatchError>> {
        for slot in self.slots.iter_mut() {
            if let Slot::Running(future) = slot {
                if let Poll::Ready(result) = future.as_mut().poll(cx) {
                    *slot = Slot::Done(result);
                }
            }
        }
        if matches!(self.slots.front(), Some(Slot::Done(_))) {
            if let Some(Slot::Done(result)) = self.slots.pop_front() {
                return Poll::Ready(result);
            }
        }
        Poll::Pending
    }
}

enum Event {
    Answered(Result<Answer, DispatchError>),
    Read(io::Result<usize>),
    Shutdown,
}

async fn run<S, D>(stream: &mut S, dispatcher: &D, decoder: FrameDecoder, shutdown: &LocalSignal) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Dispatcher,
{
    let mut read_buf = BytesMut::new();
    let mut in_flight = InFlight { slots: VecDeque::new() };
    // Why reading stopped: a bad frame (refuse once the requests before it are answered) or the
    // peer's close (end once they are).
    let mut refusal: Option<String> = None;
    let mut closed: Option<ConnectionEnd> = None;
    loop {
        while refusal.is_none() && in_flight.len() < MAX_IN_FLIGHT {
            match decoder.decode(&mut read_buf) {
                Ok(Some(frame)) => in_flight.slots.push_back(Slot::Running(dispatcher.dispatch(frame))),
                Ok(None) => break,
                Err(error) => refusal = Some(error.to_string()),
            }
        }
        if in_flight.len() == 0 {
            if let Some(reason) = refusal {
                return ConnectionEnd::Refused(reason);
            }
            if let Some(end) = closed {
                return end;
            }
            if shutdown.is_triggered() {
                return ConnectionEnd::Shutdown;
            }
        }
        let can_read =
            refusal.is_none() && closed.is_none() && !shutdown.is_triggered() && in_flight.len() < MAX_IN_FLIGHT;
        let filled = read_buf.len();
        let event = if can_read {
            // Read at least what the next frame still needs, within the chunk bounds. The buffer
            // grows by what arrives, not by what a size prefix announces.
            let needed = decoder.bytes_needed(&read_buf).unwrap_or(0);
            read_buf.resize(filled + needed.clamp(READ_CHUNK_MIN_BYTES, READ_CHUNK_MAX_BYTES), 0);
            let read_into = &mut read_buf[filled..];
            let answered = std::future::poll_fn(|cx| in_flight.poll_oldest(cx));
            let event = futures_lite::future::or(
                futures_lite::future::or(async { Event::Answered(answered.await) }, async {
                    Event::Read(stream.read(read_into).await)
                }),
                async {
                    shutdown.wait().await;
                    Event::Shutdown
                },
            )
            .await;
            let arrived = match event {
                Event::Read(Ok(bytes)) => bytes,
                _ => 0,
            };
            read_buf.truncate(filled + arrived);
            event
        } else {
            Event::Answered(std::future::poll_fn(|cx| in_flight.poll_oldest(cx)).await)
        };
        match event {
            Event::Answered(first) => {
                // Send every answer that is ready now in one write.
                let mut chunks = Vec::new();
                let mut result = first;
                loop {
                    match result {
                        Ok(Some(answer)) => chunks.extend(answer),
                        Ok(None) => {}
                        Err(error) => {
                            if let DispatchError::Handler(HandlerError::Encode(_)) = &error {
                                error!("cannot encode a response (a Spate bug): {error}");
                            }
                            if let Err(error) = write_chunks(stream, &chunks).await {
                                return ConnectionEnd::Io(error);
                            }
                            return ConnectionEnd::Refused(error.to_string());
                        }
                    }
                    match futures_lite::future::poll_once(std::future::poll_fn(|cx| in_flight.poll_oldest(cx))).await {
                        Some(next) => result = next,
                        None => break,
                    }
                }
                if let Err(error) = write_chunks(stream, &chunks).await {
                    return ConnectionEnd::Io(error);
                }
            }
            Event::Read(Err(error)) => return ConnectionEnd::Io(error),
            Event::Read(Ok(0)) => {
                closed = Some(if filled == 0 {
                    ConnectionEnd::PeerClosed
                } else {
                    ConnectionEnd::PeerClosedMidFrame(filled)
                });
            }
            Event::Read(Ok(_)) | Event::Shutdown => {}
        }
    }
}

/// Writes `chunks` back to back with vectored writes.
async fn write_chunks<S: AsyncWrite + Unpin>(stream: &mut S, chunks: &[Bytes]) -> io::Result<()> {
    let mut index = 0;
    let mut offset = 0;
    while index < chunks.len() {
        if offset == chunks[index].len() {
            index += 1;
            offset = 0;
            continue;
        }
        let slices: Vec<IoSlice<'_>> = chunks[index..]
            .iter()
            .take(MAX_IOVECS)
            .enumerate()
            .map(|(position, chunk)| IoSlice::new(if position == 0 { &chunk[offset..] } else { chunk }))
            .collect();
        let mut written = stream.write_vectored(&slices).await?;
        if written == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no bytes"));
        }
        while written > 0 && index < chunks.len() {
            let left = chunks[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use kafka_protocol::messages::{ApiKey, MetadataResponse};

    use super::*;
    use crate::dispatch::{route, Routed};
    use crate::response::encode_response;

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
            // Accept at most 7 bytes a call, so partial vectored writes are exercised.
            let take = buf.len().min(7);
            self.output.extend_from_slice(&buf[..take]);
            Poll::Ready(Ok(take))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Answers ApiVersions for real and Metadata with no topics (after the real body checks). The
    /// n-th Metadata request yields `delays[n]` times first, so later requests can finish first.
    struct TestDispatcher {
        delays: Vec<usize>,
        served: Cell<usize>,
    }

    impl Dispatcher for TestDispatcher {
        fn dispatch(&self, frame: Bytes) -> Pin<Box<dyn Future<Output = Result<Answer, DispatchError>> + '_>> {
            let delay = self.delays.get(self.served.get()).copied().unwrap_or(0);
            self.served.set(self.served.get() + 1);
            Box::pin(async move {
                let request = match route(frame)? {
                    Routed::Answered(chunks) => return Ok(Some(chunks)),
                    Routed::Request(request) => request,
                };
                for _ in 0..delay {
                    futures_lite::future::yield_now().await;
                }
                let header = &request.header;
                crate::handlers::metadata::decode_request(header.api_version, request.body.clone())
                    .map_err(DispatchError::Handler)?;
                let mut out = BytesMut::new();
                encode_response(
                    &mut out,
                    ApiKey::Metadata,
                    header.api_version,
                    header.correlation_id,
                    &MetadataResponse::default(),
                )
                .map_err(|error| DispatchError::Handler(error.into()))?;
                Ok(Some(vec![out.split_to(5).freeze(), out.freeze()]))
            })
        }
    }

    const API_VERSIONS_V0: [u8; 14] = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 9, 0xff, 0xff];
    const METADATA_V1_NONE: [u8; 18] = [0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0, 0, 0, 0];

    fn drive_with(input: Vec<u8>, chunk: usize, delays: Vec<usize>) -> (ConnectionEnd, Vec<u8>) {
        let dispatcher = TestDispatcher { delays, served: Cell::new(0) };
        let mut script = Script { input, chunk, output: Vec::new() };
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let signal = LocalSignal::new();
        let end =
            futures_lite::future::block_on(serve(&mut script, peer, &dispatcher, FrameDecoder::new(1024), &signal));
        (end, script.output)
    }

    fn drive(input: Vec<u8>, chunk: usize) -> (ConnectionEnd, Vec<u8>) {
        drive_with(input, chunk, Vec::new())
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

    fn numbered(template: &[u8], correlation_id: i32) -> Vec<u8> {
        let mut request = template.to_vec();
        request[8..12].copy_from_slice(&correlation_id.to_be_bytes());
        request
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_whatever_the_read_sizes() {
        let input: Vec<u8> = (1..=5).flat_map(|id| numbered(&API_VERSIONS_V0, id)).collect();
        for chunk in [1, 3, 14, 1000] {
            let (end, output) = drive(input.clone(), chunk);
            assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
            assert_eq!(correlation_ids(&output), vec![1, 2, 3, 4, 5], "chunk {chunk}");
        }
    }

    #[test]
    fn requests_finishing_out_of_order_are_answered_in_order() {
        // Eight Metadata requests; the early ones take longest. At most five run at once.
        let input: Vec<u8> = (1..=8).flat_map(|id| numbered(&METADATA_V1_NONE, id)).collect();
        let (end, output) = drive_with(input, 1000, vec![40, 30, 20, 10, 0, 5, 0, 0]);
        assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
        assert_eq!(correlation_ids(&output), (1..=8).collect::<Vec<_>>());
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
    fn metadata_with_impossible_topic_count_is_refused_after_earlier_answers() {
        let mut input = numbered(&API_VERSIONS_V0, 1);
        input.extend([0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]);
        input.extend(numbered(&API_VERSIONS_V0, 3));
        let (end, output) = drive(input, 1000);
        assert!(matches!(&end, ConnectionEnd::Refused(reason) if reason.contains("topics")), "{end:?}");
        assert_eq!(correlation_ids(&output), vec![1]);
    }

    #[test]
    fn a_triggered_shutdown_stops_reading() {
        let dispatcher = TestDispatcher { delays: Vec::new(), served: Cell::new(0) };
        let mut script = Script { input: API_VERSIONS_V0.to_vec(), chunk: 1000, output: Vec::new() };
        let signal = LocalSignal::new();
        signal.trigger();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let end =
            futures_lite::future::block_on(serve(&mut script, peer, &dispatcher, FrameDecoder::new(1024), &signal));
        assert!(matches!(end, ConnectionEnd::Shutdown), "{end:?}");
    }

    #[test]
    fn vectored_writes_resume_mid_chunk() {
        let chunks: Vec<Bytes> = (0u8..20).map(|n| Bytes::from(vec![n; usize::from(n)])).collect();
        let mut script = Script { input: Vec::new(), chunk: 1, output: Vec::new() };
        futures_lite::future::block_on(write_chunks(&mut script, &chunks)).unwrap();
        assert_eq!(script.output, chunks.concat());
    }
}
