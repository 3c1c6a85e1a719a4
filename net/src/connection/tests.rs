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
    /// Requests running now, and the most at once.
    running: Cell<usize>,
    most_running: Cell<usize>,
    /// Per Fetch: the response limit it was given and the budget's use when it ran.
    fetches: std::cell::RefCell<Vec<(usize, usize)>>,
    budget: Option<MemoryBudget>,
}

impl TestDispatcher {
    fn new(delays: Vec<usize>) -> Self {
        TestDispatcher {
            delays,
            served: Cell::new(0),
            produce_events: Default::default(),
            running: Cell::new(0),
            most_running: Cell::new(0),
            fetches: Default::default(),
            budget: None,
        }
    }

    fn start(&self) {
        self.running.set(self.running.get() + 1);
        self.most_running.set(self.most_running.get().max(self.running.get()));
    }
}

impl Dispatcher for TestDispatcher {
    fn dispatch(
        &self,
        frame: Bytes,
        response_limit: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, DispatchError>> + '_>> {
        let delay = self.delays.get(self.served.get()).copied().unwrap_or(0);
        self.served.set(self.served.get() + 1);
        Box::pin(async move {
            self.start();
            let answer = self.answer(frame, response_limit, delay).await;
            self.running.set(self.running.get() - 1);
            answer
        })
    }
}

impl TestDispatcher {
    async fn answer(&self, frame: Bytes, response_limit: usize, delay: usize) -> Result<Answer, DispatchError> {
        {
            let request = match route(frame)? {
                Routed::Answered(chunks) => return Ok(Some(chunks)),
                Routed::Request(request) => request,
            };
            let header = &request.header;
            if header.api_key == ApiKey::Fetch {
                // Records the limit and what the budget held meanwhile; answers with a bare header.
                let used = self.budget.as_ref().map_or(0, MemoryBudget::used);
                self.fetches.borrow_mut().push((response_limit, used));
                let mut out = BytesMut::new();
                out.extend_from_slice(&4i32.to_be_bytes());
                out.extend_from_slice(&header.correlation_id.to_be_bytes());
                return Ok(Some(vec![out.freeze()]));
            }
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
        }
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
    let dispatcher = TestDispatcher::new(delays);
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
    let dispatcher = TestDispatcher::new(Vec::new());
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

fn drive_dispatcher(budget: &MemoryBudget, input: Vec<u8>, dispatcher: &TestDispatcher) -> (ConnectionEnd, Vec<u8>) {
    let mut script = Script { input, chunk: 1000, output: Vec::new() };
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let end = futures_lite::future::block_on(serve(
        &mut script,
        peer,
        dispatcher,
        FrameDecoder::new(1024),
        budget,
        None,
        &LocalSignal::new(),
    ));
    (end, script.output)
}

#[test]
fn a_connection_at_its_share_of_the_budget_waits_for_its_own_answers() {
    // Eight slow Metadata requests (18 bytes each). Within a share of 100 bytes (budget 800), five run
    // at once; within one of 20 (budget 160), one at a time, and all are still answered in order.
    let input: Vec<u8> = (1..=8).flat_map(|id| numbered(&METADATA_V1_NONE, id)).collect();
    for (total, most) in [(800, MAX_IN_FLIGHT), (160, 1)] {
        let budget = MemoryBudget::new(total);
        let dispatcher = TestDispatcher::new(vec![5; 8]);
        let (end, output) = drive_dispatcher(&budget, input.clone(), &dispatcher);
        assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
        assert_eq!(correlation_ids(&output), (1..=8).collect::<Vec<_>>());
        assert_eq!(dispatcher.most_running.get(), most, "budget {total}");
        assert_eq!((budget.used(), budget.waiting()), (0, 0));
    }
}

#[test]
fn a_request_larger_than_the_share_is_served_alone() {
    // Share: 8 bytes (budget 64); each 18-byte frame fits the budget but not the share.
    let budget = MemoryBudget::new(64);
    let dispatcher = TestDispatcher::new(vec![3; 4]);
    let input: Vec<u8> = (1..=4).flat_map(|id| numbered(&METADATA_V1_NONE, id)).collect();
    let (end, output) = drive_dispatcher(&budget, input, &dispatcher);
    assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
    assert_eq!(correlation_ids(&output), vec![1, 2, 3, 4]);
    assert_eq!(dispatcher.most_running.get(), 1);
    assert_eq!(budget.used(), 0);
}

/// A Fetch request frame (size prefix included) asking for `max_bytes`, as kafka-protocol encodes it.
fn fetch_frame(version: i16, correlation_id: i32, client_id: &str, max_bytes: i32) -> Vec<u8> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, RequestHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let partition = FetchPartition::default().with_partition_max_bytes(1 << 20);
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![partition])]);
    let mut body = BytesMut::new();
    header.encode(&mut body, ApiKey::Fetch.request_header_version(version)).unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn fetch_max_bytes_is_read_from_every_version_up_to_the_cap() {
    for version in 4..=18 {
        let frame = fetch_frame(version, 7, "consumer-1", 12_345);
        let body = &frame[SIZE_PREFIX_BYTES..];
        assert_eq!(fetch_reservation(body, true, 1 << 20), Some(12_345), "v{version}");
        assert_eq!(fetch_reservation(body, true, 1_000), Some(1_000), "v{version}: capped");
        // Cut before max_bytes: more is needed (or, once the frame is whole, it is malformed: 0).
        let cut = &body[..body.len().min(20)];
        assert_eq!(fetch_reservation(cut, false, 1_000), None, "v{version}");
        assert_eq!(fetch_reservation(cut, true, 1_000), Some(0), "v{version}");
        let negative = fetch_frame(version, 7, "c", -1);
        assert_eq!(fetch_reservation(&negative[SIZE_PREFIX_BYTES..], true, 1_000), Some(0), "v{version}");
    }
    // Other requests reserve nothing; a header too long to peek at before its permit reserves the cap.
    assert_eq!(fetch_reservation(&METADATA_V1_NONE[SIZE_PREFIX_BYTES..], true, 1_000), Some(0));
    let long = fetch_frame(12, 7, &"c".repeat(READ_CHUNK_MIN_BYTES), 10);
    assert_eq!(fetch_reservation(&long[SIZE_PREFIX_BYTES..][..READ_CHUNK_MIN_BYTES - 1], false, 1_000), None);
    assert_eq!(fetch_reservation(&long[SIZE_PREFIX_BYTES..][..READ_CHUNK_MIN_BYTES], false, 1_000), Some(1_000));
}

