//! The CLI's view of a cluster: connections by broker address (the bootstrap broker first), the
//! calls several commands share (metadata, offsets, the group coordinator, committed offsets), and
//! errors that name the broker, the request and the Kafka error.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use bench::client::{topic_name, Connection};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorResponse, GroupId, ListOffsetsRequest,
    ListOffsetsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse,
    OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Common;

/// The `client.id` the CLI sends.
pub const CLIENT_ID: &str = "spate-cli";

/// ListOffsets timestamps with a special meaning.
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const LATEST_TIMESTAMP: i64 = -1;

/// A failure, as one line for the user.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> CliError {
        CliError(message.to_owned())
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// Kafka's upper-case name for an error code (`TOPIC_ALREADY_EXISTS`), as Kafka's tools print it.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(_)) => "UNKNOWN_ERROR_CODE".to_owned(),
        Some(error) => {
            let camel = error.to_string();
            let mut name = String::with_capacity(camel.len() + 8);
            for (index, character) in camel.chars().enumerate() {
                if character.is_ascii_uppercase() && index > 0 {
                    name.push('_');
                }
                name.push(character.to_ascii_uppercase());
            }
            name
        }
    }
}

/// What a Kafka error means, for the errors the CLI's users meet when the broker sends no message.
fn error_hint(code: i16) -> Option<&'static str> {
    Some(match code {
        3 => "This server does not host this topic-partition.",
        15 => "The coordinator is not available.",
        16 => "This is not the correct coordinator.",
        22 => "Specified group generation id is not valid.",
        24 => "The configured groupId is invalid.",
        25 => "The group has active members; stop its consumers first.",
        27 => "The group is rebalancing; stop its consumers first.",
        36 => "Topic with this name already exists.",
        37 => "Number of partitions is invalid.",
        40 => "Configuration is invalid.",
        42 => "The request is invalid.",
        68 => "The group is not empty.",
        69 => "The group id does not exist.",
        _ => return None,
    })
}

/// `broker B: REQUEST: NAME (code): message`, the message being the broker's or Kafka's description.
pub fn kafka_error(broker: &str, request: &str, code: i16, message: Option<&StrBytes>) -> CliError {
    let message = message.map(|text| text.to_string()).filter(|text| !text.is_empty());
    let mut line = format!("broker {broker}: {request}: {} ({code})", error_name(code));
    if let Some(text) = message.as_deref().or(error_hint(code)) {
        line.push_str(": ");
        line.push_str(text);
    }
    CliError(line)
}

/// How long to wait before asking again for a coordinator that is not ready.
const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// Why a coordinator could not be used: worth asking again, or not.
enum CoordinatorError {
    Retriable(CliError),
    Fatal(CliError),
}

impl CoordinatorError {
    fn from_code(error: CliError, code: i16) -> CoordinatorError {
        let retriable = [
            ResponseError::CoordinatorNotAvailable.code(),
            ResponseError::CoordinatorLoadInProgress.code(),
            ResponseError::NotCoordinator.code(),
        ];
        if retriable.contains(&code) {
            CoordinatorError::Retriable(error)
        } else {
            CoordinatorError::Fatal(error)
        }
    }
}

/// Quotes a name for messages: `"orders"`.
pub fn quoted(name: &str) -> String {
    format!("{name:?}")
}

/// A topic as Metadata describes it.
#[derive(Clone, Debug)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: String,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Clone, Debug)]
pub struct PartitionInfo {
    pub partition: i32,
    pub error_code: i16,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Connections to the brokers of one cluster, opened as needed and kept for the command's life.
pub struct Admin {
    pub bootstrap: String,
    timeout: Duration,
    connections: HashMap<String, Connection>,
    /// Node id → `host:port`, from the last Metadata.
    brokers: HashMap<i32, String>,
}

impl Admin {
    /// Connects to the bootstrap broker (negotiating API versions).
    pub fn connect(common: &Common) -> CliResult<Admin> {
        let mut admin = Admin {
            bootstrap: common.bootstrap.clone(),
            timeout: common.request_timeout(),
            connections: HashMap::new(),
            brokers: HashMap::new(),
        };
        let bootstrap = admin.bootstrap.clone();
        admin.connection(&bootstrap)?;
        Ok(admin)
    }

