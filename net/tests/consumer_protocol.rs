//! The new consumer group protocol (KIP-848) against the real `spate serve`, with raw frames:
//! joining with ConsumerGroupHeartbeat, server-side assignment, partitions that move to a new
//! member only after their owner revoked them, leaving, epoch fencing, unknown members, static
//! members, the range assignor, new partitions, session timeouts, ConsumerGroupDescribe, and
//! OffsetCommit / OffsetFetch v9 member epochs.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Broker, Client};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNRELEASED_INSTANCE_ID: i16 = 111;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;
const INVALID_REGULAR_EXPRESSION: i16 = 128;

/// Short timeouts so that a session expiry is quick to observe.
const CONFIG: &str = "group_consumer_session_timeout_ms = 1500\ngroup_consumer_heartbeat_interval_ms = 300\n";

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

type Partitions = BTreeSet<i32>;

fn create(client: &mut Client, topic: &str, partitions: i32) -> Uuid {
    let topic = CreatableTopic::default()
        .with_name(TopicName(text(topic)))
        .with_num_partitions(partitions)
        .with_replication_factor(1);
    let response: CreateTopicsResponse =
        client.call(ApiKey::CreateTopics, 7, &CreateTopicsRequest::default().with_topics(vec![topic]));
    assert_eq!(response.topics[0].error_code, 0);
    response.topics[0].topic_id
}

/// One member's side of the protocol.
struct Member {
    client: Client,
    group: String,
    id: String,
    epoch: i32,
    topic: Uuid,
    /// What the member owns (the last assignment it got).
    owned: Partitions,
}

impl Member {
    fn new(port: u16, group: &str, id: &str, topic: Uuid) -> Member {
        let client = Client::connect_with_read_timeout(port, Duration::from_secs(10));
        Member { client, group: group.into(), id: id.into(), epoch: 0, topic, owned: Partitions::new() }
    }

    fn request(&self, epoch: i32) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_member_id(text(&self.id))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(-1)
    }

    fn send(&mut self, request: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
        let response: ConsumerGroupHeartbeatResponse = self.client.call(ApiKey::ConsumerGroupHeartbeat, 1, &request);
        if response.error_code == 0 {
            self.epoch = response.member_epoch;
            if let Some(assignment) = &response.assignment {
                self.owned = assignment
                    .topic_partitions
                    .iter()
                    .filter(|t| t.topic_id == self.topic)
                    .flat_map(|t| t.partitions.iter().copied())
                    .collect();
            }
        }
        response
    }

    fn join_with(
        &mut self,
        topics: &[&str],
        assignor: Option<&str>,
        instance: Option<&str>,
    ) -> ConsumerGroupHeartbeatResponse {
        let request = self
            .request(0)
            .with_rebalance_timeout_ms(5000)
            .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(text(t))).collect()))
            .with_server_assignor(assignor.map(text))
            .with_instance_id(instance.map(text))
            .with_topic_partitions(Some(vec![]));
        self.send(request)
    }

    fn join(&mut self, topics: &[&str]) -> ConsumerGroupHeartbeatResponse {
        let response = self.join_with(topics, None, None);
        assert_eq!(response.error_code, 0, "{response:?}");
        response
    }

    /// A heartbeat reporting what the member owns.
    fn beat(&mut self) -> ConsumerGroupHeartbeatResponse {
        let owned =
            TopicPartitions::default().with_topic_id(self.topic).with_partitions(self.owned.iter().copied().collect());
        let request = self.request(self.epoch).with_topic_partitions(Some(vec![owned]));
        let response = self.send(request);
        assert_eq!(response.error_code, 0, "{} heartbeat: {response:?}", self.id);
        response
    }

    fn leave(&mut self, epoch: i32) -> ConsumerGroupHeartbeatResponse {
        let request = self.request(epoch).with_instance_id(None);
        self.client.call(ApiKey::ConsumerGroupHeartbeat, 1, &request)
    }

    fn commit(&mut self, epoch: i32, offset: i64, topic: &str) -> i16 {
        let partition = OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(offset);
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_generation_id_or_member_epoch(epoch)
            .with_member_id(text(&self.id))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(text(topic)))
                .with_partitions(vec![partition])]);
        let response: OffsetCommitResponse = self.client.call(ApiKey::OffsetCommit, 9, &request);
        response.topics[0].partitions[0].error_code
    }

    /// OffsetFetch v9 of partition 0: (group error, committed offset).
    fn fetch(&mut self, epoch: i32, topic: &str) -> (i16, i64) {
        let group = OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text(&self.group)))
            .with_member_id(Some(text(&self.id)))
            .with_member_epoch(epoch)
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(text(topic)))
                .with_partition_indexes(vec![0])]));
        let response: OffsetFetchResponse =
            self.client.call(ApiKey::OffsetFetch, 9, &OffsetFetchRequest::default().with_groups(vec![group]));
        let group = &response.groups[0];
        let offset = group.topics.first().map_or(-1, |t| t.partitions[0].committed_offset);
        (group.error_code, offset)
    }
}

