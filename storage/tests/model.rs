//! Model-based test of the partition log on the fault-injecting memory disk.
//!
//! proptest generates a MemDisk seed, a batch-cache size and a sequence of operations (appends, reads, rolls,
//! retention, DeleteRecords, injected write and sync failures, crashes of every kind, clean closes). Each one runs
//! against the real `Log` and against a plain model: the list of batches in the log's segments (bytes as stored,
//! offsets assigned) with the log start and end offsets. After every operation the log must agree with the model;
//! after every crash the recovered log must keep what its durability promise covers, show no torn batch, and
//! continue offsets from its last good batch.
//!
//! A failure is shrunk and printed by proptest as `seed = .., cache_bytes = .., ops = [..]`; the seed drives every
//! random crash outcome, so the printed case replays exactly.

mod common;

use bytes::BytesMut;
use common::{open, small_config, BASE_TIME_MS};
use futures_lite::future::block_on;
use proptest::collection::vec;
use proptest::prelude::*;
use spate_core::batch::{build_batch, set_base_offset, BatchOptions};
use spate_core::record::RecordSpec;
use spate_core::{BatchHeader, BatchView, ErrorCode};
use storage::disk::mem::{CrashMode, MemDisk};
use storage::{Log, LogConfig};

#[derive(Clone, Debug)]
enum Op {
    /// One record set: a batch of records with these value sizes, optionally followed by a second batch.
    Append {
        first: Vec<usize>,
        second: Option<Vec<usize>>,
    },
    /// A read at an offset chosen by `at` (inside the log, or out of range), stopping at `limit` if given.
    Read {
        at: u64,
        place: Place,
        max_bytes: usize,
        limit: Option<u64>,
    },
    Roll,
    /// `retention.bytes` set to this, then retention enforced.
    Retention {
        bytes: i64,
    },
    /// DeleteRecords at an offset chosen by `at` in `[start, end]`, or at -1 (the high watermark).
    DeleteRecords {
        at: u64,
        to_high_watermark: bool,
    },
    /// The next segment write fails during an append; the failed log is then crashed and reopened.
    FailWrite {
        then: CrashMode,
    },
    /// The next fdatasync fails during an append; if that fails the log, it is crashed and reopened.
    FailSync {
        then: CrashMode,
    },
    Crash {
        mode: CrashMode,
    },
    /// Clean close, then a crash (which must find nothing unsynced), then reopen.
    Close {
        then: CrashMode,
    },
}

#[derive(Clone, Copy, Debug)]
enum Place {
    Inside,
    BelowStart,
    PastEnd,
}

/// One batch as the log must store it.
#[derive(Clone, Debug, PartialEq)]
struct Stored {
    base: i64,
    next: i64,
    bytes: Vec<u8>,
}

/// The log under test, its disk, and the model it must agree with.
struct Harness {
    disk: MemDisk,
    log: Option<Log<MemDisk>>,
    config: LogConfig,
    cache_bytes: usize,
    /// Whether every append is fdatasync'd before it is acknowledged.
    flushing: bool,
    /// Every batch in the log's segments, contiguous, oldest first (including any below the log start that
    /// share a segment with live data).
    batches: Vec<Stored>,
    start: i64,
    next: i64,
    tag: u64,
    /// What is running, for failure messages.
    step: String,
}

const NOW_MS: i64 = BASE_TIME_MS;

/// A producer record set: one batch per entry of `sizes`, each record's value `size` bytes naming `tag`.
fn producer_batches(tag: u64, sizes: &[&[usize]]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(b, records)| {
            let values: Vec<Vec<u8>> = records
                .iter()
                .enumerate()
                .map(|(r, &size)| {
                    let mut value: Vec<u8> = (0..size).map(|i| (tag as usize * 31 + b * 7 + r * 3 + i) as u8).collect();
                    value[..8].copy_from_slice(&tag.to_be_bytes());
                    value
                })
                .collect();
            let timestamp_ms = BASE_TIME_MS + tag as i64;
            let specs: Vec<RecordSpec<'_>> = values
                .iter()
                .map(|v| RecordSpec { key: Some(b"key"), value: Some(v), headers: &[], timestamp_ms })
                .collect();
            build_batch(&specs, BatchOptions::default())
        })
        .collect()
}

