//! Retention by time and size, and DeleteRecords: whole segments go, the log start offset advances, offsets
//! are never reused.

use crate::disk::Disk;
use crate::log::{Log, SegmentFilesGuard};
use crate::open::LOG_START_OFFSET_FILE;
use crate::segment::{segment_path, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use spate_core::ErrorCode;

impl<D: Disk> Log<D> {
    /// Deletes the oldest segments that are past `retention.ms`, beyond `retention.bytes`, or wholly below the
    /// log start offset. If every segment has expired, the active one is rolled first so it can go too (as
    /// Kafka does), leaving an empty segment at the log end offset. Returns how many segments were deleted.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<usize, ErrorCode> {
        let roll_first = {
            let state = self.state.borrow();
            let expired = |max_timestamp: i64| {
                state.config.retention_ms >= 0
                    && max_timestamp >= 0
                    && now_ms - max_timestamp > state.config.retention_ms
            };
            !state.active.is_empty()
                && expired(state.active.max_timestamp)
                && state.sealed.values().all(|s| expired(s.max_timestamp))
        };
        if roll_first {
            self.roll(now_ms).await?;
        }
        // Held from the decision to the removal, so the cleaner cannot merge a doomed segment with a kept one.
        let files = self.lock_segment_files().await;
        let doomed: Vec<i64> = {
            let state = self.state.borrow();
            let config = &state.config;
            let mut remaining_bytes: i64 = state.segments().map(|s| s.size as i64).sum();
            let mut doomed = Vec::new();
            for segment in state.sealed.values() {
                let by_time = config.retention_ms >= 0
                    && segment.max_timestamp >= 0
                    && now_ms - segment.max_timestamp > config.retention_ms;
                let by_size =
                    config.retention_bytes >= 0 && remaining_bytes - segment.size as i64 >= config.retention_bytes;
                let below_start = segment.next_offset <= state.log_start_offset;
                if !(by_time || by_size || below_start) {
                    break;
                }
                remaining_bytes -= segment.size as i64;
                doomed.push(segment.base_offset);
            }
            doomed
        };
        self.delete_segments(&files, &doomed).await?;
        Ok(doomed.len())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1 means the high watermark) and deletes the
    /// segments wholly below it. The new start is persisted before anything is deleted. Returns the new log
    /// start offset.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, ErrorCode> {
        let files = self.lock_segment_files().await;
        let (new_start, doomed) = {
            let state = self.state.borrow();
            state.check_writable()?;
            let target = if offset == -1 { state.high_watermark } else { offset };
            if target < 0 || target > state.high_watermark {
                return Err(ErrorCode::OffsetOutOfRange);
            }
            if target <= state.log_start_offset {
                return Ok(state.log_start_offset);
            }
            let doomed: Vec<i64> =
                state.sealed.values().filter(|s| s.next_offset <= target).map(|s| s.base_offset).collect();
            (target, doomed)
        };
        let checkpoint = self.dir.join(LOG_START_OFFSET_FILE);
        if let Err(error) = self.disk.write_file_atomic(&checkpoint, new_start.to_string().as_bytes()).await {
            let mut state = self.state();
            return Err(self.fail(&mut state, "writing the log start offset", error));
        }
        {
            let mut state = self.state();
            state.log_start_offset = state.log_start_offset.max(new_start);
            state.high_watermark = state.high_watermark.max(new_start);
        }
        self.cache.evict_below(self.id, new_start);
        self.delete_segments(&files, &doomed).await?;
        Ok(new_start)
    }

    /// Deletes sealed segments; the caller holds the segment-files lock (`_files`) since it chose them.
    async fn delete_segments(&self, _files: &SegmentFilesGuard<'_, D>, bases: &[i64]) -> Result<(), ErrorCode> {
        if bases.is_empty() {
            return Ok(());
        }
        let new_start = {
            let mut state = self.state();
            for base in bases {
                let removed = state.sealed.remove(base);
                assert!(removed.is_some(), "deleting a segment that is not sealed");
            }
            let first_base = state.sealed.keys().next().copied().unwrap_or(state.active.base_offset);
            state.log_start_offset = state.log_start_offset.max(first_base);
            state.high_watermark = state.high_watermark.max(state.log_start_offset);
            state.log_start_offset
        };
        self.cache.evict_below(self.id, new_start);
        for &base in bases {
            // The .log goes first: a crash between the removals leaves orphan indexes, which open() deletes.
            for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let path = segment_path(&self.dir, base, suffix);
                if let Err(error) = self.disk.remove_file(&path).await {
                    if error.kind() != std::io::ErrorKind::NotFound {
                        let mut state = self.state();
                        return Err(self.fail(&mut state, "deleting a segment", error));
                    }
                }
            }
            tracing::info!(dir = %self.dir.display(), base_offset = base, "deleted segment");
        }
        Ok(())
    }
}
