//! Model-based test of log compaction on the fault-injecting memory disk.
//!
//! proptest generates keyed appends (values and tombstones, plain and compressed batches), rolls, clock
//! advances, crashes, and cleaning rounds that may be killed after any number of disk operations
//! (`MemDisk::die_after`), followed by a crash of every kind and a reopen. The model is every record ever
//! appended. After every step the log must satisfy, for every key: offsets strictly increase; every record
//! present is the one the model holds at that offset; the latest record of a key is present unless it is a
//! tombstone older than `delete.retention.ms`, and then no older record of that key is left (nothing comes
//! back to life); a record is absent only if a later record has its key or it is such a tombstone. After a
//! round that completed, no key appears twice below the cleaner's checkpoint.

mod common;

use bytes::BytesMut;
use common::{small_config, BASE_TIME_MS};
use futures_lite::future::block_on;
use proptest::collection::vec;
use proptest::prelude::*;
use spate_core::batch::{BatchBuilder, BatchOptions, Compression};
use spate_core::compression::batch_records;
use spate_core::record::{RecordIter, RecordSpec};
use spate_core::{BatchHeader, BatchView};
use std::collections::BTreeMap;
use storage::disk::mem::{CrashMode, MemDisk};
use storage::{BatchCache, Log, LogConfig};

const DELETE_RETENTION_MS: i64 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    /// One batch: (key, value tag or tombstone) per record.
    Append {
        records: Vec<(u8, Option<u8>)>,
        compressed: bool,
    },
    Roll,
    Advance {
        ms: i64,
    },
    /// A cleaning round; `die_after` kills the process after that many disk operations, then `mode` crashes.
    Clean {
        die_after: Option<u64>,
        mode: CrashMode,
    },
    Crash {
        mode: CrashMode,
    },
}

#[derive(Clone, Debug, PartialEq)]
struct ModelRecord {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    timestamp_ms: i64,
}

struct Harness {
    disk: MemDisk,
    log: Option<Log<MemDisk>>,
    config: LogConfig,
    now_ms: i64,
    /// Every record appended, by offset.
    model: BTreeMap<i64, ModelRecord>,
    tag: u64,
    step: String,
}

fn open_log(disk: &MemDisk, config: &LogConfig, now_ms: i64) -> Log<MemDisk> {
    block_on(Log::open(disk.clone(), common::dir(), config.clone(), BatchCache::new(64 << 10), now_ms)).expect("open")
}

/// Every record in the log from its start: (offset, key, value), checking each batch's CRC.
fn read_records(log: &Log<MemDisk>, step: &str) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
    let mut out: Vec<(i64, Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read =
            block_on(log.read(offset, 1 << 20, end)).unwrap_or_else(|e| panic!("{step}: read at {offset}: {e:?}"));
        if read.batches.is_empty() {
            break;
        }
        for bytes in read.batches {
            let view = BatchView::check_stored(&bytes).unwrap_or_else(|e| panic!("{step}: bad batch: {e:?}"));
            let header: BatchHeader = view.header;
            let records = batch_records(&header, &bytes, 1 << 24).expect("records");
            for record in RecordIter::new(&records) {
                let record = record.expect("record parses");
                let at = header.base_offset + i64::from(record.offset_delta);
                if let Some(&(last, _, _)) = out.last() {
                    assert!(at > last, "{step}: offsets must increase ({last} then {at})");
                }
                out.push((at, record.key.expect("keyed").to_vec(), record.value.map(<[u8]>::to_vec)));
            }
            assert!(header.next_offset() > offset, "{step}: reads must progress");
            offset = header.next_offset();
        }
    }
    out
}

impl Harness {
    fn new(seed: u64, map_entries: usize, dirty_ratio: f64) -> Harness {
        let config = LogConfig {
            retention_ms: -1,
            compact: true,
            delete_retention_ms: DELETE_RETENTION_MS,
            min_cleanable_dirty_ratio: dirty_ratio,
            cleaner_map_entries: map_entries,
            ..LogConfig { segment_bytes: 4096, ..small_config() }.flush_every_append()
        };
        let disk = MemDisk::new(seed);
        let log = open_log(&disk, &config, BASE_TIME_MS);
        Harness {
            disk,
            log: Some(log),
            config,
            now_ms: BASE_TIME_MS,
            model: BTreeMap::new(),
            tag: 0,
            step: String::new(),
        }
    }

