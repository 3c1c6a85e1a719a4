//! One producer: a thread that generates messages on schedule, accumulates them into per-partition
//! batches (`batch.size`, `linger.ms`), and pipelines Produce requests (`max.in.flight`) to each leader.
//! A reader thread per leader connection collects the acknowledgements and records latencies.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use rand::{Rng, SeedableRng};
use spate_core::batch::{BatchBuilder, BatchOptions};
use spate_core::record::RecordSpec;

use crate::client::{decode_response, encode_request, read_frame, topic_name, Connection, Result};
use crate::stats::{now_ns, Phase, Stats};
use crate::workload::Workload;

/// Produce request timeout (Kafka's `request.timeout.ms`-bounded ack wait).
const PRODUCE_TIMEOUT_MS: i32 = 30_000;

/// What one producer thread is told.
pub struct ProducerPlan {
    pub index: usize,
    pub topic: String,
    /// Leader address of each partition.
    pub leaders: Vec<String>,
    /// This producer's share of the rate, messages per second; 0: as fast as possible.
    pub rate_msgs_per_s: f64,
    /// Stop generating once all producers together have generated this many value bytes (catch-up
    /// backlogs); `None`: run until the stop phase.
    pub generate_bytes_max: Option<(u64, Arc<AtomicU64>)>,
    pub cpu: Option<usize>,
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), for key partitioning as the Java
/// client does it.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut hash = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M);
        hash ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        hash ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        hash ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash as i32
}

/// The partition Kafka's default partitioner gives a key.
pub fn key_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Messages being accumulated for one partition.
struct Accumulator {
    builder: BatchBuilder,
    intended_ns: Vec<u64>,
    value_bytes: u64,
    opened_ns: u64,
    next_sequence: i32,
}

/// A finished batch waiting for an in-flight slot.
struct ReadyBatch {
    partition: i32,
    bytes: Bytes,
    intended_ns: Vec<u64>,
    value_bytes: u64,
}

/// A request on the wire, waiting for its response.
struct InFlight {
    correlation_id: i32,
    intended_ns: Vec<u64>,
    messages: u64,
    value_bytes: u64,
}

/// One connection to a partition leader: the write half here, the read half in its thread.
struct Link {
    address: String,
    writer: TcpStream,
    next_correlation_id: i32,
    version: i16,
    /// A slot per request in flight: sending takes one, the reader gives it back.
    slots: SyncSender<()>,
    pending: Option<mpsc::Sender<InFlight>>,
    reader: Option<JoinHandle<()>>,
    ready: VecDeque<ReadyBatch>,
    ready_bytes: usize,
}

pub fn run_producer(
    workload: &Workload,
    plan: ProducerPlan,
    stats: Arc<Stats>,
    failure: Arc<Mutex<Option<String>>>,
) -> Result<()> {
    if let Some(cpu) = plan.cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut producer = Producer::new(workload, &plan, stats, failure)?;
    let outcome = producer.generate(&plan);
    let finished = producer.finish();
    outcome.and(finished)
}

struct Producer<'w> {
    workload: &'w Workload,
    topic: String,
    stats: Arc<Stats>,
    failure: Arc<Mutex<Option<String>>>,
    links: Vec<Link>,
    /// Index into `links` for each partition.
    partition_link: Vec<usize>,
    accumulators: Vec<Option<Accumulator>>,
    producer_id: i64,
    producer_epoch: i16,
    linger_ns: u64,
    /// Earliest linger deadline among open accumulators.
    next_deadline_ns: u64,
    sticky_partition: i32,
    rng: rand::rngs::SmallRng,
    payload: Vec<u8>,
}

