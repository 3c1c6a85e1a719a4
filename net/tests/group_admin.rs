//! The group admin APIs against the real `spate serve`: ListGroups (state and type filters),
//! DescribeGroups (members with their metadata and assignment bytes; unknown groups are Dead),
//! DeleteGroups and OffsetDelete with their error codes, and deletions that stay deleted after a
//! restart (tombstones in `__consumer_offsets`).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Broker, Client, CLIENT_ID};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const MEMBER_ID_REQUIRED: i16 = 79;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn create(client: &mut Client, topic: &str, partitions: i32) {
    let topic = CreatableTopic::default()
        .with_name(TopicName(text(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1);
    let response: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic]));
    assert_eq!(response.topics[0].error_code, 0);
}

/// A `consumer` protocol subscription (v0) to `topics`, as Kafka's clients send it.
fn subscription(topics: &[&str]) -> Bytes {
    let mut out = vec![0, 0];
    out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for topic in topics {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
    }
    out.extend_from_slice(&(-1i32).to_be_bytes());
    Bytes::from(out)
}

/// Joins `group` alone (KIP-394 round trip) and syncs `assignment`: (member id, generation).
fn join_and_sync(client: &mut Client, group: &str, metadata: &Bytes, assignment: &Bytes) -> (String, i32) {
    let join = |client: &mut Client, member: &str| -> JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(500)
            .with_member_id(text(member))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(metadata.clone())]);
        client.call(ApiKey::JoinGroup, 9, &request)
    };
    let first = join(client, "");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let joined = join(client, first.member_id.as_str());
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let member = joined.member_id.to_string();
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(text(&member))
        .with_protocol_type(Some(text("consumer")))
        .with_protocol_name(Some(text("range")))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(text(&member))
            .with_assignment(assignment.clone())]);
    let synced: SyncGroupResponse = client.call(ApiKey::SyncGroup, 5, &request);
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment, assignment);
    (member, joined.generation_id)
}

/// OffsetCommit v8 of `offsets` ((topic, partition, offset)) as `member` of `generation`.
fn commit(client: &mut Client, group: &str, generation: i32, member: &str, offsets: &[(&str, i32, i64)]) {
    let topics = offsets
        .iter()
        .map(|(topic, partition, offset)| {
            OffsetCommitRequestTopic::default().with_name(TopicName(text(topic))).with_partitions(vec![
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(text(""))),
            ])
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(text(member))
        .with_topics(topics);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    for topic in &response.topics {
        assert!(topic.partitions.iter().all(|p| p.error_code == 0), "{response:?}");
    }
}

/// Every committed offset of `group`, sorted: (topic, partition, offset).
fn committed(client: &mut Client, group: &str) -> Vec<(String, i32, i64)> {
    let request = OffsetFetchRequest::default()
        .with_groups(vec![OffsetFetchRequestGroup::default().with_group_id(GroupId(text(group))).with_topics(None)]);
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 8, &request);
    assert_eq!(response.groups[0].error_code, 0);
    let mut offsets: Vec<(String, i32, i64)> = response.groups[0]
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index, p.committed_offset)))
        .collect();
    offsets.sort();
    offsets
}

/// ListGroups at `version`: (group, protocol type, state, type), sorted by group.
fn list(client: &mut Client, version: i16, states: &[&str], types: &[&str]) -> Vec<(String, String, String, String)> {
    let request = ListGroupsRequest::default()
        .with_states_filter(states.iter().map(|s| text(s)).collect())
        .with_types_filter(types.iter().map(|s| text(s)).collect());
    let response: ListGroupsResponse = client.call(ApiKey::ListGroups, version, &request);
    assert_eq!(response.error_code, 0);
    let mut groups: Vec<_> = response
        .groups
        .iter()
        .map(|g| {
            (g.group_id.to_string(), g.protocol_type.to_string(), g.group_state.to_string(), g.group_type.to_string())
        })
        .collect();
    groups.sort();
    groups
}

