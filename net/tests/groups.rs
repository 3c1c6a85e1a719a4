//! Consumer groups against the real `spate serve`: the classic protocol's error cases and
//! generations (JoinGroup with the KIP-394 member-id round trip, SyncGroup, Heartbeat, LeaveGroup,
//! session timeouts), and committed offsets that survive kill -9, with requests encoded at exact
//! versions by `kafka-protocol`.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::groups::*;
use common::{Broker, Client};
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic};
use kafka_protocol::messages::*;

#[test]
fn classic_group_protocol_generations_errors_and_session_timeout() {
    let broker = Broker::start(&["--cores", "2"]);
    let port = broker.port;
    let group = "classic";
    let mut a = Client::connect_port(port);
    let joined = a.join_new(group, &["range", "roundrobin"]);
    let a_id = joined.member_id.to_string();
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata, Bytes::from_static(b"meta-range"));

    // Bad input: another protocol type, no common protocol, unknown members, stale generations.
    let mut stranger = Client::connect_port(port);
    assert_eq!(stranger.join(group, "", "connect", &["range"]).error_code, INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(stranger.join(group, "", "consumer", &["sticky"]).error_code, INCONSISTENT_GROUP_PROTOCOL);
    assert_eq!(stranger.join(group, "nobody", "consumer", &["range"]).error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(a.heartbeat(group, 1, "nobody"), UNKNOWN_MEMBER_ID);
    assert_eq!(a.heartbeat(group, 7, &a_id), ILLEGAL_GENERATION);
    assert_eq!(a.sync(group, 7, &a_id, &[]).error_code, ILLEGAL_GENERATION);

    let synced = a.sync(group, 1, &a_id, &[(&a_id, "all-for-a")]);
    assert_eq!(synced.error_code, 0);
    assert_eq!(synced.assignment, Bytes::from_static(b"all-for-a"));
    assert_eq!(a.heartbeat(group, 1, &a_id), 0);

    // A second member joins: the group rebalances; A learns it from its heartbeat and rejoins.
    let b_thread = std::thread::spawn(move || {
        let mut b = Client::connect_port(port);
        let joined = b.join_new(group, &["roundrobin", "range"]);
        (b, joined)
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.heartbeat(group, 1, &a_id) != REBALANCE_IN_PROGRESS {
        assert!(Instant::now() < deadline, "no rebalance after a second member joined");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rejoined = a.join(group, &a_id, "consumer", &["range", "roundrobin"]);
    let (mut b, b_joined) = b_thread.join().unwrap();
    let b_id = b_joined.member_id.to_string();
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(b_joined.generation_id, 2);
    assert_eq!(rejoined.leader.to_string(), a_id, "the leader stays");
    assert_eq!(rejoined.members.len(), 2, "the leader sees every member");
    assert!(b_joined.members.is_empty(), "followers see no members");
    // One vote each for range (A) and roundrobin (B): a protocol both support.
    let protocol = rejoined.protocol_name.clone().unwrap();
    assert!(protocol.as_str() == "range" || protocol.as_str() == "roundrobin");
    assert_eq!(b_joined.protocol_name, Some(protocol));
    assert_eq!(a.heartbeat(group, 1, &a_id), ILLEGAL_GENERATION, "generation 1 is gone");

    let b_sync = std::thread::spawn(move || {
        let synced = b.sync(group, 2, &b_id, &[]);
        (b, b_id, synced)
    });
    std::thread::sleep(Duration::from_millis(200));
    let a_synced = a.sync(group, 2, &a_id, &[(&a_id, "p0"), (&b_joined.member_id.to_string(), "p1")]);
    assert_eq!(a_synced.assignment, Bytes::from_static(b"p0"));
    let (mut b, b_id, b_synced) = b_sync.join().unwrap();
    assert_eq!(b_synced.error_code, 0);
    assert_eq!(b_synced.assignment, Bytes::from_static(b"p1"), "the follower waited for the leader's assignment");
    assert_eq!(b.heartbeat(group, 2, &b_id), 0);

    // B stops heartbeating: after its 6 s session it is removed and the group rebalances without it.
    let started = Instant::now();
    loop {
        let code = a.heartbeat(group, 2, &a_id);
        if code == REBALANCE_IN_PROGRESS {
            break;
        }
        assert_eq!(code, 0);
        assert!(started.elapsed() < Duration::from_secs(15), "B was never removed");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(started.elapsed() >= Duration::from_secs(5), "removed before its session timeout");
    let alone = a.join(group, &a_id, "consumer", &["range", "roundrobin"]);
    assert_eq!(alone.generation_id, 3);
    assert_eq!(alone.members.len(), 1);
    assert_eq!(b.heartbeat(group, 3, &b_id), UNKNOWN_MEMBER_ID);

    // Batched LeaveGroup (v3+): one answer per member.
    let leave = LeaveGroupRequest::default().with_group_id(GroupId(text(group))).with_members(vec![
        MemberIdentity::default().with_member_id(text(&a_id)),
        MemberIdentity::default().with_member_id(text("nobody")),
    ]);
    let left: LeaveGroupResponse = a.call(ApiKey::LeaveGroup, 5, &leave);
    assert_eq!(left.error_code, 0);
    assert_eq!(left.members.iter().map(|m| m.error_code).collect::<Vec<_>>(), vec![0, UNKNOWN_MEMBER_ID]);
    assert_eq!(a.heartbeat(group, 3, &a_id), UNKNOWN_MEMBER_ID);
}

fn commit(client: &mut Client, group: &str, topic: &str, offsets: &[(i32, i64)], version: i16) -> Vec<i16> {
    let partitions = offsets
        .iter()
        .map(|(partition, offset)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(0)
                .with_committed_metadata(Some(text(&format!("m{partition}"))))
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(text(topic)))
            .with_partitions(partitions)]);
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, version, &request);
    response.topics.iter().flat_map(|t| t.partitions.iter().map(|p| p.error_code)).collect()
}

/// OffsetFetch v5 (one group): (partition, offset, metadata).
fn fetch_v5(client: &mut Client, group: &str, topic: &str, partitions: &[i32]) -> Vec<(i32, i64, String)> {
    let request = OffsetFetchRequest::default().with_group_id(GroupId(text(group))).with_topics(Some(vec![
        OffsetFetchRequestTopic::default()
            .with_name(TopicName(text(topic)))
            .with_partition_indexes(partitions.to_vec()),
    ]));
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 5, &request);
    assert_eq!(response.error_code, 0);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.metadata.as_deref().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn committed_offsets_survive_kill_9_and_multi_group_fetch() {
    let mut broker = Broker::start(&["--cores", "2"]);
    let mut client = Client::connect(&broker);
    // Outside any group (assign()): generation -1, no member id.
    assert_eq!(commit(&mut client, "g1", "t", &[(0, 10), (1, 20)], 8), vec![0, 0]);
    assert_eq!(commit(&mut client, "g1", "t", &[(1, 21)], 2), vec![0]);
    assert_eq!(commit(&mut client, "g2", "t", &[(0, 5)], 9), vec![0]);
    let expected = vec![(0, 10, "m0".to_string()), (1, 21, "m1".to_string()), (2, -1, String::new())];
    assert_eq!(fetch_v5(&mut client, "g1", "t", &[0, 1, 2]), expected);

    broker.kill9();
    broker.restart();
    let mut client = Client::connect(&broker);
    assert_eq!(fetch_v5(&mut client, "g1", "t", &[0, 1, 2]), expected, "committed offsets survive kill -9");
    // v8: several groups at once; a null topic list asks for everything the group committed.
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default().with_group_id(GroupId(text("g2"))).with_topics(None),
        OffsetFetchRequestGroup::default().with_group_id(GroupId(text("unknown"))).with_topics(None),
    ]);
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 8, &request);
    assert_eq!(response.groups.len(), 2);
    let g2 = &response.groups[0];
    assert_eq!(g2.error_code, 0);
    assert_eq!(g2.topics[0].name.as_str(), "t");
    assert_eq!(g2.topics[0].partitions[0].committed_offset, 5);
    assert!(response.groups[1].topics.is_empty());
    assert!(broker.data_dir().join("__consumer_offsets-0").is_dir(), "the offsets topic has 50 partitions");
    assert!(broker.data_dir().join("__consumer_offsets-49").is_dir());
}

