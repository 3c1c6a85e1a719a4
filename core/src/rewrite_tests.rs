use super::*;
use crate::batch::{BatchBuilder, BatchOptions};
use crate::record::RecordSpec;

fn batch(keys: &[Option<&[u8]>], compression: Compression) -> Vec<u8> {
    let mut builder = BatchBuilder::default();
    for (index, key) in keys.iter().enumerate() {
        let value = format!("value-{index}");
        builder.push(&RecordSpec {
            key: *key,
            value: Some(value.as_bytes()),
            headers: &[],
            timestamp_ms: 1_000 + index as i64,
        });
    }
    let options = BatchOptions { producer_id: 7, producer_epoch: 2, base_sequence: 40, ..BatchOptions::default() };
    builder.finish(options, compression).unwrap()
}

/// (key, value, offset delta) of each record.
type Decoded = Vec<(Option<Vec<u8>>, Option<Vec<u8>>, i32)>;

fn records_of(bytes: &[u8]) -> Decoded {
    let view = BatchView::check_stored(bytes).unwrap();
    let raw = batch_records(&view.header, bytes, 1 << 20).unwrap();
    RecordIter::new(&raw)
        .map(|r| r.unwrap())
        .map(|r| (r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec), r.offset_delta))
        .collect()
}

const COMPACT: RewriteRules = RewriteRules { keys_required: true, target: None, level: None };

fn to(target: Compression) -> RewriteRules {
    RewriteRules { keys_required: false, target: Some(target), level: None }
}

#[test]
fn nothing_to_do_leaves_the_set_alone() {
    let set = batch(&[None], Compression::Gzip);
    let rules = RewriteRules { keys_required: false, target: None, level: None };
    assert!(rules.is_noop());
    assert_eq!(rewrite_record_set(&set, rules, 1 << 20), Ok(None));
    // Already in the topic's codec, keys present: unchanged.
    let keyed = batch(&[Some(b"k")], Compression::Zstd);
    let rules = RewriteRules { keys_required: true, target: Some(Compression::Zstd), level: None };
    assert_eq!(rewrite_record_set(&keyed, rules, 1 << 20), Ok(None));
}

#[test]
fn a_compacted_topic_refuses_a_record_without_a_key_in_any_codec() {
    for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let bad = batch(&[Some(b"a"), None], codec);
        assert_eq!(rewrite_record_set(&bad, COMPACT, 1 << 20), Err(ErrorCode::InvalidRecord), "{codec:?}");
        let good = batch(&[Some(b"a"), Some(b"b")], codec);
        assert_eq!(rewrite_record_set(&good, COMPACT, 1 << 20), Ok(None), "{codec:?}");
    }
    // One bad batch among good ones fails the set.
    let mut set = batch(&[Some(b"a")], Compression::None);
    set.extend_from_slice(&batch(&[None], Compression::None));
    assert_eq!(rewrite_record_set(&set, COMPACT, 1 << 20), Err(ErrorCode::InvalidRecord));
}

#[test]
fn recompression_keeps_records_producer_fields_and_a_valid_crc() {
    for (source, target) in [
        (Compression::Gzip, Compression::Zstd),
        (Compression::None, Compression::Lz4),
        (Compression::Snappy, Compression::Gzip),
        (Compression::Lz4, Compression::None),
        (Compression::Zstd, Compression::Snappy),
    ] {
        let original = batch(&[Some(b"a"), None, Some(b"c")], source);
        let rewritten = rewrite_record_set(&original, to(target), 1 << 20).unwrap().expect("rewritten");
        let header = BatchView::check_stored(&rewritten).expect("a whole batch with a good CRC").header;
        let before = BatchHeader::parse(&original).unwrap();
        assert_eq!(header.compression(), Some(target), "{source:?} -> {target:?}");
        assert_eq!(
            (header.producer_id, header.producer_epoch, header.base_sequence, header.record_count),
            (7, 2, 40, 3)
        );
        assert_eq!((header.base_timestamp, header.max_timestamp), (before.base_timestamp, before.max_timestamp));
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(records_of(&rewritten), records_of(&original));
    }
}

#[test]
fn only_batches_in_another_codec_are_rewritten() {
    let zstd = batch(&[Some(b"z")], Compression::Zstd);
    let gzip = batch(&[Some(b"g")], Compression::Gzip);
    let mut set = zstd.clone();
    set.extend_from_slice(&gzip);
    let rewritten = rewrite_record_set(&set, to(Compression::Zstd), 1 << 20).unwrap().expect("rewritten");
    assert_eq!(&rewritten[..zstd.len()], &zstd[..], "the zstd batch is kept byte for byte");
    let second = &rewritten[zstd.len()..];
    assert_eq!(BatchView::check_stored(second).unwrap().header.compression(), Some(Compression::Zstd));
    assert_eq!(records_of(second), records_of(&gzip));
}

#[test]
fn corrupt_batches_are_refused_not_repaired() {
    let mut bad = batch(&[Some(b"a")], Compression::Gzip);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(rewrite_record_set(&bad, to(Compression::Zstd), 1 << 20), Err(ErrorCode::CorruptMessage));
    assert_eq!(rewrite_record_set(&bad, COMPACT, 1 << 20), Err(ErrorCode::CorruptMessage));
    let big = batch(&[Some(b"a")], Compression::None);
    assert_eq!(rewrite_record_set(&big, COMPACT, 10), Err(ErrorCode::MessageTooLarge));
}

#[test]
fn codec_levels_change_the_output_but_not_the_records() {
    // Words picked by an LCG: repetitive enough to compress, irregular enough that levels differ.
    let words = ["spate", "kafka", "broker", "record", "batch", "offset", "shard", "log", "zstd", "lz4"];
    let mut state: u64 = 42;
    let value: String = (0..4000)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            words[(state >> 33) as usize % words.len()]
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut builder = BatchBuilder::default();
    builder.push(&RecordSpec { key: Some(b"k"), value: Some(value.as_bytes()), headers: &[], timestamp_ms: 1 });
    let original = builder.finish(BatchOptions::default(), Compression::None).unwrap();
    for (codec, low, high) in [(Compression::Gzip, 1, 9), (Compression::Lz4, 1, 12), (Compression::Zstd, 1, 19)] {
        let at = |level| {
            let rules = RewriteRules { keys_required: false, target: Some(codec), level: Some(level) };
            rewrite_record_set(&original, rules, 1 << 20).unwrap().unwrap()
        };
        let (fast, best) = (at(low), at(high));
        assert_ne!(fast, best, "{codec:?}: the level is used");
        assert_eq!(records_of(&fast), records_of(&best), "{codec:?}");
        assert_eq!(records_of(&fast), records_of(&original), "{codec:?}");
    }
}
