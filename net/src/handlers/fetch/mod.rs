//! Fetch (key 1), versions 4–16 (topics by name up to v12, by id from v13).
//!
//! On the shard that read the request:
//! 1. the body is checked ([`crate::guard`]) and decoded; each partition is resolved in this shard's
//!    topic table copy (`UNKNOWN_TOPIC_OR_PARTITION`, or `UNKNOWN_TOPIC_ID` for v13+ ids);
//! 2. **read**: the partitions are grouped by owner shard and read there, all owners at once
//!    ([`owner::read`]), never waiting for data;
//! 3. the reads are trimmed in request order to the request's `max_bytes`, or to the smaller response
//!    size the connection reserved for it in the memory budget (`crate::budget`) (KIP-74: the first batch of
//!    the first partition with data is always sent whole, even if larger; after it, a partition's
//!    batches are sent only while they fit, and a partition whose first batch exceeds its
//!    `partition_max_bytes` sends nothing). Owners read up to `partition_max_bytes` each without
//!    knowing the others, so a shard may read some batches that are then dropped — shared `Bytes`
//!    from the cache, or one bounded direct read;
//! 4. **long poll**: if fewer than `min_bytes` came back, no partition had an error, and `max_wait_ms`
//!    (capped at [`MAX_WAIT`]) has time left, the fetch registers a waiter, sends each owner a `Watch`
//!    with the high watermarks it saw ([`owner::watch`]: answers at once, arms a bounded watch task),
//!    and waits until an owner sends `Wake` (an append moved a high watermark), the time runs out, or
//!    the shard shuts down; then it reads again (step 2). No shard's call slots are held while
//!    waiting;
//! 5. the response is encoded by [`encode`] with the stored batches as shared chunks: no record is
//!    decoded or copied.
//!
//! **Sessions.** Spate keeps no fetch sessions (KIP-227): every answer is a full, sessionless one with
//! `session_id` 0, which clients accept by sending full requests again. An incremental request
//! (`session_id` ≠ 0 or `session_epoch` > 0) is answered with the top-level error
//! `FETCH_SESSION_ID_NOT_FOUND`, after which clients start over with a full request.
//! `forgotten_topics_data` therefore has nothing to forget. `last_stable_offset` is the high
//! watermark (no transactions); read_committed requests get an empty aborted-transactions list.
//! Follower fetches (`replica_id` ≥ 0) are answered like consumer fetches.

pub mod encode;
pub mod owner;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchRequest};
use spate_core::runtime::{timeout, ShardId};
use spate_core::ErrorCode;
use uuid::Uuid;

use super::HandlerError;
use crate::dispatch::Answer;
use crate::guard::schemas::FETCH;
use crate::header::RequestHeader;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::scatter::Scatter;
use crate::shard::{join_all, ShardContext};
use encode::{FetchAnswer, PartitionAnswer, TopicAnswer};
use owner::{PartitionRead, ReadCall, ReadPart, WatchCall};

/// Longest a fetch waits for data, whatever `max_wait_ms` asks.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// First version that names topics by id.
const FIRST_TOPIC_ID_VERSION: i16 = 13;

/// One partition of the request, resolved.
struct Target {
    /// Where it is in the response: (topic, partition) positions.
    position: (usize, usize),
    owner: ShardId,
    part: ReadPart,
}