#[test]
fn a_restarted_static_member_takes_over_without_a_rebalance() {
    let broker = Broker::start(&["--cores", "2"]);
    let group = "static";
    let mut a = Client::connect(&broker);
    // Static members need no KIP-394 round trip.
    let joined = a.join_as(group, "", Some("instance-a"), "consumer", &["range"]);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let a_id = joined.member_id.to_string();
    assert!(a_id.starts_with("instance-a-"), "{a_id}");
    assert_eq!(joined.generation_id, 1);
    let synced = a.sync(group, 1, &a_id, &[(&a_id, "a-share")]);
    assert_eq!(synced.assignment, Bytes::from_static(b"a-share"));

    // "Restart": a new connection joins with the same instance id and no member id. The group keeps
    // generation 1 and the assignment: no rebalance.
    let mut restarted = Client::connect(&broker);
    let again = restarted.join_as(group, "", Some("instance-a"), "consumer", &["range"]);
    assert_eq!(again.error_code, 0, "{again:?}");
    assert_eq!(again.generation_id, 1, "no new generation");
    assert!(again.skip_assignment, "the leader keeps its assignment");
    let new_id = again.member_id.to_string();
    assert_ne!(new_id, a_id);
    assert_eq!(again.leader.to_string(), new_id);
    let resynced = restarted.sync(group, 1, &new_id, &[]);
    assert_eq!(resynced.error_code, 0);
    assert_eq!(resynced.assignment, Bytes::from_static(b"a-share"));
    assert_eq!(restarted.heartbeat(group, 1, &new_id), 0);

    // The old member id is fenced.
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id(1)
        .with_member_id(text(&a_id))
        .with_group_instance_id(Some(text("instance-a")));
    let fenced: HeartbeatResponse = a.call(ApiKey::Heartbeat, 4, &request);
    assert_eq!(fenced.error_code, FENCED_INSTANCE_ID);
    assert_eq!(a.join_as(group, &a_id, Some("instance-a"), "consumer", &["range"]).error_code, FENCED_INSTANCE_ID);

    // Leaving by instance id alone (KIP-345 batched leave).
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_members(vec![MemberIdentity::default().with_group_instance_id(Some(text("instance-a")))]);
    let left: LeaveGroupResponse = restarted.call(ApiKey::LeaveGroup, 4, &leave);
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(left.members[0].member_id.to_string(), new_id);
    assert_eq!(restarted.heartbeat(group, 1, &new_id), UNKNOWN_MEMBER_ID);
}

