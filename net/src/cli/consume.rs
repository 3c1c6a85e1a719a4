//! `spate consume TOPIC`: fetches partitions from their leaders and prints each record, one line per
//! record in `--format` (or one JSON object per line with `--json`).
//!
//! Where to start, per partition: `--offset N`; else the committed offset of `--group G`; else the
//! log start (`--from-beginning`) or the end (new records only). With `--group G --commit` the
//! positions are committed after every fetch that moved them, as a consumer outside the group
//! (generation -1), which Kafka accepts while the group has no members (like `assign()` + commitSync).
//! Stops after `--max-messages`, at the end offsets seen at start (`--until-end`), after
//! `--timeout-ms` without a record, or never.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
use serde_json::{json, Value};

use super::client::{kafka_error, quoted, Admin, CliError, CliResult, TopicInfo, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::formats::{format_datetime_ms, DataFormat};
use super::output::Progress;
use super::records::{decode, ConsumedRecord};
use super::Common;
use bench::client::topic_name;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Only these partitions (repeatable) [default: all]
    #[arg(long = "partition", value_name = "P")]
    pub partitions: Vec<i32>,
    /// Start at the log start when there is no committed offset (default: only new records)
    #[arg(long)]
    pub from_beginning: bool,
    /// Start at this offset in every partition
    #[arg(long, value_name = "OFFSET", conflicts_with = "from_beginning")]
    pub offset: Option<u64>,
    /// Exit after this many records
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit once every partition is read up to the end offset it had at start
    #[arg(long)]
    pub until_end: bool,
    /// Each record's line: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp (ms),
    /// %D timestamp (ISO 8601), %h headers, %% a percent sign; \t and \n are a tab and a newline
    #[arg(long, value_name = "FORMAT", default_value = "%v")]
    pub format: String,
    /// How keys are shown
    #[arg(long, value_enum, default_value_t)]
    pub key_format: DataFormat,
    /// How values are shown
    #[arg(long, value_enum, default_value_t)]
    pub value_format: DataFormat,
    /// Start from this group's committed offsets
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Commit the positions reached to --group
    #[arg(long, requires = "group")]
    pub commit: bool,
}

/// Longest a fetch waits at the broker for records.
const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
const FETCH_MAX_BYTES: i32 = 16 << 20;
const PARTITION_FETCH_MAX_BYTES: i32 = 4 << 20;

struct Position {
    offset: i64,
    /// The offset committed or started from, to know whether a commit is due.
    committed: i64,
    /// `--until-end`: the end offset at start.
    stop: Option<i64>,
}

