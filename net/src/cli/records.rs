//! Records of a fetched record set, owned, with their offsets and timestamps: batches are walked as
//! the Java consumer does (CRC checked, decompressed, control batches skipped).

use spate_core::batch::{compute_crc, BatchHeader, TimestampType, BATCH_HEADER_LEN};
use spate_core::compression::batch_records;
use spate_core::record::RecordIter;

/// Largest batch inflated (far above Kafka's default `max.message.bytes`).
const INFLATED_BATCH_MAX_BYTES: usize = 256 << 20;

/// One consumed record.
#[derive(Clone, Debug)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The records at or after `fetch_offset` in `records`, and the offset to fetch next. A partial batch
/// at the end (the broker cut the response at its size limit) is left for the next fetch.
pub fn decode(records: &[u8], fetch_offset: i64) -> Result<(Vec<ConsumedRecord>, i64), String> {
    let (mut decoded, mut next_offset, mut position) = (Vec::new(), fetch_offset, 0usize);
    while records.len() - position >= BATCH_HEADER_LEN {
        let header = BatchHeader::parse(&records[position..])
            .map_err(|code| format!("batch at byte {position}: bad header ({code})"))?;
        let length = header.total_len();
        if records.len() - position < length {
            break;
        }
        let batch = &records[position..position + length];
        position += length;
        if header.next_offset() <= fetch_offset {
            continue; // brokers may start at the batch holding the fetch offset
        }
        if compute_crc(batch) != header.crc {
            return Err(format!("batch at offset {}: CRC mismatch", header.base_offset));
        }
        next_offset = next_offset.max(header.next_offset());
        if header.is_control() {
            continue;
        }
        let body = batch_records(&header, batch, INFLATED_BATCH_MAX_BYTES)
            .map_err(|code| format!("batch at offset {}: {code}", header.base_offset))?;
        for record in RecordIter::new(&body) {
            let record = record.map_err(|code| format!("batch at offset {}: record {code}", header.base_offset))?;
            let offset = header.base_offset + i64::from(record.offset_delta);
            if offset < fetch_offset {
                continue;
            }
            let timestamp_ms = match header.timestamp_type() {
                TimestampType::LogAppendTime => header.max_timestamp,
                TimestampType::CreateTime => header.base_timestamp + record.timestamp_delta,
            };
            decoded.push(ConsumedRecord {
                offset,
                timestamp_ms,
                key: record.key.map(<[u8]>::to_vec),
                value: record.value.map(<[u8]>::to_vec),
                headers: record
                    .headers
                    .iter()
                    .map(|(key, value)| (String::from_utf8_lossy(key).into_owned(), value.map(<[u8]>::to_vec)))
                    .collect(),
            });
        }
    }
    Ok((decoded, next_offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_core::batch::{set_base_offset, BatchBuilder, BatchOptions, Compression};
    use spate_core::record::RecordSpec;

    #[test]
    fn decodes_records_after_the_fetch_offset() {
        let mut builder = BatchBuilder::default();
        let mut set = Vec::new();
        for (base, codec) in [(0, Compression::None), (3, Compression::Lz4)] {
            for index in 0..3 {
                let value = format!("v{}", base + index);
                builder.push(&RecordSpec {
                    key: (index == 0).then_some(&b"k"[..]),
                    value: Some(value.as_bytes()),
                    headers: &[("h", Some(b"x"))],
                    timestamp_ms: 1000 + index,
                });
            }
            let mut batch = builder.finish(BatchOptions::default(), codec).unwrap();
            set_base_offset(&mut batch, base);
            set.extend_from_slice(&batch);
        }
        let (records, next) = decode(&set, 1).unwrap();
        assert_eq!(next, 6);
        let offsets: Vec<i64> = records.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, [1, 2, 3, 4, 5]);
        assert_eq!(records[2].value.as_deref(), Some(&b"v3"[..]));
        assert_eq!(records[2].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(records[2].timestamp_ms, 1000);
        assert_eq!(records[0].headers, [("h".to_owned(), Some(b"x".to_vec()))]);
        let (records, next) = decode(&set[..set.len() - 1], 0).unwrap();
        assert_eq!((records.len(), next), (3, 3), "a cut batch waits");
    }
}