impl<'w> Producer<'w> {
    fn new(
        workload: &'w Workload,
        plan: &ProducerPlan,
        stats: Arc<Stats>,
        failure: Arc<Mutex<Option<String>>>,
    ) -> Result<Producer<'w>> {
        let mut addresses: Vec<String> = plan.leaders.clone();
        addresses.sort();
        addresses.dedup();
        let mut links = Vec::new();
        let (mut producer_id, mut producer_epoch) = (-1, -1);
        for address in &addresses {
            let mut connection = Connection::open(address)?;
            if workload.idempotence && producer_id < 0 {
                (producer_id, producer_epoch) = connection.init_producer_id()?;
            }
            links.push(open_link(connection, workload, stats.clone(), failure.clone())?);
        }
        let partition_link =
            plan.leaders.iter().map(|leader| addresses.iter().position(|a| a == leader).unwrap_or(0)).collect();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed_0000 + plan.index as u64);
        // Values drawn from 16 letters: compressible about as much as text, so codecs have work to do.
        let payload = (0..(1 << 20) + 65536).map(|_| b'a' + rng.gen_range(0..16u8)).collect();
        Ok(Producer {
            workload,
            topic: plan.topic.clone(),
            stats,
            failure,
            links,
            partition_link,
            accumulators: (0..workload.partitions).map(|_| None).collect(),
            producer_id,
            producer_epoch,
            linger_ns: (workload.linger_ms * 1e6) as u64,
            next_deadline_ns: u64::MAX,
            sticky_partition: (plan.index as i32) % workload.partitions,
            rng,
            payload,
        })
    }

    fn generate(&mut self, plan: &ProducerPlan) -> Result<()> {
        let interval_ns = if plan.rate_msgs_per_s > 0.0 { 1e9 / plan.rate_msgs_per_s } else { 0.0 };
        let start_ns = now_ns();
        let mut sequence: u64 = 0;
        let mut value = Vec::new();
        let mut key = Vec::new();
        loop {
            if self.stats.phase() == Phase::Stop {
                return Ok(());
            }
            if let Some(message) = self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return Err(message.into());
            }
            let now = now_ns();
            let intended = if interval_ns > 0.0 { start_ns + (sequence as f64 * interval_ns) as u64 } else { now };
            if intended > now {
                // Ahead of schedule: send what lingered long enough, then wait for the next slot.
                self.pump(now)?;
                let wake = intended.min(self.next_deadline_ns);
                let nap = wake.saturating_sub(now_ns());
                if nap > 50_000 {
                    std::thread::sleep(Duration::from_nanos(nap - 20_000));
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            let size = self.workload.draw_size(&mut self.rng);
            if let Some((limit, generated)) = &plan.generate_bytes_max {
                if generated.fetch_add(size as u64, Ordering::Relaxed) >= *limit {
                    return Ok(());
                }
            }
            let offset = self.rng.gen_range(0..65536);
            value.clear();
            value.extend_from_slice(&self.payload[offset..offset + size]);
            value[..8].copy_from_slice(&intended.to_be_bytes());
            let partition = if self.workload.keyed {
                key.clear();
                let id = self.rng.gen_range(0..self.workload.key_count);
                key.extend_from_slice(format!("key-{id}").as_bytes());
                key_partition(&key, self.workload.partitions)
            } else {
                self.sticky_partition
            };
            let timestamp_ms = wall_clock_ms();
            let record = RecordSpec {
                key: self.workload.keyed.then_some(&key[..]),
                value: Some(&value),
                headers: &[],
                timestamp_ms,
            };
            let slot = &mut self.accumulators[partition as usize];
            let accumulator = slot.get_or_insert_with(|| Accumulator {
                builder: BatchBuilder::with_capacity(0),
                intended_ns: Vec::new(),
                value_bytes: 0,
                opened_ns: now,
                next_sequence: 0,
            });
            if accumulator.intended_ns.is_empty() {
                accumulator.opened_ns = now;
                self.next_deadline_ns = self.next_deadline_ns.min(now + self.linger_ns);
            }
            accumulator.builder.push(&record);
            accumulator.intended_ns.push(intended);
            accumulator.value_bytes += (size + key.len() * usize::from(self.workload.keyed)) as u64;
            if accumulator.builder.encoded_len() >= self.workload.batch_size_bytes {
                self.seal(partition)?;
                if !self.workload.keyed {
                    self.sticky_partition = (self.sticky_partition + 1) % self.workload.partitions;
                }
            }
            sequence += 1;
            self.pump(now)?;
        }
    }

    /// Closes a partition's open batch and queues it on its leader's link.
    fn seal(&mut self, partition: i32) -> Result<()> {
        let Some(accumulator) = self.accumulators[partition as usize].as_mut() else {
            return Ok(());
        };
        if accumulator.intended_ns.is_empty() {
            return Ok(());
        }
        let count = accumulator.builder.record_count();
        let options = BatchOptions {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: if self.producer_id >= 0 { accumulator.next_sequence } else { -1 },
            ..BatchOptions::default()
        };
        let bytes = accumulator
            .builder
            .finish(options, self.workload.codec())
            .map_err(|code| format!("compression failed: {code:?}"))?;
        accumulator.next_sequence = accumulator.next_sequence.wrapping_add(count) & i32::MAX;
        let batch = ReadyBatch {
            partition,
            bytes: Bytes::from(bytes),
            intended_ns: std::mem::take(&mut accumulator.intended_ns),
            value_bytes: std::mem::take(&mut accumulator.value_bytes),
        };
        let link = &mut self.links[self.partition_link[partition as usize]];
        link.ready_bytes += batch.bytes.len();
        link.ready.push_back(batch);
        Ok(())
    }

    /// Seals batches whose linger ran out and sends what the in-flight limit allows; blocks only when
    /// more than `buffer.memory` waits, as the Java producer does.
    fn pump(&mut self, now: u64) -> Result<()> {
        if now >= self.next_deadline_ns {
            self.next_deadline_ns = u64::MAX;
            for partition in 0..self.workload.partitions {
                let due = match &self.accumulators[partition as usize] {
                    Some(accumulator) if !accumulator.intended_ns.is_empty() => {
                        let deadline = accumulator.opened_ns + self.linger_ns;
                        if deadline <= now {
                            true
                        } else {
                            self.next_deadline_ns = self.next_deadline_ns.min(deadline);
                            false
                        }
                    }
                    _ => false,
                };
                if due {
                    self.seal(partition)?;
                }
            }
        }
        for index in 0..self.links.len() {
            while !self.links[index].ready.is_empty() {
                let must_wait = self.links[index].ready_bytes > self.workload.buffer_memory_bytes;
                if !self.take_slot(index, must_wait)? {
                    break;
                }
                self.send_request(index)?;
            }
        }
        Ok(())
    }

    /// Takes an in-flight slot on a link; `false` if none is free and `wait` is not set.
    fn take_slot(&mut self, index: usize, wait: bool) -> Result<bool> {
        let link = &self.links[index];
        if self.workload.acks == 0 {
            return Ok(true);
        }
        match link.slots.try_send(()) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(())) if !wait => Ok(false),
            Err(TrySendError::Full(())) => {
                link.slots.send(()).map_err(|_| format!("{}: connection reader stopped", link.address))?;
                Ok(true)
            }
            Err(TrySendError::Disconnected(())) => Err(format!("{}: connection reader stopped", link.address).into()),
        }
    }

    /// Sends the ready batches of a link (one per partition, up to `max.request.size`) as one request.
    fn send_request(&mut self, index: usize) -> Result<()> {
        let max_request_bytes = self.workload.max_request_bytes;
        let link = &mut self.links[index];
        let mut partitions = Vec::new();
        let mut intended_ns = Vec::new();
        let (mut messages, mut value_bytes, mut request_bytes) = (0u64, 0u64, 0usize);
        while let Some(batch) = link.ready.front() {
            let repeated = partitions.iter().any(|p: &PartitionProduceData| p.index == batch.partition);
            if repeated || (!partitions.is_empty() && request_bytes + batch.bytes.len() > max_request_bytes) {
                break;
            }
            let batch = link.ready.pop_front().expect("front exists");
            link.ready_bytes -= batch.bytes.len();
            request_bytes += batch.bytes.len();
            messages += batch.intended_ns.len() as u64;
            value_bytes += batch.value_bytes;
            intended_ns.extend_from_slice(&batch.intended_ns);
            partitions
                .push(PartitionProduceData::default().with_index(batch.partition).with_records(Some(batch.bytes)));
        }
        let request = ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(self.workload.acks)
            .with_timeout_ms(PRODUCE_TIMEOUT_MS)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(&self.topic))
                .with_partition_data(partitions)]);
        let correlation_id = link.next_correlation_id;
        link.next_correlation_id = link.next_correlation_id.wrapping_add(1);
        let mut frame = BytesMut::with_capacity(request_bytes + 256);
        encode_request(&mut frame, ApiKey::Produce, link.version, correlation_id, &request)?;
        if self.workload.acks == 0 {
            link.writer.write_all(&frame).map_err(|error| format!("{}: {error}", link.address))?;
            self.stats.record_acked(messages, &[], value_bytes, now_ns());
            return Ok(());
        }
        // Registered before writing, so the reader always knows what a response answers.
        if let Some(pending) = &link.pending {
            pending
                .send(InFlight { correlation_id, intended_ns, messages, value_bytes })
                .map_err(|_| format!("{}: connection reader stopped", link.address))?;
        }
        link.writer.write_all(&frame).map_err(|error| format!("{}: {error}", link.address))?;
        Ok(())
    }

    /// Sends everything still open and waits for every acknowledgement.
    fn finish(&mut self) -> Result<()> {
        let result = (|| -> Result<()> {
            if self.failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                return Ok(());
            }
            for partition in 0..self.workload.partitions {
                self.seal(partition)?;
            }
            for index in 0..self.links.len() {
                while !self.links[index].ready.is_empty() {
                    self.take_slot(index, true)?;
                    self.send_request(index)?;
                }
            }
            Ok(())
        })();
        for link in &mut self.links {
            link.pending = None; // the reader drains what is in flight, then stops
            if let Some(reader) = link.reader.take() {
                let _ = reader.join();
            }
        }
        result
    }
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

