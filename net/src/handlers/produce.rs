//! Produce (key 0): versions 3–11 handled; 0–2 advertised but refused with a closed connection, as
//! Kafka 4 does (see `versions`).
//!
//! On the shard that read the request (any shard):
//! 1. the body is checked ([`crate::guard`]) and decoded; the records stay `Bytes` slices of the
//!    frame (no copy);
//! 2. each partition is resolved in this shard's topic table copy: a topic or partition that does not
//!    exist is `UNKNOWN_TOPIC_OR_PARTITION` (producing never creates topics; Metadata does); acks other
//!    than 0, 1, -1 is `INVALID_REQUIRED_ACKS` for every partition;
//! 3. the partitions are grouped by owner shard and each group goes to its owner in one cross-shard
//!    call (a call to this shard runs directly), all groups at once;
//! 4. the answers are put back in request order. With acks=0 nothing is sent back; if any partition
//!    failed, the connection is closed instead, as Kafka does, so the producer refreshes metadata.
//!
//! On the owner shard ([`append_on_owner`]), for each partition of the group at once:
//! 1. the records are copied into a `BytesMut` owned by this shard (the one copy before storage: the
//!    frame buffer is shared with the connection, and offsets are assigned in place), and each
//!    batch's partition leader epoch is set to the leader's (0);
//!    A compacted topic's batches must key every record (`INVALID_RECORD` otherwise, nothing of the
//!    set stored), and a topic with a `compression.type` codec gets batches in other codecs
//!    recompressed ([`spate_core::rewrite`]), as Kafka's LogValidator does;
//! 2. `Log::append` validates every batch (CRC, sizes, magic; one bad batch rejects the set),
//!    assigns offsets, and returns once the batches are written to the device: **acks=1** is answered
//!    here (survives kill -9);
//! 3. the high watermark moves to `Log::written_offset()` (a single node commits what it wrote),
//!    waking long-polling fetches;
//! 4. **acks=-1** with `min.insync.replicas` > 1 is `NOT_ENOUGH_REPLICAS` (the ISR is this node
//!    alone) and stores nothing; otherwise it also waits for `Log::flush` — a group-committed
//!    fdatasync shared with concurrent producers — so the answer means "survives power loss", unless
//!    the topic sets `spate.acks.all.flush=false`.
//!
//! **`timeout_ms`** is, as in Kafka, how long the broker may wait for the acks asked for once the
//! records are written: for acks=-1, Kafka's wait for the in-sync replicas, here the wait for that
//! flush ([`wait_for_flush`]). A flush still running after `timeout_ms` (negative counts as 0) answers
//! `REQUEST_TIMED_OUT` for that partition; the flush itself is never abandoned (it runs on as a detached
//! task), so the records are stored and may well become durable moments later — as in Kafka, where a
//! timed-out produce may still be replicated, and a retrying producer may store them twice (no
//! idempotence here). A flush that needs no waiting (already durable) answers success even with
//! `timeout_ms` 0. acks=1 and acks=0 ignore `timeout_ms`, as Kafka does: they are answered once the
//! append returns. Idempotence and transactions are not implemented: batches are stored with their
//! producer ids and sequences as sent, unchecked.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::future::poll_once;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use spate_core::batch::{set_partition_leader_epoch, split_record_set, Compression};
use spate_core::rewrite::{rewrite_record_set, RewriteRules};
use spate_core::runtime::{spawn_detached, timeout};
use spate_core::topic_config::{CleanupPolicy, TopicConfig};
use spate_core::ErrorCode;
use storage::AppendInfo;
use uuid::Uuid;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::PRODUCE;
use crate::header::RequestHeader;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::partitions::now_ms;
use crate::shard::scatter::Scatter;
use crate::shard::{join_all, ShardContext};

/// The leader epoch every partition has on this single node.
pub const LEADER_EPOCH: i32 = 0;

/// Appends for one owner shard.
pub struct AppendCall {
    /// The request's acks (0, 1 or -1).
    pub acks: i16,
    /// The request's `timeout_ms`: how long acks=-1 may wait for the flush.
    pub flush_timeout: Duration,
    /// The partitions, in the order the answers must come back.
    pub parts: Vec<AppendPart>,
}

/// One partition's record set.
pub struct AppendPart {
    /// The topic.
    pub topic_id: Uuid,
    /// The partition.
    pub partition: i32,
    /// The records as sent (`None`: the request had a null record set).
    pub records: Option<Bytes>,
}

/// One partition's result.
pub type AppendOutcome = Result<AppendInfo, ErrorCode>;

