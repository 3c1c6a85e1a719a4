//! OffsetFetch (key 9), versions 1–9 (v8+: several groups at once): the committed offsets kept by
//! the shard coordinating each group ([`crate::group`]). A partition without a committed offset
//! answers offset -1 and empty metadata, as Kafka does; a null topic list (v2+) asks for every
//! partition the group committed. v9 names the member: a consumer-protocol member must exist and
//! send its current epoch.

use bytes::Bytes;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{ApiKey, GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::group::consumer::{self, ConsumerCall, ConsumerReply};
use crate::group::offsets::Committed;
use crate::group::{call_coordinator, GroupCall, GroupReply};
use crate::guard::schemas::OFFSET_FETCH;
use crate::header::RequestHeader;
use crate::shard::ShardContext;

/// First version with several groups.
const FIRST_MULTI_GROUP_VERSION: i16 = 8;
/// First version naming the member (consumer-protocol groups check its epoch).
const FIRST_MEMBER_EPOCH_VERSION: i16 = 9;
/// First version with a top-level error code.
const FIRST_TOP_LEVEL_ERROR_VERSION: i16 = 2;

/// One topic's partitions and their committed offsets.
type TopicOffsets = (String, Vec<(i32, Option<Committed>)>);

type Fetched = Result<Vec<(String, i32, Option<Committed>)>, i16>;

async fn fetch_group(context: &ShardContext, group: String, partitions: Option<Vec<(String, i32)>>) -> Fetched {
    let call = GroupCall::Fetch { group: group.clone(), partitions };
    match call_coordinator(context, &group, call).await {
        Ok(GroupReply::Fetch(fetched)) => fetched,
        Ok(_) => unreachable!("the coordinator answers a fetch with a fetch"),
        Err(code) => Err(code),
    }
}

/// OffsetFetch v9's check of a consumer-protocol member (Kafka's `validateOffsetFetch`):
/// `UNKNOWN_MEMBER_ID`, `STALE_MEMBER_EPOCH`, or 0 (also for classic and unknown groups).
async fn check_member(context: &ShardContext, group: &str, member_id: &StrBytes, member_epoch: i32) -> i16 {
    let call = ConsumerCall::ValidateFetch(group.to_string(), member_id.to_string(), member_epoch);
    match consumer::call_coordinator(context, group, call).await {
        Ok(ConsumerReply::Code(code)) | Err(code) => code,
        Ok(_) => unreachable!("the coordinator answers a member check with a code"),
    }
}

/// The fetched offsets grouped by topic, in first-seen order: (topic, [(partition, committed)]).
fn by_topic(fetched: Vec<(String, i32, Option<Committed>)>) -> Vec<TopicOffsets> {
    let mut topics: Vec<TopicOffsets> = Vec::new();
    for (topic, partition, committed) in fetched {
        match topics.iter_mut().find(|(name, _)| *name == topic) {
            Some((_, partitions)) => partitions.push((partition, committed)),
            None => topics.push((topic, vec![(partition, committed)])),
        }
    }
    topics
}

fn fields(committed: Option<Committed>) -> (i64, i32, StrBytes) {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, StrBytes::from_string(c.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

/// Answers one OffsetFetch request.
///
/// # Panics
/// If `header` is not an OffsetFetch header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::OffsetFetch, "misrouted request");
    let version = header.api_version;
    let request: OffsetFetchRequest = decode_checked(header, &OFFSET_FETCH, body)?;
    let response = OffsetFetchResponse::default().with_throttle_time_ms(0);
    if version >= FIRST_MULTI_GROUP_VERSION {
        let mut groups = Vec::with_capacity(request.groups.len());
        for group in request.groups {
            let wanted = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .flat_map(|t| t.partition_indexes.into_iter().map(move |p| (t.name.to_string(), p)))
                    .collect()
            });
            let answer = OffsetFetchResponseGroup::default().with_group_id(group.group_id.clone());
            let member = group.member_id.as_ref().filter(|_| version >= FIRST_MEMBER_EPOCH_VERSION);
            let member_code = match member {
                Some(member_id) => check_member(context, group.group_id.as_str(), member_id, group.member_epoch).await,
                None => 0,
            };
            if member_code != 0 {
                groups.push(answer.with_error_code(member_code));
                continue;
            }
            let answer = match fetch_group(context, group.group_id.to_string(), wanted).await {
                Err(code) => answer.with_error_code(code),
                Ok(fetched) => answer.with_topics(
                    by_topic(fetched)
                        .into_iter()
                        .map(|(name, partitions)| {
                            let partitions = partitions
                                .into_iter()
                                .map(|(index, committed)| {
                                    let (offset, epoch, metadata) = fields(committed);
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(metadata))
                                })
                                .collect();
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(partitions)
                        })
                        .collect(),
                ),
            };
            groups.push(answer);
        }
        return respond(header, &response.with_groups(groups));
    }
    let GroupId(group) = request.group_id;
    let wanted: Option<Vec<(String, i32)>> = request.topics.as_ref().map(|topics| {
        topics.iter().flat_map(|t| t.partition_indexes.iter().map(move |p| (t.name.to_string(), *p))).collect()
    });
    let fetched = fetch_group(context, group.to_string(), wanted.clone()).await;
    let (fetched, code) = match fetched {
        Ok(fetched) => (fetched, 0),
        Err(code) => (wanted.unwrap_or_default().into_iter().map(|(t, p)| (t, p, None)).collect(), code),
    };
    let topics = by_topic(fetched)
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, committed)| {
                    let (offset, epoch, metadata) = fields(committed);
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(index)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(metadata))
                        .with_error_code(code)
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(StrBytes::from_string(name)))
                .with_partitions(partitions)
        })
        .collect();
    let response = response.with_topics(topics);
    let response = if version >= FIRST_TOP_LEVEL_ERROR_VERSION { response.with_error_code(code) } else { response };
    respond(header, &response)
}