    /// The connection to `address`, opened on first use.
    pub fn connection(&mut self, address: &str) -> CliResult<&mut Connection> {
        if !self.connections.contains_key(address) {
            let connection = Connection::open_as(address, CLIENT_ID, self.timeout)
                .map_err(|error| transport_error(address, "connect", &error.to_string()))?;
            self.connections.insert(address.to_owned(), connection);
        }
        self.connections.get_mut(address).ok_or_else(|| CliError(format!("broker {address}: no connection")))
    }

    /// The highest version of `api_key` that `address` and this client both speak.
    pub fn version(&mut self, address: &str, api_key: ApiKey) -> CliResult<i16> {
        let connection = self.connection(address)?;
        connection
            .version(api_key)
            .map_err(|error| transport_error(address, &format!("{api_key:?}"), &error.to_string()))
    }

    /// One request to `address` at the negotiated version; `build` makes the request for that version.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        address: &str,
        api_key: ApiKey,
        build: impl FnOnce(i16) -> Req,
    ) -> CliResult<(i16, Resp)> {
        let version = self.version(address, api_key)?;
        let request = build(version);
        let connection = self.connection(address)?;
        let response = connection
            .call(api_key, version, &request)
            .map_err(|error| transport_error(address, &format!("{api_key:?}"), &error.to_string()))?;
        Ok((version, response))
    }

