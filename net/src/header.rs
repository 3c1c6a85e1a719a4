//! Request headers.
//!
//! Three layouts exist; which one a request uses depends on its API key and version (the
//! API's "flexible versions" switch to v2):
//!
//! | version | fields |
//! |---|---|
//! | v0 | `api_key: i16`, `api_version: i16`, `correlation_id: i32` |
//! | v1 | v0 + `client_id: nullable string` (i16 length, not compact) |
//! | v2 | v1 + tagged fields (unsigned varint count, then tag/length/bytes) |
//!
//! Header v0 belonged only to ControlledShutdown v0, which Kafka 4 removed along with the whole
//! API; `kafka-protocol` 0.18 neither knows that key nor decodes header v0, so no request parsed
//! by [`parse_request`] uses it today. [`decode_header`] still reads it, by hand.
//!
//! Everything is read from a [`Bytes`] frame: the client id and the body are slices of the
//! connection's read buffer, not copies.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::buf::NotEnoughBytesError;
use kafka_protocol::protocol::{Decodable, StrBytes};

/// Bytes before the client id: api key, api version, correlation id.
const FIXED_HEADER_BYTES: usize = 8;

/// A request header layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderVersion {
    /// api_key, api_version, correlation_id.
    V0,
    /// v0 + client_id.
    V1,
    /// v1 + tagged fields.
    V2,
}

impl HeaderVersion {
    /// The layout `kafka-protocol` assigns to `api_key` at `api_version`; `None` for a header
    /// version this code does not know (only possible after a crate upgrade).
    pub fn for_request(api_key: ApiKey, api_version: i16) -> Option<Self> {
        match api_key.request_header_version(api_version) {
            0 => Some(Self::V0),
            1 => Some(Self::V1),
            2 => Some(Self::V2),
            _ => None,
        }
    }

