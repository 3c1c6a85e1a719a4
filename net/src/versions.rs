//! The APIs Spate speaks and the version ranges it advertises in ApiVersions.
//!
//! Only entries marked `implemented` are ever advertised ([`advertised`]): a client that sees an
//! API in the ApiVersions response will use it, so listing one without a handler would be a lie
//! that surfaces as a closed connection. [`planned`] is the full target table, for docs and for
//! the handlers still to be written.
//!
//! Every range was checked against `kafka-protocol` 0.18's `VERSIONS` constants on both the
//! request and the response type (see the tests); the only clamping is Produce:
//!
//! - **Produce** is advertised as 0–11 but handled as 3–11. `kafka-protocol` 0.18 decodes Produce
//!   3–13 only (KIP-896 removed v0–2, and the message-format v0/v1 they carry, in Kafka 4.0).
//!   The advertised minimum stays 0 because librdkafka before 2.10 (Debian's 2.0.2, so kcat)
//!   silently turns compression off unless the broker's Produce range overlaps 0..0
//!   (confluentinc/librdkafka#4956). Kafka 4.0 does exactly the same (KAFKA-18659,
//!   apache/kafka#18727): v0–2 advertised, refused everywhere else. Clients pick the highest
//!   common version, so no real client sends v0–2; the Produce handler must refuse them.
//! - **Fetch** starts at 4: librdkafka uses RecordBatch v2 (`MsgVer2`) only if Fetch 4 is in
//!   range, and Spate stores nothing else.
//! - **FindCoordinator** from 0: librdkafka enables LZ4 only if FindCoordinator 0 is in range.
//! - **InitProducerId** stops at 5: the crate's request type decodes 0–5 although its
//!   `ApiKey::valid_versions` says 0–6.
//! - **ApiVersions** stops at 4, Kafka's and the crate's maximum.
//! - **Metadata** stops at 12: the crate decodes 13, which only adds a top-level error code
//!   (`REBOOTSTRAP_REQUIRED`, KIP-1102) that Spate has no use for yet.
//! - **Fetch** stops at 16 and **ListOffsets** at 8: the versions above add follower-only fields
//!   (v17 replica directory id, v18 high watermark push) and a timeout (ListOffsets v10) or
//!   earliest-pending-upload (v9, tiered storage) that Spate does not have.
//!
//! Non-Kafka behaviour a client can see: the topic config `spate.acks.all.flush` (default `true`:
//! acks=-1 waits for an fdatasync; see `spate_core::topic_config::ACKS_ALL_FLUSH`).

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::VersionRange;

/// One API: what Spate tells clients and what its handler accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiSupport {
    /// The API.
    pub api_key: ApiKey,
    /// The range sent in ApiVersions responses.
    pub advertised: VersionRange,
    /// The range the handler decodes; equal to `advertised` except for Produce (see the module
    /// docs). A request outside it is refused even if advertised.
    pub handled: VersionRange,
    /// Whether a handler exists. Only implemented APIs are advertised.
    pub implemented: bool,
}

impl ApiSupport {
    /// Whether the handler accepts `api_version`.
    pub fn handles(&self, api_version: i16) -> bool {
        self.implemented && self.handled.min <= api_version && api_version <= self.handled.max
    }
}

const fn range(min: i16, max: i16) -> VersionRange {
    VersionRange { min, max }
}

const fn entry(api_key: ApiKey, min: i16, max: i16, implemented: bool) -> ApiSupport {
    ApiSupport { api_key, advertised: range(min, max), handled: range(min, max), implemented }
}

/// ApiVersions itself, named so its handler can answer unsupported versions without a lookup.
pub const API_VERSIONS: ApiSupport = entry(ApiKey::ApiVersions, 0, 4, true);