pub fn run(common: &Common, args: ConsumeArgs) -> CliResult<()> {
    let mut admin = Admin::connect(common)?;
    let topic = admin.topic(&args.topic)?;
    let partitions = select_partitions(&topic, &args.partitions)?;
    let coordinator = match &args.group {
        Some(group) => Some(admin.coordinator(group)?),
        None => None,
    };
    let mut positions = start_positions(&mut admin, &topic, &partitions, &args, coordinator.as_deref())?;
    let idle_limit = common.timeout_ms.map(Duration::from_millis);
    let max_wait = idle_limit.map_or(FETCH_MAX_WAIT, |limit| limit.min(FETCH_MAX_WAIT));
    let mut progress = Progress::new("consuming", args.max_messages);
    let show_progress = !std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    let (mut consumed, mut last_record_at) = (0u64, Instant::now());
    'fetching: loop {
        if positions.values().all(|position| position.stop.is_some_and(|stop| position.offset >= stop)) {
            break;
        }
        let wanted: Vec<i32> = positions
            .iter()
            .filter(|(_, position)| position.stop.is_none_or(|stop| position.offset < stop))
            .map(|(&partition, _)| partition)
            .collect();
        let mut received = false;
        for (leader, leader_partitions) in admin.by_leader(&topic, &wanted)? {
            let request = fetch_request(&topic.name, &leader_partitions, &positions, max_wait);
            let (_, response): (i16, FetchResponse) = admin.call(&leader, ApiKey::Fetch, |_| request)?;
            if response.error_code != 0 {
                return Err(kafka_error(&leader, &format!("Fetch {}", quoted(&topic.name)), response.error_code, None));
            }
            for answer in response.responses.iter().flat_map(|topic| &topic.partitions) {
                let Some(position) = positions.get_mut(&answer.partition_index) else { continue };
                if answer.error_code != 0 {
                    let what = format!("Fetch {} partition {}", quoted(&topic.name), answer.partition_index);
                    return Err(kafka_error(&leader, &what, answer.error_code, None));
                }
                let Some(records) = &answer.records else { continue };
                let (records, next_offset) = decode(records, position.offset).map_err(|error| {
                    CliError(format!("broker {leader}: {} partition {}: {error}", topic.name, answer.partition_index))
                })?;
                for record in &records {
                    if args.max_messages.is_some_and(|max| consumed >= max) {
                        break;
                    }
                    if let Err(error) = print_record(&mut stdout, common, &args, answer.partition_index, record) {
                        if error.kind() == std::io::ErrorKind::BrokenPipe {
                            break 'fetching; // the reader went away (`| head`): done, not failed
                        }
                        return Err(CliError(format!("cannot write stdout: {error}")));
                    }
                    consumed += 1;
                    received = true;
                    position.offset = record.offset + 1;
                    if show_progress {
                        progress.advance(1);
                    }
                }
                // Past control batches and compacted gaps, unless --max-messages stopped mid-batch.
                if args.max_messages.is_none_or(|max| consumed < max) {
                    position.offset = position.offset.max(next_offset);
                }
            }
        }
        let _ = stdout.flush();
        if args.commit {
            commit_positions(&mut admin, &args, coordinator.as_deref(), &mut positions)?;
        }
        if args.max_messages.is_some_and(|max| consumed >= max) {
            break;
        }
        if received {
            last_record_at = Instant::now();
        } else if idle_limit.is_some_and(|limit| last_record_at.elapsed() >= limit) {
            break;
        }
    }
    progress.finish();
    if !common.json {
        eprintln!("consumed {consumed} records");
    }
    Ok(())
}

fn select_partitions(topic: &TopicInfo, wanted: &[i32]) -> CliResult<Vec<i32>> {
    let all: Vec<i32> = topic.partitions.iter().map(|partition| partition.partition).collect();
    if wanted.is_empty() {
        return Ok(all);
    }
    for partition in wanted {
        if !all.contains(partition) {
            return Err(CliError(format!(
                "topic {} has no partition {partition} (it has {})",
                quoted(&topic.name),
                all.len()
            )));
        }
    }
    Ok(wanted.to_vec())
}

fn start_positions(
    admin: &mut Admin,
    topic: &TopicInfo,
    partitions: &[i32],
    args: &ConsumeArgs,
    coordinator: Option<&str>,
) -> CliResult<BTreeMap<i32, Position>> {
    let starts = admin.list_offsets(topic, partitions, EARLIEST_TIMESTAMP)?;
    let ends = admin.list_offsets(topic, partitions, LATEST_TIMESTAMP)?;
    let committed = match (&args.group, coordinator) {
        (Some(group), Some(coordinator)) => {
            let wanted = [(topic.name.clone(), partitions.to_vec())];
            admin.committed_offsets(coordinator, group, Some(&wanted))?
        }
        _ => BTreeMap::new(),
    };
    let mut positions = BTreeMap::new();
    for &partition in partitions {
        let (start, end) = (starts.get(&partition).copied().unwrap_or(0), ends.get(&partition).copied().unwrap_or(0));
        let committed = committed.get(&(topic.name.clone(), partition)).copied();
        let reset = if args.from_beginning { start } else { end };
        let offset = match (args.offset, committed) {
            (Some(offset), _) => {
                let offset = i64::try_from(offset).unwrap_or(i64::MAX);
                if !(start..=end).contains(&offset) {
                    return Err(CliError(format!(
                        "offset {offset} is outside partition {partition} of {}: its offsets are {start}..{end}",
                        quoted(&topic.name)
                    )));
                }
                offset
            }
            // Retention removed what the group committed (or the topic was recreated): Kafka's
            // auto.offset.reset, earliest with --from-beginning, else latest.
            (None, Some(committed)) if !(start..=end).contains(&committed) => {
                eprintln!("partition {partition}: committed offset {committed} is outside {start}..{end}; starting at {reset}");
                reset
            }
            (None, Some(committed)) => committed,
            (None, None) => reset,
        };
        let stop = args.until_end.then_some(end);
        positions.insert(partition, Position { offset, committed: committed.unwrap_or(-1), stop });
    }
    Ok(positions)
}