    /// The number on the wire (`RequestHeader.json` version).
    pub fn as_i16(self) -> i16 {
        match self {
            Self::V0 => 0,
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

/// A parsed request header.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestHeader {
    /// The API this request is for.
    pub api_key: ApiKey,
    /// The version of the request body. Not checked here: ApiVersions must answer even
    /// versions it does not support, and each handler knows its own range.
    pub api_version: i16,
    /// Echoed in the response so the client can match it to the request.
    pub correlation_id: i32,
    /// `None` for header v0 and for a null client id (Kafka treats null as empty).
    pub client_id: Option<StrBytes>,
    /// The layout the header was read with.
    pub header_version: HeaderVersion,
}

/// A request split into its header and its still-encoded body.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The parsed header.
    pub header: RequestHeader,
    /// The body, a slice of the frame; each handler decodes it for its own version.
    pub body: Bytes,
}

/// Why a header could not be read. Every variant means the connection should be closed (after a
/// log line): Kafka does the same, as a client that sends these is broken or not speaking Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The frame ended inside the header.
    Truncated {
        /// Size of the whole frame, in bytes.
        frame_bytes: usize,
    },
    /// An API key `kafka-protocol` does not know (never assigned, or removed in Kafka 4).
    UnknownApiKey {
        /// The key as sent.
        api_key: i16,
        /// The version as sent.
        api_version: i16,
        /// The correlation id, if the frame was long enough to hold it.
        correlation_id: Option<i32>,
    },
    /// A known API, but the header is invalid (client id not UTF-8, negative string length).
    Malformed {
        /// The API the header named.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// The correlation id as sent.
        correlation_id: i32,
        /// What `kafka-protocol` reported.
        reason: String,
    },
    /// `kafka-protocol` named a header version this code does not know: a crate upgrade that
    /// this module has not caught up with, not a client fault.
    UnknownHeaderVersion {
        /// The API the header named.
        api_key: ApiKey,
        /// The version as sent.
        api_version: i16,
        /// What `ApiKey::request_header_version` returned.
        header_version: i16,
    },
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Truncated { frame_bytes } => {
                write!(f, "request header truncated ({frame_bytes}-byte frame)")
            }
            HeaderError::UnknownApiKey { api_key, api_version, correlation_id } => {
                write!(f, "unknown api key {api_key} (version {api_version}, correlation id {correlation_id:?})")
            }
            HeaderError::Malformed { api_key, api_version, correlation_id, reason } => write!(
                f,
                "malformed {api_key:?} v{api_version} request header (correlation id \
                 {correlation_id}): {reason}"
            ),
            HeaderError::UnknownHeaderVersion { api_key, api_version, header_version } => {
                write!(f, "no request header layout v{header_version} (for {api_key:?} v{api_version})")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Reads the header at the front of `frame` (a frame body, without its size prefix) and returns
/// it with the rest of the frame as the body.
pub fn parse_request(frame: Bytes) -> Result<Request, HeaderError> {
    let frame_bytes = frame.len();
    let Some(&[key_hi, key_lo, version_hi, version_lo]) = frame.first_chunk::<4>() else {
        return Err(HeaderError::Truncated { frame_bytes });
    };
    let raw_api_key = i16::from_be_bytes([key_hi, key_lo]);
    let api_version = i16::from_be_bytes([version_hi, version_lo]);
    let Ok(api_key) = ApiKey::try_from(raw_api_key) else {
        return Err(HeaderError::UnknownApiKey {
            api_key: raw_api_key,
            api_version,
            correlation_id: correlation_id_of(&frame),
        });
    };
    let Some(header_version) = HeaderVersion::for_request(api_key, api_version) else {
        return Err(HeaderError::UnknownHeaderVersion {
            api_key,
            api_version,
            header_version: api_key.request_header_version(api_version),
        });
    };
    let mut cursor = frame;
    let header = decode_header(&mut cursor, header_version)?;
    Ok(Request { header, body: cursor })
}

/// Reads a header of the given layout from the front of `buf`, advancing `buf` past it.
///
/// Use [`parse_request`] unless the layout is known some other way; this one does not consult
/// the API's flexible versions.
pub fn decode_header(buf: &mut Bytes, header_version: HeaderVersion) -> Result<RequestHeader, HeaderError> {
    let frame_bytes = buf.len();
    if frame_bytes < FIXED_HEADER_BYTES {
        return Err(HeaderError::Truncated { frame_bytes });
    }
    // Peek the fixed part first so every later error can name the request.
    let mut fixed = &buf[..FIXED_HEADER_BYTES];
    let raw_api_key = fixed.get_i16();
    let api_version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let Ok(api_key) = ApiKey::try_from(raw_api_key) else {
        return Err(HeaderError::UnknownApiKey {
            api_key: raw_api_key,
            api_version,
            correlation_id: Some(correlation_id),
        });
    };

    let client_id = match header_version {
        HeaderVersion::V0 => {
            buf.advance(FIXED_HEADER_BYTES);
            None
        }
        HeaderVersion::V1 | HeaderVersion::V2 => {
            // The crate reads from the same Bytes, so the client id stays a slice of the frame.
            let mut cursor = buf.clone();
            match kafka_protocol::messages::RequestHeader::decode(&mut cursor, header_version.as_i16()) {
                Ok(decoded) => {
                    *buf = cursor;
                    // Unknown header tags are dropped: RequestHeader.json defines none, and
                    // Kafka ignores tags it does not know.
                    decoded.client_id
                }
                Err(error) => {
                    let truncated = error.downcast_ref::<bytes::TryGetError>().is_some()
                        || error.downcast_ref::<NotEnoughBytesError>().is_some();
                    return Err(if truncated {
                        HeaderError::Truncated { frame_bytes }
                    } else {
                        HeaderError::Malformed { api_key, api_version, correlation_id, reason: error.to_string() }
                    });
                }
            }
        }
    };
    Ok(RequestHeader { api_key, api_version, correlation_id, client_id, header_version })
}

/// The correlation id at bytes 4..8 of a frame, if it is that long.
fn correlation_id_of(frame: &[u8]) -> Option<i32> {
    let bytes = frame.get(4..FIXED_HEADER_BYTES)?;
    bytes.try_into().ok().map(i32::from_be_bytes)
}