/// The batches as stored when the log assigns offsets from `base`.
fn assign_offsets(producer: &[Vec<u8>], mut base: i64) -> Vec<Stored> {
    producer
        .iter()
        .map(|batch| {
            let mut bytes = batch.clone();
            set_base_offset(&mut bytes, base);
            let next = BatchHeader::parse(&bytes).expect("built batch parses").next_offset();
            let stored = Stored { base, next, bytes };
            base = next;
            stored
        })
        .collect()
}

fn record_set(batches: &[Vec<u8>]) -> BytesMut {
    let mut set = BytesMut::new();
    for batch in batches {
        set.extend_from_slice(batch);
    }
    set
}

impl Harness {
    fn new(seed: u64, cache_bytes: usize, flushing: bool) -> Harness {
        let disk = MemDisk::new(seed);
        let base = LogConfig { retention_ms: -1, ..small_config() };
        let config = if flushing { base.flush_every_append() } else { base };
        let log = open(&disk, config.clone(), cache_bytes);
        let harness = Harness {
            disk,
            log: Some(log),
            config,
            cache_bytes,
            flushing,
            batches: Vec::new(),
            start: 0,
            next: 0,
            tag: 0,
            step: String::from("open"),
        };
        harness.check_bounds();
        harness
    }

    fn log(&self) -> &Log<MemDisk> {
        self.log.as_ref().expect("log is open")
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Append { first, second } => {
                let mut sizes: Vec<&[usize]> = vec![first];
                sizes.extend(second.as_deref());
                self.append(&sizes);
            }
            Op::Read { at, place, max_bytes, limit } => self.read(*at, *place, *max_bytes, *limit),
            Op::Roll => self.roll(),
            Op::Retention { bytes } => self.retention(*bytes),
            Op::DeleteRecords { at, to_high_watermark } => self.delete_records(*at, *to_high_watermark),
            Op::FailWrite { then } => self.fail_write(*then),
            Op::FailSync { then } => self.fail_sync(*then),
            Op::Crash { mode } => self.crash(*mode, Vec::new()),
            Op::Close { then } => self.close(*then),
        }
    }

    fn next_tag(&mut self) -> u64 {
        self.tag += 1;
        self.tag
    }

    fn append(&mut self, sizes: &[&[usize]]) {
        let step = self.step.clone();
        let producer = producer_batches(self.next_tag(), sizes);
        let total: usize = producer.iter().map(Vec::len).sum();
        let result = block_on(self.log().append(record_set(&producer), NOW_MS));
        if total as u64 > self.config.segment_bytes {
            assert_eq!(result, Err(ErrorCode::RecordListTooLarge), "{step}: a set larger than a segment");
            self.check_bounds();
            return;
        }
        let info = result.unwrap_or_else(|e| panic!("{step}: append failed: {e:?}"));
        assert_eq!(info.base_offset, self.next, "{step}: offsets continue from the last good batch");
        let stored = assign_offsets(&producer, self.next);
        let next = stored.last().expect("one batch at least").next;
        assert_eq!(info.last_offset, next - 1, "{step}");
        assert_eq!(info.record_count, next - self.next, "{step}");
        assert_eq!(info.log_start_offset, self.start, "{step}");
        self.batches.extend(stored);
        self.next = next;
        if self.flushing {
            assert_eq!(self.log().durable_offset(), next, "{step}: a flushing append returns once synced");
        }
        self.check_bounds();
    }

    /// Checks a read against the model: the batch holding the offset first, contiguous, whole, within the
    /// limits, identical to what was appended. It may stop early only at a segment boundary.
    fn read(&mut self, at: u64, place: Place, max_bytes: usize, limit: Option<u64>) {
        let step = self.step.clone();
        let (start, end) = (self.start, self.next);
        let offset = match place {
            Place::Inside => start + (at % (end - start + 1) as u64) as i64,
            Place::BelowStart => start - 1 - (at % 3) as i64,
            Place::PastEnd => end + 1 + (at % 3) as i64,
        };
        let max_offset = match limit {
            Some(l) if offset <= end => offset + (l % (end - offset + 1) as u64) as i64,
            _ => end,
        };
        let result = block_on(self.log().read(offset, max_bytes, max_offset));
        if offset < start || offset > end {
            assert_eq!(result.err(), Some(ErrorCode::OffsetOutOfRange), "{step}: read at {offset} in [{start}, {end}]");
            return;
        }
        let read = result.unwrap_or_else(|e| panic!("{step}: read at {offset} failed: {e:?}"));
        assert_eq!((read.log_start_offset, read.log_end_offset), (start, end), "{step}");

        let mut expected = Vec::new();
        let mut total = 0;
        if offset < max_offset {
            let first = self.batches.iter().position(|b| b.base <= offset && offset < b.next);
            let first = first.unwrap_or_else(|| panic!("{step}: model has no batch holding {offset}"));
            for batch in &self.batches[first..] {
                if batch.next > max_offset || (!expected.is_empty() && total + batch.bytes.len() > max_bytes) {
                    break;
                }
                total += batch.bytes.len();
                expected.push(batch);
            }
        }
        for (i, bytes) in read.batches.iter().enumerate() {
            BatchView::check_stored(bytes).unwrap_or_else(|e| panic!("{step}: torn or corrupt batch read: {e:?}"));
            let want = expected.get(i).unwrap_or_else(|| {
                panic!(
                    "{step}: read({offset}, {max_bytes}, {max_offset}) returned {} batches, expected at most {}",
                    read.batches.len(),
                    expected.len()
                )
            });
            assert!(bytes[..] == want.bytes[..], "{step}: batch {} differs from what was appended", want.base);
        }
        assert_eq!(read.batches.is_empty(), expected.is_empty(), "{step}: read({offset}, {max_bytes}, {max_offset})");
        if let Some(missing) = expected.get(read.batches.len()) {
            let bases = self.log().segment_base_offsets();
            assert!(
                bases.contains(&missing.base),
                "{step}: read({offset}, {max_bytes}, {max_offset}) stopped before {} inside a segment ({bases:?})",
                missing.base
            );
        }
    }

    fn roll(&mut self) {
        let step = self.step.clone();
        let mut bases = self.log().segment_base_offsets();
        block_on(self.log().roll(NOW_MS)).unwrap_or_else(|e| panic!("{step}: roll failed: {e:?}"));
        if bases.last() != Some(&self.next) {
            bases.push(self.next);
        }
        assert_eq!(self.log().segment_base_offsets(), bases, "{step}: a roll starts a segment at the log end");
        assert_eq!(self.log().durable_offset(), self.next, "{step}: a roll syncs the sealed segment");
        self.check_bounds();
    }

    /// Bytes of model batches in each segment.
    fn segment_sizes(&self, bases: &[i64]) -> Vec<i64> {
        let sizes = bases.iter().enumerate().map(|(i, &base)| {
            let end = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            self.batches.iter().filter(|b| b.base >= base && b.base < end).map(|b| b.bytes.len() as i64).sum()
        });
        sizes.collect()
    }

    fn retention(&mut self, bytes: i64) {
        let step = self.step.clone();
        let bases = self.log().segment_base_offsets();
        let sizes = self.segment_sizes(&bases);
        let mut remaining: i64 = sizes.iter().sum();
        let mut doomed = 0;
        // Oldest sealed segments go while the rest would still reach retention.bytes (Kafka's rule).
        for i in 0..bases.len() - 1 {
            let by_size = bytes >= 0 && remaining - sizes[i] >= bytes;
            if !(by_size || bases[i + 1] <= self.start) {
                break;
            }
            remaining -= sizes[i];
            doomed += 1;
        }
        self.config.retention_bytes = bytes;
        self.log().set_config(self.config.clone());
        let deleted = block_on(self.log().enforce_retention(NOW_MS)).unwrap_or_else(|e| panic!("{step}: {e:?}"));
        assert_eq!(deleted, doomed, "{step}: segments deleted (sizes {sizes:?}, bases {bases:?})");
        assert_eq!(self.log().segment_base_offsets(), bases[doomed..], "{step}");
        self.start = self.start.max(bases[doomed]);
        self.batches.retain(|b| b.base >= bases[doomed]);
        self.check_bounds();
        self.check_contents();
    }

    fn delete_records(&mut self, at: u64, to_high_watermark: bool) {
        let step = self.step.clone();
        let end = self.next;
        self.log().set_high_watermark(end);
        assert_eq!(self.log().high_watermark(), end, "{step}");
        let above = block_on(self.log().delete_records_before(end + 1));
        assert_eq!(above, Err(ErrorCode::OffsetOutOfRange), "{step}: DeleteRecords past the high watermark");
        let target = if to_high_watermark { end } else { self.start + (at % (end - self.start + 1) as u64) as i64 };
        let bases = self.log().segment_base_offsets();
        let new_start = block_on(self.log().delete_records_before(if to_high_watermark { -1 } else { target }))
            .unwrap_or_else(|e| panic!("{step}: DeleteRecords at {target} failed: {e:?}"));
        assert_eq!(new_start, self.start.max(target), "{step}: the log start never moves back");
        // A target at or below the start changes nothing; otherwise sealed segments wholly below it go.
        let doomed = if target <= self.start {
            0
        } else {
            (0..bases.len() - 1).take_while(|&i| bases[i + 1] <= new_start).count()
        };
        assert_eq!(self.log().segment_base_offsets(), bases[doomed..], "{step}: segments wholly below {new_start} go");
        self.start = new_start;
        self.batches.retain(|b| b.base >= bases[doomed]);
        self.check_bounds();
        self.check_contents();
    }

    fn fail_write(&mut self, then: CrashMode) {
        let step = self.step.clone();
        let producer = producer_batches(self.next_tag(), &[&[100]]);
        let maybe = assign_offsets(&producer, self.next);
        self.disk.fail_next_writes(1);
        let result = block_on(self.log().append(record_set(&producer), NOW_MS));
        self.disk.fail_next_writes(0);
        assert_eq!(result.err(), Some(ErrorCode::KafkaStorageError), "{step}: append with a failing write");
        self.expect_failed();
        self.crash(then, maybe);
    }

    fn fail_sync(&mut self, then: CrashMode) {
        let step = self.step.clone();
        let producer = producer_batches(self.next_tag(), &[&[100]]);
        let maybe = assign_offsets(&producer, self.next);
        self.disk.fail_next_syncs(1);
        let result = block_on(self.log().append(record_set(&producer), NOW_MS));
        self.disk.fail_next_syncs(0);
        match result {
            Ok(info) => {
                // Without flush-on-append only a roll syncs; this append did neither.
                assert!(!self.flushing, "{step}: a flushing append succeeded although its fdatasync failed");
                assert_eq!(info.base_offset, self.next, "{step}");
                self.batches.extend(maybe);
                self.next = info.last_offset + 1;
                self.check_bounds();
            }
            Err(error) => {
                assert_eq!(error, ErrorCode::KafkaStorageError, "{step}: append with a failing fdatasync");
                self.expect_failed();
                self.crash(then, maybe);
            }
        }
    }

    /// After an I/O error the log refuses every write, not only the one that failed.
    fn expect_failed(&self) {
        let step = &self.step;
        let log = self.log();
        assert!(log.failure().is_some(), "{step}: an I/O error must fail the log");
        let again = block_on(log.append(record_set(&producer_batches(0, &[&[60]])), NOW_MS));
        assert_eq!(again.err(), Some(ErrorCode::KafkaStorageError), "{step}: a failed log refuses appends");
        assert_eq!(block_on(log.roll(NOW_MS)).err(), Some(ErrorCode::KafkaStorageError), "{step}: and rolls");
    }

    fn close(&mut self, then: CrashMode) {
        let step = self.step.clone();
        let log = self.log.take().expect("log is open");
        block_on(log.close()).unwrap_or_else(|e| panic!("{step}: clean close failed: {e:?}"));
        // A clean close leaves nothing unsynced: every crash mode must find all of it.
        self.disk.crash(then);
        self.log = Some(open(&self.disk, self.config.clone(), self.cache_bytes));
        self.recover(Vec::new(), self.batches.len(), then);
    }

    /// Crashes the disk under the log and reopens it. `maybe` holds batches of an append that failed: they may
    /// or may not come back, after everything acknowledged.
    fn crash(&mut self, mode: CrashMode, maybe: Vec<Stored>) {
        let durable = self.log().durable_offset();
        let required = if self.flushing || mode == CrashMode::KeepUnsynced {
            // Flushed appends survive everything; written ones survive a kill.
            self.batches.len()
        } else {
            self.batches.iter().take_while(|b| b.next <= durable).count()
        };
        self.disk.crash(mode);
        drop(self.log.take());
        self.log = Some(open(&self.disk, self.config.clone(), self.cache_bytes));
        self.recover(maybe, required, mode);
    }

    /// Adopts what the reopened log recovered: it must be a prefix of the model (plus `maybe`) holding at least
    /// `required` batches, whole and identical, and the log end must be the end of its last batch.
    fn recover(&mut self, maybe: Vec<Stored>, required: usize, mode: CrashMode) {
        let step = self.step.clone();
        let mut combined = std::mem::take(&mut self.batches);
        combined.extend(maybe);
        let log = self.log();
        let end = log.log_end_offset();
        let boundary =
            |k: usize| if k == 0 { combined.first().map_or(self.next, |b| b.base) } else { combined[k - 1].next };
        // If the crash cut the log below its (durable) start, the log restarts empty at the start.
        let restarted = end == self.start && log.segment_base_offsets() == [end] && log.size_bytes() == 0;
        let kept = if restarted {
            let below_start = combined.iter().take_while(|b| b.next <= end).count();
            assert!(
                required <= below_start,
                "{step}: after a {mode:?} crash the log is empty at {end}: lost acknowledged batches up to {}",
                boundary(required)
            );
            0
        } else {
            let kept = (0..=combined.len()).find(|&k| boundary(k) == end).unwrap_or_else(|| {
                panic!("{step}: recovered log end {end} is not the end of a stored batch (model end {})", self.next)
            });
            assert!(
                kept >= required,
                "{step}: after a {mode:?} crash the log ends at {end}: lost acknowledged batches (kept {kept}, must \
                 keep {required}: up to offset {})",
                boundary(required)
            );
            kept
        };
        combined.truncate(kept);
        self.batches = combined;
        self.next = end;
        // The log start never moves back (check_bounds compares it with the model's).
        assert_eq!(self.log().high_watermark(), end, "{step}");
        self.check_bounds();
        self.check_contents();
    }

    /// The log's bounds and segments agree with the model.
    fn check_bounds(&self) {
        let step = &self.step;
        let log = self.log();
        assert_eq!(log.log_start_offset(), self.start, "{step}: log start offset");
        assert_eq!(log.log_end_offset(), self.next, "{step}: log end offset");
        assert!(log.failure().is_none(), "{step}: unexpected failure {:?}", log.failure());
        for pair in self.batches.windows(2) {
            assert_eq!(pair[0].next, pair[1].base, "{step}: model batches are contiguous");
        }
        assert_eq!(self.batches.last().map_or(self.next, |b| b.next), self.next, "{step}");
        let bases = log.segment_base_offsets();
        assert!(bases.windows(2).all(|w| w[0] < w[1]), "{step}: segment bases {bases:?}");
        assert!(bases[0] <= self.start, "{step}: first segment {} above the log start {}", bases[0], self.start);
        for &base in &bases {
            let at_boundary = base == self.next || self.batches.iter().any(|b| b.base == base);
            assert!(at_boundary, "{step}: segment {base} does not start at a batch ({bases:?})");
        }
        if let Some(first) = self.batches.first() {
            assert_eq!(first.base, bases[0], "{step}: the model holds exactly the segments' batches");
        }
        let size: u64 = self.batches.iter().map(|b| b.bytes.len() as u64).sum();
        assert_eq!(log.size_bytes(), size, "{step}: bytes in segments");
    }

    /// Every batch from the log start is readable, whole (CRC checked) and identical to the model's, read one
    /// batch at a time and in large reads.
    fn check_contents(&self) {
        let step = &self.step;
        let expected: Vec<(i64, &[u8])> =
            self.batches.iter().filter(|b| b.next > self.start).map(|b| (b.base, &b.bytes[..])).collect();
        for max_bytes in [1, 1 << 20] {
            let mut actual = Vec::new();
            let mut offset = self.start;
            while offset < self.next {
                let read = block_on(self.log().read(offset, max_bytes, self.next))
                    .unwrap_or_else(|e| panic!("{step}: read at {offset} failed: {e:?}"));
                assert!(!read.batches.is_empty(), "{step}: no batch at {offset} below the end {}", self.next);
                for bytes in read.batches {
                    let view = BatchView::check_stored(&bytes)
                        .unwrap_or_else(|e| panic!("{step}: torn or corrupt batch at {offset}: {e:?}"));
                    offset = view.header.next_offset();
                    actual.push((view.header.base_offset, bytes));
                }
            }
            let bases = actual.iter().map(|b| b.0).collect::<Vec<_>>();
            assert_eq!(bases, expected.iter().map(|b| b.0).collect::<Vec<_>>(), "{step}: batches from the log start");
            for ((base, got), (_, want)) in actual.iter().zip(&expected) {
                assert!(got[..] == want[..], "{step}: batch {base} differs from what was appended");
            }
        }
    }
}

