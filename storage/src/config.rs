//! Per-log settings, named after the Kafka topic configs they implement.

use spate_core::batch::TimestampType;

/// When appended data is made durable (fdatasync), derived from Kafka's `flush.messages` / `flush.ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// `flush.messages=1`: an append is acknowledged only after an fdatasync that covers it. Concurrent appends
    /// on one log share one fdatasync (group commit).
    EveryAppend,
    /// Flush once `messages` unflushed records have accumulated (the appender that crosses the threshold waits
    /// for it) or `interval_ms` has passed since the last flush (the shard's ticker calls
    /// [`crate::Log::flush_if_due`]).
    Interval { messages: u64, interval_ms: i64 },
    /// Kafka's default (`flush.messages` and `flush.ms` unset): never fdatasync on the append path; durability
    /// against power loss comes from replication. Segments are still synced when they roll and on shutdown.
    Never,
}

/// Kafka's "unset" value for `flush.messages` / `flush.ms` (Long.MAX_VALUE).
pub const FLUSH_UNSET: i64 = i64::MAX;

#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest timestamp is older than this; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger than this; -1 for no limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes of batches between two sparse offset-index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: usize,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// Space reserved ahead of the writer in the active segment (never past `segment_bytes`).
    pub preallocate_bytes: u64,
    /// Capacity of the active segment's direct-I/O write buffer; larger batches get a buffer of their own size.
    pub write_buffer_bytes: usize,
    /// Broker-wide group-commit window, in microseconds (not a Kafka topic config): how long the task that is
    /// about to issue a write-and-fdatasync (under [`FlushPolicy::EveryAppend`]) or an explicit fdatasync waits
    /// for more appenders to join it. 0 (the default): no timer, one yield, so only the appenders already
    /// woken share it.
    pub group_commit_window_us: u64,
    /// `cleanup.policy` includes `compact`: the cleaner keeps only the latest record per key.
    pub compact: bool,
    /// `delete.retention.ms`: how long a tombstone (null value) survives cleaning, from its batch's max timestamp.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: clean once dirty bytes / cleanable bytes reach this.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: a sealed segment whose newest timestamp is younger than this is not cleaned.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty data older than this is cleaned whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// Broker-wide (not a Kafka topic config): the most keys one cleaning round maps (Kafka sizes this by
    /// `log.cleaner.dedupe.buffer.size`); a round that would map more stops at a segment boundary and the next
    /// round continues from there.
    pub cleaner_map_entries: usize,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            flush_messages: FLUSH_UNSET,
            flush_ms: FLUSH_UNSET,
            message_timestamp_type: TimestampType::CreateTime,
            preallocate_bytes: 32 << 20,
            write_buffer_bytes: 1 << 20,
            group_commit_window_us: 0,
            compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            cleaner_map_entries: 1 << 20,
        }
    }
}

impl LogConfig {
    pub fn flush_policy(&self) -> FlushPolicy {
        match (self.flush_messages, self.flush_ms) {
            (1, _) | (_, 0) => FlushPolicy::EveryAppend,
            (FLUSH_UNSET, FLUSH_UNSET) => FlushPolicy::Never,
            (messages, interval_ms) => {
                FlushPolicy::Interval { messages: u64::try_from(messages.max(1)).unwrap_or(u64::MAX), interval_ms }
            }
        }
    }

    /// A config that flushes on every append (acknowledged means fdatasync'd).
    pub fn flush_every_append(mut self) -> Self {
        self.flush_messages = 1;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policy_follows_kafka_settings() {
        assert_eq!(LogConfig::default().flush_policy(), FlushPolicy::Never);
        assert_eq!(LogConfig::default().flush_every_append().flush_policy(), FlushPolicy::EveryAppend);
        let interval = LogConfig { flush_messages: 100, flush_ms: 1000, ..LogConfig::default() };
        assert_eq!(interval.flush_policy(), FlushPolicy::Interval { messages: 100, interval_ms: 1000 });
        let zero_ms = LogConfig { flush_ms: 0, ..LogConfig::default() };
        assert_eq!(zero_ms.flush_policy(), FlushPolicy::EveryAppend);
    }
}
