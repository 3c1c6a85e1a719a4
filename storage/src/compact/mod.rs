//! Log compaction (`cleanup.policy=compact`): keep the latest record per key in the sealed segments.
//!
//! A round ([`Log::clean`]) works on the *cleanable section*: sealed segments from the log start up to the first
//! uncleanable offset (the active segment, or the first sealed segment younger than `min.compaction.lag.ms`).
//! Below the checkpoint's first dirty offset the section was cleaned by an earlier round; from it on it is
//! dirty. The round maps every key of the dirty part to its latest offset ([`map::OffsetMap`], bounded: a round
//! that would map more stops at a segment boundary), then rewrites the section from its start up to the end of
//! what it mapped, oldest first, in groups of consecutive segments that fit one segment, keeping a record only
//! if no later record has its key, and dropping tombstones older than `delete.retention.ms` and records
//! without a key. Each group replaces its segments atomically ([`swap`]); the checkpoint then moves to the end
//! of the mapped part. See `storage/DESIGN.md` ("Compaction") for the crash argument.

mod map;
mod rewrite;
mod swap;

use crate::disk::{Disk, DiskFile, OpenMode};
use crate::log::{Log, LogState};
use crate::read::max_decompressed_bytes;
use crate::segment::{ScanStop, Scanner, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use map::OffsetMap;
use rewrite::{filter_batch, for_each_record, CleanedWriter, Filtered};
use spate_core::ErrorCode;
use std::io;
use std::path::Path;
use std::rc::Rc;

pub(crate) use swap::recover as recover_swaps;

/// The cleaner's checkpoint, one per partition directory: `<first dirty offset> <tombstones due ms>`.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-checkpoint";

/// Batches scanned between two yields, so a long round leaves the shard to its other tasks.
const YIELD_EVERY_BATCHES: usize = 32;
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// The cleaner's state of one log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CleanerState {
    /// Offsets below this were cleaned by a completed round (Kafka's cleaner-offset-checkpoint).
    pub first_dirty_offset: i64,
    /// When the oldest tombstone the last round kept may go; `i64::MAX` if it kept none. Makes the log
    /// cleanable even without new dirty data.
    pub tombstones_due_ms: i64,
    /// A round is running.
    pub running: bool,
    /// A round found a corrupt batch: the log is not cleaned again until it is reopened.
    pub uncleanable: bool,
}

impl CleanerState {
    pub fn new(first_dirty_offset: i64, tombstones_due_ms: i64) -> Self {
        CleanerState { first_dirty_offset, tombstones_due_ms, running: false, uncleanable: false }
    }
}

/// Reads the checkpoint; a missing or unreadable one means nothing is known to be clean.
pub(crate) async fn load_checkpoint<D: Disk>(disk: &D, dir: &Path) -> io::Result<CleanerState> {
    let bytes = match disk.read_file(&dir.join(CLEANER_CHECKPOINT_FILE)).await {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(CleanerState::new(0, i64::MAX)),
        Err(error) => return Err(error),
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut fields = text.split_whitespace().map(str::parse::<i64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(first_dirty)), Some(Ok(due))) => Ok(CleanerState::new(first_dirty, due)),
        _ => {
            tracing::warn!(dir = %dir.display(), "unreadable cleaner checkpoint; the whole log counts as dirty");
            Ok(CleanerState::new(0, i64::MAX))
        }
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments rewritten (the old ones) and written (the cleaned ones).
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    /// The new first dirty offset.
    pub first_dirty_offset: i64,
}

/// A sealed segment as a round sees it.
struct SectionSegment<F> {
    base: i64,
    next_offset: i64,
    size: u64,
    file: Rc<F>,
}

/// The cleanable section of a log now.
struct Section<F> {
    segments: Vec<SectionSegment<F>>,
    /// Index of the first dirty segment (`segments.len()` if none).
    first_dirty: usize,
    first_uncleanable_offset: i64,
    dirty_bytes: u64,
    clean_bytes: u64,
    /// The first timestamp of the first dirty segment (what `max.compaction.lag.ms` counts from).
    dirty_since_ms: Option<i64>,
}