/// Answers one Produce request (`None` for acks=0).
///
/// # Panics
/// If `header` is not a Produce header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::Produce, "misrouted request");
    let request: ProduceRequest = decode_checked(header, &PRODUCE, body)?;
    let acks = request.acks;
    let table = context.topics();
    let flush_timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let mut results: Vec<Vec<AppendOutcome>> = request
        .topic_data
        .iter()
        .map(|topic| vec![Err(ErrorCode::UnknownServerError); topic.partition_data.len()])
        .collect();
    let mut scatter: Scatter<(usize, usize), AppendPart> = Scatter::new();
    for (topic_index, topic) in request.topic_data.iter().enumerate() {
        let entry = table.get(topic.name.as_str());
        for (partition_index, partition) in topic.partition_data.iter().enumerate() {
            let slot = &mut results[topic_index][partition_index];
            if !(-1..=1).contains(&acks) {
                *slot = Err(ErrorCode::InvalidRequiredAcks);
                continue;
            }
            let Some(entry) = entry.filter(|entry| (0..entry.partitions).contains(&partition.index)) else {
                *slot = Err(ErrorCode::UnknownTopicOrPartition);
                continue;
            };
            scatter.add(
                context.owner(&entry.id, partition.index),
                (topic_index, partition_index),
                AppendPart { topic_id: entry.id, partition: partition.index, records: partition.records.clone() },
            );
        }
    }
    scatter
        .gather(
            context,
            &mut results[..],
            |parts| ShardRequest::Produce(AppendCall { acks, flush_timeout, parts }),
            |reply| match reply {
                ShardReply::Produce(outcomes) => Some(outcomes),
                _ => None,
            },
            // The owner is stopping: retriable for the client.
            Err(ErrorCode::NotLeaderOrFollower),
        )
        .await;
    if acks == 0 {
        let failed = results.iter().flatten().find_map(|outcome| outcome.as_ref().err());
        return match failed {
            Some(error) => Err(HandlerError::Close(format!("acks=0 produce failed ({error}); closing as Kafka does"))),
            None => Ok(None),
        };
    }
    let responses = request
        .topic_data
        .iter()
        .zip(results)
        .map(|(topic, outcomes)| {
            let partitions = topic
                .partition_data
                .iter()
                .zip(outcomes)
                .map(|(partition, outcome)| partition_response(partition.index, outcome))
                .collect();
            TopicProduceResponse::default().with_name(topic.name.clone()).with_partition_responses(partitions)
        })
        .collect();
    respond(header, &ProduceResponse::default().with_responses(responses).with_throttle_time_ms(0))
}

fn partition_response(index: i32, outcome: AppendOutcome) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index);
    match outcome {
        Ok(info) => response
            .with_error_code(0)
            .with_base_offset(info.base_offset)
            .with_log_append_time_ms(info.log_append_time_ms)
            .with_log_start_offset(info.log_start_offset),
        Err(error) => response
            .with_error_code(error.code())
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1),
    }
}

/// The owner's side: appends every part at once; answers in order.
pub async fn append_on_owner(context: &Rc<ShardContext>, call: AppendCall) -> Vec<AppendOutcome> {
    let (acks, flush_timeout) = (call.acks, call.flush_timeout);
    join_all(call.parts.into_iter().map(|part| append_one(context, acks, flush_timeout, part)).collect()).await
}

async fn append_one(context: &Rc<ShardContext>, acks: i16, flush_timeout: Duration, part: AppendPart) -> AppendOutcome {
    let Some(partition) = context.partitions.get(&part.topic_id, part.partition) else {
        // Not open here: the shard is closing, or placement changed under a stale table copy.
        return Err(ErrorCode::NotLeaderOrFollower);
    };
    let config = partition.config();
    if acks == -1 && config.min_insync_replicas > 1 {
        return Err(ErrorCode::NotEnoughReplicas);
    }
    let Some(records) = part.records else { return Err(ErrorCode::InvalidRecord) };
    let rules = rewrite_rules(&config);
    let max_message_bytes = usize::try_from(config.max_message_bytes).unwrap_or(0);
    let mut records = match rewrite_record_set(&records, rules, max_message_bytes)? {
        Some(rewritten) => rewritten,
        None => records.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..])),
    };
    stamp_leader_epoch(&mut records);
    let stored_bytes = records.len();
    let info = match partition.log.append(records, now_ms()).await {
        Ok(info) => info,
        Err(error) => {
            context.partitions.check_fatal(&partition, error);
            return Err(error);
        }
    };
    partition.log.set_high_watermark(partition.log.written_offset());
    context.metrics.produced(&partition.topic, stored_bytes as u64, u64::try_from(info.record_count).unwrap_or(0));
    if acks == -1 && config.acks_all_flush {
        let (context, flushing) = (context.clone(), partition.clone());
        // The fatal-I/O check goes with the flush: it runs even if nobody waits for the flush any more.
        let flush = async move {
            let flushed = flushing.log.flush().await;
            if let Err(error) = flushed {
                context.partitions.check_fatal(&flushing, error);
            }
            flushed
        };
        wait_for_flush(flush_timeout, flush).await?;
    }
    Ok(info)
}

