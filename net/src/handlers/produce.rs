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
//! `timeout_ms` bounds waiting for replicas in Kafka; a single node has none to wait for, and an
//! fdatasync is never abandoned halfway, so it is not used. Idempotence and transactions are not
//! implemented: batches are stored with their producer ids and sequences as sent, unchecked.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use spate_core::batch::{set_partition_leader_epoch, split_record_set};
use spate_core::ErrorCode;
use storage::AppendInfo;
use uuid::Uuid;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::PRODUCE;
use crate::header::RequestHeader;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::partitions::now_ms;
use crate::shard::{join_all, ByOwner, ShardContext};

/// The leader epoch every partition has on this single node.
pub const LEADER_EPOCH: i32 = 0;

/// Appends for one owner shard.
pub struct AppendCall {
    /// The request's acks (0, 1 or -1).
    pub acks: i16,
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
    let mut results: Vec<Vec<Option<AppendOutcome>>> =
        request.topic_data.iter().map(|topic| vec![None; topic.partition_data.len()]).collect();
    let mut groups: ByOwner<AppendPart> = ByOwner::new();
    for (topic_index, topic) in request.topic_data.iter().enumerate() {
        let entry = table.get(topic.name.as_str());
        for (partition_index, partition) in topic.partition_data.iter().enumerate() {
            let slot = &mut results[topic_index][partition_index];
            if !(-1..=1).contains(&acks) {
                *slot = Some(Err(ErrorCode::InvalidRequiredAcks));
                continue;
            }
            let Some(entry) = entry.filter(|entry| (0..entry.partitions).contains(&partition.index)) else {
                *slot = Some(Err(ErrorCode::UnknownTopicOrPartition));
                continue;
            };
            let group = groups.entry(context.owner(&entry.id, partition.index)).or_default();
            group.0.push((topic_index, partition_index));
            group.1.push(AppendPart {
                topic_id: entry.id,
                partition: partition.index,
                records: partition.records.clone(),
            });
        }
    }
    // The request (and its frame) is no longer needed; the records live on in the calls.
    let calls: Vec<_> = groups
        .into_iter()
        .map(|(owner, (slots, parts))| async move {
            let count = parts.len();
            let outcomes = match context.call(owner, ShardRequest::Produce(AppendCall { acks, parts })).await {
                Ok(ShardReply::Produce(outcomes)) if outcomes.len() == count => outcomes,
                // The owner is stopping: retriable for the client.
                _ => vec![Err(ErrorCode::NotLeaderOrFollower); count],
            };
            (slots, outcomes)
        })
        .collect();
    for (slots, outcomes) in join_all(calls).await {
        for ((topic_index, partition_index), outcome) in slots.into_iter().zip(outcomes) {
            results[topic_index][partition_index] = Some(outcome);
        }
    }
    if acks == 0 {
        let failed = results.iter().flatten().flatten().find_map(|outcome| outcome.as_ref().err());
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
                .map(|(partition, outcome)| {
                    partition_response(partition.index, outcome.unwrap_or(Err(ErrorCode::UnknownServerError)))
                })
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
pub async fn append_on_owner(context: &ShardContext, call: AppendCall) -> Vec<AppendOutcome> {
    let acks = call.acks;
    join_all(call.parts.into_iter().map(|part| append_one(context, acks, part)).collect()).await
}

async fn append_one(context: &ShardContext, acks: i16, part: AppendPart) -> AppendOutcome {
    let Some(partition) = context.partitions.get(&part.topic_id, part.partition) else {
        // Not open here: the shard is closing, or placement changed under a stale table copy.
        return Err(ErrorCode::NotLeaderOrFollower);
    };
    let config = partition.config();
    if acks == -1 && config.min_insync_replicas > 1 {
        return Err(ErrorCode::NotEnoughReplicas);
    }
    let Some(records) = part.records else { return Err(ErrorCode::InvalidRecord) };
    let mut records = records.try_into_mut().unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    stamp_leader_epoch(&mut records);
    let info = match partition.log.append(records, now_ms()).await {
        Ok(info) => info,
        Err(error) => {
            context.partitions.check_fatal(&partition, error);
            return Err(error);
        }
    };
    partition.log.set_high_watermark(partition.log.written_offset());
    if acks == -1 && config.acks_all_flush {
        if let Err(error) = partition.log.flush().await {
            context.partitions.check_fatal(&partition, error);
            return Err(error);
        }
    }
    Ok(info)
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
