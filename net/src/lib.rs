//! Spate's Kafka wire protocol and the broker process around it.
//!
//! Each connection ([`connection`], a task on the shard that accepted it) owns its read buffer and
//! feeds it through:
//!
//! 1. [`frame::FrameDecoder`] splits complete frames off the buffer, refusing oversized or
//!    negative size prefixes before anything is allocated for the body.
//! 2. [`dispatch`] reads the request header with [`header::parse_request`] (layout v0, v1 or v2,
//!    chosen by API key and version; the body stays a zero-copy slice of the frame) and checks the
//!    API and version against [`versions`].
//! 3. A handler in [`handlers`] decodes the body for its version (after [`guard`] has checked its
//!    array lengths), does its work — on the partitions' owner shards, through [`shard`] — and returns
//!    the response frame, built by [`response::encode_response`] (or, for Fetch, as chunks that share
//!    the stored batches), which the connection writes in request order.
//!
//! [`cli`] is the admin CLI (`spate topic|group|cluster|produce|consume`), a Kafka client of any broker.
//!
//! [`server`] runs `spate serve` (binary `src/bin/spate.rs`): settings from [`config`], the cluster
//! id from [`meta_properties`], one shard per core from `spate_core::runtime`, each accepting on the
//! same port. [`shard`] is the broker's state on each shard: the topic table copy, the partitions it
//! owns, the controller on shard 0, and the cross-shard messages.
//!
//! [`metrics`] are Prometheus metrics on the admin listener (`/metrics`, `/healthz`, `/readyz`).
//!
//! [`versions`] is the single table of APIs and version ranges; only implemented APIs are ever
//! advertised to clients. Messages are encoded and decoded with the `kafka-protocol` crate.
//!
//! Errors from client bytes are values, never panics: a frame, header or body error tells the
//! caller to close the connection (as Kafka does), after logging the error's `Display` text.

pub mod broker;
pub mod budget;
pub mod cli;
pub mod config;
pub mod connection;
pub mod dispatch;
pub mod frame;
pub mod group;
pub mod guard;
pub mod handlers;
pub mod header;
pub mod meta_properties;
pub mod metrics;
pub mod response;
pub mod server;
pub mod shard;
pub mod versions;