fn open_link(
    connection: Connection,
    workload: &Workload,
    stats: Arc<Stats>,
    failure: Arc<Mutex<Option<String>>>,
) -> Result<Link> {
    let version = connection.version(ApiKey::Produce)?;
    let address = connection.address.clone();
    let (writer, reader, next_correlation_id) = connection.split();
    let (slots, slots_back) = mpsc::sync_channel(workload.max_in_flight);
    let (pending, pending_rx) = mpsc::channel();
    let reader = if workload.acks == 0 {
        drop(reader);
        None
    } else {
        let reader_address = address.clone();
        Some(std::thread::Builder::new().name("produce-acks".into()).spawn(move || {
            if let Err(error) = read_acks(reader, version, pending_rx, slots_back, &stats) {
                let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(format!("{reader_address}: {error}"));
            }
        })?)
    };
    Ok(Link {
        address,
        writer,
        next_correlation_id,
        version,
        slots,
        pending: Some(pending),
        reader,
        ready: VecDeque::new(),
        ready_bytes: 0,
    })
}

/// The reader thread: one response per request in flight, in order.
fn read_acks(
    mut reader: BufReader<TcpStream>,
    version: i16,
    pending: Receiver<InFlight>,
    slots: Receiver<()>,
    stats: &Stats,
) -> Result<()> {
    while let Ok(in_flight) = pending.recv() {
        let frame = read_frame(&mut reader)?;
        let acked_ns = now_ns();
        let (correlation_id, response): (i32, ProduceResponse) = decode_response(frame, ApiKey::Produce, version)?;
        if correlation_id != in_flight.correlation_id {
            return Err(format!("correlation id {correlation_id}, expected {}", in_flight.correlation_id).into());
        }
        let mut failed = None;
        for topic in &response.responses {
            for partition in &topic.partition_responses {
                if partition.error_code != 0 {
                    failed = Some((partition.index, partition.error_code));
                }
            }
        }
        match failed {
            None => stats.record_acked(in_flight.messages, &in_flight.intended_ns, in_flight.value_bytes, acked_ns),
            Some((partition, code)) => {
                stats.produce_errors.fetch_add(1, Ordering::Relaxed);
                return Err(format!("produce to partition {partition}: error code {code}").into());
            }
        }
        let _ = slots.recv();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // The cases of Kafka's UtilsTest.testMurmur2.
        for (input, expected) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(murmur2(input), expected, "{:?}", std::str::from_utf8(input));
        }
        assert!((0..3).contains(&key_partition(b"foobar", 3)));
    }
}
