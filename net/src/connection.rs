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
//! - a socket read or write fails (debug: the peer reset or vanished), or the peer takes none of its
//!   responses for the write stall limit ([`WRITE_STALL_LIMIT`] in the broker; warn),
//! - the shard shuts down: once the requests already read are answered, reading stops.
//!
//! Responses to requests before a refused one are sent; requests after it are dropped. Dropping an
//! in-flight request is safe: everything it started on a partition runs as a detached task.
//!
//! Memory ([`crate::budget`]): once a frame's size prefix is read, the connection acquires the
//! frame's size from the shard's [`MemoryBudget`] before it reserves or reads the body, waiting
//! (first come, first served) while the budget is spent: that wait is the backpressure a client
//! feels. A frame larger than the whole budget is refused. A Fetch frame's header and first body
//! fields are read first: with the frame, it acquires min(`max_bytes`, the budget's
//! [`fetch_reservation_cap`](MemoryBudget::fetch_reservation_cap)) for its response, and the dispatcher
//! hands the handler that limit. A connection holds at most its
//! [`connection_share`](MemoryBudget::connection_share) of the budget: past it, it reads nothing more
//! (and does not queue for the budget) until its own answers have left, unless it holds nothing (a
//! larger request is served alone). The permit travels with the request,
//! becomes the response's size when it is answered, and is released once the response is written.
//! While a write waits (a client that does not read its responses), nothing more is read from that
//! connection, so it holds at most [`MAX_IN_FLIGHT`] responses. Without a frame's permit the buffer
//! grows only by what arrives, in reads of [`READ_CHUNK_MIN_BYTES`] to [`READ_CHUNK_MAX_BYTES`]
//! (so up to [`READ_CHUNK_MIN_BYTES`] of following small frames are read before their permit); an
//! idle connection gives its read buffer back and holds none.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use spate_core::runtime::tcp::MAX_IOVECS;
use spate_core::runtime::{timeout, LocalSignal};
use tracing::{debug, error, warn};

use crate::budget::{Acquire, MemoryBudget, Permit};
use crate::dispatch::{Answer, DispatchError, Dispatcher};
use crate::frame::{FrameDecoder, SIZE_PREFIX_BYTES};
use crate::handlers::HandlerError;

/// Smallest read: enough for a few small pipelined requests.
pub const READ_CHUNK_MIN_BYTES: usize = 4 * 1024;
/// Largest single read into the buffer; a bigger frame takes several.
pub const READ_CHUNK_MAX_BYTES: usize = 64 * 1024;
/// Requests of one connection processed at once (Kafka clients send at most 5 by default).
pub const MAX_IN_FLIGHT: usize = 5;
/// How long the broker waits for a client to take any of its response bytes before closing the
/// connection (and freeing the responses' budget).
pub const WRITE_STALL_LIMIT: Duration = Duration::from_secs(30);

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
    budget: &MemoryBudget,
    write_stall: Option<Duration>,
    shutdown: &LocalSignal,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Dispatcher,
{
    let end = run(stream, dispatcher, decoder, budget, write_stall, shutdown).await;
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

/// Requests in flight, oldest first, each with the budget it holds; polled whenever the connection
/// wakes.
struct InFlight<'a> {
    slots: VecDeque<(Slot<'a>, Permit)>,
}

enum Slot<'a> {
    /// A request being processed; `ordered` requests (Produce) start only once every older ordered
    /// request of the connection has finished.
    Running {
        future: Pending<'a>,
        ordered: bool,
    },
    Done(Result<Answer, DispatchError>),
}

impl<'a> Slot<'a> {
    fn running(frame: &Bytes, future: Pending<'a>) -> Self {
        Slot::Running { future, ordered: is_produce(frame) }
    }
}

/// Produce requests of one connection must append in request order: Kafka's ordering guarantee for a
/// producer with several requests in flight. Running two at once could let the later one reach a
/// partition first (its owner shard, its log's buffer), so they run one after another, as Kafka runs
/// every request of a connection. Other requests (Fetch waiting on a long poll, Metadata) still overlap.
fn is_produce(frame: &Bytes) -> bool {
    frame.len() >= 2 && i16::from_be_bytes([frame[0], frame[1]]) == PRODUCE_API_KEY
}

const PRODUCE_API_KEY: i16 = 0;

impl<'a> InFlight<'a> {
    fn len(&self) -> usize {
        self.slots.len()
    }