fn fetch_request(
    topic: &str,
    partitions: &[i32],
    positions: &BTreeMap<i32, Position>,
    max_wait: Duration,
) -> FetchRequest {
    let partitions = partitions
        .iter()
        .filter_map(|partition| positions.get(partition).map(|position| (partition, position)))
        .map(|(&partition, position)| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(position.offset)
                .with_partition_max_bytes(PARTITION_FETCH_MAX_BYTES)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(500))
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(partitions)])
}

fn commit_positions(
    admin: &mut Admin,
    args: &ConsumeArgs,
    coordinator: Option<&str>,
    positions: &mut BTreeMap<i32, Position>,
) -> CliResult<()> {
    let (Some(group), Some(coordinator)) = (&args.group, coordinator) else { return Ok(()) };
    let due: BTreeMap<(String, i32), i64> = positions
        .iter()
        .filter(|(_, position)| position.offset != position.committed)
        .map(|(&partition, position)| ((args.topic.clone(), partition), position.offset))
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    admin.commit_offsets(coordinator, group, &due)?;
    for position in positions.values_mut() {
        position.committed = position.offset;
    }
    Ok(())
}

fn print_record(
    out: &mut impl Write,
    common: &Common,
    args: &ConsumeArgs,
    partition: i32,
    record: &ConsumedRecord,
) -> std::io::Result<()> {
    if common.json {
        let headers: serde_json::Map<String, Value> = record
            .headers
            .iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    value.as_ref().map_or(Value::Null, |value| Value::String(String::from_utf8_lossy(value).into())),
                )
            })
            .collect();
        let line = json!({
            "topic": args.topic,
            "partition": partition,
            "offset": record.offset,
            "timestamp": record.timestamp_ms,
            "key": record.key.as_ref().map(|key| args.key_format.to_json(key)),
            "value": record.value.as_ref().map(|value| args.value_format.to_json(value)),
            "headers": headers,
        });
        return writeln!(out, "{line}");
    }
    writeln!(out, "{}", render(&args.format, &args.topic, partition, record, args.key_format, args.value_format))
}

/// One record's line in a kcat-like format.
pub fn render(
    format: &str,
    topic: &str,
    partition: i32,
    record: &ConsumedRecord,
    key_format: DataFormat,
    value_format: DataFormat,
) -> String {
    let mut line = String::new();
    let mut characters = format.chars();
    while let Some(character) = characters.next() {
        match character {
            '%' => match characters.next() {
                Some('t') => line.push_str(topic),
                Some('p') => line.push_str(&partition.to_string()),
                Some('o') => line.push_str(&record.offset.to_string()),
                Some('k') => {
                    line.push_str(&record.key.as_deref().map(|key| key_format.render(key)).unwrap_or_default())
                }
                Some('v') => {
                    line.push_str(&record.value.as_deref().map(|value| value_format.render(value)).unwrap_or_default())
                }
                Some('T') => line.push_str(&record.timestamp_ms.to_string()),
                Some('D') => line.push_str(&format_datetime_ms(record.timestamp_ms)),
                Some('h') => {
                    let headers: Vec<String> = record
                        .headers
                        .iter()
                        .map(|(key, value)| {
                            format!("{key}={}", value.as_deref().map(String::from_utf8_lossy).unwrap_or_default())
                        })
                        .collect();
                    line.push_str(&headers.join(","));
                }
                Some('%') => line.push('%'),
                Some(other) => {
                    line.push('%');
                    line.push(other);
                }
                None => line.push('%'),
            },
            '\\' => match characters.next() {
                Some('n') => line.push('\n'),
                Some('t') => line.push('\t'),
                Some(other) => {
                    line.push('\\');
                    line.push(other);
                }
                None => line.push('\\'),
            },
            other => line.push(other),
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_record_like_kcat() {
        let record = ConsumedRecord {
            offset: 7,
            timestamp_ms: 0,
            key: Some(b"k1".to_vec()),
            value: Some(vec![0xab, 0x01]),
            headers: vec![("h".into(), Some(b"v".to_vec()))],
        };
        let line = render("%t/%p@%o %k=%v %h %D 100%%\\t.", "t", 3, &record, DataFormat::String, DataFormat::Hex);
        assert_eq!(line, "t/3@7 k1=ab01 h=v 1970-01-01T00:00:00.000Z 100%\t.");
    }
}
