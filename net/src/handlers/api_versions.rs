//! ApiVersions (key 18): the first request nearly every client sends, before it knows which
//! versions of anything (ApiVersions included) the broker speaks.
//!
//! Kafka's behaviour, reproduced here (`RequestContext.parseRequest`,
//! `ApiVersionsRequest.getErrorResponse`, `KafkaApis.handleApiVersionsRequest`, KIP-511):
//!
//! - **Unsupported version** (above 4, or negative): the body is not parsed at all. The answer
//!   is a **v0** body with error `UNSUPPORTED_VERSION` (35) whose `api_keys` holds one entry,
//!   ApiVersions' own range, so the client can retry at the highest version both sides speak.
//!   (Kafka lists only ApiVersions here, not every API.) The request header was still read at
//!   the layout the client's version implies (v2 for version >= 3).
//! - **v3+ with an invalid client software name or version** (must match
//!   `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`): error `INVALID_REQUEST` (42) at the request's
//!   version with an empty `api_keys`.
//! - **Otherwise**: error 0 and the advertised APIs ([`crate::versions::advertised`]).
//!
//! The response header is always v0 (see [`crate::response`]). No tagged fields are sent in the
//! body: librdkafka before 2.2 (Debian's 2.0.2, so kcat) skips one byte too few for each tagged
//! field it does not know (confluentinc/librdkafka#4278) and then misreads the response, so an
//! `ApiVersionsResponse` v3+ must carry none. `kafka-protocol` writes a tagged field only when it
//! differs from its default, and Spate leaves `supported_features`, `finalized_features`,
//! `finalized_features_epoch` and `zk_migration_ready` at their defaults; the byte-level tests
//! pin that down.

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;

use super::HandlerError;
use crate::header::RequestHeader;
use crate::response::encode_response;
use crate::versions::{self, ApiSupport};

/// First version with client software name/version fields (and the first flexible one).
const FIRST_FLEXIBLE_VERSION: i16 = 3;

/// The body to send and the version to encode it at (0 for an unsupported request version).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiVersionsReply {
    /// Body version to encode with.
    pub version: i16,
    /// The response body.
    pub body: ApiVersionsResponse,
}

/// Answers one ApiVersions request, appending the response frame to `out`.
///
/// # Panics
/// If `header` is not an ApiVersions header: dispatch sent the wrong request here.
pub fn handle(header: &RequestHeader, body: Bytes, out: &mut BytesMut) -> Result<(), HandlerError> {
    assert_eq!(header.api_key, ApiKey::ApiVersions, "misrouted request");
    let reply = build_reply(header.api_version, body)?;
    encode_response(out, ApiKey::ApiVersions, reply.version, header.correlation_id, &reply.body)?;
    Ok(())
}

/// Builds the response for a request at `api_version` with the still-encoded `body`.
pub fn build_reply(api_version: i16, body: Bytes) -> Result<ApiVersionsReply, HandlerError> {
    if !versions::API_VERSIONS.handles(api_version) {
        let body = ApiVersionsResponse::default()
            .with_error_code(ResponseError::UnsupportedVersion.code())
            .with_api_keys(vec![api_version_entry(&versions::API_VERSIONS)]);
        return Ok(ApiVersionsReply { version: 0, body });
    }

    let mut cursor = body;
    let request = ApiVersionsRequest::decode(&mut cursor, api_version).map_err(|error| {
        HandlerError::MalformedBody { api_key: ApiKey::ApiVersions, api_version, reason: error.to_string() }
    })?;
    // Trailing bytes are ignored, as Kafka's generated parsers do.

    if api_version >= FIRST_FLEXIBLE_VERSION
        && !(is_valid_software_label(&request.client_software_name)
            && is_valid_software_label(&request.client_software_version))
    {
        let body = ApiVersionsResponse::default().with_error_code(ResponseError::InvalidRequest.code());
        return Ok(ApiVersionsReply { version: api_version, body });
    }

    let api_keys = versions::advertised().map(api_version_entry).collect();
    Ok(ApiVersionsReply { version: api_version, body: ApiVersionsResponse::default().with_api_keys(api_keys) })
}

fn api_version_entry(support: &ApiSupport) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(support.api_key as i16)
        .with_min_version(support.advertised.min)
        .with_max_version(support.advertised.max)
}

/// Kafka's `SOFTWARE_NAME_VERSION_PATTERN`: `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`.
fn is_valid_software_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_labels_follow_kafkas_pattern() {
        for good in ["librdkafka", "2.0.2", "apache-kafka-java", "a", "3.7.0-SNAPSHOT", "x.y"] {
            assert!(is_valid_software_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", ".a", "a.", "a b", "a_b", "é", "kcat!"] {
            assert!(!is_valid_software_label(bad), "{bad}");
        }
    }

    #[test]
    fn unsupported_versions_get_v0_and_only_api_versions_range() {
        for version in [5, 99, i16::MAX, -1, i16::MIN] {
            let reply = build_reply(version, Bytes::from_static(b"\xff\xff garbage")).unwrap();
            assert_eq!(reply.version, 0);
            assert_eq!(reply.body.error_code, 35);
            assert_eq!(reply.body.api_keys.len(), 1);
            let entry = &reply.body.api_keys[0];
            assert_eq!((entry.api_key, entry.min_version, entry.max_version), (18, 0, 4));
        }
    }

    #[test]
    fn supported_versions_list_only_implemented_apis() {
        for version in 0..=2 {
            let reply = build_reply(version, Bytes::new()).unwrap();
            assert_eq!(reply.version, version);
            assert_eq!(reply.body.error_code, 0);
            let keys: Vec<i16> = reply.body.api_keys.iter().map(|k| k.api_key).collect();
            assert_eq!(
                keys,
                vec![
                    0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 32, 33, 35, 37, 42, 44, 47, 60,
                    68, 69
                ]
            );
        }
    }

    #[test]
    fn truncated_v3_body_is_malformed() {
        // Name claims 10 bytes, 2 present.
        let error = build_reply(3, Bytes::from_static(&[0x0b, b'l', b'i'])).unwrap_err();
        assert!(matches!(error, HandlerError::MalformedBody { api_version: 3, .. }));
    }
}
