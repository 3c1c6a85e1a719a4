//! From a frame to a response: parse the header, check the API and version against
//! [`crate::versions`], and call that API's handler.
//!
//! Anything that cannot be answered closes the connection, after a log line, as Kafka does: a header
//! that does not parse, an unknown API key, an API Spate does not implement, a version outside the
//! handled range (except for ApiVersions, which answers every version), a body that does not decode.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

use crate::broker::BrokerInfo;
use crate::handlers::{self, HandlerError};
use crate::header::{parse_request, HeaderError};
use crate::versions;

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
    /// The handler refused the body, or could not encode the response.
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

/// Answers the request in `frame` (a frame body, without its size prefix), appending the response
/// frame to `out`; returns the API key answered. On error `out` is left as it was.
pub fn dispatch(frame: Bytes, broker: &BrokerInfo, out: &mut BytesMut) -> Result<ApiKey, DispatchError> {
    let request = parse_request(frame).map_err(DispatchError::Header)?;
    let header = &request.header;
    let (api_key, api_version, correlation_id) = (header.api_key, header.api_version, header.correlation_id);
    if api_key == ApiKey::ApiVersions {
        handlers::api_versions::handle(header, request.body, out).map_err(DispatchError::Handler)?;
        return Ok(api_key);
    }
    match versions::lookup(api_key) {
        Some(support) if support.implemented && !support.handles(api_version) => {
            return Err(DispatchError::UnsupportedVersion { api_key, api_version, correlation_id });
        }
        Some(support) if support.implemented => {}
        _ => return Err(DispatchError::NotImplemented { api_key, api_version, correlation_id }),
    }
    match api_key {
        ApiKey::Metadata => handlers::metadata::handle(header, request.body, broker, out),
        // `versions` marks an API implemented only once it has an arm here; the test below checks.
        _ => return Err(DispatchError::NotImplemented { api_key, api_version, correlation_id }),
    }
    .map_err(DispatchError::Handler)?;
    Ok(api_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> BrokerInfo {
        BrokerInfo { node_id: 0, advertised_host: "localhost".into(), advertised_port: 9092, cluster_id: "c".into() }
    }

    /// A request frame with header v1 (client id "t") and `body`; header v2 (plus an empty tag
    /// section) where the API and version call for it.
    fn frame(api_key: i16, api_version: i16, body: &[u8]) -> Bytes {
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
    fn every_advertised_api_is_dispatched() {
        for support in versions::advertised() {
            // The lowest versions use request header v1, which `frame` writes.
            let version = support.handled.min;
            assert_eq!(support.api_key.request_header_version(version), 1);
            let body: &[u8] = if support.api_key == ApiKey::Metadata { &[0, 0, 0, 0] } else { &[] };
            let mut out = BytesMut::new();
            let result = dispatch(frame(support.api_key as i16, version, body), &broker(), &mut out);
            assert_eq!(result.ok(), Some(support.api_key), "v{version}");
            assert!(!out.is_empty());
        }
    }

    #[test]
    fn metadata_with_impossible_topic_count_is_an_error_not_an_abort() {
        let mut out = BytesMut::new();
        let error = dispatch(frame(3, 1, &[0x7f, 0xff, 0xff, 0xff]), &broker(), &mut out).unwrap_err();
        assert!(matches!(error, DispatchError::Handler(HandlerError::MalformedBody { .. })), "{error}");
        assert!(out.is_empty());
    }

    #[test]
    fn unknown_unimplemented_and_unsupported_requests_are_refused() {
        let mut out = BytesMut::new();
        let unknown = dispatch(frame(9999, 0, &[]), &broker(), &mut out).unwrap_err();
        assert!(matches!(unknown, DispatchError::Header(HeaderError::UnknownApiKey { api_key: 9999, .. })));
        let produce = dispatch(frame(0, 3, &[]), &broker(), &mut out).unwrap_err();
        assert!(matches!(produce, DispatchError::NotImplemented { api_key: ApiKey::Produce, .. }));
        let too_new = dispatch(frame(3, 13, &[]), &broker(), &mut out).unwrap_err();
        assert!(matches!(too_new, DispatchError::UnsupportedVersion { api_key: ApiKey::Metadata, .. }));
        assert!(too_new.to_string().contains("versions 0 to 12"), "{too_new}");
        assert!(out.is_empty());
    }

    #[test]
    fn api_versions_answers_even_unsupported_versions() {
        let mut out = BytesMut::new();
        assert_eq!(dispatch(frame(18, 99, &[]), &broker(), &mut out).unwrap(), ApiKey::ApiVersions);
        assert!(!out.is_empty());
    }
}
