//! Group metadata in `__consumer_offsets` against the real `spate serve`: a group's generation,
//! leader, members and assignments come back after kill -9 (its members keep heartbeating under their
//! ids, no rebalance), a static member's takeover is stored, and committed offsets expire
//! (`offsets_retention_minutes`) only once their group is empty, tombstones surviving a restart.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::groups::*;
use common::{Broker, Client};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;

fn describe(client: &mut Client, group: &str) -> describe_groups_response::DescribedGroup {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(text(group))]);
    let response: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, 5, &request);
    response.groups.into_iter().next().expect("one group described")
}

fn listed(client: &mut Client) -> Vec<(String, String)> {
    let response: ListGroupsResponse = client.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    let mut groups: Vec<_> =
        response.groups.iter().map(|g| (g.group_id.to_string(), g.group_state.to_string())).collect();
    groups.sort();
    groups
}

/// OffsetCommit v8 of `offsets` of topic "t" by `member` at `generation` (-1 and "": outside a group).
fn commit(client: &mut Client, group: &str, generation: i32, member: &str, offsets: &[(i32, i64)]) -> Vec<i16> {
    let partitions = offsets
        .iter()
        .map(|(partition, offset)| {
            OffsetCommitRequestPartition::default().with_partition_index(*partition).with_committed_offset(*offset)
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(text(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(text("t")))
            .with_partitions(partitions)]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 8, &request);
    response.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

/// The committed offsets of partitions 0 and 1 of topic "t" (-1: none).
fn fetch(client: &mut Client, group: &str) -> Vec<i64> {
    let request = OffsetFetchRequest::default().with_group_id(GroupId(text(group))).with_topics(Some(vec![
        OffsetFetchRequestTopic::default().with_name(TopicName(text("t"))).with_partition_indexes(vec![0, 1]),
    ]));
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 5, &request);
    assert_eq!(response.error_code, 0);
    response.topics[0].partitions.iter().map(|p| p.committed_offset).collect()
}

fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stable_group_comes_back_after_kill_9_and_its_members_carry_on() {
    let mut broker = Broker::start(&["--cores", "2"]);
    let group = "survivor";
    let (mut a, mut b) = (Client::connect_port(broker.port), Client::connect_port(broker.port));
    let a_joined = a.join_new(group, &["range"]);
    let a_id = a_joined.member_id.to_string();
    // B joins: A must rejoin for the generation to form.
    let b_first = b.join(group, "", "consumer", &["range"]);
    assert_eq!(b_first.error_code, MEMBER_ID_REQUIRED);
    let b_id = b_first.member_id.to_string();
    let port = broker.port;
    let b_thread = std::thread::spawn(move || {
        let mut b = Client::connect_port(port);
        b.join(group, &b_id, "consumer", &["range"])
    });
    std::thread::sleep(Duration::from_millis(200));
    let a_rejoined = a.join(group, &a_id, "consumer", &["range"]);
    let b_joined = b_thread.join().unwrap();
    assert_eq!((a_rejoined.error_code, b_joined.error_code), (0, 0));
    let generation = a_rejoined.generation_id;
    assert_eq!(b_joined.generation_id, generation);
    let leader = a_rejoined.leader.to_string();
    let (mut leader_client, mut follower_client, follower_id) =
        if leader == a_id { (a, b, b_joined.member_id.to_string()) } else { (b, a, a_id.clone()) };
    let assignments = [(leader.as_str(), "leader-share"), (follower_id.as_str(), "follower-share")];
    assert_eq!(leader_client.sync(group, generation, &leader, &assignments).assignment, Bytes::from("leader-share"));
    assert_eq!(follower_client.sync(group, generation, &follower_id, &[]).assignment, Bytes::from("follower-share"));
    assert_eq!(commit(&mut leader_client, group, generation, &leader, &[(0, 7)]), vec![0]);

    broker.kill9();
    broker.restart();
    let mut admin = Client::connect(&broker);
    let described = describe(&mut admin, group);
    assert_eq!(described.group_state.as_str(), "Stable", "{described:?}");
    assert_eq!(described.protocol_type.as_str(), "consumer");
    assert_eq!(described.protocol_data.as_str(), "range");
    let mut members: Vec<_> = described
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.member_assignment.clone(), m.member_metadata.clone()))
        .collect();
    members.sort();
    let mut expected = vec![
        (leader.clone(), Bytes::from("leader-share"), Bytes::from("meta-range")),
        (follower_id.clone(), Bytes::from("follower-share"), Bytes::from("meta-range")),
    ];
    expected.sort();
    assert_eq!(members, expected);
    assert!(described.members.iter().all(|m| m.client_host.as_str() == "/127.0.0.1"), "{described:?}");

    // The members carry on under their ids and generation: heartbeats, commits and a SyncGroup of
    // the same generation (its assignment) all work, with no rebalance.
    let (mut leader_client, mut follower_client) =
        (Client::connect_port(broker.port), Client::connect_port(broker.port));
    assert_eq!(leader_client.heartbeat(group, generation, &leader), 0);
    assert_eq!(follower_client.heartbeat(group, generation, &follower_id), 0);
    assert_eq!(follower_client.heartbeat(group, generation - 1, &follower_id), ILLEGAL_GENERATION);
    assert_eq!(commit(&mut follower_client, group, generation, &follower_id, &[(1, 3)]), vec![0]);
    assert_eq!(fetch(&mut admin, group), vec![7, 3]);
    let resynced = follower_client.sync(group, generation, &follower_id, &[]);
    assert_eq!((resynced.error_code, resynced.assignment), (0, Bytes::from("follower-share")));

    // Restored members that fall silent time out (6 s sessions) like any other: the group empties,
    // and that is stored too.
    wait_until("the silent members time out", Duration::from_secs(20), || {
        describe(&mut admin, group).group_state.as_str() == "Empty"
    });
    broker.stop();
    broker.restart();
    let mut admin = Client::connect(&broker);
    let described = describe(&mut admin, group);
    assert_eq!((described.group_state.as_str(), described.members.len()), ("Empty", 0));
    assert_eq!(fetch(&mut admin, group), vec![7, 3]);
    // A member of the old generation is unknown now.
    let mut late = Client::connect_port(broker.port);
    assert_eq!(late.heartbeat(group, generation, &leader), UNKNOWN_MEMBER_ID);
}