#[test]
fn a_fetch_reserves_its_response_before_it_runs() {
    // Budget 64 KiB: a Fetch reserves at most 1 KiB (a 64th) for its response.
    let mut dispatcher = TestDispatcher::new(Vec::new());
    let budget = MemoryBudget::new(64 << 10);
    dispatcher.budget = Some(budget.clone());
    let small = fetch_frame(12, 1, "c", 300);
    let large = fetch_frame(4, 2, "c", 50 << 20);
    let mut input = small.clone();
    input.extend_from_slice(&large);
    // Two bytes at a time: the connection reads a Fetch's header before acquiring its permit.
    let mut script = Script { input, chunk: 2, output: Vec::new() };
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let end = futures_lite::future::block_on(serve(
        &mut script,
        peer,
        &dispatcher,
        FrameDecoder::new(1024),
        &budget,
        None,
        &LocalSignal::new(),
    ));
    assert!(matches!(end, ConnectionEnd::PeerClosed), "{end:?}");
    assert_eq!(correlation_ids(&script.output), vec![1, 2]);
    let fetches = dispatcher.fetches.take();
    assert_eq!(fetches[0], (300, small.len() + 300), "its frame and its response held while it runs");
    assert_eq!(fetches[1].0, 1 << 10, "capped");
    assert!(fetches[1].1 >= large.len() + (1 << 10), "{fetches:?}");
    assert_eq!(budget.used(), 0);
}
