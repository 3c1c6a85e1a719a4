//! Fetch on the shards that own the partitions: reads, and the watches that wake long polls.
//!
//! [`read`] reads each partition of the call at once, never waiting for data: `Log::read` from the
//! fetch offset up to the high watermark, at most `partition_max_bytes` (the first batch always),
//! served from the batch cache or one direct read, as `Bytes` that are never decoded.
//!
//! [`watch`] is how a long poll waits without occupying the owner: it checks whether any watched
//! partition's high watermark already passed what the fetching shard saw (then it answers `true` and
//! nothing is armed), else spawns a small task that waits — bounded by the fetch's remaining time and
//! by shutdown — for the first of those high watermarks to move, sends `Wake(id)` back to the fetching
//! shard, and ends. The call itself returns at once, so a waiting fetch holds no cross-shard handler
//! slot on any shard; a watch whose fetch already answered just wakes nobody.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use spate_core::runtime::{spawn_local, timeout, ShardId};
use spate_core::ErrorCode;
use uuid::Uuid;

use crate::handlers::produce::LEADER_EPOCH;
use crate::shard::messages::ShardRequest;
use crate::shard::{first_of, join_all, ShardContext};

/// Reads for one owner shard.
pub struct ReadCall {
    /// The partitions, in the order the answers must come back.
    pub parts: Vec<ReadPart>,
    /// The response's byte limit: what this owner reads in all (beyond the first batch) never needs
    /// to exceed it, since the fetching shard would drop the rest.
    pub max_total_bytes: usize,
}

/// One partition to read.
#[derive(Debug, Clone, Copy)]
pub struct ReadPart {
    /// The topic.
    pub topic_id: Uuid,
    /// The partition.
    pub partition: i32,
    /// First offset wanted.
    pub fetch_offset: i64,
    /// `partition_max_bytes` (the first batch is returned even if larger).
    pub max_bytes: usize,
    /// The leader epoch the client believes in (-1: unknown).
    pub current_leader_epoch: i32,
}

/// One partition's read.
#[derive(Debug, Clone)]
pub struct PartitionRead {
    /// `NONE` or why nothing was read.
    pub error: ErrorCode,
    /// The high watermark (-1 with an error).
    pub high_watermark: i64,
    /// The log start offset (-1 with an error).
    pub log_start_offset: i64,
    /// Whole stored batches from the fetch offset on.
    pub batches: Vec<Bytes>,
}

impl PartitionRead {
    /// A read that failed with `error`.
    pub fn failed(error: ErrorCode) -> Self {
        PartitionRead { error, high_watermark: -1, log_start_offset: -1, batches: Vec::new() }
    }