fn run_case(seed: u64, cache_bytes: usize, flushing: bool, ops: &[Op]) {
    let mut harness = Harness::new(seed, cache_bytes, flushing);
    for (i, op) in ops.iter().enumerate() {
        harness.step = format!("seed {seed}, op {i} {op:?}");
        harness.run(op);
    }
    harness.step = String::from("final check");
    harness.check_contents();
}

fn crash_mode() -> impl Strategy<Value = CrashMode> {
    prop_oneof![Just(CrashMode::DropUnsynced), Just(CrashMode::KeepUnsynced), Just(CrashMode::Random)]
}

fn op() -> impl Strategy<Value = Op> {
    let sizes = |max| vec(50usize..3000, 1..=max);
    let place = prop_oneof![8 => Just(Place::Inside), 1 => Just(Place::BelowStart), 1 => Just(Place::PastEnd)];
    prop_oneof![
        12 => (sizes(5), proptest::option::weighted(0.25, sizes(3)))
            .prop_map(|(first, second)| Op::Append { first, second }),
        6 => (any::<u64>(), place, 1usize..40_000, proptest::option::weighted(0.3, any::<u64>()))
            .prop_map(|(at, place, max_bytes, limit)| Op::Read { at, place, max_bytes, limit }),
        1 => Just(Op::Roll),
        1 => prop_oneof![Just(-1i64), 0i64..60_000].prop_map(|bytes| Op::Retention { bytes }),
        1 => (any::<u64>(), proptest::bool::weighted(0.2))
            .prop_map(|(at, to_high_watermark)| Op::DeleteRecords { at, to_high_watermark }),
        1 => crash_mode().prop_map(|then| Op::FailWrite { then }),
        1 => crash_mode().prop_map(|then| Op::FailSync { then }),
        2 => crash_mode().prop_map(|mode| Op::Crash { mode }),
        1 => crash_mode().prop_map(|then| Op::Close { then }),
    ]
}

