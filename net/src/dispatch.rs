//! From a frame to a response: parse the header, check the API and version against
//! [`crate::versions`], and call that API's handler.
//!
//! Anything that cannot be answered closes the connection, after a log line, as Kafka does: a header
//! that does not parse, an unknown API key, an API Spate does not implement, a version outside the
//! handled range (except for ApiVersions, which answers every version, and Produce v0–2, which are
//! advertised but refused: see `versions`), a body that does not decode.
//!
//! [`route`] does the synchronous part (header, version checks, ApiVersions); [`dispatch`] then runs
//! the API's handler, which may wait for other shards. A handler's answer is the response frame as a
//! list of byte chunks (`Vec<Bytes>`), so a Fetch response can carry stored batches without copying
//! them; `None` means no response at all (Produce with acks=0).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::handlers::{self, HandlerError};
use crate::header::{parse_request, HeaderError, Request};
use crate::shard::ShardContext;
use crate::versions;

/// A response frame as chunks to write back to back; `None`: the request gets no response.
pub type Answer = Option<Vec<Bytes>>;

/// Why a request got no response. Every variant means: close the connection.
#[derive(Debug)]
pub enum DispatchError {
    /// The header did not parse (or named an API key that does not exist).
    Header(HeaderError),
    /// A known API that Spate does not serve (yet).
    NotImplemented {
        /// The API.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// The correlation id as sent.
        correlation_id: i32,
    },
    /// A served API at a version outside its handled range.
    UnsupportedVersion {
        /// The API.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// The correlation id as sent.
        correlation_id: i32,
    },
    /// The handler refused the body, could not encode the response, or asked to close.
    Handler(HandlerError),
}

