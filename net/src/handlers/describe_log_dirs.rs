//! DescribeLogDirs (key 35), versions 1–4: the one log directory (the data directory) and the size
//! of each partition in it.
//!
//! `topics` null means every partition; otherwise the listed partitions that exist (unknown topics and
//! partitions are left out, as Kafka does). Sizes come from each owner shard (`Log::size_bytes`: the
//! segment files' logical sizes), all owners at once. `offset_lag` is 0 and `is_future_key` false
//! (no replica moves between directories). v4 adds the file system's total and usable bytes
//! (`statvfs`, -1 if that fails).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{decode_checked, respond, HandlerError};
use crate::dispatch::Answer;
use crate::guard::schemas::DESCRIBE_LOG_DIRS;
use crate::header::RequestHeader;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::scatter::Scatter;
use crate::shard::ShardContext;

/// Answers one DescribeLogDirs request.
///
/// # Panics
/// If `header` is not a DescribeLogDirs header: dispatch sent the wrong request here.
pub async fn handle(context: &ShardContext, header: &RequestHeader, body: Bytes) -> Result<Answer, HandlerError> {
    assert_eq!(header.api_key, ApiKey::DescribeLogDirs, "misrouted request");
    let version = header.api_version;
    let request: DescribeLogDirsRequest = decode_checked(header, &DESCRIBE_LOG_DIRS, body)?;
    let table = context.topics();
    // (topic name, id, partition) in answer order.
    let mut wanted: Vec<(String, Uuid, i32)> = Vec::new();
    match &request.topics {
        None => {
            for topic in table.iter() {
                wanted.extend((0..topic.partitions).map(|index| (topic.name.clone(), topic.id, index)));
            }
        }
        Some(topics) => {
            for asked in topics {
                let Some(topic) = table.get(asked.topic.as_str()) else { continue };
                for &index in asked.partitions.iter().filter(|index| (0..topic.partitions).contains(*index)) {
                    if !wanted.iter().any(|(name, _, have)| *name == topic.name && *have == index) {
                        wanted.push((topic.name.clone(), topic.id, index));
                    }
                }
            }
        }
    }
    let mut scatter: Scatter<usize, (Uuid, i32)> = Scatter::new();
    for (slot, (_, id, index)) in wanted.iter().enumerate() {
        scatter.add(context.owner(id, *index), slot, (*id, *index));
    }
    // An owner that cannot answer leaves its partitions out.
    let mut sizes: Vec<Option<u64>> = vec![None; wanted.len()];
    scatter
        .gather(
            context,
            &mut sizes[..],
            ShardRequest::LogSizes,
            |reply| match reply {
                ShardReply::LogSizes(sizes) => Some(sizes),
                _ => None,
            },
            None,
        )
        .await;
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for ((name, _, index), size) in wanted.into_iter().zip(sizes) {
        let Some(size) = size else { continue };
        let partition = DescribeLogDirsPartition::default()
            .with_partition_index(index)
            .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
            .with_offset_lag(0)
            .with_is_future_key(false);
        match topics.iter_mut().find(|topic| topic.name.as_str() == name) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(name)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let data_dir = context.partitions.data_dir();
    let dir_name = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let mut result = DescribeLogDirsResult::default()
        .with_error_code(0)
        .with_log_dir(StrBytes::from_string(dir_name.display().to_string()))
        .with_topics(topics);
    if version >= 4 {
        let (total, usable) = disk_space(data_dir).unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    let mut response = DescribeLogDirsResponse::default().with_throttle_time_ms(0).with_results(vec![result]);
    if version >= 3 {
        response = response.with_error_code(0);
    }
    respond(header, &response)
}

/// The owner's side: each partition's size, `None` if it is not open here.
pub fn sizes_on_owner(context: &ShardContext, parts: &[(Uuid, i32)]) -> Vec<Option<u64>> {
    parts
        .iter()
        .map(|(id, index)| context.partitions.get(id, *index).map(|partition| partition.log.size_bytes()))
        .collect()
}

/// (total, usable) bytes of the file system holding `dir`.
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `stats` a properly sized out-parameter.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; statvfs only writes into `stats`.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    let fragment = u128::from(stats.f_frsize);
    let clamp = |blocks: u128| i64::try_from(blocks * fragment).unwrap_or(i64::MAX);
    Some((clamp(u128::from(stats.f_blocks)), clamp(u128::from(stats.f_bavail))))
}