/// The target table, in API key order.
const TABLE: [ApiSupport; 28] = [
    ApiSupport { api_key: ApiKey::Produce, advertised: range(0, 11), handled: range(3, 11), implemented: true },
    entry(ApiKey::Fetch, 4, 16, true),
    entry(ApiKey::ListOffsets, 1, 8, true),
    entry(ApiKey::Metadata, 0, 12, true),
    entry(ApiKey::OffsetCommit, 2, 9, true),
    entry(ApiKey::OffsetFetch, 1, 9, true),
    entry(ApiKey::FindCoordinator, 0, 4, true),
    entry(ApiKey::JoinGroup, 0, 9, true),
    entry(ApiKey::Heartbeat, 0, 4, true),
    entry(ApiKey::LeaveGroup, 0, 5, true),
    entry(ApiKey::SyncGroup, 0, 5, true),
    entry(ApiKey::DescribeGroups, 0, 6, true),
    entry(ApiKey::ListGroups, 0, 5, true),
    API_VERSIONS,
    entry(ApiKey::CreateTopics, 2, 7, true),
    entry(ApiKey::DeleteTopics, 1, 6, true),
    entry(ApiKey::DeleteRecords, 0, 2, true),
    entry(ApiKey::InitProducerId, 0, 5, true),
    entry(ApiKey::DescribeConfigs, 1, 4, true),
    entry(ApiKey::AlterConfigs, 0, 2, true),
    entry(ApiKey::DescribeLogDirs, 1, 4, true),
    entry(ApiKey::CreatePartitions, 0, 3, true),
    entry(ApiKey::DeleteGroups, 0, 2, true),
    entry(ApiKey::IncrementalAlterConfigs, 0, 1, true),
    entry(ApiKey::OffsetDelete, 0, 0, true),
    entry(ApiKey::DescribeCluster, 0, 1, true),
    entry(ApiKey::ConsumerGroupHeartbeat, 0, 1, true),
    entry(ApiKey::ConsumerGroupDescribe, 0, 1, true),
];

/// Every API Spate means to serve, implemented or not (for docs; never sent to clients).
pub fn planned() -> &'static [ApiSupport] {
    &TABLE
}

/// The APIs to list in an ApiVersions response: the implemented ones only, in key order.
pub fn advertised() -> impl Iterator<Item = &'static ApiSupport> {
    TABLE.iter().filter(|support| support.implemented)
}

