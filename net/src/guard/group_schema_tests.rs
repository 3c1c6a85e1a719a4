//! Round trips of the group API schemas against `kafka-protocol`'s encoders: for every version the
//! handlers accept, the walk of a crate-encoded body consumes exactly the bytes the crate wrote.

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;

use super::tests::{assert_encoded_walks, text};
use super::*;

#[test]
fn join_sync_heartbeat_leave() {
    for version in 0..=9 {
        let mut request = JoinGroupRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_session_timeout_ms(10_000)
            .with_member_id(text("m"))
            .with_protocol_type(text("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default().with_name(text("range")).with_metadata(Bytes::from_static(b"x")),
                JoinGroupRequestProtocol::default().with_name(text("rr")).with_metadata(Bytes::new()),
            ]);
        if version >= 1 {
            request = request.with_rebalance_timeout_ms(30_000);
        }
        if version >= 5 {
            request = request.with_group_instance_id(Some(text("i")));
        }
        if version >= 8 {
            request = request.with_reason(Some(text("why")));
        }
        assert_encoded_walks(&JOIN_GROUP, version, &request);
    }
    for version in 0..=5 {
        let mut request = SyncGroupRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_generation_id(3)
            .with_member_id(text("m"))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(text("m"))
                .with_assignment(Bytes::from_static(b"abc"))]);
        if version >= 3 {
            request = request.with_group_instance_id(Some(text("i")));
        }
        if version >= 5 {
            request = request.with_protocol_type(Some(text("consumer"))).with_protocol_name(Some(text("range")));
        }
        assert_encoded_walks(&SYNC_GROUP, version, &request);
    }
    for version in 0..=4 {
        let mut request = HeartbeatRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_generation_id(1)
            .with_member_id(text("m"));
        if version >= 3 {
            request = request.with_group_instance_id(Some(text("i")));
        }
        assert_encoded_walks(&HEARTBEAT, version, &request);
    }
    for version in 0..=5 {
        let mut request = LeaveGroupRequest::default().with_group_id(GroupId(text("g")));
        if version <= 2 {
            request = request.with_member_id(text("m"));
        } else {
            let mut member =
                MemberIdentity::default().with_member_id(text("m")).with_group_instance_id(Some(text("i")));
            if version >= 5 {
                member = member.with_reason(Some(text("bye")));
            }
            request = request.with_members(vec![member, MemberIdentity::default().with_member_id(text("n"))]);
        }
        assert_encoded_walks(&LEAVE_GROUP, version, &request);
    }
}

#[test]
fn offset_commit_and_fetch() {
    for version in 2..=9 {
        let mut partition = OffsetCommitRequestPartition::default()
            .with_partition_index(1)
            .with_committed_offset(42)
            .with_committed_metadata(Some(text("meta")));
        if version >= 6 {
            partition = partition.with_committed_leader_epoch(0);
        }
        let mut request = OffsetCommitRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(text(""))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(text("t")))
                .with_partitions(vec![partition.clone(), partition.with_partition_index(2)])]);
        if version <= 4 {
            request = request.with_retention_time_ms(-1);
        }
        if version >= 7 {
            request = request.with_group_instance_id(Some(text("i")));
        }
        assert_encoded_walks(&OFFSET_COMMIT, version, &request);
    }
    for version in 1..=9 {
        let request = if version <= 7 {
            let request = OffsetFetchRequest::default().with_group_id(GroupId(text("g"))).with_topics(Some(vec![
                OffsetFetchRequestTopic::default().with_name(TopicName(text("t"))).with_partition_indexes(vec![0, 1]),
            ]));
            let all = OffsetFetchRequest::default().with_group_id(GroupId(text("g"))).with_topics(None);
            if version >= 2 {
                assert_encoded_walks(&OFFSET_FETCH, version, &all);
            }
            if version >= 7 {
                request.with_require_stable(true)
            } else {
                request
            }
        } else {
            let mut group =
                OffsetFetchRequestGroup::default().with_group_id(GroupId(text("g"))).with_topics(Some(vec![
                    OffsetFetchRequestTopics::default().with_name(TopicName(text("t"))).with_partition_indexes(vec![3]),
                ]));
            if version >= 9 {
                group = group.with_member_id(Some(text("m"))).with_member_epoch(2);
            }
            let all = OffsetFetchRequestGroup::default().with_group_id(GroupId(text("h"))).with_topics(None);
            OffsetFetchRequest::default().with_groups(vec![group, all])
        };
        assert_encoded_walks(&OFFSET_FETCH, version, &request);
    }
}

#[test]
fn group_admin_apis() {
    for version in 0..=5 {
        let mut request = ListGroupsRequest::default();
        if version >= 4 {
            request = request.with_states_filter(vec![text("Stable"), text("Empty")]);
        }
        if version >= 5 {
            request = request.with_types_filter(vec![text("classic")]);
        }
        if version <= 2 {
            // No fields at all: an empty body.
            assert_eq!(crate::guard::check_body(&LIST_GROUPS, version, &[]), Ok(0));
            continue;
        }
        assert_encoded_walks(&LIST_GROUPS, version, &request);
    }
    for version in 0..=6 {
        let request = DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(text("g")), GroupId(text("h"))])
            .with_include_authorized_operations(version >= 3);
        assert_encoded_walks(&DESCRIBE_GROUPS, version, &request);
    }
    for version in 0..=2 {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(text("g")), GroupId(text("h"))]);
        assert_encoded_walks(&DELETE_GROUPS, version, &request);
    }
    let request = OffsetDeleteRequest::default().with_group_id(GroupId(text("g"))).with_topics(vec![
        OffsetDeleteRequestTopic::default().with_name(TopicName(text("t"))).with_partitions(vec![
            OffsetDeleteRequestPartition::default().with_partition_index(0),
            OffsetDeleteRequestPartition::default().with_partition_index(3),
        ]),
    ]);
    assert_encoded_walks(&OFFSET_DELETE, 0, &request);
}

#[test]
fn consumer_group_heartbeat_and_describe() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    for version in 0..=1 {
        let owned = TopicPartitions::default().with_topic_id(uuid::Uuid::from_u128(9)).with_partitions(vec![0, 2]);
        let mut request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text("g")))
            .with_member_id(text("m"))
            .with_member_epoch(3)
            .with_instance_id(Some(text("i")))
            .with_rack_id(Some(text("r")))
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(text("t")), TopicName(text("u"))]))
            .with_server_assignor(Some(text("uniform")))
            .with_topic_partitions(Some(vec![owned.clone(), owned]));
        if version >= 1 {
            request = request.with_subscribed_topic_regex(Some(text("t.*")));
        }
        assert_encoded_walks(&CONSUMER_GROUP_HEARTBEAT, version, &request);
        // Every nullable field null.
        let bare = ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(text("g")));
        assert_encoded_walks(&CONSUMER_GROUP_HEARTBEAT, version, &bare);
        let request = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(text("g")), GroupId(text("h"))])
            .with_include_authorized_operations(true);
        assert_encoded_walks(&CONSUMER_GROUP_DESCRIBE, version, &request);
    }
}
