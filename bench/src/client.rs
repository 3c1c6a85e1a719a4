//! A small blocking Kafka protocol client: framing, version negotiation, and the handful of calls the
//! generator makes (metadata, topic creation, offsets, producer ids). Produce and Fetch are driven by
//! the workers themselves over [`Connection::split`] halves, so requests can be pipelined. The admin
//! CLI (`net::cli`) uses the same connections for every other API, at the versions negotiated here.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, InitProducerIdRequest, InitProducerIdResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Errors are reported, not recovered from: a benchmark that hits one stops and says why.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, BenchError>;

const CLIENT_ID: &str = "spate-bench";
/// Largest response frame accepted (a fetch of many partitions).
const RESPONSE_MAX_BYTES: usize = 256 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER: a new topic settling.
const RETRIABLE_LEADERSHIP_ERRORS: [i16; 3] = [3, 5, 6];

/// The highest version of each API this client can speak. Capped below what kafka-protocol encodes where
/// later versions change shape (Fetch 13+ and Produce 12+ name topics by id).
fn client_max_version(api_key: ApiKey) -> i16 {
    match api_key {
        ApiKey::Produce => 11,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 7,
        ApiKey::Metadata => 12,
        ApiKey::CreateTopics => 7,
        ApiKey::DeleteTopics => 5,
        ApiKey::InitProducerId => 4,
        ApiKey::ApiVersions => 3,
        // The admin CLI's APIs. OffsetFetch stops before v8 (groups batched) and FindCoordinator's
        // v4+ batched keys are handled by the CLI.
        ApiKey::DescribeConfigs => 4,
        ApiKey::IncrementalAlterConfigs => 1,
        ApiKey::CreatePartitions => 3,
        ApiKey::FindCoordinator => 4,
        ApiKey::ListGroups => 5,
        ApiKey::DescribeGroups => 5,
        ApiKey::DeleteGroups => 2,
        ApiKey::OffsetFetch => 7,
        ApiKey::OffsetCommit => 8,
        ApiKey::DescribeCluster => 1,
        _ => 0,
    }
}

/// Encodes one request frame (length prefix included) into `out`.
pub fn encode_request<R: Encodable>(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Result<()> {
    encode_request_as(out, CLIENT_ID, api_key, version, correlation_id, request)
}

/// [`encode_request`] with another `client.id`.
pub fn encode_request_as<R: Encodable>(
    out: &mut BytesMut,
    client_id: &'static str,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &R,
) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(client_id)));
    header.encode(out, api_key.request_header_version(version))?;
    request.encode(out, version)?;
    let length = i32::try_from(out.len() - start - 4)?;
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// Reads one response frame; returns its body after the length prefix.
pub fn read_frame(reader: &mut impl Read) -> Result<Bytes> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length)?;
    let length = usize::try_from(i32::from_be_bytes(length)).map_err(|_| "negative response length")?;
    if length > RESPONSE_MAX_BYTES {
        return Err(format!("response of {length} bytes is over the {RESPONSE_MAX_BYTES}-byte limit").into());
    }
    let mut body = BytesMut::zeroed(length);
    reader.read_exact(&mut body)?;
    Ok(body.freeze())
}

/// Decodes a response frame body: the correlation id and the response.
pub fn decode_response<R: Decodable>(mut frame: Bytes, api_key: ApiKey, version: i16) -> Result<(i32, R)> {
    let header = ResponseHeader::decode(&mut frame, api_key.response_header_version(version))?;
    let response = R::decode(&mut frame, version)?;
    Ok((header.correlation_id, response))
}

/// One connection to one broker, with the API versions it supports.
pub struct Connection {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    next_correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
    client_id: &'static str,
    /// The address connected to, for messages.
    pub address: String,
}

impl Connection {
    /// Connects and negotiates versions with ApiVersions.
    pub fn open(address: &str) -> Result<Connection> {
        Connection::open_as(address, CLIENT_ID, IO_TIMEOUT)
    }