    /// Sends a request with no response (Produce with acks=0).
    pub fn send<Req: Encodable>(
        &mut self,
        address: &str,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> CliResult<()> {
        let connection = self.connection(address)?;
        connection
            .send(api_key, version, request)
            .map(drop)
            .map_err(|error| transport_error(address, &format!("{api_key:?}"), &error.to_string()))
    }

    /// The broker version ranges of the bootstrap broker.
    pub fn api_versions(&mut self) -> CliResult<HashMap<i16, (i16, i16)>> {
        let bootstrap = self.bootstrap.clone();
        Ok(self.connection(&bootstrap)?.api_versions().clone())
    }

    /// Metadata from the bootstrap broker: every topic (`None`) or the named ones. Learns the brokers.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> CliResult<MetadataResponse> {
        let bootstrap = self.bootstrap.clone();
        let (_, response): (i16, MetadataResponse) = self.call(&bootstrap, ApiKey::Metadata, |_| {
            MetadataRequest::default()
                .with_topics(topics.map(|names| {
                    names.iter().map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name)))).collect()
                }))
                .with_allow_auto_topic_creation(false)
        })?;
        self.brokers = response
            .brokers
            .iter()
            .map(|broker| (broker.node_id.0, format!("{}:{}", broker.host, broker.port)))
            .collect();
        Ok(response)
    }

    /// One topic's partitions, leaders and replicas; an unknown topic is an error naming the broker.
    pub fn topic(&mut self, name: &str) -> CliResult<TopicInfo> {
        let response = self.metadata(Some(&[name.to_owned()]))?;
        let topic = response
            .topics
            .iter()
            .find(|topic| topic.name.as_ref().is_some_and(|found| found.0.as_str() == name))
            .ok_or_else(|| {
                CliError(format!("broker {}: Metadata {}: topic missing in the answer", self.bootstrap, quoted(name)))
            })?;
        if topic.error_code != 0 {
            return Err(kafka_error(&self.bootstrap, &format!("Metadata {}", quoted(name)), topic.error_code, None));
        }
        Ok(topic_info(topic))
    }

    /// `host:port` of broker `node_id` (as the last Metadata named it).
    pub fn broker_address(&self, node_id: i32) -> CliResult<String> {
        self.brokers
            .get(&node_id)
            .cloned()
            .ok_or_else(|| CliError(format!("broker {}: no address for broker {node_id} in Metadata", self.bootstrap)))
    }

    /// The brokers as the last Metadata listed them: node id → `host:port`.
    pub fn brokers(&self) -> &HashMap<i32, String> {
        &self.brokers
    }

    /// Partitions of `topic` grouped by their leader's address.
    pub fn by_leader(&self, topic: &TopicInfo, partitions: &[i32]) -> CliResult<BTreeMap<String, Vec<i32>>> {
        let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for &partition in partitions {
            let info = topic
                .partitions
                .iter()
                .find(|info| info.partition == partition)
                .ok_or_else(|| CliError(format!("topic {} has no partition {partition}", quoted(&topic.name))))?;
            if info.leader < 0 {
                return Err(CliError(format!(
                    "broker {}: partition {partition} of {} has no leader (LEADER_NOT_AVAILABLE)",
                    self.bootstrap,
                    quoted(&topic.name)
                )));
            }
            by_leader.entry(self.broker_address(info.leader)?).or_default().push(partition);
        }
        Ok(by_leader)
    }

    /// ListOffsets for `partitions` of `topic` at `timestamp` (earliest -2, latest -1, or a time in ms),
    /// each asked of its leader: partition → offset (-1 when no record is at or after the time).
    pub fn list_offsets(
        &mut self,
        topic: &TopicInfo,
        partitions: &[i32],
        timestamp: i64,
    ) -> CliResult<BTreeMap<i32, i64>> {
        let mut offsets = BTreeMap::new();
        for (leader, partitions) in self.by_leader(topic, partitions)? {
            let (_, response): (i16, ListOffsetsResponse) = self.call(&leader, ApiKey::ListOffsets, |_| {
                ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default(
                )
                .with_name(topic_name(&topic.name))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&index| {
                            ListOffsetsPartition::default().with_partition_index(index).with_timestamp(timestamp)
                        })
                        .collect(),
                )])
            })?;
            for partition in response.topics.iter().flat_map(|topic| &topic.partitions) {
                if partition.error_code != 0 {
                    let request =
                        format!("ListOffsets {} partition {}", quoted(&topic.name), partition.partition_index);
                    return Err(kafka_error(&leader, &request, partition.error_code, None));
                }
                offsets.insert(partition.partition_index, partition.offset);
            }
        }
        Ok(offsets)
    }

    /// The address of `group`'s coordinator, once it serves the group. A broker that is still creating
    /// `__consumer_offsets` or loading the group's partition answers COORDINATOR_NOT_AVAILABLE,
    /// COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR (Apache Kafka does, on a group's first use);
    /// those are retried, as Kafka's clients do, for up to the request timeout.
    pub fn coordinator(&mut self, group: &str) -> CliResult<String> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match self.find_coordinator(group).and_then(|address| self.check_coordinator(&address, group)) {
                Err(CoordinatorError::Retriable(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(COORDINATOR_RETRY_BACKOFF);
                }
                Err(CoordinatorError::Retriable(error) | CoordinatorError::Fatal(error)) => return Err(error),
                Ok(address) => return Ok(address),
            }
        }
    }

    fn find_coordinator(&mut self, group: &str) -> Result<String, CoordinatorError> {
        let bootstrap = self.bootstrap.clone();
        let (version, response): (i16, FindCoordinatorResponse) = self
            .call(&bootstrap, ApiKey::FindCoordinator, |version| {
                let key = StrBytes::from_string(group.to_owned());
                let request = FindCoordinatorRequest::default().with_key_type(0);
                // v4 batches keys (KIP-699).
                if version >= 4 {
                    request.with_coordinator_keys(vec![key])
                } else {
                    request.with_key(key)
                }
            })
            .map_err(CoordinatorError::Fatal)?;
        let request = format!("FindCoordinator {}", quoted(group));
        let (code, message, host, port) = if version >= 4 {
            let found = response.coordinators.first().ok_or_else(|| {
                CoordinatorError::Fatal(CliError(format!(
                    "broker {bootstrap}: {request}: no coordinator in the answer"
                )))
            })?;
            (found.error_code, found.error_message.clone(), found.host.to_string(), found.port)
        } else {
            (response.error_code, response.error_message.clone(), response.host.to_string(), response.port)
        };
        if code != 0 {
            return Err(CoordinatorError::from_code(kafka_error(&bootstrap, &request, code, message.as_ref()), code));
        }
        Ok(format!("{host}:{port}"))
    }

    /// Asks the coordinator to describe `group`: whether it serves it yet.
    fn check_coordinator(&mut self, coordinator: &str, group: &str) -> Result<String, CoordinatorError> {
        let (_, response): (i16, DescribeGroupsResponse) = self
            .call(coordinator, ApiKey::DescribeGroups, |_| {
                DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))])
            })
            .map_err(CoordinatorError::Fatal)?;
        match response.groups.first().map(|described| described.error_code) {
            Some(code) if code != 0 => {
                let error = kafka_error(coordinator, &format!("DescribeGroups {}", quoted(group)), code, None);
                Err(CoordinatorError::from_code(error, code))
            }
            _ => Ok(coordinator.to_owned()),
        }
    }

    /// A group's committed offsets, asked of its coordinator: (topic, partition) → offset. `topics`
    /// limits the answer; `None` asks for every partition the group committed.
    pub fn committed_offsets(
        &mut self,
        coordinator: &str,
        group: &str,
        topics: Option<&[(String, Vec<i32>)]>,
    ) -> CliResult<BTreeMap<(String, i32), i64>> {
        let (_, response): (i16, OffsetFetchResponse) = self.call(coordinator, ApiKey::OffsetFetch, |_| {
            OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_string(group.to_owned()))).with_topics(
                topics.map(|topics| {
                    topics
                        .iter()
                        .map(|(name, partitions)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(topic_name(name))
                                .with_partition_indexes(partitions.clone())
                        })
                        .collect()
                }),
            )
        })?;
        let request = format!("OffsetFetch {}", quoted(group));
        if response.error_code != 0 {
            return Err(kafka_error(coordinator, &request, response.error_code, None));
        }
        let mut offsets = BTreeMap::new();
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error_code != 0 {
                    return Err(kafka_error(coordinator, &request, partition.error_code, None));
                }
                // -1: nothing committed for this partition.
                if partition.committed_offset >= 0 {
                    offsets.insert((topic.name.to_string(), partition.partition_index), partition.committed_offset);
                }
            }
        }
        Ok(offsets)
    }

    /// Commits `offsets` ((topic, partition) → offset) for `group` as a client outside the group
    /// (generation -1, no member id), which Kafka accepts only while the group has no members.
    pub fn commit_offsets(
        &mut self,
        coordinator: &str,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> CliResult<()> {
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((topic, partition), &offset) in offsets {
            topics.entry(topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*partition)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        let (_, response): (i16, OffsetCommitResponse) = self.call(coordinator, ApiKey::OffsetCommit, |_| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::default())
                .with_retention_time_ms(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetCommitRequestTopic::default().with_name(topic_name(name)).with_partitions(partitions)
                        })
                        .collect(),
                )
        })?;
        for topic in &response.topics {
            for partition in &topic.partitions {
                if partition.error_code != 0 {
                    let request =
                        format!("OffsetCommit {} {}-{}", quoted(group), topic.name.as_str(), partition.partition_index);
                    return Err(kafka_error(coordinator, &request, partition.error_code, None));
                }
            }
        }
        Ok(())
    }
}

