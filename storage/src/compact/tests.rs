use super::*;
use crate::cache::BatchCache;
use crate::config::LogConfig;
use crate::disk::mem::MemDisk;
use bytes::BytesMut;
use futures_lite::future::block_on;
use spate_core::batch::{BatchBuilder, BatchOptions, Compression};
use spate_core::record::RecordSpec;
use std::path::PathBuf;

const T0: i64 = 1_700_000_000_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        preallocate_bytes: 4096,
        write_buffer_bytes: 4096,
        retention_ms: -1,
        compact: true,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

fn open(disk: &MemDisk, config: LogConfig) -> Log<MemDisk> {
    block_on(Log::open(disk.clone(), PathBuf::from("/d/t-0"), config, BatchCache::new(1 << 20), T0)).expect("open")
}

fn append(log: &Log<MemDisk>, records: &[(&str, Option<&str>)], now_ms: i64) {
    let mut builder = BatchBuilder::default();
    for (key, value) in records {
        builder.push(&RecordSpec {
            key: Some(key.as_bytes()),
            value: value.map(str::as_bytes),
            headers: &[],
            timestamp_ms: now_ms,
        });
    }
    let batch = builder.finish(BatchOptions::default(), Compression::None).expect("batch");
    block_on(log.append(BytesMut::from(&batch[..]), now_ms)).expect("append");
}

/// (offset, key, value) of every record, read from the log start.
fn records(log: &Log<MemDisk>) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = block_on(log.read(offset, 1 << 20, end)).expect("read");
        if read.batches.is_empty() {
            break;
        }
        for bytes in read.batches {
            let header = spate_core::BatchHeader::parse(&bytes).expect("header");
            for_each_record(&header, &bytes, 1 << 20, |at, record| {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                out.push((at, record.key.map(text).unwrap_or_default(), record.value.map(text)));
            })
            .expect("records");
            offset = header.next_offset();
        }
    }
    out
}

#[test]
fn a_round_keeps_the_latest_value_per_key_at_its_offset() {
    let disk = MemDisk::new(1);
    let log = open(&disk, config());
    append(&log, &[("a", Some("a0")), ("b", Some("b0")), ("a", Some("a1"))], T0);
    block_on(log.roll(T0)).unwrap();
    append(&log, &[("b", Some("b1")), ("c", Some("c0"))], T0);
    block_on(log.roll(T0)).unwrap();
    append(&log, &[("a", Some("a2"))], T0); // active: never cleaned, so a1 stays too
    assert!((log.cleanable_ratio(T0) - 1.0).abs() < f64::EPSILON, "nothing cleaned yet");
    assert!(log.needs_cleaning(T0));
    let stats = block_on(log.clean(T0)).expect("clean");
    assert_eq!((stats.records_removed, stats.first_dirty_offset), (2, 5));
    let kept: Vec<(i64, String, Option<String>)> = records(&log);
    let expected = [(2, "a", "a1"), (3, "b", "b1"), (4, "c", "c0"), (5, "a", "a2")];
    let expected: Vec<_> = expected.iter().map(|(o, k, v)| (*o, k.to_string(), Some(v.to_string()))).collect();
    assert_eq!(kept, expected);
    assert_eq!(log.segment_base_offsets(), vec![0, 5], "the two sealed segments were merged into one");
    assert_eq!(log.cleanable_ratio(T0), 0.0);
    assert!(!log.needs_cleaning(T0), "nothing dirty, no tombstone due");
    // The checkpoint and the cleaned segment survive a reopen.
    block_on(log.close()).unwrap();
    drop(log);
    let log = open(&disk, config());
    assert_eq!((log.first_dirty_offset(), records(&log)), (5, expected));
}

#[test]
fn tombstones_stay_for_delete_retention_then_go() {
    let disk = MemDisk::new(2);
    let log = open(&disk, config());
    append(&log, &[("a", Some("a0")), ("b", Some("b0"))], T0);
    append(&log, &[("a", None)], T0);
    block_on(log.roll(T0)).unwrap();
    append(&log, &[("z", Some("z0"))], T0);
    block_on(log.clean(T0 + 500)).expect("clean");
    let keys: Vec<(i64, Option<String>)> = records(&log).into_iter().map(|(o, _, v)| (o, v)).collect();
    assert_eq!(keys, vec![(1, Some("b0".into())), (2, None), (3, Some("z0".into()))], "the tombstone is kept");
    assert!(!log.needs_cleaning(T0 + 1_000), "not due yet");
    assert!(log.needs_cleaning(T0 + 1_001), "a kept tombstone makes the log cleanable once due");
    block_on(log.clean(T0 + 1_001)).expect("clean");
    let keys: Vec<i64> = records(&log).into_iter().map(|(o, _, _)| o).collect();
    assert_eq!(keys, vec![1, 3], "the tombstone is gone");
    assert!(!log.needs_cleaning(T0 + 5_000));
}

#[test]
fn ratio_and_compaction_lags_decide_when_to_clean() {
    let disk = MemDisk::new(3);
    let lagged = LogConfig { min_compaction_lag_ms: 10_000, min_cleanable_dirty_ratio: 0.5, ..config() };
    let log = open(&disk, lagged.clone());
    append(&log, &[("a", Some("a0")), ("a", Some("a1"))], T0);
    block_on(log.roll(T0)).unwrap();
    append(&log, &[("b", Some("b0"))], T0);
    assert!(!log.needs_cleaning(T0 + 5_000), "younger than min.compaction.lag.ms");
    block_on(log.clean(T0 + 5_000)).expect("clean");
    assert_eq!(records(&log).len(), 3, "nothing cleanable: nothing removed");
    assert!(log.needs_cleaning(T0 + 10_000));
    block_on(log.clean(T0 + 10_000)).expect("clean");
    assert_eq!(records(&log).len(), 2);

    // A little new dirty data under a high ratio: only max.compaction.lag.ms forces a round.
    log.set_config(LogConfig {
        min_compaction_lag_ms: 0,
        min_cleanable_dirty_ratio: 0.99,
        max_compaction_lag_ms: 60_000,
        ..lagged
    });
    block_on(log.roll(T0 + 20_000)).unwrap();
    append(&log, &[("c", Some("c0"))], T0 + 20_000);
    assert!(log.cleanable_ratio(T0 + 20_000) < 0.99);
    assert!(!log.needs_cleaning(T0 + 20_000));
    assert!(log.needs_cleaning(T0 + 80_001), "dirty data older than max.compaction.lag.ms");
}

#[test]
fn a_round_killed_at_every_step_leaves_old_or_new_segments() {
    for ops in 0..30 {
        let disk = MemDisk::new(ops);
        // Every append synced, so a crash can only undo the cleaner's work.
        let log = open(&disk, config().flush_every_append());
        append(&log, &[("a", Some("a0")), ("b", Some("b0"))], T0);
        block_on(log.roll(T0)).unwrap();
        append(&log, &[("a", Some("a1"))], T0);
        block_on(log.roll(T0)).unwrap();
        append(&log, &[("c", Some("c0"))], T0);
        disk.die_after(ops);
        let finished = block_on(log.clean(T0)).is_ok();
        drop(log);
        disk.crash(crate::disk::mem::CrashMode::Random);
        let log = open(&disk, config().flush_every_append());
        let offsets: Vec<i64> = records(&log).into_iter().map(|(o, _, _)| o).collect();
        assert!(offsets == [0, 1, 2, 3] || offsets == [1, 2, 3], "after {ops} operations: {offsets:?}");
        if finished {
            assert_eq!(offsets, [1, 2, 3], "a finished round is durable");
        }
    }
}
