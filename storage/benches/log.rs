//! CPU cost of the partition log's hot paths, on the in-memory disk (every I/O completes at once, so what is
//! measured is validation, offset assignment, the copy into the write buffer, cache inserts and lookups):
//! appends, reads served from the batch cache, and offset-index lookups.
//!
//! Disk throughput against raw O_DIRECT lives in `examples/append-bench.rs`.
use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_lite::future::block_on;
use spate_core::batch::{build_batch, BatchOptions};
use spate_core::record::RecordSpec;
use spate_core::BatchHeader;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use storage::disk::mem::MemDisk;
use storage::index::OffsetIndex;
use storage::{BatchCache, Log, LogConfig};

const MIB: usize = 1 << 20;
const TIME_MS: i64 = 1_700_000_000_000;

/// A batch of `records` records with `value_len`-byte values.
fn batch(records: usize, value_len: usize) -> Vec<u8> {
    let value = vec![0x5a; value_len];
    let specs: Vec<RecordSpec<'_>> = (0..records)
        .map(|i| RecordSpec { key: None, value: Some(&value), headers: &[], timestamp_ms: TIME_MS + i as i64 })
        .collect();
    build_batch(&specs, BatchOptions::default())
}

fn open_log(cache_bytes: usize) -> Log<MemDisk> {
    let config = LogConfig { segment_bytes: 1 << 30, ..LogConfig::default() };
    block_on(Log::open(MemDisk::new(1), PathBuf::from("/bench/topic-0"), config, BatchCache::new(cache_bytes), TIME_MS))
        .expect("open")
}

/// Appends of one record set per call, flush policy Never (Kafka's default). The memory disk keeps every byte,
/// so a fresh log is opened every `LOG_BYTES` (outside the timing) to bound memory; the request buffers are
/// also built outside the timing, as the network layer would hand them over.
fn append(c: &mut Criterion) {
    const LOG_BYTES: usize = 64 * MIB;
    let mut group = c.benchmark_group("log_append");
    for (name, records, value_len) in [("1x16KiB", 1, 16 * 1024 - 80), ("16x1KiB", 16, 1024), ("1x1MiB", 1, MIB - 80)] {
        let template = batch(records, value_len);
        group.throughput(Throughput::Bytes(template.len() as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let per_log = (LOG_BYTES / template.len()).max(1) as u64;
                let mut total = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(per_log);
                    left -= n;
                    let log = open_log(64 * MIB);
                    let inputs: Vec<BytesMut> = (0..n).map(|_| BytesMut::from(&template[..])).collect();
                    let start = Instant::now();
                    for records in inputs {
                        black_box(block_on(log.append(records, TIME_MS)).expect("append"));
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// Tail reads served by the batch cache: 1 MiB fetches over 64 MiB of 16 KiB batches.
fn read_cached(c: &mut Criterion) {
    let log = open_log(128 * MIB);
    let one = batch(1, 16 * 1024 - 80);
    let set: Vec<u8> = one.iter().copied().cycle().take(one.len() * 64).collect();
    for _ in 0..64 {
        block_on(log.append(BytesMut::from(&set[..]), TIME_MS)).expect("append");
    }
    let end = log.log_end_offset();
    let sample = block_on(log.read(0, MIB, end)).expect("read");
    let mut group = c.benchmark_group("log_read");
    group.throughput(Throughput::Bytes(sample.total_bytes() as u64));
    group.bench_function("cache_1MiB_of_16KiB_batches", |b| {
        let mut offset = 0i64;
        b.iter(|| {
            let read = block_on(log.read(offset, MIB, end)).expect("read");
            let last = read.batches.last().expect("a cached batch");
            offset = BatchHeader::parse(last).expect("batch").next_offset();
            if offset >= end {
                offset = 0;
            }
            read.total_bytes()
        })
    });
    group.finish();
}

/// Offset-index lookups on a segment index of 100k entries (a full 1 GiB segment at 10 KiB per entry).
fn index_lookup(c: &mut Criterion) {
    const ENTRIES: u32 = 100_000;
    let mut index = OffsetIndex::default();
    for i in 0..ENTRIES {
        index.push(i * 10 + 9, (i + 1) * 4096);
    }
    // A fixed pseudo-random walk over the offsets, so lookups do not all hit the same cache lines.
    let targets: Vec<u32> = (0..4096u64).map(|i| ((i * 2_654_435_761) % (u64::from(ENTRIES) * 10)) as u32).collect();
    let mut group = c.benchmark_group("offset_index");
    group.throughput(Throughput::Elements(1));
    group.bench_function("lookup_100k_entries", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % targets.len();
            index.lookup(black_box(targets[i]))
        })
    });
    group.finish();
}

criterion_group!(benches, append, read_cached, index_lookup);
criterion_main!(benches);