/// A transport failure (refused, timed out, closed): names the broker unless the message already does.
fn transport_error(address: &str, what: &str, message: &str) -> CliError {
    if message.contains(address) {
        CliError(message.to_owned())
    } else {
        CliError(format!("broker {address}: {what}: {message}"))
    }
}

fn topic_info(topic: &kafka_protocol::messages::metadata_response::MetadataResponseTopic) -> TopicInfo {
    let mut partitions: Vec<PartitionInfo> = topic
        .partitions
        .iter()
        .map(|partition| PartitionInfo {
            partition: partition.partition_index,
            error_code: partition.error_code,
            leader: partition.leader_id.0,
            replicas: partition.replica_nodes.iter().map(|node| node.0).collect(),
            isr: partition.isr_nodes.iter().map(|node| node.0).collect(),
        })
        .collect();
    partitions.sort_by_key(|partition| partition.partition);
    TopicInfo {
        name: topic.name.as_ref().map(|name| name.to_string()).unwrap_or_default(),
        topic_id: topic.topic_id.to_string(),
        internal: topic.is_internal,
        partitions,
    }
}

/// Every topic of a Metadata answer, sorted by name.
pub fn topics_of(response: &MetadataResponse) -> Vec<TopicInfo> {
    let mut topics: Vec<TopicInfo> =
        response.topics.iter().filter(|topic| topic.error_code == 0).map(topic_info).collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(68), "NON_EMPTY_GROUP");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_ERROR_CODE");
        let message = StrBytes::from_static_str("Topic 'x' already exists.");
        assert_eq!(
            kafka_error("h:1", "CreateTopics \"x\"", 36, Some(&message)).to_string(),
            "broker h:1: CreateTopics \"x\": TOPIC_ALREADY_EXISTS (36): Topic 'x' already exists."
        );
    }
}
