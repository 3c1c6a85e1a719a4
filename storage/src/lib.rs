//! Spate's partition log.
//!
//! Each partition is a directory of Kafka-named segment files holding RecordBatch v2 bytes exactly as
//! producers sent them (offsets assigned in place), with sparse offset and time indexes. Writes go through a
//! direct-I/O write buffer; durability follows the topic's flush policy with group commit; reads are served
//! from a per-shard batch cache or from direct reads. See `storage/DESIGN.md` for the format and the crash
//! argument.

pub mod cache;
mod compact;
pub mod config;
pub mod disk;
pub mod index;
mod log;
mod open;
mod read;
mod retention;
mod segment;
#[doc(hidden)]
pub mod testing;
mod writer;
mod yield_now;

pub use cache::{BatchCache, CacheStats};
pub use compact::{CleanStats, CLEANER_CHECKPOINT_FILE};
pub use config::{FlushPolicy, LogConfig};
pub use log::{AppendInfo, Log};
pub use open::{OpenError, CLEAN_SHUTDOWN_MARKER, LOG_START_OFFSET_FILE};
pub use read::LogRead;