fn describe(client: &mut Client, version: i16, groups: &[&str]) -> Vec<describe_groups_response::DescribedGroup> {
    let request = DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| GroupId(text(g))).collect());
    let response: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, version, &request);
    assert_eq!(response.groups.len(), groups.len());
    response.groups
}

fn delete_groups(client: &mut Client, version: i16, groups: &[&str]) -> Vec<(String, i16)> {
    let request = DeleteGroupsRequest::default().with_groups_names(groups.iter().map(|g| GroupId(text(g))).collect());
    let response: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, version, &request);
    response.results.iter().map(|r| (r.group_id.to_string(), r.error_code)).collect()
}

/// OffsetDelete: (top-level error, [(topic, partition, error)]).
fn delete_offsets(client: &mut Client, group: &str, parts: &[(&str, i32)]) -> (i16, Vec<(String, i32, i16)>) {
    let topics = parts
        .iter()
        .map(|(topic, partition)| {
            OffsetDeleteRequestTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(*partition)])
        })
        .collect();
    let request = OffsetDeleteRequest::default().with_group_id(GroupId(text(group))).with_topics(topics);
    let response: OffsetDeleteResponse = client.call(ApiKey::OffsetDelete, 0, &request);
    let parts = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.to_string(), p.partition_index, p.error_code)))
        .collect();
    (response.error_code, parts)
}

fn row(group: &str, protocol_type: &str, state: &str) -> (String, String, String, String) {
    (group.to_string(), protocol_type.to_string(), state.to_string(), "classic".to_string())
}

/// A ListGroups v4 row: no group type yet.
fn row4(group: &str, protocol_type: &str, state: &str) -> (String, String, String, String) {
    (group.to_string(), protocol_type.to_string(), state.to_string(), String::new())
}

fn s(value: &str) -> String {
    value.to_string()
}

