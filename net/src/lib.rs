//! Spate's Kafka wire protocol, without sockets: bytes in, bytes out.
//!
//! The shard runtime (a later step) owns each connection's read buffer and feeds it here:
//!
//! 1. [`frame::FrameDecoder`] splits complete frames off the buffer, refusing oversized or
//!    negative size prefixes before anything is allocated for the body.
//! 2. [`header::parse_request`] reads the request header (layout v0, v1 or v2, chosen by API key
//!    and version) and leaves the body as a zero-copy slice of the frame.
//! 3. A handler in [`handlers`] decodes the body for its version and appends the response frame,
//!    built by [`response::encode_response`], to the connection's write buffer.
//!
//! [`versions`] is the single table of APIs and version ranges; only implemented APIs are ever
//! advertised to clients. Messages are encoded and decoded with the `kafka-protocol` crate.
//!
//! Errors from client bytes are values, never panics: a frame, header or body error tells the
//! caller to close the connection (as Kafka does), after logging the error's `Display` text.

pub mod frame;
pub mod handlers;
pub mod header;
pub mod response;
pub mod versions;