    /// [`Connection::open`] with a `client.id` and a timeout for connecting and for each response.
    pub fn open_as(address: &str, client_id: &'static str, io_timeout: Duration) -> Result<Connection> {
        let socket_address = address
            .to_socket_addrs()
            .map_err(|error| format!("{address}: {error}"))?
            .next()
            .ok_or_else(|| format!("{address} resolves to no address"))?;
        let stream = TcpStream::connect_timeout(&socket_address, io_timeout)
            .map_err(|error| format!("cannot connect to {address}: {error}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(io_timeout))?;
        let reader = BufReader::with_capacity(256 << 10, stream.try_clone()?);
        let mut connection = Connection {
            stream,
            reader,
            next_correlation_id: 0,
            versions: HashMap::new(),
            client_id,
            address: address.to_owned(),
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(client_id))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v0 is understood by every broker; its response lists the ranges.
        let response: ApiVersionsResponse = connection.call(ApiKey::ApiVersions, 0, &request)?;
        if response.error_code != 0 {
            return Err(format!("{address}: ApiVersions error code {}", response.error_code).into());
        }
        connection.versions =
            response.api_keys.iter().map(|api| (api.api_key, (api.min_version, api.max_version))).collect();
        Ok(connection)
    }

    /// The highest version both sides speak.
    pub fn version(&self, api_key: ApiKey) -> Result<i16> {
        let ours = client_max_version(api_key);
        let &(min, max) =
            self.versions.get(&(api_key as i16)).ok_or_else(|| format!("{}: no {api_key:?} support", self.address))?;
        let version = ours.min(max);
        if version < min {
            return Err(format!(
                "{}: {api_key:?} needs v{min}..={max}, this client speaks up to v{ours}",
                self.address
            )
            .into());
        }
        Ok(version)
    }

    /// The broker's version range of each API key, as ApiVersions answered.
    pub fn api_versions(&self) -> &HashMap<i16, (i16, i16)> {
        &self.versions
    }

    /// The highest version of `api_key` this client speaks, whatever the broker does.
    pub fn client_max_version(api_key: ApiKey) -> i16 {
        client_max_version(api_key)
    }

    /// Sends a request that has no response (Produce with acks=0).
    pub fn send<Req: Encodable>(&mut self, api_key: ApiKey, version: i16, request: &Req) -> Result<i32> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let mut frame = BytesMut::new();
        encode_request_as(&mut frame, self.client_id, api_key, version, correlation_id, request)?;
        self.stream.write_all(&frame)?;
        Ok(correlation_id)
    }

    /// One request, one response.
    pub fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp> {
        let correlation_id = self.send(api_key, version, request)?;
        let (got, response) = decode_response(read_frame(&mut self.reader)?, api_key, version)?;
        if got != correlation_id {
            return Err(format!("{}: correlation id {got}, expected {correlation_id}", self.address).into());
        }
        Ok(response)
    }

    /// The write half (with the next correlation id) and a buffered read half, for pipelining.
    pub fn split(self) -> (TcpStream, BufReader<TcpStream>, i32) {
        (self.stream, self.reader, self.next_correlation_id)
    }

    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Metadata for `topics`.
    pub fn metadata(&mut self, topics: &[String]) -> Result<MetadataResponse> {
        let version = self.version(ApiKey::Metadata)?;
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics.iter().map(|name| MetadataRequestTopic::default().with_name(Some(topic_name(name)))).collect(),
            ))
            .with_allow_auto_topic_creation(false);
        self.call(ApiKey::Metadata, version, &request)
    }

    /// Creates a topic; an existing one is an error (the harness names topics uniquely per run).
    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(String, String)]) -> Result<()> {
        let version = self.version(ApiKey::CreateTopics)?;
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(creatable_configs(configs));
        let request = CreateTopicsRequest::default().with_topics(vec![topic]).with_timeout_ms(30_000);
        let response: CreateTopicsResponse = self.call(ApiKey::CreateTopics, version, &request)?;
        for topic in &response.topics {
            if topic.error_code != 0 {
                let message = topic.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                return Err(format!("CreateTopics {name}: error code {} {message}", topic.error_code).into());
            }
        }
        Ok(())
    }

    /// Deletes a topic (the harness removes each run's topic, so a series of runs does not fill the disk).
    pub fn delete_topic(&mut self, name: &str) -> Result<()> {
        let version = self.version(ApiKey::DeleteTopics)?;
        let request = DeleteTopicsRequest::default().with_topic_names(vec![topic_name(name)]).with_timeout_ms(30_000);
        let response: DeleteTopicsResponse = self.call(ApiKey::DeleteTopics, version, &request)?;
        match response.responses.iter().find(|result| result.error_code != 0) {
            Some(result) => Err(format!("DeleteTopics {name}: error code {}", result.error_code).into()),
            None => Ok(()),
        }
    }

    /// Waits until every partition of `topic` has a leader; returns the leaders' addresses by partition.
    pub fn wait_for_leaders(&mut self, topic: &str, partitions: i32, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let metadata = self.metadata(&[topic.to_owned()])?;
            let brokers: HashMap<i32, String> = metadata
                .brokers
                .iter()
                .map(|broker| (broker.node_id.0, format!("{}:{}", broker.host, broker.port)))
                .collect();
            let mut leaders = vec![String::new(); usize::try_from(partitions)?];
            if let Some(found) = metadata.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            {
                for partition in &found.partitions {
                    let index = usize::try_from(partition.partition_index)?;
                    if partition.error_code == 0 && index < leaders.len() {
                        if let Some(address) = brokers.get(&partition.leader_id.0) {
                            leaders[index] = address.clone();
                        }
                    }
                }
            }
            // Metadata can name leaders before they serve (Kafka answers ListOffsets with
            // NOT_LEADER_OR_FOLLOWER for a moment after CreateTopics), so ready means both.
            if leaders.iter().all(|leader| !leader.is_empty()) && self.partitions_serve(topic, partitions, &leaders)? {
                return Ok(leaders);
            }
            if Instant::now() > deadline {
                return Err(format!("topic {topic}: not every partition has a leader after {timeout:?}").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether every partition's leader answers ListOffsets for it without a retriable error.
    fn partitions_serve(&mut self, topic: &str, partitions: i32, leaders: &[String]) -> Result<bool> {
        let mut by_leader: HashMap<&str, Vec<i32>> = HashMap::new();
        for (partition, leader) in (0..partitions).zip(leaders) {
            by_leader.entry(leader.as_str()).or_default().push(partition);
        }
        for (leader, partitions) in by_leader {
            let mut other;
            let connection = if leader == self.address {
                &mut *self
            } else {
                other = Connection::open(leader)?;
                &mut other
            };
            for (partition, code, _) in connection.list_offsets_with_codes(topic, &partitions, -1)? {
                match code {
                    0 => {}
                    code if RETRIABLE_LEADERSHIP_ERRORS.contains(&code) => return Ok(false),
                    code => return Err(format!("ListOffsets partition {partition}: error code {code}").into()),
                }
            }
        }
        Ok(true)
    }

    /// The earliest (`timestamp` -2) or latest (-1) offset of each of `partitions`; a partition's error
    /// code fails the call.
    pub fn list_offsets(&mut self, topic: &str, partitions: &[i32], timestamp: i64) -> Result<Vec<(i32, i64)>> {
        let mut offsets = Vec::new();
        for (partition, code, offset) in self.list_offsets_with_codes(topic, partitions, timestamp)? {
            if code != 0 {
                return Err(format!("ListOffsets partition {partition}: error code {code}").into());
            }
            offsets.push((partition, offset));
        }
        Ok(offsets)
    }

    /// ListOffsets as answered: (partition, error code, offset) for each of `partitions`.
    fn list_offsets_with_codes(
        &mut self,
        topic: &str,
        partitions: &[i32],
        timestamp: i64,
    ) -> Result<Vec<(i32, i16, i64)>> {
        let version = self.version(ApiKey::ListOffsets)?;
        let request =
            ListOffsetsRequest::default().with_replica_id((-1).into()).with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&index| {
                            ListOffsetsPartition::default().with_partition_index(index).with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let response: ListOffsetsResponse = self.call(ApiKey::ListOffsets, version, &request)?;
        Ok(response
            .topics
            .iter()
            .flat_map(|topic| &topic.partitions)
            .map(|partition| (partition.partition_index, partition.error_code, partition.offset))
            .collect())
    }

    /// A producer id and epoch for an idempotent producer.
    pub fn init_producer_id(&mut self) -> Result<(i64, i16)> {
        let version = self.version(ApiKey::InitProducerId)?;
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let response: InitProducerIdResponse = self.call(ApiKey::InitProducerId, version, &request)?;
        if response.error_code != 0 {
            return Err(format!("InitProducerId: error code {}", response.error_code).into());
        }
        Ok((response.producer_id.0, response.producer_epoch))
    }
}

/// `key=value` topic configs as CreateTopics carries them.
pub fn creatable_configs(configs: &[(String, String)]) -> Vec<CreatableTopicConfig> {
    configs
        .iter()
        .map(|(key, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect()
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}