fn section<F: DiskFile>(state: &LogState<F>, now_ms: i64) -> Section<F> {
    let config = &state.config;
    let first_dirty_offset = state.cleaner.first_dirty_offset;
    let mut segments = Vec::new();
    let mut first_uncleanable_offset = state.active.base_offset;
    let mut dirty_since_ms = None;
    for segment in state.sealed.values() {
        if segment.max_timestamp >= 0 && now_ms.saturating_sub(segment.max_timestamp) < config.min_compaction_lag_ms {
            first_uncleanable_offset = segment.base_offset;
            break;
        }
        // Wholly below the log start: about to be deleted, not worth rewriting.
        if segment.next_offset <= state.log_start_offset && segment.base_offset < state.log_start_offset {
            continue;
        }
        if segment.next_offset > first_dirty_offset && dirty_since_ms.is_none() {
            dirty_since_ms = segment.roll_clock_start_ms;
        }
        segments.push(SectionSegment {
            base: segment.base_offset,
            next_offset: segment.next_offset,
            size: segment.size,
            file: segment.file.clone(),
        });
    }
    let first_dirty = segments.iter().position(|s| s.next_offset > first_dirty_offset).unwrap_or(segments.len());
    let clean_bytes = segments[..first_dirty].iter().map(|s| s.size).sum();
    let dirty_bytes = segments[first_dirty..].iter().map(|s| s.size).sum();
    Section { segments, first_dirty, first_uncleanable_offset, dirty_bytes, clean_bytes, dirty_since_ms }
}

