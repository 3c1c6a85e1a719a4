use super::*;
use crate::record::RecordSpec;

fn sample(n: usize) -> Vec<u8> {
    let headers: &[(&str, Option<&[u8]>)] = &[("h", Some(b"1")), ("h", Some(b"2")), ("null", None)];
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let specs: Vec<RecordSpec<'_>> = values
        .iter()
        .enumerate()
        .map(|(i, v)| RecordSpec {
            key: if i % 2 == 0 { Some(b"key".as_slice()) } else { None },
            value: Some(v),
            headers,
            timestamp_ms: 1_700_000_000_000 + i as i64,
        })
        .collect();
    build_batch(&specs, BatchOptions { producer_id: 7, producer_epoch: 1, base_sequence: 0, ..Default::default() })
}

#[test]
fn header_round_trips() {
    let batch = sample(3);
    let header = BatchHeader::parse(&batch).unwrap();
    assert_eq!(header.base_offset, 0);
    assert_eq!(header.total_len(), batch.len());
    assert_eq!(header.magic, 2);
    assert_eq!(header.record_count, 3);
    assert_eq!(header.last_offset_delta, 2);
    assert_eq!(header.base_timestamp, 1_700_000_000_000);
    assert_eq!(header.max_timestamp, 1_700_000_000_002);
    assert_eq!(header.producer_id, 7);
    assert_eq!(header.producer_epoch, 1);
    assert_eq!(header.base_sequence, 0);
    assert_eq!(header.partition_leader_epoch, -1);
    assert_eq!(header.compression(), Some(Compression::None));
    assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
    assert!(!header.is_transactional() && !header.is_control());
    assert_eq!(header.crc, compute_crc(&batch));
    BatchView::validate_produced(&batch, 1 << 20).unwrap();
}

#[test]
fn records_parse_with_duplicate_headers_in_order() {
    let batch = sample(2);
    let records: Vec<_> = RecordIter::new(&batch[BATCH_HEADER_LEN..]).collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].key, Some(b"key".as_slice()));
    assert_eq!(records[1].key, None);
    assert_eq!(records[1].value, Some(b"value-1".as_slice()));
    assert_eq!(records[1].offset_delta, 1);
    assert_eq!(records[1].timestamp_delta, 1);
    let header_keys: Vec<&[u8]> = records[0].headers.iter().map(|h| h.0).collect();
    assert_eq!(header_keys, vec![b"h".as_slice(), b"h", b"null"]);
    assert_eq!(records[0].headers[2].1, None);
}

#[test]
fn offset_assignment_keeps_crc_valid() {
    let mut batch = sample(5);
    set_base_offset(&mut batch, 1_000_000);
    set_partition_leader_epoch(&mut batch, 42);
    let view = BatchView::check_stored(&batch).unwrap();
    assert_eq!(view.header.base_offset, 1_000_000);
    assert_eq!(view.header.last_offset(), 1_000_004);
    assert_eq!(view.header.partition_leader_epoch, 42);
}