impl std::fmt::Display for DispatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DispatchError::Header(error) => error.fmt(f),
            DispatchError::NotImplemented { api_key, api_version, correlation_id } => {
                write!(f, "{api_key:?} (v{api_version}, correlation id {correlation_id}) is not implemented")
            }
            DispatchError::UnsupportedVersion { api_key, api_version, correlation_id } => {
                write!(f, "{api_key:?} v{api_version} (correlation id {correlation_id}) is not supported")?;
                match versions::lookup(*api_key) {
                    Some(support) => write!(f, " (versions {} to {})", support.handled.min, support.handled.max),
                    None => Ok(()),
                }
            }
            DispatchError::Handler(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for DispatchError {}

/// What [`route`] made of a frame.
pub enum Routed {
    /// Already answered (ApiVersions needs nothing but the version table).
    Answered(Vec<Bytes>),
    /// A request for an implemented API at a handled version, for its handler.
    Request(Request),
}

/// Parses the header of `frame` (a frame body, without its size prefix) and checks the API and
/// version; answers ApiVersions on the spot.
pub fn route(frame: Bytes) -> Result<Routed, DispatchError> {
    let request = parse_request(frame).map_err(DispatchError::Header)?;
    let header = &request.header;
    let (api_key, api_version, correlation_id) = (header.api_key, header.api_version, header.correlation_id);
    if api_key == ApiKey::ApiVersions {
        let mut out = BytesMut::new();
        handlers::api_versions::handle(header, request.body, &mut out).map_err(DispatchError::Handler)?;
        return Ok(Routed::Answered(vec![out.freeze()]));
    }
    match versions::lookup(api_key) {
        Some(support) if support.implemented && !support.handles(api_version) => {
            Err(DispatchError::UnsupportedVersion { api_key, api_version, correlation_id })
        }
        Some(support) if support.implemented => Ok(Routed::Request(request)),
        _ => Err(DispatchError::NotImplemented { api_key, api_version, correlation_id }),
    }
}

/// Answers the request in `frame` on this shard. `response_limit`: the response bytes the connection
/// reserved for it in the shard's memory budget, which a Fetch's records must not exceed after their
/// first batch (0 for other requests, which ignore it). `peer`: the client's address, if known
/// (group members' `client_host`).
pub async fn dispatch(
    frame: Bytes,
    context: &ShardContext,
    response_limit: usize,
    peer: Option<SocketAddr>,
) -> Result<Answer, DispatchError> {
    let started = std::time::Instant::now();
    let api_key = frame.get(..2).and_then(|key| ApiKey::try_from(i16::from_be_bytes([key[0], key[1]])).ok());
    let answered = answer(frame, context, response_limit, peer).await;
    if let Some(api_key) = api_key {
        context.metrics.request(api_key, started.elapsed(), answered.is_err());
    }
    answered
}

/// [`dispatch`] without the metrics.
async fn answer(
    frame: Bytes,
    context: &ShardContext,
    response_limit: usize,
    peer: Option<SocketAddr>,
) -> Result<Answer, DispatchError> {
    let request = match route(frame)? {
        Routed::Answered(chunks) => return Ok(Some(chunks)),
        Routed::Request(request) => request,
    };
    let header = &request.header;
    let body = request.body.clone();
    let answer = match header.api_key {
        ApiKey::Produce => handlers::produce::handle(context, header, body).await,
        ApiKey::Fetch => handlers::fetch::handle(context, header, body, response_limit).await,
        ApiKey::ListOffsets => handlers::list_offsets::handle(context, header, body).await,
        ApiKey::Metadata => handlers::metadata::handle(context, header, body).await,
        ApiKey::CreateTopics => handlers::create_topics::handle(context, header, body).await,
        ApiKey::FindCoordinator => handlers::find_coordinator::handle(context, header, body).await,
        ApiKey::DeleteTopics => handlers::delete_topics::handle(context, header, body).await,
        ApiKey::DeleteRecords => handlers::delete_records::handle(context, header, body).await,
        ApiKey::InitProducerId => handlers::init_producer_id::handle(context, header, body).await,
        ApiKey::DescribeConfigs => handlers::describe_configs::handle(context, header, body).await,
        ApiKey::AlterConfigs => handlers::alter_configs::handle(context, header, body).await,
        ApiKey::DescribeLogDirs => handlers::describe_log_dirs::handle(context, header, body).await,
        ApiKey::CreatePartitions => handlers::create_partitions::handle(context, header, body).await,
        ApiKey::IncrementalAlterConfigs => handlers::incremental_alter_configs::handle(context, header, body).await,
        ApiKey::DescribeCluster => handlers::describe_cluster::handle(context, header, body).await,
        ApiKey::OffsetCommit => handlers::offset_commit::handle(context, header, body).await,
        ApiKey::OffsetFetch => handlers::offset_fetch::handle(context, header, body).await,
        ApiKey::JoinGroup => handlers::join_group::handle(context, header, body, peer).await,
        ApiKey::Heartbeat => handlers::heartbeat::handle(context, header, body).await,
        ApiKey::LeaveGroup => handlers::leave_group::handle(context, header, body).await,
        ApiKey::SyncGroup => handlers::sync_group::handle(context, header, body).await,
        ApiKey::DescribeGroups => handlers::describe_groups::handle(context, header, body).await,
        ApiKey::ListGroups => handlers::list_groups::handle(context, header, body).await,
        ApiKey::DeleteGroups => handlers::delete_groups::handle(context, header, body).await,
        ApiKey::OffsetDelete => handlers::offset_delete::handle(context, header, body).await,
        ApiKey::ConsumerGroupHeartbeat => handlers::consumer_group_heartbeat::handle(context, header, body).await,
        ApiKey::ConsumerGroupDescribe => handlers::consumer_group_describe::handle(context, header, body).await,
        // `versions` marks an API implemented only once it has an arm here; the tests check.
        api_key => {
            return Err(DispatchError::NotImplemented {
                api_key,
                api_version: header.api_version,
                correlation_id: header.correlation_id,
            })
        }
    };
    answer.map_err(DispatchError::Handler)
}

/// What a connection needs from the broker: an answer for each frame. Implemented for the shard's
/// context; tests plug in their own.
pub trait Dispatcher {
    /// Answers one frame, within `response_limit` reserved bytes (see [`dispatch`]).
    fn dispatch(
        &self,
        frame: Bytes,
        response_limit: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, DispatchError>> + '_>>;
}

impl Dispatcher for Rc<ShardContext> {
    fn dispatch(
        &self,
        frame: Bytes,
        response_limit: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, DispatchError>> + '_>> {
        Box::pin(dispatch(frame, self, response_limit, None))
    }
}

/// The dispatcher of one accepted connection: the shard's context and the client's address.
pub struct ConnectionDispatcher {
    /// The shard's context.
    pub context: Rc<ShardContext>,
    /// The client's address.
    pub peer: SocketAddr,
}

impl Dispatcher for ConnectionDispatcher {
    fn dispatch(
        &self,
        frame: Bytes,
        response_limit: usize,
    ) -> Pin<Box<dyn Future<Output = Result<Answer, DispatchError>> + '_>> {
        Box::pin(dispatch(frame, &self.context, response_limit, Some(self.peer)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request frame with header v1 (client id "t") and `body`; header v2 (plus an empty tag
    /// section) where the API and version call for it.
    pub(crate) fn frame(api_key: i16, api_version: i16, body: &[u8]) -> Bytes {
        let mut frame = Vec::new();
        frame.extend_from_slice(&api_key.to_be_bytes());
        frame.extend_from_slice(&api_version.to_be_bytes());
        frame.extend_from_slice(&42i32.to_be_bytes());
        frame.extend_from_slice(&[0, 1, b't']);
        if ApiKey::try_from(api_key).is_ok_and(|key| key.request_header_version(api_version) >= 2) {
            frame.push(0);
        }
        frame.extend_from_slice(body);
        Bytes::from(frame)
    }

    #[test]
    fn unknown_unimplemented_and_unsupported_requests_are_refused() {
        let unknown = route(frame(9999, 0, &[])).err().unwrap();
        assert!(matches!(unknown, DispatchError::Header(HeaderError::UnknownApiKey { api_key: 9999, .. })));
        let sasl_handshake = route(frame(17, 0, &[])).err().unwrap();
        assert!(matches!(sasl_handshake, DispatchError::NotImplemented { api_key: ApiKey::SaslHandshake, .. }));
        let too_new = route(frame(3, 13, &[])).err().unwrap();
        assert!(matches!(too_new, DispatchError::UnsupportedVersion { api_key: ApiKey::Metadata, .. }));
        assert!(too_new.to_string().contains("versions 0 to 12"), "{too_new}");
        // Produce v0-2: advertised (for librdkafka's sake) but refused, as Kafka 4 does.
        for version in 0..=2 {
            let old = route(frame(0, version, &[])).err().unwrap();
            assert!(matches!(old, DispatchError::UnsupportedVersion { api_key: ApiKey::Produce, .. }), "v{version}");
        }
    }

    #[test]
    fn api_versions_answers_even_unsupported_versions() {
        let Ok(Routed::Answered(chunks)) = route(frame(18, 99, &[])) else { panic!("not answered") };
        assert!(!chunks.concat().is_empty());
    }

    #[test]
    fn every_advertised_api_is_routed_to_a_handler() {
        for support in versions::advertised() {
            // The lowest version: ApiVersions v3+ would need a body.
            let routed = route(frame(support.api_key as i16, support.handled.min, &[]));
            match (support.api_key, routed) {
                (ApiKey::ApiVersions, Ok(Routed::Answered(_))) => {}
                (_, Ok(Routed::Request(request))) => assert_eq!(request.header.api_key, support.api_key),
                (api_key, _) => panic!("{api_key:?} is advertised but not routed"),
            }
        }
    }
}
