//! `spate group reset-offsets`: computes new committed offsets for a group's partitions of a topic,
//! prints the plan, and with `--execute` commits it.
//!
//! The commit is made from outside the group (generation -1, no member id), which Kafka accepts only
//! while the group has no members, as `kafka-consumer-groups.sh --reset-offsets` requires. The CLI
//! checks the group's state first so the refusal says why; the broker's own check (UNKNOWN_MEMBER_ID
//! for a group that gained a member meanwhile) is reported too.

use std::collections::BTreeMap;

use clap::{ArgGroup, Args};
use serde_json::{json, Value};

use super::client::{quoted, Admin, CliError, CliResult, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP};
use super::formats::{format_datetime_ms, parse_datetime_ms};
use super::group::describe_group;
use super::output::{print_json, Table};
use super::Common;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"])))]
pub struct ResetArgs {
    pub group: String,
    /// The topic whose offsets move
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Only these partitions (repeatable) [default: all]
    #[arg(long = "partition", value_name = "P")]
    pub partitions: Vec<i32>,
    /// To each partition's log start offset
    #[arg(long)]
    pub to_earliest: bool,
    /// To each partition's end offset (skip everything not yet consumed)
    #[arg(long)]
    pub to_latest: bool,
    /// To the first offset whose timestamp is at or after this time (ISO 8601, or ms since the epoch)
    #[arg(long, value_name = "TIME")]
    pub to_datetime: Option<String>,
    /// To this offset (clamped into each partition's start..end range)
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Move each partition's committed offset by N (negative: back), clamped into start..end
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Commit the new offsets (without it, only the plan is printed)
    #[arg(long)]
    pub execute: bool,
}

/// One partition's move.
struct Move {
    partition: i32,
    current: Option<i64>,
    new: i64,
}

/// Group states in which offsets may be committed from outside the group.
const INACTIVE_STATES: [&str; 2] = ["Empty", "Dead"];

pub fn run(admin: &mut Admin, common: &Common, args: &ResetArgs) -> CliResult<()> {
    let description = describe_group(admin, &args.group)?;
    if args.execute && !INACTIVE_STATES.contains(&description.state.as_str()) {
        return Err(CliError(format!(
            "broker {}: group {} is {} with {} member(s); offsets can only be reset while the group has no \
             members (stop its consumers first)",
            description.coordinator,
            quoted(&args.group),
            description.state,
            description.members.len()
        )));
    }
    let topic = admin.topic(&args.topic)?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        topic.partitions.iter().map(|partition| partition.partition).collect()
    } else {
        for &partition in &args.partitions {
            if !topic.partitions.iter().any(|info| info.partition == partition) {
                return Err(CliError(format!(
                    "topic {} has no partition {partition} (it has {})",
                    quoted(&args.topic),
                    topic.partitions.len()
                )));
            }
        }
        args.partitions.clone()
    };
    let starts = admin.list_offsets(&topic, &partitions, EARLIEST_TIMESTAMP)?;
    let ends = admin.list_offsets(&topic, &partitions, LATEST_TIMESTAMP)?;
    let wanted = [(args.topic.clone(), partitions.clone())];
    let committed = admin.committed_offsets(&description.coordinator, &args.group, Some(&wanted))?;
    let by_time = match &args.to_datetime {
        Some(text) => Some(admin.list_offsets(&topic, &partitions, parse_datetime_ms(text)?)?),
        None => None,
    };
    let mut moves = Vec::new();
    for &partition in &partitions {
        let (start, end) = (starts.get(&partition).copied().unwrap_or(0), ends.get(&partition).copied().unwrap_or(0));
        let current = committed.get(&(args.topic.clone(), partition)).copied();
        let new = if args.to_earliest {
            start
        } else if args.to_latest {
            end
        } else if let Some(offsets) = &by_time {
            // -1: no record at or after the time; Kafka's tool moves to the end then.
            offsets.get(&partition).copied().filter(|&offset| offset >= 0).unwrap_or(end)
        } else if let Some(offset) = args.to_offset {
            offset.clamp(start, end)
        } else if let Some(shift) = args.shift_by {
            current.unwrap_or(start).saturating_add(shift).clamp(start, end)
        } else {
            return Err("reset-offsets needs a target (--to-earliest, --to-latest, ...)".into());
        };
        moves.push(Move { partition, current, new });
    }
    // People see the plan before the commit (and even if it fails); scripts get one document after it.
    if !common.json {
        print_table(args, &moves);
    }
    if args.execute {
        let offsets: BTreeMap<(String, i32), i64> =
            moves.iter().map(|step| ((args.topic.clone(), step.partition), step.new)).collect();
        admin.commit_offsets(&description.coordinator, &args.group, &offsets)?;
    }
    if common.json {
        let partitions: Vec<Value> = moves
            .iter()
            .map(|step| {
                json!({
                    "topic": args.topic,
                    "partition": step.partition,
                    "current_offset": step.current,
                    "new_offset": step.new,
                })
            })
            .collect();
        print_json(&json!({
            "group": args.group,
            "state": description.state,
            "executed": args.execute,
            "partitions": partitions,
        }));
    } else if args.execute {
        println!("Committed the new offsets of {} partition(s) for group {}.", moves.len(), quoted(&args.group));
    } else {
        let when = args
            .to_datetime
            .as_deref()
            .and_then(|text| parse_datetime_ms(text).ok())
            .map(|ms| format!(" (time {})", format_datetime_ms(ms)))
            .unwrap_or_default();
        println!("Dry run{when}: nothing committed. Add --execute to commit these offsets.");
    }
    Ok(())
}

fn print_table(args: &ResetArgs, moves: &[Move]) {
    let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]);
    for step in moves {
        table.row(vec![
            args.topic.clone(),
            step.partition.to_string(),
            step.current.map_or_else(|| "-".to_owned(), |offset| offset.to_string()),
            step.new.to_string(),
        ]);
    }
    table.print();
    println!();
}