/// The table entry for `api_key`, implemented or not.
pub fn lookup(api_key: ApiKey) -> Option<&'static ApiSupport> {
    TABLE.iter().find(|support| support.api_key == api_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// The crate's decodable range for each API: request and response types intersected.
    fn crate_range(api_key: ApiKey) -> VersionRange {
        fn both<Req: Message, Resp: Message>() -> VersionRange {
            Req::VERSIONS.intersect(&Resp::VERSIONS)
        }
        match api_key {
            ApiKey::Produce => both::<ProduceRequest, ProduceResponse>(),
            ApiKey::Fetch => both::<FetchRequest, FetchResponse>(),
            ApiKey::ListOffsets => both::<ListOffsetsRequest, ListOffsetsResponse>(),
            ApiKey::Metadata => both::<MetadataRequest, MetadataResponse>(),
            ApiKey::FindCoordinator => both::<FindCoordinatorRequest, FindCoordinatorResponse>(),
            ApiKey::ApiVersions => both::<ApiVersionsRequest, ApiVersionsResponse>(),
            ApiKey::CreateTopics => both::<CreateTopicsRequest, CreateTopicsResponse>(),
            ApiKey::DeleteTopics => both::<DeleteTopicsRequest, DeleteTopicsResponse>(),
            ApiKey::DeleteRecords => both::<DeleteRecordsRequest, DeleteRecordsResponse>(),
            ApiKey::InitProducerId => both::<InitProducerIdRequest, InitProducerIdResponse>(),
            ApiKey::DescribeConfigs => both::<DescribeConfigsRequest, DescribeConfigsResponse>(),
            ApiKey::AlterConfigs => both::<AlterConfigsRequest, AlterConfigsResponse>(),
            ApiKey::DescribeLogDirs => both::<DescribeLogDirsRequest, DescribeLogDirsResponse>(),
            ApiKey::CreatePartitions => both::<CreatePartitionsRequest, CreatePartitionsResponse>(),
            ApiKey::IncrementalAlterConfigs => {
                both::<IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse>()
            }
            ApiKey::DescribeCluster => both::<DescribeClusterRequest, DescribeClusterResponse>(),
            ApiKey::OffsetCommit => both::<OffsetCommitRequest, OffsetCommitResponse>(),
            ApiKey::OffsetFetch => both::<OffsetFetchRequest, OffsetFetchResponse>(),
            ApiKey::JoinGroup => both::<JoinGroupRequest, JoinGroupResponse>(),
            ApiKey::Heartbeat => both::<HeartbeatRequest, HeartbeatResponse>(),
            ApiKey::LeaveGroup => both::<LeaveGroupRequest, LeaveGroupResponse>(),
            ApiKey::SyncGroup => both::<SyncGroupRequest, SyncGroupResponse>(),
            ApiKey::DescribeGroups => both::<DescribeGroupsRequest, DescribeGroupsResponse>(),
            ApiKey::ListGroups => both::<ListGroupsRequest, ListGroupsResponse>(),
            ApiKey::DeleteGroups => both::<DeleteGroupsRequest, DeleteGroupsResponse>(),
            ApiKey::OffsetDelete => both::<OffsetDeleteRequest, OffsetDeleteResponse>(),
            ApiKey::ConsumerGroupHeartbeat => both::<ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse>(),
            ApiKey::ConsumerGroupDescribe => both::<ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse>(),
            other => panic!("{other:?} is not in the table"),
        }
    }

    fn contains(outer: VersionRange, inner: VersionRange) -> bool {
        outer.min <= inner.min && inner.max <= outer.max
    }

    #[test]
    fn handled_ranges_are_decodable_by_the_crate() {
        for support in planned() {
            let decodable = crate_range(support.api_key);
            assert!(
                contains(decodable, support.handled),
                "{:?}: handled {} outside the crate's {}",
                support.api_key,
                support.handled,
                decodable
            );
            assert!(!support.handled.is_empty());
        }
    }

    #[test]
    fn only_produce_advertises_beyond_what_it_handles() {
        for support in planned() {
            assert!(contains(support.advertised, support.handled));
            if support.api_key == ApiKey::Produce {
                assert_eq!(support.advertised, range(0, 11));
                assert_eq!(support.handled, range(3, 11));
            } else {
                assert_eq!(support.advertised, support.handled, "{:?}", support.api_key);
            }
        }
    }

    #[test]
    fn table_is_in_key_order_without_duplicates() {
        for pair in planned().windows(2) {
            assert!((pair[0].api_key as i16) < (pair[1].api_key as i16));
        }
    }

    #[test]
    fn only_implemented_apis_are_advertised() {
        let keys: Vec<ApiKey> = advertised().map(|support| support.api_key).collect();
        assert_eq!(
            keys,
            planned().iter().map(|support| support.api_key).collect::<Vec<_>>(),
            "every planned API is implemented"
        );
        assert!(advertised().all(|support| support.implemented));
    }

    #[test]
    fn unimplemented_apis_handle_nothing() {
        let produce = lookup(ApiKey::Produce).unwrap();
        assert!(produce.handles(3) && !produce.handles(2), "v0-2 advertised, refused");
        let delete_topics = lookup(ApiKey::DeleteTopics).unwrap();
        assert!(delete_topics.handles(1) && !delete_topics.handles(0));
        let api_versions = lookup(ApiKey::ApiVersions).unwrap();
        assert!(api_versions.handles(0) && api_versions.handles(4));
        assert!(!api_versions.handles(5) && !api_versions.handles(-1));
        assert_eq!(lookup(ApiKey::SaslHandshake), None);
        let list_groups = lookup(ApiKey::ListGroups).unwrap();
        assert!(list_groups.handles(5) && !list_groups.handles(6));
        let join_group = lookup(ApiKey::JoinGroup).unwrap();
        assert!(join_group.handles(0) && join_group.handles(9) && !join_group.handles(10));
    }
}
