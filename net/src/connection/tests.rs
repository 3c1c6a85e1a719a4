//! The connection loop against scripted peers.

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
    /// "start N" / "end N" per Produce request (by correlation id), in the order they happened.
    produce_events: std::cell::RefCell<Vec<String>>,
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
            let header = &request.header;
            if header.api_key == ApiKey::Produce {
                // Stands in for appends: record when each produce runs, answer with a bare header.
                let id = header.correlation_id;
                self.produce_events.borrow_mut().push(format!("start {id}"));
                for _ in 0..delay {
                    futures_lite::future::yield_now().await;
                }
                self.produce_events.borrow_mut().push(format!("end {id}"));
                let mut out = BytesMut::new();
                out.extend_from_slice(&4i32.to_be_bytes());
                out.extend_from_slice(&id.to_be_bytes());
                return Ok(Some(vec![out.freeze()]));
            }
            for _ in 0..delay {
                futures_lite::future::yield_now().await;
            }
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
    drive_within(&MemoryBudget::new(1 << 20), input, chunk, delays)
}

fn drive_within(budget: &MemoryBudget, input: Vec<u8>, chunk: usize, delays: Vec<usize>) -> (ConnectionEnd, Vec<u8>) {
    drive_recording(budget, input, chunk, delays).0
}

fn drive_recording(
    budget: &MemoryBudget,
    input: Vec<u8>,
    chunk: usize,
    delays: Vec<usize>,
) -> ((ConnectionEnd, Vec<u8>), Vec<String>) {
    let dispatcher = TestDispatcher { delays, served: Cell::new(0), produce_events: Default::default() };
    let mut script = Script { input, chunk, output: Vec::new() };
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let signal = LocalSignal::new();
    let decoder = FrameDecoder::new(1024);
    let end = futures_lite::future::block_on(serve(&mut script, peer, &dispatcher, decoder, budget, None, &signal));
    ((end, script.output), dispatcher.produce_events.take())
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
fn a_budget_for_one_request_at_a_time_still_answers_all_in_order() {
    // 22 bytes: one Metadata frame (14 + 4) at a time; never two.
    let budget = MemoryBudget::new(22);
    let input: Vec<u8> = (1..=8).flat_map(|id| numbered(&METADATA_V1_NONE, id)).collect();
    let (end, output) = drive_within(&budget, input, 1000, vec![3, 2, 1, 0, 0, 0, 0, 0]);
    assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
    assert_eq!(correlation_ids(&output), (1..=8).collect::<Vec<_>>());
    assert_eq!((budget.used(), budget.waiting()), (0, 0), "everything given back");
}

#[test]
fn a_frame_larger_than_the_whole_budget_is_refused() {
    // ApiVersions (10 + 4 bytes) fits, Metadata (14 + 4) never can.
    let budget = MemoryBudget::new(16);
    let mut input = numbered(&API_VERSIONS_V0, 1);
    input.extend(numbered(&METADATA_V1_NONE, 2));
    let (end, output) = drive_within(&budget, input, 1000, Vec::new());
    assert!(matches!(&end, ConnectionEnd::Refused(reason) if reason.contains("memory budget")), "{end:?}");
    assert_eq!(correlation_ids(&output), vec![1]);
    assert_eq!(budget.used(), 0);
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
    let dispatcher = TestDispatcher { delays: Vec::new(), served: Cell::new(0), produce_events: Default::default() };
    let mut script = Script { input: API_VERSIONS_V0.to_vec(), chunk: 1000, output: Vec::new() };
    let signal = LocalSignal::new();
    signal.trigger();
    let budget = MemoryBudget::new(1 << 20);
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let end = futures_lite::future::block_on(serve(
        &mut script,
        peer,
        &dispatcher,
        FrameDecoder::new(1024),
        &budget,
        None,
        &signal,
    ));
    assert!(matches!(end, ConnectionEnd::Shutdown), "{end:?}");
}

#[test]
fn vectored_writes_resume_mid_chunk() {
    let chunks: Vec<Bytes> = (0u8..20).map(|n| Bytes::from(vec![n; usize::from(n)])).collect();
    let mut script = Script { input: Vec::new(), chunk: 1, output: Vec::new() };
    futures_lite::future::block_on(write_chunks(&mut script, &chunks, None)).unwrap();
    assert_eq!(script.output, chunks.concat());
}

/// Produce v3 with header v1 (no client id) and an empty body: enough for routing.
const PRODUCE_V3_EMPTY: [u8; 14] = [0, 0, 0, 10, 0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff];

#[test]
fn pipelined_produce_requests_run_one_after_another_in_order() {
    // The first produce takes longest; run at once, the second would reach its partition first.
    let mut input: Vec<u8> = Vec::new();
    input.extend(numbered(&PRODUCE_V3_EMPTY, 1));
    input.extend(numbered(&METADATA_V1_NONE, 2));
    input.extend(numbered(&PRODUCE_V3_EMPTY, 3));
    input.extend(numbered(&PRODUCE_V3_EMPTY, 4));
    let ((end, output), events) = drive_recording(&MemoryBudget::new(1 << 20), input, 1000, vec![30, 20, 10, 0]);
    assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
    assert_eq!(correlation_ids(&output), vec![1, 2, 3, 4]);
    assert_eq!(events, vec!["start 1", "end 1", "start 3", "end 3", "start 4", "end 4"]);
}
