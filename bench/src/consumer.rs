//! One consumer: a thread that fetches its assigned partitions from their leaders, checks every batch's
//! CRC as the Java consumer does (`check.crcs`), decompresses, walks every record, and records the
//! end-to-end latency carried in each value.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use spate_core::batch::{compute_crc, BatchHeader, BATCH_HEADER_LEN};
use spate_core::compression::batch_records;
use spate_core::record::RecordIter;

use crate::client::{topic_name, Connection, Result};
use crate::stats::{now_ns, Phase, Stats};
use crate::workload::Workload;

/// Largest batch a consumer inflates (Kafka's default `max.message.bytes` is far below this).
const INFLATED_BATCH_MAX_BYTES: usize = 64 << 20;

/// What one consumer thread is told.
pub struct ConsumerPlan {
    pub topic: String,
    /// (partition, leader address, start offset, stop offset or `None` to run until the stop phase).
    pub partitions: Vec<(i32, String, i64, Option<i64>)>,
    pub cpu: Option<usize>,
}

/// Runs until the stop phase, or until every partition reached its stop offset.
pub fn run_consumer(
    workload: &Workload,
    plan: ConsumerPlan,
    stats: Arc<Stats>,
    failure: Arc<Mutex<Option<String>>>,
) -> Result<()> {
    if let Some(cpu) = plan.cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut by_leader: BTreeMap<String, Vec<Position>> = BTreeMap::new();
    for (partition, leader, start, stop) in plan.partitions {
        by_leader.entry(leader).or_default().push(Position { partition, offset: start, stop });
    }
    let mut links = Vec::new();
    for (leader, positions) in by_leader {
        let connection = Connection::open(&leader)?;
        let version = connection.version(ApiKey::Fetch)?;
        links.push((connection, version, positions));
    }
    let mut e2e_us = Vec::new();
    loop {
        if stats.phase() == Phase::Stop || failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        let mut all_done = true;
        for (connection, version, positions) in &mut links {
            if positions.iter().all(Position::done) {
                continue;
            }
            all_done = false;
            let request = fetch_request(workload, &plan.topic, positions);
            let response: FetchResponse = connection.call(ApiKey::Fetch, *version, &request)?;
            if response.error_code != 0 {
                return Err(format!("{}: Fetch error code {}", connection.address, response.error_code).into());
            }
            let received_ns = now_ns();
            for topic in &response.responses {
                for partition in &topic.partitions {
                    if partition.error_code != 0 {
                        return Err(format!(
                            "{}: fetch partition {}: error code {}",
                            connection.address, partition.partition_index, partition.error_code
                        )
                        .into());
                    }
                    let Some(position) = positions.iter_mut().find(|p| p.partition == partition.partition_index) else {
                        continue;
                    };
                    if let Some(records) = &partition.records {
                        e2e_us.clear();
                        let (messages, bytes, next) = walk_records(records, position.offset, received_ns, &mut e2e_us)?;
                        position.offset = next;
                        stats.record_consumed(messages, bytes, &e2e_us);
                    }
                }
            }
        }
        if all_done {
            return Ok(());
        }
    }
}

struct Position {
    partition: i32,
    offset: i64,
    stop: Option<i64>,
}

impl Position {
    fn done(&self) -> bool {
        self.stop.is_some_and(|stop| self.offset >= stop)
    }
}

fn fetch_request(workload: &Workload, topic: &str, positions: &[Position]) -> FetchRequest {
    let partitions = positions
        .iter()
        .filter(|position| !position.done())
        .map(|position| {
            FetchPartition::default()
                .with_partition(position.partition)
                .with_fetch_offset(position.offset)
                .with_partition_max_bytes(workload.partition_fetch_max_bytes)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(workload.fetch_max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(workload.fetch_max_bytes)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(partitions)])
}

/// Walks a fetched record set: (messages, key + value bytes, next fetch offset). A partial batch at
/// the end (the broker cut the response at the size limit) is left for the next fetch.
pub fn walk_records(
    records: &Bytes,
    mut next_offset: i64,
    received_ns: u64,
    e2e_us: &mut Vec<u64>,
) -> Result<(u64, u64, i64)> {
    let (mut messages, mut bytes, mut position) = (0u64, 0u64, 0usize);
    while records.len() - position >= BATCH_HEADER_LEN {
        let header = BatchHeader::parse(&records[position..]).map_err(|code| format!("bad batch header: {code:?}"))?;
        let length = header.total_len();
        if records.len() - position < length {
            break;
        }
        let batch = &records[position..position + length];
        position += length;
        if header.next_offset() <= next_offset {
            continue; // a batch before the fetch offset: brokers may start at the batch that holds it
        }
        if compute_crc(batch) != header.crc {
            return Err(format!("batch at offset {}: CRC mismatch", header.base_offset).into());
        }
        next_offset = header.next_offset();
        if header.is_control() {
            continue;
        }
        let body = batch_records(&header, batch, INFLATED_BATCH_MAX_BYTES)
            .map_err(|code| format!("batch at offset {}: {code:?}", header.base_offset))?;
        for record in RecordIter::new(&body) {
            let record = record.map_err(|code| format!("batch at offset {}: record {code:?}", header.base_offset))?;
            messages += 1;
            let value = record.value.unwrap_or_default();
            bytes += (value.len() + record.key.map_or(0, <[u8]>::len)) as u64;
            if let Some(stamp) = value.get(..8) {
                let sent_ns = u64::from_be_bytes(stamp.try_into().expect("8 bytes"));
                if sent_ns <= received_ns {
                    e2e_us.push((received_ns - sent_ns) / 1000);
                }
            }
        }
    }
    Ok((messages, bytes, next_offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spate_core::batch::{set_base_offset, BatchBuilder, BatchOptions, Compression};
    use spate_core::record::RecordSpec;

    #[test]
    fn walks_whole_batches_and_leaves_a_cut_one() {
        let mut builder = BatchBuilder::default();
        let mut set = Vec::new();
        for (base, codec) in [(0, Compression::None), (3, Compression::Zstd)] {
            for stamp in [1_000_000u64, 2_000_000, 3_000_000] {
                let value = [stamp.to_be_bytes().to_vec(), vec![b'x'; 92]].concat();
                builder.push(&RecordSpec { key: Some(b"k"), value: Some(&value), headers: &[], timestamp_ms: 0 });
            }
            let mut batch = builder.finish(BatchOptions::default(), codec).unwrap();
            set_base_offset(&mut batch, base);
            set.extend_from_slice(&batch);
        }
        let whole = Bytes::from(set.clone());
        let mut e2e = Vec::new();
        let (messages, bytes, next) = walk_records(&whole, 0, 5_000_000, &mut e2e).unwrap();
        assert_eq!((messages, bytes, next), (6, 6 * 101, 6));
        assert_eq!(e2e, [4000, 3000, 2000, 4000, 3000, 2000]);

        let cut = Bytes::from(set[..set.len() - 10].to_vec());
        let (messages, _, next) = walk_records(&cut, 0, 5_000_000, &mut e2e).unwrap();
        assert_eq!((messages, next), (3, 3), "the cut batch waits for the next fetch");
        let (messages, _, _) = walk_records(&whole, 3, 5_000_000, &mut e2e).unwrap();
        assert_eq!(messages, 3, "batches before the fetch offset are skipped");

        let mut corrupt = set.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(walk_records(&Bytes::from(corrupt), 0, 0, &mut e2e).is_err(), "CRC is checked");
    }
}