    /// Budget bytes the connection's requests hold (frames, reserved responses).
    fn held_bytes(&self) -> usize {
        self.slots.iter().map(|(_, permit)| permit.bytes()).sum()
    }

    /// Polls every running request; returns the oldest one's result (and its permit) once it has one.
    fn poll_oldest(&mut self, cx: &mut Context<'_>) -> Poll<(Result<Answer, DispatchError>, Permit)> {
        let mut ordered_running = false;
        for (slot, _) in self.slots.iter_mut() {
            if let Slot::Running { future, ordered } = slot {
                if *ordered && ordered_running {
                    // An older Produce is still running: this one waits its turn (and is polled again
                    // when that one finishes, since the connection is woken then).
                    continue;
                }
                match future.as_mut().poll(cx) {
                    Poll::Ready(result) => *slot = Slot::Done(result),
                    Poll::Pending => ordered_running |= *ordered,
                }
            }
        }
        if matches!(self.slots.front(), Some((Slot::Done(_), _))) {
            if let Some((Slot::Done(result), permit)) = self.slots.pop_front() {
                return Poll::Ready((result, permit));
            }
        }
        Poll::Pending
    }
}

enum Event {
    Answered((Result<Answer, DispatchError>, Permit)),
    Admitted(Permit),
    Read(io::Result<usize>),
    Shutdown,
}

/// What admitting the frame at the front of the read buffer takes from the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Admission {
    /// The frame, size prefix included.
    frame_bytes: usize,
    /// Reserved for the response's records (a Fetch's; 0 for other requests).
    response_bytes: usize,
}

impl Admission {
    fn bytes(&self) -> usize {
        self.frame_bytes + self.response_bytes
    }
}

/// What the frame at the front of `buf` needs once enough of it is there to know (its prefix, and for a
/// Fetch the start of its body); an error for a bad prefix or a frame the whole budget could not hold.
fn front_admission(decoder: &FrameDecoder, budget: &MemoryBudget, buf: &[u8]) -> Result<Option<Admission>, String> {
    let Some(body_bytes) = decoder.body_size(buf).map_err(|error| error.to_string())? else {
        return Ok(None);
    };
    let frame_bytes = SIZE_PREFIX_BYTES + body_bytes;
    if frame_bytes > budget.total() {
        return Err(format!(
            "frame of {body_bytes} bytes exceeds the shard's memory budget of {} bytes (memory_budget_bytes_per_shard)",
            budget.total()
        ));
    }
    let body = &buf[SIZE_PREFIX_BYTES..buf.len().min(frame_bytes)];
    let Some(response_bytes) = fetch_reservation(body, body.len() == body_bytes, budget.fetch_reservation_cap()) else {
        return Ok(None);
    };
    Ok(Some(Admission { frame_bytes, response_bytes: response_bytes.min(budget.total() - frame_bytes) }))
}

const FETCH_API_KEY: i16 = 1;
/// Fetch versions with a flexible (v2) request header.
const FETCH_FIRST_FLEXIBLE_VERSION: i16 = 12;
/// Fetch versions whose body no longer starts with `replica_id` (it moved into a tagged field).
const FETCH_FIRST_VERSION_WITHOUT_REPLICA_ID: i16 = 15;

/// The response bytes to reserve for the frame starting with `frame` (its body as far as it has
/// arrived; `complete` once all of it has): for a Fetch, its `max_bytes` up to `cap`; 0 for any other
/// request (or a Fetch too malformed to be served: dispatch refuses it). `None` while more of the frame
/// is needed to tell. When its header is longer than [`READ_CHUNK_MIN_BYTES`] (a huge client id), the
/// Fetch is not read further before its permit: it reserves `cap`.
///
/// FetchRequest.json, v4–14: `replica_id` i32, `max_wait_ms` i32, `min_bytes` i32, `max_bytes` i32, …;
/// v15+: `max_wait_ms`, `min_bytes`, `max_bytes`, … (request header v1, or v2 with tagged fields from
/// v12).
fn fetch_reservation(frame: &[u8], complete: bool, cap: usize) -> Option<usize> {
    match peek_fetch_max_bytes(frame) {
        Peek::NotFetch => Some(0),
        Peek::MaxBytes(max_bytes) => Some(usize::try_from(max_bytes).unwrap_or(0).min(cap)),
        Peek::Short if complete => Some(0),
        Peek::Short if frame.len() >= READ_CHUNK_MIN_BYTES => Some(cap),
        Peek::Short => None,
    }
}