/// Answers one Fetch request, its records limited to `max_bytes` and to `response_limit`, what the
/// connection reserved for the response in the shard's memory budget (`crate::budget`; Kafka allows
/// fewer bytes than `max_bytes`, and the first batch still goes whole).
///
/// # Panics
/// If `header` is not a Fetch header: dispatch sent the wrong request here.
pub async fn handle(
    context: &ShardContext,
    header: &RequestHeader,
    body: Bytes,
    response_limit: usize,
) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::Fetch, "misrouted request");
    let version = header.api_version;
    let request: FetchRequest = super::decode_checked(header, &FETCH, body)?;
    if request.session_id != 0 || request.session_epoch > 0 {
        let answer = FetchAnswer { error_code: ErrorCode::FetchSessionIdNotFound.code(), ..FetchAnswer::default() };
        return Ok(Some(encode::encode(version, header.correlation_id, &answer)?));
    }
    let (mut answer, targets) = resolve(context, version, &request);
    let deadline =
        Instant::now() + Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0)).min(MAX_WAIT);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let max_bytes = usize::try_from(request.max_bytes).unwrap_or(0).min(response_limit);
    let resolution_failed =
        answer.topics.iter().flat_map(|topic| &topic.partitions).any(|partition| partition.error_code != 0);
    let reads = loop {
        let mut reads = read_all(context, &targets, max_bytes).await;
        trim(&mut reads, &targets, max_bytes);
        let bytes: usize = reads.iter().map(PartitionRead::bytes).sum();
        let failed = resolution_failed || reads.iter().any(|read| read.error != ErrorCode::None);
        let now = Instant::now();
        if bytes >= min_bytes || failed || now >= deadline || targets.is_empty() || context.shutdown.is_triggered() {
            break reads;
        }
        wait_for_data(context, &targets, &reads, deadline - now).await;
    };
    let read_committed = request.isolation_level == 1;
    for (target, read) in targets.iter().zip(reads) {
        let (topic, partition) = target.position;
        count_fetched(context, &answer.topics[topic], &read.batches);
        let slot = &mut answer.topics[topic].partitions[partition];
        slot.error_code = read.error.code();
        slot.high_watermark = read.high_watermark;
        slot.last_stable_offset = read.high_watermark;
        slot.log_start_offset = read.log_start_offset;
        slot.records = read.batches;
    }
    for partition in answer.topics.iter_mut().flat_map(|topic| topic.partitions.iter_mut()) {
        partition.aborted_transactions = read_committed.then_some(());
    }
    Ok(Some(encode::encode(version, header.correlation_id, &answer)?))
}

/// Adds what goes out for one partition to its topic's metrics.
fn count_fetched(context: &ShardContext, topic: &encode::TopicAnswer, batches: &[Bytes]) {
    if batches.is_empty() {
        return;
    }
    let bytes: usize = batches.iter().map(Bytes::len).sum();
    let records: i64 = batches
        .iter()
        .filter_map(|batch| spate_core::BatchHeader::parse(batch).ok())
        .map(|header| i64::from(header.record_count.max(0)))
        .sum();
    // v13+ answers carry the topic id only; the name comes from the table, borrowed (no copy per fetch).
    let table = context.topics();
    let name = if topic.name.is_empty() {
        table.by_id(&topic.topic_id).map_or("", |entry| entry.name.as_str())
    } else {
        topic.name.as_str()
    };
    context.metrics.fetched(name, bytes as u64, records as u64);
}