    fn log(&self) -> &Log<MemDisk> {
        self.log.as_ref().expect("log is open")
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Append { records, compressed } => self.append(records, *compressed),
            Op::Roll => block_on(self.log().roll(self.now_ms)).expect("roll"),
            Op::Advance { ms } => self.now_ms += ms,
            Op::Clean { die_after, mode } => self.clean(*die_after, *mode),
            Op::Crash { mode } => self.crash(*mode),
        }
        self.check(false);
    }

    fn append(&mut self, records: &[(u8, Option<u8>)], compressed: bool) {
        self.tag += 1;
        let keys: Vec<Vec<u8>> = records.iter().map(|(key, _)| format!("key-{key}").into_bytes()).collect();
        let values: Vec<Option<Vec<u8>>> =
            records.iter().map(|(_, value)| value.map(|v| format!("value-{}-{v}", self.tag).into_bytes())).collect();
        let mut builder = BatchBuilder::default();
        for (key, value) in keys.iter().zip(&values) {
            builder.push(&RecordSpec {
                key: Some(key),
                value: value.as_deref(),
                headers: &[],
                timestamp_ms: self.now_ms,
            });
        }
        let codec = if compressed { Compression::Lz4 } else { Compression::None };
        let batch = builder.finish(BatchOptions::default(), codec).expect("batch");
        let info = block_on(self.log().append(BytesMut::from(&batch[..]), self.now_ms)).expect("append");
        for (i, (key, value)) in keys.into_iter().zip(values).enumerate() {
            self.model.insert(info.base_offset + i as i64, ModelRecord { key, value, timestamp_ms: self.now_ms });
        }
        self.log().set_high_watermark(self.log().written_offset());
    }

    fn clean(&mut self, die_after: Option<u64>, mode: CrashMode) {
        if let Some(ops) = die_after {
            self.disk.die_after(ops);
        }
        let result = block_on(self.log().clean(self.now_ms));
        match (result, die_after) {
            (Ok(_), None) => self.check(true),
            (Err(error), None) => panic!("{}: clean failed: {error:?}", self.step),
            (_, Some(_)) => self.crash(mode),
        }
    }

    fn crash(&mut self, mode: CrashMode) {
        drop(self.log.take());
        self.disk.crash(mode);
        self.log = Some(open_log(&self.disk, &self.config, self.now_ms));
        self.log().set_high_watermark(self.log().written_offset());
    }

    fn check(&self, completed_round: bool) {
        let step = &self.step;
        let log = self.log();
        let end = self.model.keys().next_back().map_or(0, |last| last + 1);
        assert_eq!(log.log_end_offset(), end, "{step}: every append was synced, so the end survives");
        let present = read_records(log, step);
        let present_at: BTreeMap<i64, (&[u8], Option<&[u8]>)> =
            present.iter().map(|(at, key, value)| (*at, (&key[..], value.as_deref()))).collect();
        for (at, key, value) in &present {
            let model = self.model.get(at).unwrap_or_else(|| panic!("{step}: offset {at} was never appended"));
            assert_eq!((&model.key, &model.value), (key, value), "{step}: record at {at} differs from the model");
        }
        let mut latest: BTreeMap<&[u8], i64> = BTreeMap::new();
        for (at, record) in &self.model {
            latest.insert(&record.key, *at);
        }
        let expired_tombstone =
            |record: &ModelRecord| record.value.is_none() && self.now_ms - record.timestamp_ms > DELETE_RETENTION_MS;
        for (at, record) in &self.model {
            let latest_at = latest[&record.key[..]];
            if present_at.contains_key(at) {
                continue;
            }
            assert!(
                latest_at > *at || expired_tombstone(record),
                "{step}: record {at} ({:?}) was lost: it is the latest for its key",
                String::from_utf8_lossy(&record.key)
            );
        }
        for (key, &latest_at) in &latest {
            if !present_at.contains_key(&latest_at) {
                let left: Vec<i64> = present.iter().filter(|(_, k, _)| &k[..] == *key).map(|(at, _, _)| *at).collect();
                assert!(
                    left.is_empty(),
                    "{step}: tombstone {latest_at} is gone but older records {left:?} of its key came back"
                );
            }
        }
        if completed_round {
            let checkpoint = log.first_dirty_offset();
            let mut seen: BTreeMap<&[u8], i64> = BTreeMap::new();
            for (at, key, _) in present.iter().filter(|(at, _, _)| *at < checkpoint) {
                if let Some(earlier) = seen.insert(key, *at) {
                    panic!(
                        "{step}: key {:?} at {earlier} and {at}, both below the checkpoint {checkpoint}",
                        String::from_utf8_lossy(key)
                    );
                }
            }
        }
    }
}

fn run_case(seed: u64, map_entries: usize, dirty_ratio: f64, ops: &[Op]) {
    let mut harness = Harness::new(seed, map_entries, dirty_ratio);
    for (i, op) in ops.iter().enumerate() {
        harness.step = format!("op {i} {op:?}");
        harness.run(op);
    }
    // A final round with nothing injected must leave every sealed key unique below its checkpoint.
    harness.step = "final clean".into();
    harness.run(&Op::Roll);
    harness.run(&Op::Clean { die_after: None, mode: CrashMode::KeepUnsynced });
}

fn crash_mode() -> impl Strategy<Value = CrashMode> {
    prop_oneof![Just(CrashMode::DropUnsynced), Just(CrashMode::KeepUnsynced), Just(CrashMode::Random)]
}

fn op() -> impl Strategy<Value = Op> {
    let record = (0u8..6, proptest::option::weighted(0.8, any::<u8>()));
    prop_oneof![
        12 => (vec(record, 1..12), proptest::bool::weighted(0.3))
            .prop_map(|(records, compressed)| Op::Append { records, compressed }),
        3 => Just(Op::Roll),
        2 => prop_oneof![Just(10i64), Just(600), Just(2_000)].prop_map(|ms| Op::Advance { ms }),
        4 => (proptest::option::weighted(0.6, 0u64..40), crash_mode())
            .prop_map(|(die_after, mode)| Op::Clean { die_after, mode }),
        1 => crash_mode().prop_map(|mode| Op::Crash { mode }),
    ]
}

/// 256 cases unless `PROPTEST_CASES` says otherwise.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Cleaning killed at any disk operation, then any crash: nothing the model needs is lost, nothing
    /// superseded comes back, and a completed round leaves one record per key below its checkpoint.
    #[test]
    fn compaction_survives_a_kill_at_any_point(
        seed in any::<u64>(),
        map_entries in prop_oneof![Just(2usize), Just(1 << 20)],
        dirty_ratio in prop_oneof![Just(0.0f64), Just(0.5)],
        ops in vec(op(), 1..60),
    ) {
        run_case(seed, map_entries, dirty_ratio, &ops);
    }
}