enum Peek {
    NotFetch,
    MaxBytes(i32),
    /// The bytes end (or turn malformed) before `max_bytes`.
    Short,
}

fn peek_fetch_max_bytes(frame: &[u8]) -> Peek {
    let mut cursor = Cursor(frame);
    let Some(api_key) = cursor.i16() else { return Peek::Short };
    if api_key != FETCH_API_KEY {
        return Peek::NotFetch;
    }
    let max_bytes = (|| {
        let version = cursor.i16()?;
        cursor.skip(4)?; // correlation_id
        let client_id = cursor.i16()?;
        cursor.skip(usize::try_from(client_id).unwrap_or(0))?;
        if version >= FETCH_FIRST_FLEXIBLE_VERSION {
            for _ in 0..cursor.varint()? {
                cursor.varint()?; // tag
                let size = cursor.varint()?;
                cursor.skip(usize::try_from(size).ok()?)?;
            }
        }
        cursor.skip(if version >= FETCH_FIRST_VERSION_WITHOUT_REPLICA_ID { 8 } else { 12 })?;
        cursor.i32()
    })();
    max_bytes.map_or(Peek::Short, Peek::MaxBytes)
}

/// Reads big-endian fields off the front of a byte slice.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn skip(&mut self, bytes: usize) -> Option<&[u8]> {
        let (taken, rest) = self.0.split_at_checked(bytes)?;
        self.0 = rest;
        Some(taken)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.skip(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.skip(4)?.try_into().ok()?))
    }

    /// An unsigned varint of at most 5 bytes.
    fn varint(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = *self.skip(1)?.first()?;
            value |= u32::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
}

/// One read of up to `chunk` bytes appended to `buf`. While it waits, an empty `buf` gives back its
/// allocation: an idle connection holds no read buffer.
fn poll_read_into<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    chunk: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let filled = buf.len();
    buf.resize(filled + chunk, 0);
    let result = Pin::new(stream).poll_read(cx, &mut buf[filled..]);
    let arrived = match &result {
        Poll::Ready(Ok(bytes)) => *bytes,
        _ => 0,
    };
    buf.truncate(filled + arrived);
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    result
}