/// The response skeleton (errors for what does not resolve) and the partitions to read.
fn resolve(context: &ShardContext, version: i16, request: &FetchRequest) -> (FetchAnswer, Vec<Target>) {
    let table = context.topics();
    let mut answer = FetchAnswer::default();
    let mut targets = Vec::new();
    for (topic_index, topic) in request.topics.iter().enumerate() {
        let entry =
            if version >= FIRST_TOPIC_ID_VERSION { table.by_id(&topic.topic_id) } else { table.get(&topic.topic) };
        let unknown = if version >= FIRST_TOPIC_ID_VERSION {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for (partition_index, partition) in topic.partitions.iter().enumerate() {
            let error = match entry {
                None => unknown,
                Some(entry) if !(0..entry.partitions).contains(&partition.partition) => {
                    ErrorCode::UnknownTopicOrPartition
                }
                Some(entry) => {
                    targets.push(Target {
                        position: (topic_index, partition_index),
                        owner: context.owner(&entry.id, partition.partition),
                        part: ReadPart {
                            topic_id: entry.id,
                            partition: partition.partition,
                            fetch_offset: partition.fetch_offset,
                            max_bytes: usize::try_from(partition.partition_max_bytes).unwrap_or(0),
                            current_leader_epoch: partition.current_leader_epoch,
                        },
                    });
                    ErrorCode::None
                }
            };
            partitions.push(PartitionAnswer {
                index: partition.partition,
                error_code: error.code(),
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                aborted_transactions: None,
                records: Vec::new(),
            });
        }
        answer.topics.push(TopicAnswer {
            name: topic.topic.to_string(),
            topic_id: entry.map_or(topic.topic_id, |entry| entry.id),
            partitions,
        });
    }
    (answer, targets)
}

/// Reads every target on its owner, all owners at once; results in target order.
async fn read_all(context: &ShardContext, targets: &[Target], max_total_bytes: usize) -> Vec<PartitionRead> {
    let mut scatter: Scatter<usize, ReadPart> = Scatter::new();
    for (index, target) in targets.iter().enumerate() {
        scatter.add(target.owner, index, target.part);
    }
    let mut reads = vec![PartitionRead::failed(ErrorCode::UnknownServerError); targets.len()];
    scatter
        .gather(
            context,
            &mut reads[..],
            |parts| ShardRequest::Fetch(ReadCall { parts, max_total_bytes }),
            |reply| match reply {
                ShardReply::Fetch(reads) => Some(reads),
                _ => None,
            },
            PartitionRead::failed(ErrorCode::NotLeaderOrFollower),
        )
        .await;
    reads
}

/// Applies the response's `max_bytes` and the KIP-74 rules (see the module docs), in request order.
fn trim(reads: &mut [PartitionRead], targets: &[Target], max_bytes: usize) {
    let mut remaining = max_bytes;
    let mut sent_any = false;
    for (read, target) in reads.iter_mut().zip(targets) {
        let mut kept = 0;
        let mut partition_bytes = 0;
        for batch in &read.batches {
            let len = batch.len();
            let fits = len <= remaining && partition_bytes + len <= target.part.max_bytes.max(1);
            if !sent_any || fits {
                sent_any = true;
                remaining = remaining.saturating_sub(len);
                partition_bytes += len;
                kept += 1;
            } else {
                break;
            }
        }
        read.batches.truncate(kept);
    }
}

/// Arms watches on every owner and waits until one reports new data, `wait` passes, or shutdown.
async fn wait_for_data(context: &ShardContext, targets: &[Target], reads: &[PartitionRead], wait: Duration) {
    let guard = context.waiters.register();
    let mut groups: BTreeMap<ShardId, Vec<(Uuid, i32, i64)>> = BTreeMap::new();
    for (target, read) in targets.iter().zip(reads) {
        let seen = read.high_watermark.max(target.part.fetch_offset);
        groups.entry(target.owner).or_default().push((target.part.topic_id, target.part.partition, seen));
    }
    let calls: Vec<_> = groups
        .into_iter()
        .map(|(owner, parts)| context.call(owner, ShardRequest::Watch(WatchCall { waiter: guard.id, wait, parts })))
        .collect();
    let news = join_all(calls).await.into_iter().any(|reply| !matches!(reply, Ok(ShardReply::Watch(false))));
    if news {
        return;
    }
    futures_lite::future::or(
        async {
            timeout(wait, guard.waiter.wait()).await;
        },
        context.shutdown.wait(),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(max_bytes: usize) -> Target {
        Target {
            position: (0, 0),
            owner: ShardId::new(0),
            part: ReadPart {
                topic_id: Uuid::nil(),
                partition: 0,
                fetch_offset: 0,
                max_bytes,
                current_leader_epoch: -1,
            },
        }
    }

    fn read(sizes: &[usize]) -> PartitionRead {
        PartitionRead {
            error: ErrorCode::None,
            high_watermark: 10,
            log_start_offset: 0,
            batches: sizes.iter().map(|size| Bytes::from(vec![0u8; *size])).collect(),
        }
    }

    fn kept(reads: &[PartitionRead]) -> Vec<Vec<usize>> {
        reads.iter().map(|read| read.batches.iter().map(Bytes::len).collect()).collect()
    }

    #[test]
    fn the_first_batch_is_sent_whole_then_only_what_fits() {
        // max_bytes 100: the first partition's 150-byte batch goes anyway (KIP-74), then nothing fits.
        let mut reads = vec![read(&[]), read(&[150, 10]), read(&[20])];
        trim(&mut reads, &[target(1000), target(1000), target(1000)], 100);
        assert_eq!(kept(&reads), vec![vec![], vec![150], vec![]]);

        // Budget shared in request order; per-partition limits apply after the first batch.
        let mut reads = vec![read(&[40, 40, 40]), read(&[30, 30]), read(&[25])];
        trim(&mut reads, &[target(1000), target(50), target(1000)], 130);
        assert_eq!(kept(&reads), vec![vec![40, 40, 40], vec![], vec![]]);
        let mut reads = vec![read(&[40]), read(&[30, 30]), read(&[25])];
        trim(&mut reads, &[target(1000), target(50), target(1000)], 130);
        assert_eq!(kept(&reads), vec![vec![40], vec![30], vec![25]]);

        // A later partition whose first batch exceeds its partition_max_bytes sends nothing.
        let mut reads = vec![read(&[10]), read(&[80])];
        trim(&mut reads, &[target(1000), target(50)], 1000);
        assert_eq!(kept(&reads), vec![vec![10], vec![]]);
    }
}