#[test]
fn log_append_time_rewrites_max_timestamp_and_crc() {
    let mut batch = sample(2);
    let before = BatchHeader::parse(&batch).unwrap();
    set_log_append_time(&mut batch, 1_800_000_000_000);
    let view = BatchView::check_stored(&batch).unwrap();
    assert_eq!(view.header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(view.header.max_timestamp, 1_800_000_000_000);
    assert_eq!(view.header.base_timestamp, before.base_timestamp);
    assert_ne!(view.header.crc, before.crc);
}

#[test]
fn flipped_crc_byte_is_corrupt_message() {
    let mut batch = sample(2);
    batch[CRC_AT] ^= 0x01;
    assert_eq!(BatchView::validate_produced(&batch, 1 << 20).unwrap_err(), ErrorCode::CorruptMessage);
    let mut batch = sample(2);
    let last = batch.len() - 1;
    batch[last] ^= 0x80; // payload byte: CRC no longer matches
    assert_eq!(BatchView::check_stored(&batch).unwrap_err(), ErrorCode::CorruptMessage);
}

#[test]
fn wrong_length_is_corrupt_message() {
    let batch = sample(2);
    assert_eq!(
        BatchView::validate_produced(&batch[..batch.len() - 1], 1 << 20).unwrap_err(),
        ErrorCode::CorruptMessage
    );
    let mut longer = batch.clone();
    longer.push(0);
    assert_eq!(BatchView::validate_produced(&longer, 1 << 20).unwrap_err(), ErrorCode::CorruptMessage);
    let mut short_len = batch.clone();
    short_len[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(BatchView::validate_produced(&short_len, 1 << 20).unwrap_err(), ErrorCode::CorruptMessage);
    assert_eq!(BatchHeader::parse(&batch[..20]).unwrap_err(), ErrorCode::CorruptMessage);
}

#[test]
fn old_magic_is_unsupported() {
    for magic in [0u8, 1u8] {
        let mut batch = sample(1);
        batch[MAGIC_AT] = magic;
        assert_eq!(BatchView::validate_produced(&batch, 1 << 20).unwrap_err(), ErrorCode::UnsupportedForMessageFormat);
    }
}

#[test]
fn lying_record_count_is_invalid_record() {
    // The count disagrees with last_offset_delta.
    let mut batch = sample(3);
    batch[57..61].copy_from_slice(&4i32.to_be_bytes());
    let crc = compute_crc(&batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(BatchView::validate_produced(&batch, 1 << 20).unwrap_err(), ErrorCode::InvalidRecord);
    // Count and delta agree with each other but not with the records in the body.
    let mut batch = sample(3);
    batch[57..61].copy_from_slice(&2i32.to_be_bytes());
    batch[23..27].copy_from_slice(&1i32.to_be_bytes());
    let crc = compute_crc(&batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(BatchView::validate_produced(&batch, 1 << 20).unwrap_err(), ErrorCode::InvalidRecord);
}

#[test]
fn oversized_batch_is_message_too_large() {
    let batch = sample(50);
    assert_eq!(BatchView::validate_produced(&batch, batch.len() - 1).unwrap_err(), ErrorCode::MessageTooLarge);
    BatchView::validate_produced(&batch, batch.len()).unwrap();
}

#[test]
fn record_set_splits_into_batches() {
    let mut set = sample(2);
    set.extend_from_slice(&sample(3));
    let batches: Vec<_> = split_record_set(&set).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(BatchHeader::parse(batches[1]).unwrap().record_count, 3);
    let truncated = &set[..set.len() - 5];
    let results: Vec<_> = split_record_set(truncated).collect();
    assert_eq!(results.last().unwrap().unwrap_err(), ErrorCode::CorruptMessage);
}

#[test]
fn builder_compresses_with_every_codec_and_is_reusable() {
    let mut builder = BatchBuilder::default();
    let plain_body = {
        let plain = sample(5);
        plain[BATCH_HEADER_LEN..].to_vec()
    };
    for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        let headers: &[(&str, Option<&[u8]>)] = &[("h", Some(b"1")), ("h", Some(b"2")), ("null", None)];
        for i in 0..5 {
            let value = format!("value-{i}").into_bytes();
            builder.push(&RecordSpec {
                key: if i % 2 == 0 { Some(b"key".as_slice()) } else { None },
                value: Some(&value),
                headers,
                timestamp_ms: 1_700_000_000_000 + i as i64,
            });
        }
        assert_eq!(builder.record_count(), 5);
        let options = BatchOptions { producer_id: 7, producer_epoch: 1, base_sequence: 0, ..Default::default() };
        let batch = builder.finish(options, codec).unwrap();
        assert_eq!(builder.record_count(), 0, "finish empties the builder");
        let view = BatchView::validate_produced(&batch, 1 << 20).unwrap();
        assert_eq!(view.header.compression(), Some(codec));
        assert_eq!((view.header.record_count, view.header.max_timestamp), (5, 1_700_000_000_004));
        let body = crate::compression::batch_records(&view.header, &batch, 1 << 20).unwrap();
        assert_eq!(&body[..], &plain_body[..], "{codec:?}: same records as build_batch");
    }
}