async fn run<S, D>(
    stream: &mut S,
    dispatcher: &D,
    decoder: FrameDecoder,
    budget: &MemoryBudget,
    write_stall: Option<Duration>,
    shutdown: &LocalSignal,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Dispatcher,
{
    let mut read_buf = BytesMut::new();
    let mut in_flight = InFlight { slots: VecDeque::new() };
    // Budget held for the frame at the front of `read_buf` (taken once its size prefix is known,
    // before its body is reserved or read), and the wait for it; each with the response bytes it
    // reserves.
    let mut frame_permit: Option<(Permit, usize)> = None;
    let mut acquiring: Option<(Acquire, usize)> = None;
    // Why reading stopped: a bad frame (refuse once the requests before it are answered) or the
    // peer's close (end once they are).
    let mut refusal: Option<String> = None;
    let mut closed: Option<ConnectionEnd> = None;
    loop {
        while refusal.is_none() && in_flight.len() < MAX_IN_FLIGHT {
            if frame_permit.is_none() {
                let admission = match front_admission(&decoder, budget, &read_buf) {
                    Ok(Some(admission)) => admission,
                    Ok(None) => break,
                    Err(reason) => {
                        refusal = Some(reason);
                        break;
                    }
                };
                // Queued already: that place is taken below (taking a second permit here would leave
                // the queued one, sized for this frame, to the next).
                if acquiring.is_some() || !budget.within_connection_share(in_flight.held_bytes(), admission.bytes()) {
                    break;
                }
                let Some(permit) = budget.try_acquire(admission.bytes()) else { break };
                frame_permit = Some((permit, admission.response_bytes));
            }
            let Some((permit, response_bytes)) = frame_permit.take() else { break };
            match decoder.decode(&mut read_buf) {
                Ok(Some(frame)) => {
                    let slot = Slot::running(&frame, dispatcher.dispatch(frame.clone(), response_bytes));
                    in_flight.slots.push_back((slot, permit))
                }
                Ok(None) => {
                    frame_permit = Some((permit, response_bytes));
                    break;
                }
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
        let next = match (can_read, &frame_permit) {
            (true, None) => front_admission(&decoder, budget, &read_buf).ok().flatten(),
            _ => None,
        };
        let over_share = next.is_some_and(|next| !budget.within_connection_share(in_flight.held_bytes(), next.bytes()));
        let answered = std::future::poll_fn(|cx| in_flight.poll_oldest(cx));
        let event = if !can_read || over_share {
            // Over its share, the connection waits for its own answers to leave (it holds some:
            // otherwise it would be within its share) and is not queued for the budget meanwhile.
            Event::Answered(answered.await)
        } else if let Some(next) = next {
            // The next frame's needs are known but the budget is spent: wait for it (backpressure),
            // keeping our place in the queue while answers go out.
            let (acquire, _) = acquiring.get_or_insert_with(|| (budget.acquire(next.bytes()), next.response_bytes));
            first_of(answered, async { Event::Admitted(acquire.await) }, shutdown).await
        } else {
            // Read at least what the next frame still needs, within the chunk bounds. A frame's body
            // is reserved whole once its budget is held; otherwise the buffer grows by what arrives,
            // a small read at a time.
            let needed = decoder.bytes_needed(&read_buf).unwrap_or(0);
            let chunk = if frame_permit.is_some() {
                read_buf.reserve(needed);
                needed.clamp(READ_CHUNK_MIN_BYTES, READ_CHUNK_MAX_BYTES)
            } else {
                READ_CHUNK_MIN_BYTES
            };
            let read = std::future::poll_fn(|cx| poll_read_into(stream, &mut read_buf, chunk, cx));
            first_of(answered, async { Event::Read(read.await) }, shutdown).await
        };
        match event {
            Event::Answered(first) => {
                // Send every answer that is ready now in one write. Each answer's permit now holds
                // the response's size, until the response has left.
                let mut chunks = Vec::new();
                let mut held = Vec::new();
                let (mut result, mut permit) = first;
                loop {
                    match result {
                        Ok(Some(answer)) => {
                            permit.resize(answer.iter().map(Bytes::len).sum());
                            chunks.extend(answer);
                        }
                        Ok(None) => permit.resize(0),
                        Err(error) => {
                            if let DispatchError::Handler(HandlerError::Encode(_)) = &error {
                                error!("cannot encode a response (a Spate bug): {error}");
                            }
                            if let Err(error) = write_chunks(stream, &chunks, write_stall).await {
                                return write_failed(error);
                            }
                            return ConnectionEnd::Refused(error.to_string());
                        }
                    }
                    held.push(permit);
                    match futures_lite::future::poll_once(std::future::poll_fn(|cx| in_flight.poll_oldest(cx))).await {
                        Some(next) => (result, permit) = next,
                        None => break,
                    }
                }
                // While this write waits (a client that does not read), nothing else is read from
                // this connection: its queued responses are the at most MAX_IN_FLIGHT answered.
                if let Err(error) = write_chunks(stream, &chunks, write_stall).await {
                    return write_failed(error);
                }
                drop(held);
            }
            Event::Admitted(permit) => {
                let response_bytes = acquiring.take().map_or(0, |(_, response_bytes)| response_bytes);
                frame_permit = Some((permit, response_bytes));
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

/// The first of: the oldest request answered, `other`, or shutdown.
async fn first_of(
    answered: impl Future<Output = (Result<Answer, DispatchError>, Permit)>,
    other: impl Future<Output = Event>,
    shutdown: &LocalSignal,
) -> Event {
    futures_lite::future::or(futures_lite::future::or(async { Event::Answered(answered.await) }, other), async {
        shutdown.wait().await;
        Event::Shutdown
    })
    .await
}

/// A stalled write (the client stopped reading) is refused with a warning; other failures are I/O.
fn write_failed(error: io::Error) -> ConnectionEnd {
    match error.kind() {
        io::ErrorKind::TimedOut => ConnectionEnd::Refused(error.to_string()),
        _ => ConnectionEnd::Io(error),
    }
}

/// Writes `chunks` back to back with vectored writes; fails with `TimedOut` if the socket accepts
/// nothing for `stall` (a client that does not read its responses would otherwise pin their memory
/// for ever).
async fn write_chunks<S: AsyncWrite + Unpin>(
    stream: &mut S,
    chunks: &[Bytes],
    stall: Option<Duration>,
) -> io::Result<()> {
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
        let mut written = match stall {
            None => stream.write_vectored(&slices).await?,
            Some(limit) => timeout(limit, stream.write_vectored(&slices)).await.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the client read none of its responses for {} s", limit.as_secs()),
                )
            })??,
        };
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
mod tests;
