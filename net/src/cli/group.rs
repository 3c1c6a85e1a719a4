//! `spate group list|describe|reset-offsets|delete` (reset-offsets lives in [`super::reset`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, Bytes};
use clap::Subcommand;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use serde_json::{json, Value};

use super::client::{kafka_error, quoted, Admin, CliError, CliResult, LATEST_TIMESTAMP};
use super::output::{join, print_json, Table};
use super::reset::{self, ResetArgs};
use super::Common;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups (of every broker)
    List,
    /// State, members and their assignments, committed offsets and lag of a group
    Describe { group: String },
    /// Move a group's committed offsets (a dry run unless --execute)
    ResetOffsets(ResetArgs),
    /// Delete a group (it must have no members)
    Delete { group: String },
}

pub fn run(common: &Common, command: GroupCommand) -> CliResult<()> {
    let mut admin = Admin::connect(common)?;
    match command {
        GroupCommand::List => list(&mut admin, common),
        GroupCommand::Describe { group } => describe(&mut admin, common, &group),
        GroupCommand::ResetOffsets(args) => reset::run(&mut admin, common, &args),
        GroupCommand::Delete { group } => delete(&mut admin, common, &group),
    }
}

fn group_id(name: &str) -> GroupId {
    GroupId(StrBytes::from_string(name.to_owned()))
}

fn list(admin: &mut Admin, common: &Common) -> CliResult<()> {
    admin.metadata(Some(&[]))?;
    // Each broker lists the groups it coordinates.
    let mut addresses: Vec<String> = admin.brokers().values().cloned().collect();
    addresses.sort();
    if addresses.is_empty() {
        addresses.push(admin.bootstrap.clone());
    }
    let mut groups = BTreeMap::new();
    for address in addresses {
        let (_, response): (i16, ListGroupsResponse) =
            admin.call(&address, ApiKey::ListGroups, |_| ListGroupsRequest::default())?;
        if response.error_code != 0 {
            return Err(kafka_error(&address, "ListGroups", response.error_code, None));
        }
        for group in response.groups {
            groups.insert(group.group_id.to_string(), (group.group_state.to_string(), group.protocol_type.to_string()));
        }
    }
    if common.json {
        let groups: Vec<Value> = groups
            .iter()
            .map(|(group, (state, protocol_type))| json!({"group": group, "state": state, "protocol_type": protocol_type}))
            .collect();
        print_json(&Value::Array(groups));
        return Ok(());
    }
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
    for (group, (state, protocol_type)) in groups {
        let protocol_type = or_dash(&protocol_type).to_owned();
        table.row(vec![group, state, protocol_type]);
    }
    table.print();
    Ok(())
}

/// A group as DescribeGroups tells it.
pub struct GroupDescription {
    pub coordinator: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<Member>,
}

pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub host: String,
    /// Topic → partitions, decoded from the consumer protocol's assignment bytes.
    pub assignment: BTreeMap<String, Vec<i32>>,
    /// The assignment bytes, when they are not the consumer protocol's.
    pub raw_assignment_len: Option<usize>,
}

/// DescribeGroups of one group at its coordinator.
pub fn describe_group(admin: &mut Admin, group: &str) -> CliResult<GroupDescription> {
    let coordinator = admin.coordinator(group)?;
    let (_, response): (i16, DescribeGroupsResponse) = admin.call(&coordinator, ApiKey::DescribeGroups, |_| {
        DescribeGroupsRequest::default().with_groups(vec![group_id(group)])
    })?;
    let described = response
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| CliError(format!("broker {coordinator}: DescribeGroups {}: empty answer", quoted(group))))?;
    if described.error_code != 0 {
        let request = format!("DescribeGroups {}", quoted(group));
        return Err(kafka_error(&coordinator, &request, described.error_code, described.error_message.as_ref()));
    }
    let consumer = described.protocol_type.as_str() == "consumer";
    let members = described
        .members
        .iter()
        .map(|member| {
            let decoded = if consumer { decode_assignment(&member.member_assignment) } else { None };
            Member {
                member_id: member.member_id.to_string(),
                instance_id: member.group_instance_id.as_ref().map(ToString::to_string),
                client_id: member.client_id.to_string(),
                host: member.client_host.to_string(),
                raw_assignment_len: decoded.is_none().then_some(member.member_assignment.len()),
                assignment: decoded.unwrap_or_default(),
            }
        })
        .collect();
    Ok(GroupDescription {
        coordinator,
        state: described.group_state.to_string(),
        protocol_type: described.protocol_type.to_string(),
        protocol: described.protocol_data.to_string(),
        members,
    })
}

/// The consumer protocol's assignment (`ConsumerProtocolAssignment`, version-prefixed): topic → partitions.
fn decode_assignment(bytes: &Bytes) -> Option<BTreeMap<String, Vec<i32>>> {
    let mut buffer = bytes.clone();
    if buffer.remaining() < 2 {
        return if buffer.is_empty() { Some(BTreeMap::new()) } else { None };
    }
    // Versions above the crate's read as its highest: later versions only append fields.
    let version = buffer.get_i16().clamp(0, 3);
    let assignment = ConsumerProtocolAssignment::decode(&mut buffer, version).ok()?;
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for topic in assignment.assigned_partitions {
        topics.entry(topic.topic.to_string()).or_default().extend(topic.partitions);
    }
    for partitions in topics.values_mut() {
        partitions.sort_unstable();
    }
    Some(topics)
}