#[test]
fn list_describe_delete_groups_and_offsets_and_deletions_survive_restarts() {
    let mut broker = Broker::start(&["--cores", "2"]);
    let mut client = Client::connect_with_read_timeout(broker.port, Duration::from_secs(30));
    create(&mut client, "t", 2);
    create(&mut client, "other", 1);
    // Groups of assign() consumers: only committed offsets, no members.
    commit(&mut client, "assigned-a", -1, "", &[("t", 0, 5), ("t", 1, 6)]);
    commit(&mut client, "assigned-b", -1, "", &[("t", 0, 7), ("t", 1, 8), ("other", 0, 9)]);
    // A live consumer group subscribed to "t", which also committed an offset of "other".
    let metadata = subscription(&["t"]);
    let assignment = Bytes::from_static(b"\x00\x00assignment-bytes");
    let (member, generation) = join_and_sync(&mut client, "live", &metadata, &assignment);
    commit(&mut client, "live", generation, &member, &[("t", 0, 1), ("other", 0, 2)]);

    // ListGroups: every group on every shard; v4 filters states, v5 types (case-insensitive).
    let everything =
        vec![row("assigned-a", "", "Empty"), row("assigned-b", "", "Empty"), row("live", "consumer", "Stable")];
    assert_eq!(list(&mut client, 5, &[], &[]), everything);
    assert_eq!(list(&mut client, 5, &[], &["CLASSIC"]), everything);
    assert!(list(&mut client, 5, &[], &["consumer"]).is_empty());
    assert_eq!(list(&mut client, 4, &["stable"], &[]), vec![row4("live", "consumer", "Stable")]);
    assert_eq!(list(&mut client, 4, &["Empty", "Dead"], &[]).len(), 2);
    let v0: Vec<(String, String)> = list(&mut client, 0, &[], &[]).into_iter().map(|(g, t, _, _)| (g, t)).collect();
    assert_eq!(v0, vec![(s("assigned-a"), s("")), (s("assigned-b"), s("")), (s("live"), s("consumer"))]);

    // DescribeGroups: members with the bytes they sent and received; unknown groups are Dead.
    for version in [0, 3, 5, 6] {
        let groups = describe(&mut client, version, &["live", "assigned-a", "nope"]);
        let live = &groups[0];
        assert_eq!((live.error_code, live.group_state.as_str()), (0, "Stable"), "v{version}");
        assert_eq!((live.protocol_type.as_str(), live.protocol_data.as_str()), ("consumer", "range"));
        assert_eq!(live.members.len(), 1);
        let described = &live.members[0];
        assert_eq!(described.member_id.as_str(), member);
        assert_eq!(described.client_id.as_str(), CLIENT_ID);
        assert_eq!(described.member_metadata, metadata);
        assert_eq!(described.member_assignment, assignment);
        assert_eq!(described.group_instance_id, None);
        if version >= 3 {
            assert_eq!(live.authorized_operations, i32::MIN);
        }
        let assigned = &groups[1];
        assert_eq!(
            (assigned.error_code, assigned.group_state.as_str(), assigned.protocol_type.as_str()),
            (0, "Empty", "")
        );
        assert!(assigned.members.is_empty());
        let nope = &groups[2];
        assert_eq!((nope.error_code, nope.group_state.as_str(), nope.group_id.as_str()), (0, "Dead", "nope"));
    }

    // OffsetDelete: subscribed topics of a live consumer group stay; unknown topics and groups.
    let (code, parts) = delete_offsets(&mut client, "live", &[("t", 0), ("other", 0), ("missing", 0)]);
    assert_eq!(code, 0);
    assert_eq!(
        parts,
        vec![(s("t"), 0, GROUP_SUBSCRIBED_TO_TOPIC), (s("other"), 0, 0), (s("missing"), 0, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    assert_eq!(committed(&mut client, "live"), vec![(s("t"), 0, 1)]);
    assert_eq!(delete_offsets(&mut client, "nope", &[("t", 0)]).0, GROUP_ID_NOT_FOUND);
    // An empty group loses any offsets asked (one without a committed offset is fine too).
    let (code, parts) = delete_offsets(&mut client, "assigned-b", &[("t", 0), ("other", 0)]);
    assert_eq!((code, parts), (0, vec![(s("t"), 0, 0), (s("other"), 0, 0)]));
    assert_eq!(committed(&mut client, "assigned-b"), vec![(s("t"), 1, 8)]);

    // DeleteGroups: members block it; unknown groups are not found.
    assert_eq!(
        delete_groups(&mut client, 2, &["live", "assigned-a", "nope"]),
        vec![(s("live"), NON_EMPTY_GROUP), (s("assigned-a"), 0), (s("nope"), GROUP_ID_NOT_FOUND)]
    );
    assert!(committed(&mut client, "assigned-a").is_empty());
    assert_eq!(describe(&mut client, 5, &["assigned-a"])[0].group_state.as_str(), "Dead");
    // Once its last member left, the group is Empty and can go.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(text("live")))
        .with_members(vec![MemberIdentity::default().with_member_id(text(&member))]);
    let left: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, 5, &leave);
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(
        list(&mut client, 4, &[], &[]),
        vec![row4("assigned-b", "", "Empty"), row4("live", "consumer", "Empty")]
    );
    assert_eq!(delete_groups(&mut client, 0, &["live"]), vec![(s("live"), 0)]);
    assert_eq!(delete_groups(&mut client, 1, &["live"]), vec![(s("live"), GROUP_ID_NOT_FOUND)]);
    assert!(committed(&mut client, "live").is_empty());

    // After a restart (kill -9 even: tombstones are flushed before the answer) nothing comes back.
    for stop in ["kill -9", "SIGTERM"] {
        if stop == "kill -9" {
            broker.kill9();
        } else {
            broker.stop();
        }
        broker.restart();
        let mut client = Client::connect(&broker);
        assert_eq!(list(&mut client, 5, &[], &[]), vec![row("assigned-b", "", "Empty")], "after {stop}");
        assert!(committed(&mut client, "live").is_empty());
        assert!(committed(&mut client, "assigned-a").is_empty());
        assert_eq!(committed(&mut client, "assigned-b"), vec![(s("t"), 1, 8)]);
        assert_eq!(describe(&mut client, 6, &["live"])[0].group_state.as_str(), "Dead");
    }
}
