//! OffsetCommit (key 8), versions 2–9: committed offsets become records of `__consumer_offsets`,
//! appended and flushed by the shard coordinating the group before the answer ([`crate::group`]).
//! Consumers outside any group (assign(): generation -1, no member id) may commit too, as in Kafka.
//! For a consumer-protocol group (KIP-848) the generation field is the member epoch, which must be
//! the member's current one (`STALE_MEMBER_EPOCH`; see `group::consumer::bridge`).

use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::offsets::Committed;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::OFFSET_COMMIT;
use crate::header::RequestHeader;
use crate::shard::partitions::now_ms;
use crate::shard::ShardContext;

/// First version carrying the committed leader epoch.
const FIRST_LEADER_EPOCH_VERSION: i16 = 6;

/// Answers one OffsetCommit request.
///
/// # Panics
/// If `header` is not an OffsetCommit header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::OffsetCommit, "misrouted request");
    let version = header.api_version;
    let request: OffsetCommitRequest = decode_checked(header, &OFFSET_COMMIT, body)?;
    let now = now_ms();
    let mut parts = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            let leader_epoch =
                if version >= FIRST_LEADER_EPOCH_VERSION { partition.committed_leader_epoch } else { -1 };
            let committed = Committed {
                offset: partition.committed_offset,
                leader_epoch,
                metadata: partition.committed_metadata.as_ref().map_or_else(String::new, |m| m.to_string()),
                commit_timestamp: now,
            };
            parts.push((topic.name.to_string(), partition.partition_index, committed));
        }
    }
    let count = parts.len();
    let group = request.group_id.to_string();
    let call = GroupCall::Commit {
        group: group.clone(),
        generation: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        parts,
    };
    let codes = match call_coordinator(context, &group, call).await {
        Ok(GroupReply::Commit(Ok(codes))) if codes.len() == count => codes,
        Ok(GroupReply::Commit(Err(code))) | Err(code) => vec![code; count],
        Ok(_) => unreachable!("the coordinator answers a commit with a commit"),
    };
    let mut codes = codes.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|partition| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(partition.partition_index)
                        .with_error_code(codes.next().unwrap_or_default())
                })
                .collect();
            OffsetCommitResponseTopic::default().with_name(topic.name).with_partitions(partitions)
        })
        .collect();
    respond(header, &OffsetCommitResponse::default().with_throttle_time_ms(0).with_topics(topics))
}