#[test]
fn a_static_takeover_is_stored() {
    let mut broker = Broker::start(&["--cores", "1"]);
    let group = "static-stored";
    let mut a = Client::connect(&broker);
    let joined = a.join_as(group, "", Some("instance-a"), "consumer", &["range"]);
    let old_id = joined.member_id.to_string();
    assert_eq!(a.sync(group, 1, &old_id, &[(&old_id, "share")]).error_code, 0);
    let again = a.join_as(group, "", Some("instance-a"), "consumer", &["range"]);
    let new_id = again.member_id.to_string();
    assert_ne!(new_id, old_id);
    // The takeover is written by the group ticker (every 50 ms) and flushed; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    broker.kill9();
    broker.restart();
    let mut client = Client::connect_port(broker.port);
    let described = describe(&mut client, group);
    let ids: Vec<_> = described.members.iter().map(|m| m.member_id.to_string()).collect();
    assert_eq!(ids, vec![new_id.clone()], "{described:?}");
    assert_eq!(described.members[0].group_instance_id.as_deref(), Some("instance-a"));
    assert_eq!(client.heartbeat(group, 1, &new_id), 0);
    assert_eq!(client.heartbeat(group, 1, &old_id), UNKNOWN_MEMBER_ID);
}

#[test]
fn offsets_expire_once_their_group_is_empty_and_stay_expired_after_a_restart() {
    // 1.2 s retention, checked every 100 ms.
    let config = "offsets_retention_minutes = 0.02\noffsets_retention_check_interval_ms = 100\n";
    let mut broker = Broker::start_with_config(config, &["--cores", "2"]);
    let mut client = Client::connect_port(broker.port);
    // Outside any group: each offset expires on its own commit timestamp.
    assert_eq!(commit(&mut client, "standalone", -1, "", &[(0, 5), (1, 6)]), vec![0, 0]);
    assert_eq!(fetch(&mut client, "standalone"), vec![5, 6]);
    // A group with a member keeps its offsets past the retention time.
    let joined = client.join_new("busy", &["range"]);
    let member = joined.member_id.to_string();
    assert_eq!(client.sync("busy", joined.generation_id, &member, &[(&member, "x")]).error_code, 0);
    assert_eq!(commit(&mut client, "busy", joined.generation_id, &member, &[(0, 9)]), vec![0]);

    wait_until("the standalone offsets expire", Duration::from_secs(10), || {
        fetch(&mut client, "standalone") == vec![-1, -1]
    });
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(client.heartbeat("busy", joined.generation_id, &member), 0);
    }
    assert_eq!(fetch(&mut client, "busy"), vec![9, -1], "a group with members keeps its offsets");
    assert_eq!(listed(&mut client), vec![("busy".to_string(), "Stable".to_string())]);

    // Once empty, after the retention time, its offsets expire and the group goes.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(text("busy")))
        .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(text(&member))]);
    let left: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, 5, &leave);
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(describe(&mut client, "busy").group_state.as_str(), "Empty");
    assert_eq!(fetch(&mut client, "busy"), vec![9, -1]);
    wait_until("the empty group's offsets expire", Duration::from_secs(10), || {
        fetch(&mut client, "busy") == vec![-1, -1]
    });
    wait_until("the empty group goes", Duration::from_secs(5), || listed(&mut client).is_empty());
    assert_eq!(describe(&mut client, "busy").group_state.as_str(), "Dead");

    // The tombstones hold across kill -9.
    broker.kill9();
    broker.restart();
    let mut client = Client::connect_port(broker.port);
    assert_eq!(fetch(&mut client, "standalone"), vec![-1, -1]);
    assert_eq!(fetch(&mut client, "busy"), vec![-1, -1]);
    assert!(listed(&mut client).is_empty());
}