/// What the topic's config asks of produced batches ([`spate_core::rewrite`]): keys on compacted
/// topics, and the topic's `compression.type` at its `compression.<codec>.level`.
fn rewrite_rules(config: &TopicConfig) -> RewriteRules {
    let target = config.compression_type.codec();
    let level = match target {
        Some(Compression::Gzip) => Some(config.compression_gzip_level).filter(|level| *level > 0),
        Some(Compression::Lz4) => Some(config.compression_lz4_level),
        Some(Compression::Zstd) => Some(config.compression_zstd_level),
        _ => None,
    };
    let keys_required = matches!(config.cleanup_policy, CleanupPolicy::Compact | CleanupPolicy::CompactDelete);
    RewriteRules { keys_required, target, level }
}

/// Waits at most `limit` (the request's `timeout_ms`) for an acks=-1 flush: `REQUEST_TIMED_OUT` if it
/// takes longer. The flush is polled once here: if it finishes without waiting (everything was already
/// durable) that answer stands whatever the limit, as Kafka answers at once when the acks asked for are
/// already satisfied. Otherwise it goes on as a detached task, so a wait that times out never cuts the
/// fdatasync short (a log's in-flight state must be cleared by the code that set it): the data may
/// still become durable after the timeout was answered, as in Kafka, where a timed-out produce may
/// still be replicated.
async fn wait_for_flush<F>(limit: Duration, flush: F) -> Result<(), ErrorCode>
where
    F: Future<Output = Result<(), ErrorCode>> + 'static,
{
    let mut flush = Box::pin(flush);
    if let Some(flushed) = poll_once(&mut flush).await {
        return flushed;
    }
    // Spawned in the same poll as the one above: no await in between where the flush could be dropped.
    let flushing = spawn_detached(flush);
    match timeout(limit, flushing).await {
        Some(Some(flushed)) => flushed,
        // The executor is stopping.
        Some(None) => Err(ErrorCode::KafkaStorageError),
        None => Err(ErrorCode::RequestTimedOut),
    }
}

/// Sets the partition leader epoch of every whole batch to [`LEADER_EPOCH`] (not covered by the CRC).
/// Anything malformed is left for `Log::append` to refuse.
fn stamp_leader_epoch(records: &mut BytesMut) {
    let lengths: Vec<usize> = split_record_set(records).map_while(Result::ok).map(<[u8]>::len).collect();
    let mut start = 0;
    for length in lengths {
        set_partition_leader_epoch(&mut records[start..start + length], LEADER_EPOCH);
        start += length;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use spate_core::runtime::{sleep, PoolConfig, Shard, ShardPlacement, ShardPool};

    use super::*;

    /// Runs `test` on a one-shard executor (timers and detached tasks need one).
    fn on_a_shard<F: Future<Output = ()> + 'static>(test: fn() -> F) {
        let config = PoolConfig::new("test-produce", ShardPlacement::first_cpus_or_unpinned(1));
        let pool = ShardPool::start(config, |_| move |_: Shard<(), ()>| test()).expect("executor");
        for (shard, result) in pool.join() {
            result.unwrap_or_else(|error| panic!("shard {shard}: {error}"));
        }
    }

    #[test]
    fn a_flush_that_never_ends_times_out() {
        on_a_shard(|| async {
            let waited = wait_for_flush(Duration::from_millis(10), std::future::pending()).await;
            assert_eq!(waited, Err(ErrorCode::RequestTimedOut));
        });
    }

    #[test]
    fn a_timed_out_flush_is_not_cancelled() {
        on_a_shard(|| async {
            let done = Rc::new(Cell::new(false));
            let flag = done.clone();
            let flush = async move {
                sleep(Duration::from_millis(50)).await;
                flag.set(true);
                Ok(())
            };
            assert_eq!(wait_for_flush(Duration::from_millis(1), flush).await, Err(ErrorCode::RequestTimedOut));
            assert!(!done.get());
            sleep(Duration::from_millis(500)).await;
            assert!(done.get(), "the flush ran on after the wait timed out");
        });
    }

    #[test]
    fn a_flush_within_the_limit_answers_its_result() {
        on_a_shard(|| async {
            let slow_ok = async {
                sleep(Duration::from_millis(5)).await;
                Ok(())
            };
            assert_eq!(wait_for_flush(Duration::from_secs(30), slow_ok).await, Ok(()));
            let slow_error = async {
                sleep(Duration::from_millis(5)).await;
                Err(ErrorCode::KafkaStorageError)
            };
            assert_eq!(wait_for_flush(Duration::from_secs(30), slow_error).await, Err(ErrorCode::KafkaStorageError));
        });
    }

    #[test]
    fn a_flush_with_nothing_to_wait_for_succeeds_even_with_no_time() {
        on_a_shard(|| async {
            assert_eq!(wait_for_flush(Duration::ZERO, async { Ok(()) }).await, Ok(()));
            assert_eq!(
                wait_for_flush(Duration::ZERO, async { Err(ErrorCode::KafkaStorageError) }).await,
                Err(ErrorCode::KafkaStorageError)
            );
        });
    }
}
