//! One module per Kafka API. Each takes a parsed [`RequestHeader`](crate::header::RequestHeader)
//! and the still-encoded body, and appends the response frame to the connection's write buffer.

pub mod api_versions;
pub mod metadata;

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
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandlerError::MalformedBody { api_key, api_version, reason } => {
                write!(f, "malformed {api_key:?} v{api_version} request body: {reason}")
            }
            HandlerError::Encode(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for HandlerError {}

impl From<EncodeError> for HandlerError {
    fn from(error: EncodeError) -> Self {
        HandlerError::Encode(error)
    }
}