/// One partition of a group: committed offset, end offset, lag, and who has it.
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    end: Option<i64>,
    member: Option<String>,
}

fn describe(admin: &mut Admin, common: &Common, group: &str) -> CliResult<()> {
    let description = describe_group(admin, group)?;
    let committed = admin.committed_offsets(&description.coordinator, group, None)?;
    if description.state == "Dead" && committed.is_empty() {
        return Err(CliError(format!(
            "broker {}: group {} does not exist (GROUP_ID_NOT_FOUND)",
            description.coordinator,
            quoted(group)
        )));
    }
    // Every partition that has a committed offset or is assigned to a member.
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for member in &description.members {
        for (topic, partitions) in &member.assignment {
            for &partition in partitions {
                owners.insert((topic.clone(), partition), member.member_id.clone());
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owners.keys()).cloned().collect();
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &keys {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (topic, partitions) in &by_topic {
        // A topic deleted since the commit has no end offset; its rows show "-".
        let Ok(info) = admin.topic(topic) else { continue };
        let known: Vec<i32> =
            partitions.iter().copied().filter(|p| info.partitions.iter().any(|i| i.partition == *p)).collect();
        for (partition, offset) in admin.list_offsets(&info, &known, LATEST_TIMESTAMP)? {
            ends.insert((topic.clone(), partition), offset);
        }
    }
    let rows: Vec<PartitionLag> = keys
        .into_iter()
        .map(|key| PartitionLag {
            committed: committed.get(&key).copied(),
            end: ends.get(&key).copied(),
            member: owners.get(&key).cloned(),
            topic: key.0,
            partition: key.1,
        })
        .collect();
    let lag = |row: &PartitionLag| match (row.committed, row.end) {
        (Some(committed), Some(end)) => Some((end - committed).max(0)),
        _ => None,
    };
    if common.json {
        let members: Vec<Value> = description
            .members
            .iter()
            .map(|member| {
                json!({
                    "member_id": member.member_id,
                    "group_instance_id": member.instance_id,
                    "client_id": member.client_id,
                    "host": member.host,
                    "assignment": member.assignment,
                    "assignment_bytes": member.raw_assignment_len,
                })
            })
            .collect();
        let partitions: Vec<Value> = rows
            .iter()
            .map(|row| {
                json!({
                    "topic": row.topic,
                    "partition": row.partition,
                    "committed_offset": row.committed,
                    "end_offset": row.end,
                    "lag": lag(row),
                    "member_id": row.member,
                })
            })
            .collect();
        print_json(&json!({
            "group": group,
            "coordinator": description.coordinator,
            "state": description.state,
            "protocol_type": description.protocol_type,
            "protocol": description.protocol,
            "members": members,
            "partitions": partitions,
            "total_lag": rows.iter().filter_map(lag).sum::<i64>(),
        }));
        return Ok(());
    }
    println!(
        "Group: {group}  state: {}  protocol: {}/{}  coordinator: {}",
        description.state,
        or_dash(&description.protocol_type),
        or_dash(&description.protocol),
        description.coordinator
    );
    println!();
    if description.members.is_empty() {
        println!("No active members.");
    } else {
        let mut table = Table::new(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"]);
        for member in &description.members {
            let assignment = match member.raw_assignment_len {
                Some(length) => format!("({length} bytes, not the consumer protocol)"),
                None => member
                    .assignment
                    .iter()
                    .map(|(topic, partitions)| format!("{topic}:{}", join(partitions)))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            table.row(vec![member.member_id.clone(), member.client_id.clone(), member.host.clone(), assignment]);
        }
        table.print();
    }
    println!();
    if rows.is_empty() {
        println!("No committed offsets.");
        return Ok(());
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED-OFFSET", "END-OFFSET", "LAG", "MEMBER-ID"]);
    let text = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |value| value.to_string());
    for row in &rows {
        table.row(vec![
            row.topic.clone(),
            row.partition.to_string(),
            text(row.committed),
            text(row.end),
            text(lag(row)),
            row.member.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.print();
    Ok(())
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() {
        "-"
    } else {
        text
    }
}

fn delete(admin: &mut Admin, common: &Common, group: &str) -> CliResult<()> {
    let coordinator = admin.coordinator(group)?;
    let (_, response): (i16, DeleteGroupsResponse) = admin.call(&coordinator, ApiKey::DeleteGroups, |_| {
        DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)])
    })?;
    for result in &response.results {
        if result.error_code != 0 {
            return Err(kafka_error(&coordinator, &format!("DeleteGroups {}", quoted(group)), result.error_code, None));
        }
    }
    if common.json {
        print_json(&json!({ "deleted": group }));
    } else {
        println!("deleted group {}", quoted(group));
    }
    Ok(())
}