fn describe(client: &mut Client, group: &str) -> consumer_group_describe_response::DescribedGroup {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(text(group))]);
    let response: ConsumerGroupDescribeResponse = client.call(ApiKey::ConsumerGroupDescribe, 1, &request);
    response.groups.into_iter().next().expect("one group")
}

fn all(range: std::ops::Range<i32>) -> Partitions {
    range.collect()
}

#[test]
fn members_join_partitions_move_after_revocation_and_members_leave() {
    let broker = Broker::start_with_config(CONFIG, &["--cores", "2"]);
    let mut admin = Client::connect(&broker);
    let topic = create(&mut admin, "orders", 6);
    let group = "kip848";

    let mut a = Member::new(broker.port, group, "member-a", topic);
    let joined = a.join(&["orders"]);
    assert_eq!(joined.member_id.as_deref(), Some("member-a"));
    assert_eq!((joined.member_epoch, joined.heartbeat_interval_ms), (1, 300));
    assert_eq!(a.owned, all(0..6), "the only member gets every partition");
    assert!(a.beat().assignment.is_none(), "an unchanged assignment is not repeated");

    // B joins: the target splits 3/3, but B gets nothing while A still owns the partitions.
    let mut b = Member::new(broker.port, group, "member-b", topic);
    b.join(&["orders"]);
    assert_eq!(b.epoch, 2);
    assert!(b.owned.is_empty(), "A has not revoked anything yet: {:?}", b.owned);
    let revoking = a.beat();
    assert_eq!(revoking.member_epoch, 1, "A keeps its epoch until it revokes");
    let kept = a.owned.clone();
    assert_eq!(kept.len(), 3, "A must give up three partitions: {kept:?}");
    b.beat();
    assert!(b.owned.is_empty(), "still unreleased: A has not acknowledged: {:?}", b.owned);
    let described = describe(&mut admin, group);
    assert_eq!((described.error_code, described.group_state.as_str()), (0, "Reconciling"));
    // A acknowledges (it reports only what it kept): it moves to epoch 2 and B gets the rest.
    assert_eq!(a.beat().member_epoch, 2);
    b.beat();
    assert_eq!(b.owned.len(), 3);
    assert!(b.owned.is_disjoint(&a.owned));
    assert_eq!(b.owned.union(&a.owned).copied().collect::<Partitions>(), all(0..6));
    b.beat();

    let described = describe(&mut admin, group);
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!((described.group_epoch, described.assignment_epoch), (2, 2));
    assert_eq!(described.assignor_name.as_str(), "uniform");
    assert_eq!(described.members.len(), 2);
    for member in &described.members {
        assert_eq!(member.member_epoch, 2);
        assert_eq!(member.client_id.as_str(), common::CLIENT_ID);
        assert_eq!(member.subscribed_topic_names, vec![TopicName(text("orders"))]);
        assert_eq!(member.assignment, member.target_assignment);
        assert_eq!(member.assignment.topic_partitions[0].topic_name.as_str(), "orders");
    }
    let listed: ListGroupsResponse = admin.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default());
    let row = listed.groups.iter().find(|g| g.group_id.as_str() == group).expect("listed");
    assert_eq!(
        (row.group_type.as_str(), row.protocol_type.as_str(), row.group_state.as_str()),
        ("consumer", "consumer", "Stable")
    );
    let classic: DescribeGroupsResponse = admin.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(text(group))]),
    );
    assert_eq!(classic.groups[0].group_state.as_str(), "Dead", "DescribeGroups is for classic groups");
    assert_eq!(describe(&mut admin, "nothing-here").error_code, GROUP_ID_NOT_FOUND);

    // Epochs: newer is fenced, the previous one with owned partitions inside the assignment is the
    // lost-answer case and accepted; unknown members and groups.
    let mut stale = a.request(7);
    assert_eq!(a.send(stale.clone()).error_code, FENCED_MEMBER_EPOCH);
    stale.member_epoch = 1;
    stale.topic_partitions =
        Some(vec![TopicPartitions::default().with_topic_id(topic).with_partitions(a.owned.iter().copied().collect())]);
    assert_eq!(a.send(stale).member_epoch, 2, "previous epoch, owned within the assignment");
    let mut nobody = Member::new(broker.port, group, "nobody", topic);
    nobody.epoch = 2;
    assert_eq!(nobody.send(nobody.request(2)).error_code, UNKNOWN_MEMBER_ID);
    let mut lost = Member::new(broker.port, "no-such-group", "x", topic);
    assert_eq!(lost.send(lost.request(3)).error_code, UNKNOWN_MEMBER_ID);

    // Bad requests.
    assert_eq!(
        nobody.send(nobody.request(0).with_topic_partitions(Some(vec![]))).error_code,
        INVALID_REQUEST,
        "no subscription"
    );
    let mut anonymous = Member::new(broker.port, group, "", topic);
    assert_eq!(anonymous.join_with(&["orders"], None, None).error_code, INVALID_REQUEST, "v1 needs a member id");
    assert_eq!(nobody.join_with(&["orders"], Some("sticky"), None).error_code, UNSUPPORTED_ASSIGNOR);
    assert_eq!(nobody.send(nobody.request(-5)).error_code, INVALID_REQUEST);

    // OffsetCommit / OffsetFetch v9 check the member epoch.
    assert_eq!(a.commit(2, 42, "orders"), 0);
    assert_eq!(a.commit(1, 43, "orders"), STALE_MEMBER_EPOCH);
    assert_eq!(nobody.commit(2, 44, "orders"), UNKNOWN_MEMBER_ID);
    assert_eq!(a.fetch(2, "orders"), (0, 42));
    assert_eq!(a.fetch(5, "orders").0, STALE_MEMBER_EPOCH);
    assert_eq!(nobody.fetch(2, "orders").0, UNKNOWN_MEMBER_ID);

    // A classic member cannot join a consumer group.
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(1000)
        .with_member_id(text(""))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(text("range"))]);
    let joined: JoinGroupResponse = admin.call(ApiKey::JoinGroup, 9, &join);
    assert_eq!(joined.error_code, INCONSISTENT_GROUP_PROTOCOL);

    // A leaves: its partitions go to B at once (A no longer holds them).
    let left = a.leave(-1);
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    b.beat();
    assert_eq!((b.epoch, b.owned.clone()), (3, all(0..6)));

    // New partitions of a subscribed topic are picked up on the next heartbeat.
    let grow =
        CreatePartitionsTopic::default().with_name(TopicName(text("orders"))).with_count(8).with_assignments(None);
    let grown: CreatePartitionsResponse = admin.call(
        ApiKey::CreatePartitions,
        3,
        &CreatePartitionsRequest::default().with_topics(vec![grow]).with_timeout_ms(5000),
    );
    assert_eq!(grown.results[0].error_code, 0);
    b.beat();
    assert_eq!((b.epoch, b.owned.clone()), (4, all(0..8)));

    // B stops heartbeating: the session timeout removes it, and the group is Empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    while describe(&mut admin, group).group_state.as_str() != "Empty" {
        assert!(Instant::now() < deadline, "B was not removed: {:?}", describe(&mut admin, group));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(describe(&mut admin, group).members.is_empty());
    let expired = b.send(b.request(4));
    assert_eq!(expired.error_code, UNKNOWN_MEMBER_ID);
    // An empty consumer group can be deleted (with its offsets).
    let deleted: DeleteGroupsResponse = admin.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text(group))]),
    );
    assert_eq!(deleted.results[0].error_code, 0);
    assert_eq!(describe(&mut admin, group).error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn range_assignor_static_members_server_ids_and_classic_groups() {
    let broker = Broker::start_with_config(CONFIG, &["--cores", "2"]);
    let mut admin = Client::connect(&broker);
    let topic = create(&mut admin, "events", 4);

    // Range: consecutive partitions, in member id order.
    let mut a = Member::new(broker.port, "ranged", "a", topic);
    let mut b = Member::new(broker.port, "ranged", "b", topic);
    assert_eq!(a.join_with(&["events"], Some("range"), Some("static-a")).error_code, 0);
    assert_eq!(b.join_with(&["events"], Some("range"), None).error_code, 0);
    a.beat();
    a.beat();
    b.beat();
    assert_eq!((a.owned.clone(), b.owned.clone()), (all(0..2), all(2..4)));
    assert_eq!(describe(&mut admin, "ranged").assignor_name.as_str(), "range");

    // A static member's instance id is taken while it is in the group...
    let mut again = Member::new(broker.port, "ranged", "a-restarted", topic);
    assert_eq!(again.join_with(&["events"], Some("range"), Some("static-a")).error_code, UNRELEASED_INSTANCE_ID);
    // ...and after a static leave (-2) the new incarnation takes over its partitions at once.
    let left = a.send(a.request(a.epoch).with_instance_id(Some(text("static-a"))).with_member_epoch(-2));
    assert_eq!((left.error_code, left.member_epoch), (0, -2));
    let rejoined = again.join_with(&["events"], Some("range"), Some("static-a"));
    assert_eq!(rejoined.error_code, 0, "{rejoined:?}");
    assert_eq!(again.owned, all(0..2));
    assert!(again.epoch > 0);

    // A regex subscription (v1) matches whole topic names, never internal topics.
    let mut by_regex = Member::new(broker.port, "regex", "r", topic);
    let request = by_regex
        .request(0)
        .with_rebalance_timeout_ms(5000)
        .with_subscribed_topic_regex(Some(text("ev.*|__.*")))
        .with_topic_partitions(Some(vec![]));
    let response = by_regex.send(request.clone());
    assert_eq!(response.error_code, 0, "{response:?}");
    assert_eq!(by_regex.owned, all(0..4));
    let described = describe(&mut admin, "regex");
    assert_eq!(described.members[0].assignment.topic_partitions.len(), 1, "only events: {described:?}");
    let mut bad = Member::new(broker.port, "regex", "bad", topic);
    assert_eq!(
        bad.send(request.with_member_id(text("bad")).with_subscribed_topic_regex(Some(text("(")))).error_code,
        INVALID_REGULAR_EXPRESSION
    );

    // v0: an empty member id gets one from the coordinator.
    let mut v0 = Member::new(broker.port, "server-ids", "", topic);
    let request = v0
        .request(0)
        .with_rebalance_timeout_ms(5000)
        .with_subscribed_topic_names(Some(vec![TopicName(text("events"))]))
        .with_topic_partitions(Some(vec![]));
    let response: ConsumerGroupHeartbeatResponse = v0.client.call(ApiKey::ConsumerGroupHeartbeat, 0, &request);
    assert_eq!(response.error_code, 0);
    assert!(response.member_id.as_ref().is_some_and(|id| !id.is_empty()));

    // A classic group with members keeps its id from consumer-protocol members.
    let mut classic = Client::connect_with_read_timeout(broker.port, Duration::from_secs(30));
    let mut join = JoinGroupRequest::default()
        .with_group_id(GroupId(text("old-style")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(1000)
        .with_member_id(text(""))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(text("range"))]);
    let first: JoinGroupResponse = classic.call(ApiKey::JoinGroup, 9, &join);
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    join.member_id = first.member_id;
    let second: JoinGroupResponse = classic.call(ApiKey::JoinGroup, 9, &join);
    assert_eq!(second.error_code, 0);
    let mut intruder = Member::new(broker.port, "old-style", "intruder", topic);
    assert_eq!(intruder.join_with(&["events"], None, None).error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(describe(&mut admin, "old-style").error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn after_a_restart_members_rejoin_and_committed_offsets_remain() {
    let mut broker = Broker::start_with_config(CONFIG, &["--cores", "2"]);
    let mut admin = Client::connect(&broker);
    let topic = create(&mut admin, "kept", 2);
    let mut member = Member::new(broker.port, "durable", "m", topic);
    member.join(&["kept"]);
    assert_eq!(member.commit(member.epoch, 7, "kept"), 0);
    broker.stop();
    broker.restart();
    // Membership is memory only: the member is unknown and rejoins at epoch 0; its offsets stayed.
    let mut member = Member::new(broker.port, "durable", "m", topic);
    assert_eq!(member.send(member.request(1)).error_code, UNKNOWN_MEMBER_ID);
    member.join(&["kept"]);
    assert_eq!((member.epoch, member.owned.clone()), (1, all(0..2)));
    assert_eq!(member.fetch(1, "kept"), (0, 7));
}