    /// Bytes read.
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

/// Watches for a long-polling fetch on another (or this) shard.
pub struct WatchCall {
    /// The waiting fetch's id on the fetching shard.
    pub waiter: u64,
    /// How long the fetch will still wait.
    pub wait: Duration,
    /// `(topic, partition, high watermark the fetch saw)`.
    pub parts: Vec<(Uuid, i32, i64)>,
}

/// Reads the parts; answers in order. When their `partition_max_bytes` together fit the response's
/// limit, all at once; otherwise one after another, each within what the limit has left, so that a
/// catch-up fetch of many partitions reads about what it sends instead of every partition's maximum
/// (16 partitions of 4 MiB each behind an 8 MiB response would read 64 MiB to send 8).
pub async fn read(context: &ShardContext, call: ReadCall) -> Vec<PartitionRead> {
    let wanted = call.parts.iter().fold(0usize, |sum, part| sum.saturating_add(part.max_bytes));
    if wanted <= call.max_total_bytes {
        return join_all(call.parts.into_iter().map(|part| read_one(context, part)).collect()).await;
    }
    let mut remaining = call.max_total_bytes;
    let mut reads = Vec::with_capacity(call.parts.len());
    let mut parts = call.parts.into_iter().peekable();
    while let Some(mut part) = parts.next() {
        if remaining == 0 {
            // Only the partition's offsets: the fetching shard's trim would drop any batch anyway
            // (KIP-74: the first batch goes whole only if it is the response's first data).
            reads.push(offsets_only(context, &part));
            continue;
        }
        // The next parts whose maximums fit what is left are read together (several reads in flight).
        part.max_bytes = part.max_bytes.min(remaining);
        let mut wave = vec![part];
        let mut wave_bytes = part.max_bytes;
        while let Some(next) = parts.peek() {
            if wave_bytes.saturating_add(next.max_bytes) > remaining {
                break;
            }
            wave_bytes += next.max_bytes;
            wave.push(parts.next().expect("peeked"));
        }
        for read in join_all(wave.into_iter().map(|part| read_one(context, part)).collect()).await {
            remaining = remaining.saturating_sub(read.bytes());
            reads.push(read);
        }
    }
    reads
}

/// A partition's offsets without reading data.
fn offsets_only(context: &ShardContext, part: &ReadPart) -> PartitionRead {
    let Some(partition) = context.partitions.get(&part.topic_id, part.partition) else {
        return PartitionRead::failed(ErrorCode::NotLeaderOrFollower);
    };
    if part.current_leader_epoch > LEADER_EPOCH {
        return PartitionRead::failed(ErrorCode::UnknownLeaderEpoch);
    }
    let log = &partition.log;
    if part.fetch_offset < log.log_start_offset() || part.fetch_offset > log.log_end_offset() {
        return PartitionRead::failed(ErrorCode::OffsetOutOfRange);
    }
    PartitionRead {
        error: ErrorCode::None,
        high_watermark: partition.log.high_watermark(),
        log_start_offset: partition.log.log_start_offset(),
        batches: Vec::new(),
    }
}

async fn read_one(context: &ShardContext, part: ReadPart) -> PartitionRead {
    let Some(partition) = context.partitions.get(&part.topic_id, part.partition) else {
        return PartitionRead::failed(ErrorCode::NotLeaderOrFollower);
    };
    if part.current_leader_epoch > LEADER_EPOCH {
        return PartitionRead::failed(ErrorCode::UnknownLeaderEpoch);
    }
    let high_watermark = partition.log.high_watermark();
    match partition.log.read(part.fetch_offset, part.max_bytes, high_watermark).await {
        Ok(read) => PartitionRead {
            error: ErrorCode::None,
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
            batches: read.batches,
        },
        Err(error) => {
            context.partitions.check_fatal(&partition, error);
            PartitionRead::failed(error)
        }
    }
}

/// Arms a watch (see the module docs); `true` if there is news already.
pub fn watch(context: &Rc<ShardContext>, from: ShardId, call: WatchCall) -> bool {
    let mut watched = Vec::with_capacity(call.parts.len());
    for (topic_id, index, seen) in call.parts {
        match context.partitions.get(&topic_id, index) {
            Some(partition) if partition.log.high_watermark() <= seen => watched.push((partition, seen)),
            // New data, or the partition is gone: either way the fetch should read again now.
            _ => return true,
        }
    }
    if watched.is_empty() {
        return true;
    }
    let shard = context.shard.clone();
    let shutdown = context.shutdown.clone();
    let waiter = call.waiter;
    let wait = call.wait;
    spawn_local(async move {
        let moved = {
            let waits =
                watched.iter().map(|(partition, seen)| partition.log.wait_high_watermark_above(*seen)).collect();
            futures_lite::future::or(timeout(wait, first_of(waits)), async {
                shutdown.wait().await;
                None
            })
            .await
        };
        if moved.is_some() {
            // The fetching shard may have answered already (or be stopping): then nobody waits.
            let _ = shard.call(from, ShardRequest::Wake(waiter)).await;
        }
    })
    .detach();
    false
}
