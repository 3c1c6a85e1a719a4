//! Raw-frame helpers for the classic group protocol (JoinGroup with the KIP-394 round trip,
//! SyncGroup, Heartbeat), shared by the group tests.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{Client, CLIENT_ID};

pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const FENCED_INSTANCE_ID: i16 = 82;

/// JoinGroup waits for the rebalance: far longer than the default read timeout.
pub const GROUP_READ_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    pub fn connect_port(port: u16) -> Client {
        Client::connect_with_read_timeout(port, GROUP_READ_TIMEOUT)
    }

    pub fn join(&mut self, group: &str, member: &str, protocol_type: &str, protocols: &[&str]) -> JoinGroupResponse {
        self.join_as(group, member, None, protocol_type, protocols)
    }

    pub fn join_as(
        &mut self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        protocol_type: &str,
        protocols: &[&str],
    ) -> JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_instance_id(instance.map(text))
            .with_group_id(GroupId(text(group)))
            .with_session_timeout_ms(6000)
            .with_rebalance_timeout_ms(1000)
            .with_member_id(text(member))
            .with_protocol_type(text(protocol_type))
            .with_protocols(
                protocols
                    .iter()
                    .map(|name| {
                        JoinGroupRequestProtocol::default()
                            .with_name(text(name))
                            .with_metadata(Bytes::from(format!("meta-{name}")))
                    })
                    .collect(),
            );
        self.call(ApiKey::JoinGroup, 9, &request)
    }

    pub fn heartbeat(&mut self, group: &str, generation: i32, member: &str) -> i16 {
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_generation_id(generation)
            .with_member_id(text(member));
        let response: HeartbeatResponse = self.call(ApiKey::Heartbeat, 4, &request);
        response.error_code
    }

    pub fn sync(
        &mut self,
        group: &str,
        generation: i32,
        member: &str,
        assignments: &[(&str, &str)],
    ) -> SyncGroupResponse {
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(text(group)))
            .with_generation_id(generation)
            .with_member_id(text(member))
            .with_protocol_type(Some(text("consumer")))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(id, assignment)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(text(id))
                            .with_assignment(Bytes::from(assignment.to_string()))
                    })
                    .collect(),
            );
        self.call(ApiKey::SyncGroup, 5, &request)
    }

    /// The KIP-394 round trip: a first join gets MEMBER_ID_REQUIRED and an id, the second joins.
    pub fn join_new(&mut self, group: &str, protocols: &[&str]) -> JoinGroupResponse {
        let first = self.join(group, "", "consumer", protocols);
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        assert!(
            first.member_id.starts_with(&format!("{CLIENT_ID}-")),
            "member id is client.id-uuid: {:?}",
            first.member_id
        );
        let second = self.join(group, &first.member_id.to_string(), "consumer", protocols);
        assert_eq!(second.error_code, 0, "{second:?}");
        assert_eq!(second.member_id, first.member_id);
        second
    }
}

pub fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}
