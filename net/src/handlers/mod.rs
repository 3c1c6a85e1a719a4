//! One module per Kafka API. Each takes a parsed [`RequestHeader`](crate::header::RequestHeader)
//! and the still-encoded body, checks the body with [`crate::guard`] before `kafka-protocol` decodes
//! it, and returns the response frame (or none, for acks=0 produce).

pub mod alter_configs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::guard::{check_body, Schema};
use crate::header::RequestHeader;
use crate::response::encode_response;

use kafka_protocol::messages::ApiKey;

use crate::response::EncodeError;

/// Why a handler produced no response. Either way the connection should be closed after a log
/// line, as Kafka does when a request body does not parse.
#[derive(Debug)]
pub enum HandlerError {
    /// The body does not decode at the version the header named.
    MalformedBody {
        /// The API of the request.
        api_key: ApiKey,
        /// The version the header named.
        api_version: i16,
        /// What `kafka-protocol` reported.
        reason: String,
    },
    /// The response could not be encoded: a Spate bug, not the client's fault.
    Encode(EncodeError),
    /// The request was handled but the connection must close (Kafka closes it after a failed
    /// acks=0 produce, so the producer notices and refreshes its metadata).
    Close(String),
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerError::MalformedBody { api_key, api_version, reason } => {
                write!(f, "malformed {api_key:?} v{api_version} request body: {reason}")
            }
            HandlerError::Encode(error) => error.fmt(f),
            HandlerError::Close(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<EncodeError> for HandlerError {
    fn from(error: EncodeError) -> Self {
        HandlerError::Encode(error)
    }
}

/// Checks `body` against `schema` (every array at every depth, see [`crate::guard::walk`]), then
/// decodes it with `kafka-protocol`.
pub fn decode_checked<M: Decodable>(header: &RequestHeader, schema: &Schema, body: Bytes) -> Result<M, HandlerError> {
    let version = header.api_version;
    let malformed =
        |reason: String| HandlerError::MalformedBody { api_key: header.api_key, api_version: version, reason };
    check_body(schema, version, &body).map_err(|error| malformed(error.to_string()))?;
    let mut cursor = body;
    M::decode(&mut cursor, version).map_err(|error| malformed(error.to_string()))
}

/// Encodes `body` as the response to `header`: one chunk.
pub fn respond<M: Encodable>(header: &RequestHeader, body: &M) -> Result<Option<Vec<Bytes>>, HandlerError> {
    let mut out = BytesMut::new();
    encode_response(&mut out, header.api_key, header.api_version, header.correlation_id, body)?;
    Ok(Some(vec![out.freeze()]))
}