impl<D: Disk> Log<D> {
    /// Dirty bytes over all bytes of the cleanable section (Kafka's cleanable ratio); 0 when it is empty.
    pub fn cleanable_ratio(&self, now_ms: i64) -> f64 {
        let state = self.state.borrow();
        let section = section(&state, now_ms);
        let total = section.clean_bytes + section.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            section.dirty_bytes as f64 / total as f64
        }
    }

    /// Whether a round should run now: the log is compacted, no round runs, and the dirty ratio reached
    /// `min.cleanable.dirty.ratio`, or dirty data is older than `max.compaction.lag.ms`, or a kept tombstone
    /// is due for removal.
    pub fn needs_cleaning(&self, now_ms: i64) -> bool {
        let state = self.state.borrow();
        let cleaner = &state.cleaner;
        if !state.config.compact || cleaner.running || cleaner.uncleanable || state.failure.is_some() {
            return false;
        }
        let section = section(&state, now_ms);
        let total = section.clean_bytes + section.dirty_bytes;
        if total == 0 {
            return false;
        }
        let ratio_reached = section.dirty_bytes as f64 / total as f64 >= state.config.min_cleanable_dirty_ratio;
        let lag_passed = section
            .dirty_since_ms
            .is_some_and(|since| now_ms.saturating_sub(since) > state.config.max_compaction_lag_ms);
        (section.dirty_bytes > 0 && (ratio_reached || lag_passed)) || now_ms >= cleaner.tombstones_due_ms
    }

    /// The offset below which the last completed round cleaned (Kafka's cleaner checkpoint).
    pub fn first_dirty_offset(&self) -> i64 {
        let state = self.state.borrow();
        state.cleaner.first_dirty_offset.max(state.log_start_offset)
    }

    /// Runs one cleaning round (see the module docs) if the log is compacted and no round is running.
    /// An I/O error fails the log, as on the write path; a corrupt batch stops cleaning this log.
    pub async fn clean(&self, now_ms: i64) -> Result<CleanStats, ErrorCode> {
        let section = {
            let mut state = self.state();
            state.check_writable()?;
            if !state.config.compact || state.cleaner.running || state.cleaner.uncleanable {
                return Ok(CleanStats {
                    first_dirty_offset: state.cleaner.first_dirty_offset,
                    ..CleanStats::default()
                });
            }
            state.cleaner.running = true;
            section(&state, now_ms)
        };
        let _running = Running { log: self };
        let result = self.clean_section(section, now_ms).await;
        if result == Err(ErrorCode::CorruptMessage) {
            self.state().cleaner.uncleanable = true;
        }
        result
    }

    async fn clean_section(&self, section: Section<D::File>, now_ms: i64) -> Result<CleanStats, ErrorCode> {
        let (config, first_dirty_offset) = {
            let state = self.state.borrow();
            (state.config.clone(), state.cleaner.first_dirty_offset)
        };
        let max_inflated = max_decompressed_bytes(config.max_message_bytes);
        let mut map = OffsetMap::new();
        let mut mapped_end = section.segments.len();
        for (index, segment) in section.segments.iter().enumerate().skip(section.first_dirty) {
            let mut digests = Vec::new();
            self.scan(segment, |header, bytes| {
                if header.is_control() {
                    return Ok(());
                }
                for_each_record(header, bytes, max_inflated, |offset, record| {
                    if let (Some(key), true) = (record.key, offset >= first_dirty_offset) {
                        digests.push((map.digest(key), offset));
                    }
                })
            })
            .await?;
            let new_keys = digests.iter().filter(|(digest, _)| !map.contains(digest)).count();
            // At least one segment per round, so that cleaning always makes progress.
            if index > section.first_dirty && map.len() + new_keys > config.cleaner_map_entries {
                mapped_end = index;
                break;
            }
            for (digest, offset) in digests {
                map.insert(digest, offset);
            }
        }
        let end_offset =
            section.segments.get(mapped_end).map_or(section.first_uncleanable_offset, |segment| segment.base);

        let mut stats = CleanStats::default();
        let mut tombstones_due_ms = i64::MAX;
        let mut start = 0;
        while start < mapped_end {
            // Consecutive segments whose original sizes fit one segment and whose offsets fit 32-bit deltas.
            let mut end = start + 1;
            let mut bytes = section.segments[start].size;
            while end < mapped_end {
                let next = &section.segments[end];
                let fits = bytes + next.size <= config.segment_bytes
                    && next.next_offset - section.segments[start].base <= i64::from(u32::MAX);
                if !fits {
                    break;
                }
                bytes += next.size;
                end += 1;
            }
            let group = &section.segments[start..end];
            let due = self.clean_group(group, &map, now_ms, &mut stats).await?;
            tombstones_due_ms = tombstones_due_ms.min(due);
            start = end;
        }

        let new_first_dirty = first_dirty_offset.max(end_offset);
        let checkpoint = format!("{new_first_dirty} {tombstones_due_ms}");
        if let Err(error) =
            self.disk.write_file_atomic(&self.dir.join(CLEANER_CHECKPOINT_FILE), checkpoint.as_bytes()).await
        {
            let mut state = self.state();
            return Err(self.fail(&mut state, "writing the cleaner checkpoint", error));
        }
        let mut state = self.state();
        state.cleaner.first_dirty_offset = new_first_dirty;
        state.cleaner.tombstones_due_ms = tombstones_due_ms;
        stats.first_dirty_offset = new_first_dirty;
        Ok(stats)
    }

    /// Calls `visit` for every batch of `segment`, CRCs checked, yielding now and then.
    async fn scan(
        &self,
        segment: &SectionSegment<D::File>,
        mut visit: impl FnMut(&spate_core::BatchHeader, &[u8]) -> Result<(), ErrorCode>,
    ) -> Result<(), ErrorCode> {
        let mut scanner = Scanner::new(&*segment.file, 0, segment.size, SCAN_CHUNK_BYTES, true);
        let mut batches = 0usize;
        loop {
            match scanner.next_batch().await {
                Ok(Some(batch)) => visit(&batch.header, &batch.bytes).inspect_err(|error| {
                    tracing::error!(dir = %self.dir.display(), segment = segment.base, ?error, "cleaner cannot decode a batch");
                })?,
                Ok(None) => return Ok(()),
                Err(stop) => return Err(self.scan_failed(segment, stop)),
            }
            batches += 1;
            if batches.is_multiple_of(YIELD_EVERY_BATCHES) {
                crate::yield_now::yield_task_queue().await;
            }
        }
    }

    /// The error a scan of `segment` ends with: an I/O failure fails the log (fatal, as for any
    /// segment I/O); a corrupt batch stops cleaning this log.
    fn scan_failed(&self, segment: &SectionSegment<D::File>, stop: ScanStop) -> ErrorCode {
        match stop {
            ScanStop::Io(error) => {
                let mut state = self.state();
                self.fail(&mut state, "reading a segment to clean", error)
            }
            ScanStop::Invalid { position, error } => {
                tracing::error!(dir = %self.dir.display(), segment = segment.base, position, %error, "corrupt batch; the cleaner skips this log");
                ErrorCode::CorruptMessage
            }
        }
    }

    /// Rewrites one group and swaps it in. Returns when the oldest tombstone it kept is due.
    async fn clean_group(
        &self,
        group: &[SectionSegment<D::File>],
        map: &OffsetMap,
        now_ms: i64,
        stats: &mut CleanStats,
    ) -> Result<i64, ErrorCode> {
        let (config, dir) = (self.config(), self.dir.clone());
        let base = group[0].base;
        let last = &group[group.len() - 1];
        // Every segment of the group has its base in [base, end); the segment after it starts at or past `end`.
        let end = last.next_offset.max(last.base + 1);
        let path = swap::cleaned_path(&dir, base, LOG_SUFFIX);
        let opened = match swap::remove_attempt(&self.disk, &dir, base).await {
            Ok(()) => self.disk.open(&path, OpenMode::CreateNew).await,
            Err(error) => Err(error),
        };
        let file = match opened {
            Ok(file) => file,
            Err(error) => {
                let mut state = self.state();
                return Err(self.fail(&mut state, "creating a cleaned segment", error));
            }
        };
        let mut writer = CleanedWriter::new(base, file, config.index_interval_bytes, now_ms);
        let max_inflated = max_decompressed_bytes(config.max_message_bytes);
        let mut tombstones_due_ms = i64::MAX;
        for segment in group {
            stats.segments_read += 1;
            stats.bytes_read += segment.size;
            // Streamed: each kept batch goes to the cleaned segment as it is read, so a round holds one
            // scan chunk and one batch in memory, not a whole (up to 1 GiB) segment.
            let mut scanner = Scanner::new(&*segment.file, 0, segment.size, SCAN_CHUNK_BYTES, true);
            let mut batches = 0usize;
            loop {
                let batch = match scanner.next_batch().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(stop) => return Err(self.scan_failed(segment, stop)),
                };
                let (header, bytes) = (&batch.header, &batch.bytes[..]);
                let kept: Option<std::borrow::Cow<'_, [u8]>> = if header.is_control() {
                    Some(bytes.into())
                } else {
                    let tombstone_expired = now_ms.saturating_sub(header.max_timestamp) > config.delete_retention_ms;
                    let mut kept_tombstone = false;
                    let filtered = filter_batch(header, bytes, max_inflated, |offset, record| {
                        let Some(key) = record.key else { return false };
                        let latest = map.get(&map.digest(key)).is_none_or(|latest| latest <= offset);
                        let keep = latest && (record.value.is_some() || !tombstone_expired);
                        kept_tombstone |= keep && record.value.is_none();
                        keep
                    })
                    .inspect_err(|error| {
                        tracing::error!(dir = %self.dir.display(), segment = segment.base, ?error, "cleaner cannot decode a batch");
                    })?;
                    if kept_tombstone {
                        tombstones_due_ms = tombstones_due_ms
                            .min(header.max_timestamp.saturating_add(config.delete_retention_ms).saturating_add(1));
                    }
                    match filtered {
                        Filtered::Unchanged => Some(bytes.into()),
                        Filtered::Dropped => {
                            stats.records_removed += u64::from(header.record_count.unsigned_abs());
                            None
                        }
                        Filtered::Rebuilt(rebuilt) => {
                            let new_count = spate_core::BatchHeader::parse(&rebuilt)?.record_count;
                            stats.records_removed += u64::from(header.record_count.abs_diff(new_count));
                            Some(rebuilt.into())
                        }
                    }
                };
                if let Some(kept) = kept {
                    let kept_header = spate_core::BatchHeader::parse(&kept)?;
                    if let Err(error) = writer.push(&kept_header, &kept).await {
                        let mut state = self.state();
                        return Err(self.fail(&mut state, "writing a cleaned segment", error));
                    }
                }
                batches += 1;
                if batches.is_multiple_of(YIELD_EVERY_BATCHES) {
                    crate::yield_now::yield_task_queue().await;
                }
            }
        }
        let cleaned = match self.finish_cleaned(writer, &dir, base).await {
            Ok(cleaned) => cleaned,
            Err((what, error)) => {
                let mut state = self.state();
                return Err(self.fail(&mut state, what, error));
            }
        };
        stats.segments_written += 1;
        stats.bytes_written += cleaned.size;
        self.swap_in(group, cleaned, end).await?;
        Ok(tombstones_due_ms)
    }

    /// Makes the cleaned segment and its indexes durable under their `.cleaned` names.
    async fn finish_cleaned(
        &self,
        writer: CleanedWriter<D::File>,
        dir: &Path,
        base: i64,
    ) -> Result<Segment<D::File>, (&'static str, io::Error)> {
        let segment = writer.finish().await.map_err(|error| ("writing a cleaned segment", error))?;
        let index = segment.offset_index.encode();
        let time_index = segment.time_index.encode();
        self.disk
            .write_file_atomic(&swap::cleaned_path(dir, base, INDEX_SUFFIX), &index)
            .await
            .map_err(|error| ("writing a cleaned offset index", error))?;
        self.disk
            .write_file_atomic(&swap::cleaned_path(dir, base, TIME_INDEX_SUFFIX), &time_index)
            .await
            .map_err(|error| ("writing a cleaned time index", error))?;
        Ok(segment)
    }

    /// Replaces the group's segments with `cleaned`, on disk and in memory, unless retention or DeleteRecords
    /// removed one of them meanwhile (then the cleaned files are dropped).
    async fn swap_in(
        &self,
        group: &[SectionSegment<D::File>],
        cleaned: Segment<D::File>,
        end: i64,
    ) -> Result<(), ErrorCode> {
        let base = cleaned.base_offset;
        let _files = self.lock_segment_files().await;
        let unchanged = {
            let state = self.state.borrow();
            group.iter().all(|old| state.sealed.get(&old.base).is_some_and(|now| Rc::ptr_eq(&now.file, &old.file)))
        };
        if !unchanged {
            tracing::info!(dir = %self.dir.display(), base_offset = base, "segments changed while cleaning; dropping the cleaned copy");
            drop(cleaned);
            return match swap::remove_attempt(&self.disk, &self.dir, base).await {
                Ok(()) => Ok(()),
                Err(error) => {
                    let mut state = self.state();
                    Err(self.fail(&mut state, "removing a cleaned segment", error))
                }
            };
        }
        if let Err(error) = swap::commit_swap(&self.disk, &self.dir, base, end).await {
            let mut state = self.state();
            return Err(self.fail(&mut state, "swapping in a cleaned segment", error));
        }
        {
            let mut state = self.state();
            for old in group {
                state.sealed.remove(&old.base);
            }
            state.sealed.insert(base, cleaned);
        }
        self.cache.evict_range(self.id, base, end);
        tracing::debug!(dir = %self.dir.display(), base_offset = base, segments = group.len(), "swapped in a cleaned segment");
        Ok(())
    }
}

/// Clears `running` however the round ends (also if its task is dropped).
struct Running<'a, D: Disk> {
    log: &'a Log<D>,
}

impl<D: Disk> Drop for Running<'_, D> {
    fn drop(&mut self) {
        self.log.state().cleaner.running = false;
    }
}

#[cfg(test)]
mod tests;