#[test]
fn forty_members_join_and_sync_through_both_shards() {
    // Connections land on either shard (SO_REUSEPORT); those on the other shard than the group's
    // coordinator are parked there and woken, the rest wait in place. Every member must end up in
    // one generation with its own share.
    let broker = Broker::start(&["--cores", "2"]);
    let group = "forty";
    let port = broker.port;
    let members: Vec<_> = (0..40)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = Client::connect_port(port);
                let joined = client.join_new(group, &["range"]);
                let id = joined.member_id.to_string();
                let assignments: Vec<(String, String)> = joined
                    .members
                    .iter()
                    .map(|m| (m.member_id.to_string(), format!("share-{}", m.member_id)))
                    .collect();
                let borrowed: Vec<(&str, &str)> = assignments.iter().map(|(m, a)| (m.as_str(), a.as_str())).collect();
                let synced = client.sync(group, joined.generation_id, &id, &borrowed);
                (id, joined.generation_id, joined.leader.to_string(), joined.members.len(), synced)
            })
        })
        .collect();
    let results: Vec<_> = members.into_iter().map(|m| m.join().unwrap()).collect();
    let generation = results[0].1;
    let leader = results[0].2.clone();
    for (id, member_generation, member_leader, listed, synced) in &results {
        assert_eq!((*member_generation, member_leader), (generation, &leader), "{id}");
        assert_eq!(*listed, if *id == leader { 40 } else { 0 });
        assert_eq!(synced.error_code, 0, "{id}");
        assert_eq!(synced.assignment, Bytes::from(format!("share-{id}")));
    }
}
