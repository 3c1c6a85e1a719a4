//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use bytes::BytesMut;
use spate_core::batch::{build_batch, compute_crc, BatchOptions, Compression, BATCH_HEADER_LEN};
use spate_core::compression::compress_records;
use spate_core::record::RecordSpec;
use std::path::PathBuf;
use std::rc::Rc;
use storage::disk::mem::MemDisk;
use storage::{BatchCache, Log, LogConfig};

pub const BASE_TIME_MS: i64 = 1_700_000_000_000;

/// A producer batch of `records` records whose values name `tag` and the record index.
pub fn batch(tag: u64, records: usize, timestamp_ms: i64) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..records).map(|i| format!("{tag}-{i}").into_bytes()).collect();
    let specs: Vec<RecordSpec<'_>> =
        values.iter().map(|v| RecordSpec { key: Some(b"k"), value: Some(v), headers: &[], timestamp_ms }).collect();
    BytesMut::from(&build_batch(&specs, BatchOptions::default())[..])
}

/// A batch padded to roughly `bytes` bytes with one record.
pub fn sized_batch(tag: u64, bytes: usize, timestamp_ms: i64) -> BytesMut {
    let value = vec![(tag % 251) as u8; bytes.saturating_sub(80)];
    let specs = [RecordSpec { key: None, value: Some(&value), headers: &[], timestamp_ms }];
    BytesMut::from(&build_batch(&specs, BatchOptions::default())[..])
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024,
        index_interval_bytes: 512,
        preallocate_bytes: 8 * 1024,
        write_buffer_bytes: 4 * 1024,
        ..LogConfig::default()
    }
}

pub fn dir() -> PathBuf {
    PathBuf::from("/data/topic-0")
}

pub fn open(disk: &MemDisk, config: LogConfig, cache_bytes: usize) -> Log<MemDisk> {
    futures_lite::future::block_on(Log::open(disk.clone(), dir(), config, BatchCache::new(cache_bytes), BASE_TIME_MS))
        .expect("open")
}

pub fn cache(bytes: usize) -> Rc<BatchCache> {
    BatchCache::new(bytes)
}

/// Every batch in the log from the start, read in small steps; returns (base offset, bytes) pairs.
pub async fn read_all(log: &Log<MemDisk>) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 1, end).await.expect("read");
        assert!(!read.batches.is_empty(), "no batch at {offset} below end {end}");
        for bytes in read.batches {
            let header = spate_core::BatchHeader::parse(&bytes).expect("stored batch parses");
            spate_core::BatchView::check_stored(&bytes).expect("stored batch CRC");
            offset = header.next_offset();
            out.push((header.base_offset, bytes.to_vec()));
        }
    }
    out
}

/// A producer batch compressed with `codec`, one record per timestamp (values name `tag` and the index): an
/// uncompressed batch's records section is compressed, then the header gets the codec bits, its length and CRC.
pub fn compressed_batch(tag: u64, timestamps: &[i64], codec: Compression) -> BytesMut {
    let values: Vec<Vec<u8>> = (0..timestamps.len()).map(|i| format!("{tag}-{i}").into_bytes()).collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .zip(timestamps)
        .map(|(v, &timestamp_ms)| RecordSpec { key: Some(b"k"), value: Some(v), headers: &[], timestamp_ms })
        .collect();
    let plain = build_batch(&specs, BatchOptions::default());
    let mut out = plain[..BATCH_HEADER_LEN].to_vec();
    out.extend_from_slice(&compress_records(codec, &plain[BATCH_HEADER_LEN..]).expect("compress"));
    let attributes = i16::from_be_bytes([out[21], out[22]]) | codec as i16;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    BytesMut::from(&out[..])
}
