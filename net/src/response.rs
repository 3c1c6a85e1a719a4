//! Response frames: `i32` size prefix, response header, body.
//!
//! Response header v0 is the correlation id alone; v1 adds a tagged-field section, which Spate
//! always sends empty (one `0x00` byte). The header version follows the API's flexible versions
//! (`ApiKey::response_header_version`), with one fixed exception that the crate already encodes:
//! ApiVersions responses always use header v0, even at flexible versions, because a client that
//! sent a too-new version must still be able to read the reply before it knows which versions the
//! broker speaks (ApiVersionsResponse.json: "Tagged fields are only supported in the body but not
//! in the header"; KIP-511).

use std::error::Error;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use crate::frame::SIZE_PREFIX_BYTES;

/// Why a response could not be encoded. Neither is the client's fault: both point at a bug in
/// the handler that built the body.
#[derive(Debug)]
pub enum EncodeError {
    /// `kafka-protocol` refused to encode the body at this version (e.g. a field set that the
    /// version does not carry).
    Body {
        /// The API of the response.
        api_key: ApiKey,
        /// The body version asked for.
        version: i16,
        /// What the crate reported.
        source: Box<dyn Error + Send + Sync>,
    },
    /// A response header version this module does not know (only after a crate upgrade).
    UnknownHeaderVersion(i16),
    /// The frame does not fit the `i32` size prefix.
    FrameTooLarge {
        /// Size of the frame body, in bytes.
        size_bytes: usize,
    },
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::Body { api_key, version, source } => {
                write!(f, "cannot encode {api_key:?} v{version} response: {source}")
            }
            EncodeError::UnknownHeaderVersion(version) => {
                write!(f, "no response header layout v{version}")
            }
            EncodeError::FrameTooLarge { size_bytes } => {
                write!(f, "response of {size_bytes} bytes does not fit a frame")
            }
        }
    }
}

impl Error for EncodeError {}

/// Appends one complete response frame for `api_key` at body `version` to `out`.
///
/// The header version is derived from `api_key` and `version`. On error `out` is left as it
/// was, so a half-written frame never reaches the socket.
pub fn encode_response<M: Encodable>(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<(), EncodeError> {
    let header_version = api_key.response_header_version(version);
    if !(0..=1).contains(&header_version) {
        return Err(EncodeError::UnknownHeaderVersion(header_version));
    }
    let frame_start = out.len();
    // Reserve the prefix and fill it in once the length is known: one encoding pass, no
    // separate compute_size walk over the body.
    out.put_i32(0);
    out.put_i32(correlation_id);
    if header_version >= 1 {
        out.put_u8(0); // empty tagged-field section
    }
    if let Err(source) = body.encode(out, version) {
        out.truncate(frame_start);
        return Err(EncodeError::Body { api_key, version, source: source.into() });
    }
    let size_bytes = out.len() - frame_start - SIZE_PREFIX_BYTES;
    let Ok(size) = i32::try_from(size_bytes) else {
        out.truncate(frame_start);
        return Err(EncodeError::FrameTooLarge { size_bytes });
    };
    out[frame_start..frame_start + SIZE_PREFIX_BYTES].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse};

    #[test]
    fn api_versions_uses_header_v0_at_every_version() {
        for version in 0..=4 {
            assert_eq!(ApiKey::ApiVersions.response_header_version(version), 0);
        }
    }

    #[test]
    fn flexible_metadata_gets_header_v1() {
        // Metadata is flexible from v9: header v1, so one tag byte after the correlation id.
        let mut out = BytesMut::new();
        let body = MetadataResponse::default();
        encode_response(&mut out, ApiKey::Metadata, 9, 0x0102_0304, &body).unwrap();
        assert_eq!(&out[4..9], &[0x01, 0x02, 0x03, 0x04, 0x00]);
        let size = i32::from_be_bytes([out[0], out[1], out[2], out[3]]);
        assert_eq!(size as usize, out.len() - 4);

        let mut v8 = BytesMut::new();
        encode_response(&mut v8, ApiKey::Metadata, 8, 0x0102_0304, &body).unwrap();
        assert_eq!(&v8[4..8], &[0x01, 0x02, 0x03, 0x04]);
    }

    #[test]
    fn appends_after_existing_bytes() {
        let mut out = BytesMut::from(&b"xy"[..]);
        let body = ApiVersionsResponse::default();
        encode_response(&mut out, ApiKey::ApiVersions, 0, 7, &body).unwrap();
        // "xy", size 10, correlation id 7, error 0, empty array.
        assert_eq!(&out[..], &[b'x', b'y', 0, 0, 0, 10, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn failed_body_leaves_the_buffer_as_it_was() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let body = ApiVersionsResponse::default();
        let error = encode_response(&mut out, ApiKey::ApiVersions, 99, 7, &body).unwrap_err();
        assert!(matches!(error, EncodeError::Body { version: 99, .. }));
        assert_eq!(&out[..], b"keep");
    }
}