/// No cache (every read from disk), a small one (partly cached), a large one.
fn cache_bytes() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), Just(24 << 10), Just(4 << 20)]
}

/// 256 cases unless `PROPTEST_CASES` says otherwise (the whole file runs in a few seconds in debug).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// flush.messages=1: every acknowledged append survives every kind of crash, no torn batch is ever visible,
    /// and offsets continue from the last good batch.
    #[test]
    fn flushed_appends_survive_every_crash(seed in any::<u64>(), cache_bytes in cache_bytes(), ops in vec(op(), 1..80)) {
        run_case(seed, cache_bytes, true, &ops);
    }

    /// Kafka's default flush policy (never on append): a kill keeps every completed append; a power loss may
    /// lose only the unsynced suffix, so the recovered log is a prefix of the model covering the durable offset.
    #[test]
    fn unflushed_appends_survive_kill_and_lose_only_a_suffix(
        seed in any::<u64>(),
        cache_bytes in cache_bytes(),
        ops in vec(op(), 1..80),
    ) {
        run_case(seed, cache_bytes, false, &ops);
    }
}

// Regressions the model found, as plain scenarios.

#[test]
fn rolling_an_empty_active_segment_is_a_no_op() {
    let disk = MemDisk::new(1);
    let log = open(&disk, small_config(), 0);
    block_on(log.roll(NOW_MS)).expect("roll of an empty log");
    block_on(log.append(record_set(&producer_batches(1, &[&[100]])), NOW_MS)).expect("append");
    block_on(log.roll(NOW_MS)).expect("roll");
    block_on(log.roll(NOW_MS)).expect("roll again: the new active segment is empty");
    assert_eq!(log.segment_base_offsets(), vec![0, 1]);
    assert!(log.failure().is_none());
}

#[test]
fn a_power_loss_below_a_durable_log_start_restarts_the_log_at_the_start() {
    let disk = MemDisk::new(2);
    let log = open(&disk, small_config(), 0);
    block_on(log.append(record_set(&producer_batches(1, &[&[100, 100]])), NOW_MS)).expect("append");
    log.set_high_watermark(2);
    assert_eq!(block_on(log.delete_records_before(-1)), Ok(2));
    // The two records were never synced; the new log start was.
    disk.crash(CrashMode::DropUnsynced);
    let log = open(&disk, small_config(), 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2), "the start never moves back");
    let info = block_on(log.append(record_set(&producer_batches(2, &[&[100]])), NOW_MS)).expect("append");
    assert_eq!(info.base_offset, 2, "deleted offsets are not handed out again");
    disk.crash(CrashMode::KeepUnsynced);
    let log = open(&disk, small_config(), 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 3));
    assert_eq!(block_on(log.read(2, 1 << 20, 3)).expect("read").batches.len(), 1, "the new batch stays visible");
}
