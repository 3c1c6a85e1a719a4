//! Spate's shared vocabulary: the RecordBatch v2 view, Kafka error codes and the topic config model.
//!
//! Nothing in here does I/O; it is used by `storage` (segment validation and recovery) and by `net`
//! (produce validation) alike.

pub mod batch;
pub mod compression;
pub mod error;
pub mod record;
pub mod rewrite;
pub mod topic_config;
pub mod varint;

pub use batch::{BatchHeader, BatchView, BATCH_HEADER_LEN};
pub use error::ErrorCode;
pub mod runtime;
