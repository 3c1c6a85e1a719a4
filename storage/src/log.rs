//! The partition log: append with offset assignment, the write and flush protocol, and segment roll.
//!
//! A `Log` lives on one shard and is used through `&self` from many tasks at once: appends run their
//! synchronous part (validate, assign offsets, copy into the write buffer) without yielding, then wait for
//! the durability they need. At most one write and one fdatasync are in flight per log; whoever finds none in
//! flight issues the next one for everything buffered so far, so concurrent appenders share writes and
//! fdatasyncs (group commit).

use crate::cache::{BatchCache, LogId};
use crate::config::{FlushPolicy, LogConfig};
use crate::disk::{Disk, DiskBuf, DiskFile, OpenMode};
use crate::segment::{segment_path, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::writer::{align_up, WriteBuffer};
use bytes::BytesMut;
use event_listener::Event;
use spate_core::batch::{self, split_record_set, BatchView, TimestampType};
use spate_core::ErrorCode;
use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

/// How far ahead of the writer a flush-every-append log writes zeros (see `Preallocate::zero_fill`).
const ZERO_FILL_AHEAD_BYTES: u64 = 1 << 20;

/// Growing the active segment before a write: reserve `from..to`, and for flush-every-append logs also
/// write zeros there, so later fdatasyncs find the blocks already written.
struct Preallocate {
    from: u64,
    to: u64,
    zero_fill: bool,
}

/// What an append stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub record_count: i64,
    /// The broker's timestamp for LogAppendTime topics, -1 otherwise (as in ProduceResponse).
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

pub(crate) struct LogState<F: DiskFile> {
    pub config: LogConfig,
    pub sealed: BTreeMap<i64, Segment<F>>,
    pub active: Segment<F>,
    pub write_buffer: WriteBuffer<F::Buf>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// Position in the active segment up to which data is on the device.
    pub written_bytes: u64,
    /// Every batch below this offset is on the device (survives kill -9).
    pub written_next_offset: i64,
    /// Every batch below this offset has been fdatasync'd (survives power loss).
    pub synced_next_offset: i64,
    pub write_in_flight: bool,
    pub sync_in_flight: bool,
    pub rolling: bool,
    /// Set by the first I/O error; the log then refuses writes.
    pub failure: Option<String>,
    pub last_flush_ms: i64,
    /// The cleaner's checkpoint and whether a round runs (`compact/`).
    pub cleaner: crate::compact::CleanerState,
    /// Held while segment files are removed or swapped ([`Log::lock_segment_files`]).
    pub segment_files_busy: bool,
}

impl<F: DiskFile> LogState<F> {
    pub fn log_end_offset(&self) -> i64 {
        self.active.next_offset
    }

    pub fn check_writable(&self) -> Result<(), ErrorCode> {
        match self.failure {
            Some(_) => Err(ErrorCode::KafkaStorageError),
            None => Ok(()),
        }
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment<F>> {
        self.sealed.values().chain(std::iter::once(&self.active))
    }
}

pub struct Log<D: Disk> {
    pub(crate) disk: D,
    pub(crate) dir: PathBuf,
    pub(crate) id: LogId,
    pub(crate) cache: Rc<BatchCache>,
    pub(crate) state: RefCell<LogState<D::File>>,
    /// Notified whenever written/synced offsets, `rolling` or `failure` change.
    pub(crate) changed: Event,
}

impl<D: Disk> Log<D> {
    pub(crate) fn state(&self) -> RefMut<'_, LogState<D::File>> {
        self.state.borrow_mut()
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.borrow().log_start_offset
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.state.borrow().log_end_offset()
    }

    /// Offsets below this are committed (on a single node: everything appended; replication moves it later).
    pub fn high_watermark(&self) -> i64 {
        self.state.borrow().high_watermark
    }

    /// Moves the high watermark; it never passes the log end offset nor goes below the log start offset.
    /// Wakes fetchers waiting in [`Log::wait_high_watermark_above`].
    pub fn set_high_watermark(&self, offset: i64) {
        let mut state = self.state();
        let clamped = offset.clamp(state.log_start_offset, state.log_end_offset());
        if clamped != state.high_watermark {
            state.high_watermark = clamped;
            self.changed.notify(usize::MAX);
        }
    }

    /// Waits until the high watermark is above `offset` (a long-polling fetch). Callers bound the wait with
    /// their own timeout.
    pub async fn wait_high_watermark_above(&self, offset: i64) {
        loop {
            let listener = self.changed.listen();
            if self.high_watermark() > offset {
                return;
            }
            listener.await;
        }
    }

    /// Offsets below this are on the device (survive kill -9). A single-node broker moves the high watermark
    /// here once an append returns.
    pub fn written_offset(&self) -> i64 {
        self.state.borrow().written_next_offset
    }

    /// Offsets below this survive a power loss.
    pub fn durable_offset(&self) -> i64 {
        self.state.borrow().synced_next_offset
    }

    pub fn config(&self) -> LogConfig {
        self.state.borrow().config.clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        self.state().config = crate::open::sanitize(config);
    }

    /// Bytes of whole batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.state.borrow().segments().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.state.borrow().sealed.len() + 1
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state.borrow().segments().map(|s| s.base_offset).collect()
    }

    /// The I/O error that stopped this log, if any.
    pub fn failure(&self) -> Option<String> {
        self.state.borrow().failure.clone()
    }

    /// Appends a producer's record set: one or more v2 batches. All are validated before any is stored (one bad
    /// batch rejects the set, as Kafka does), then offsets are assigned in place and the bytes are buffered.
    /// Returns once the batches are on the device (they survive kill -9); under [`FlushPolicy::EveryAppend`]
    /// also after an fdatasync covering them (they survive power loss).
    pub async fn append(&self, mut records: BytesMut, now_ms: i64) -> Result<AppendInfo, ErrorCode> {
        let (max_message_bytes, timestamp_type, segment_bytes) = {
            let state = self.state.borrow();
            (state.config.max_message_bytes, state.config.message_timestamp_type, state.config.segment_bytes)
        };
        let mut batch_lens = Vec::new();
        let mut record_count = 0i64;
        for batch in split_record_set(&records) {
            let view = BatchView::validate_produced(batch?, max_message_bytes)?;
            batch_lens.push(view.bytes.len());
            record_count += i64::from(view.header.record_count);
        }
        if batch_lens.is_empty() {
            return Err(ErrorCode::InvalidRecord);
        }
        let total_len = records.len();
        if total_len as u64 > segment_bytes {
            return Err(ErrorCode::RecordListTooLarge);
        }
        self.make_room(total_len, record_count, now_ms).await?;

        // From here to the end of the block nothing yields: offsets are assigned in file order.
        let info = {
            let mut state = self.state();
            let base_offset = state.log_end_offset();
            let log_append_time_ms = match timestamp_type {
                TimestampType::LogAppendTime => now_ms,
                TimestampType::CreateTime => -1,
            };
            let mut next_offset = base_offset;
            let mut start = 0;
            for &len in &batch_lens {
                let bytes = &mut records[start..start + len];
                batch::set_base_offset(bytes, next_offset);
                if log_append_time_ms >= 0 {
                    batch::set_log_append_time(bytes, log_append_time_ms);
                }
                let header = spate_core::BatchHeader::parse(bytes)?;
                next_offset = header.next_offset();
                start += len;
            }
            let frozen = records.freeze();
            let index_interval_bytes = state.config.index_interval_bytes;
            let mut start = 0;
            for &len in &batch_lens {
                let bytes = frozen.slice(start..start + len);
                let header = spate_core::BatchHeader::parse(&bytes)?;
                let position = state.active.size;
                state.active.note_batch(&header, position, index_interval_bytes);
                self.cache.insert(self.id, header.base_offset, header.next_offset(), bytes);
                start += len;
            }
            state.write_buffer.append(&frozen);
            if state.config.message_timestamp_type == TimestampType::LogAppendTime {
                debug_assert!(log_append_time_ms >= 0);
            }
            AppendInfo {
                base_offset,
                last_offset: next_offset - 1,
                record_count,
                log_append_time_ms,
                log_start_offset: state.log_start_offset,
            }
        };
        self.write_through(info.last_offset + 1).await?;
        let policy = self.state.borrow().config.flush_policy();
        match policy {
            FlushPolicy::EveryAppend => self.sync_through(info.last_offset + 1).await?,
            FlushPolicy::Interval { messages, .. } => {
                let unflushed = {
                    let state = self.state.borrow();
                    state.log_end_offset() - state.synced_next_offset
                };
                if unflushed as u64 >= messages {
                    self.sync_through(info.last_offset + 1).await?;
                }
            }
            FlushPolicy::Never => {}
        }
        Ok(info)
    }

    /// Waits until an append of `len` bytes can be copied into the active segment's buffer without yielding:
    /// not rolling, rolled if the segment is full or old, and with buffer room.
    async fn make_room(&self, len: usize, record_count: i64, now_ms: i64) -> Result<(), ErrorCode> {
        enum Step {
            Ready,
            Wait,
            Roll,
            WriteOut(i64),
        }
        loop {
            let listener = self.changed.listen();
            let step = {
                let mut state = self.state();
                let state = &mut *state;
                state.check_writable()?;
                if state.rolling {
                    Step::Wait
                } else if needs_roll(state, len, record_count, now_ms) {
                    Step::Roll
                } else if state.write_buffer.fits(len) {
                    Step::Ready
                } else if state.write_buffer.end() > state.written_bytes && state.write_buffer.at_capacity(len) {
                    // Write out what is pending rather than growing the buffer past its capacity.
                    Step::WriteOut(state.log_end_offset())
                } else {
                    state.write_buffer.grow(&*state.active.file, len);
                    Step::Ready
                }
            };
            match step {
                Step::Ready => return Ok(()),
                Step::Wait => listener.await,
                Step::Roll => self.roll(now_ms).await?,
                Step::WriteOut(offset) => self.write_through(offset).await?,
            }
        }
    }

    /// Records the first I/O error and wakes every waiter; the log refuses writes from now on.
    pub(crate) fn fail(&self, state: &mut LogState<D::File>, what: &str, error: std::io::Error) -> ErrorCode {
        if state.failure.is_none() {
            tracing::error!(dir = %self.dir.display(), %error, "{what} failed; the log refuses further writes");
            state.failure = Some(format!("{what}: {error}"));
        }
        self.changed.notify(usize::MAX);
        ErrorCode::KafkaStorageError
    }

    /// Returns once every batch below `next_offset` is on the device, writing out the buffer if no write is in
    /// flight. One write carries everything buffered when it starts.
    pub(crate) async fn write_through(&self, next_offset: i64) -> Result<(), ErrorCode> {
        loop {
            let listener = self.changed.listen();
            let claimed = {
                let mut state = self.state();
                if state.written_next_offset >= next_offset {
                    return Ok(());
                }
                state.check_writable()?;
                if state.write_in_flight {
                    false
                } else {
                    state.write_in_flight = true;
                    true
                }
            };
            if !claimed {
                listener.await;
                continue;
            }
            let mut guard = InFlight { log: self, kind: InFlightKind::Write, buffer_taken: false, finished: false };
            // Let appenders woken in the same wave copy their batches in first (they do so without yielding),
            // so that one write carries them all instead of the wave splitting into several writes and syncs.
            // With a group-commit window and a write that an fdatasync will follow, wait that long instead, so
            // appenders arriving meanwhile (from the network) share the write and its fdatasync.
            match self.group_commit_window(true) {
                Some(window) => self.disk.sleep(window).await,
                None => crate::yield_now::yield_now().await,
            }
            let (file, out, preallocate, covers_offset) = {
                let mut state = self.state();
                if let Err(error) = state.check_writable() {
                    drop(state);
                    guard.release();
                    return Err(error);
                }
                guard.buffer_taken = true;
                self.start_write(&mut state)
            };
            let mut result = Ok(());
            if let Some(Preallocate { from, to, zero_fill }) = preallocate {
                result = file.preallocate(to).await.map_err(|e| ("preallocating a segment", e));
                if result.is_ok() && zero_fill && to > from {
                    // Written zeros, not just reserved extents: an fdatasync after a write into fallocated
                    // (unwritten) blocks must also journal their conversion, which on ext4 costs about as
                    // much as growing the file; after this, per-append fdatasyncs only flush data.
                    let mut zeros = file.alloc_buf((to - from) as usize);
                    zeros.as_mut_slice().fill(0);
                    result = file.write_at(zeros, from).await.map_err(|e| ("zero-filling a segment", e));
                }
                if result.is_ok() {
                    self.state().active.allocated_bytes = to;
                }
            }
            if result.is_ok() {
                result = file.write_at(out.buf, out.file_position).await.map_err(|e| ("writing a segment", e));
            }
            guard.finished = true;
            let mut state = self.state();
            state.write_in_flight = false;
            match result {
                Ok(()) => {
                    state.written_bytes = out.end;
                    state.written_next_offset = covers_offset;
                    self.changed.notify(usize::MAX);
                }
                Err((what, error)) => return Err(self.fail(&mut state, what, error)),
            }
        }
    }

    /// Takes the write buffer for a write-out and decides whether the file must grow first. Returns the file,
    /// the buffer, how to grow it, and the offset the write will cover.
    #[allow(clippy::type_complexity)]
    fn start_write(
        &self,
        state: &mut LogState<D::File>,
    ) -> (Rc<D::File>, crate::writer::WriteOut<<D::File as DiskFile>::Buf>, Option<Preallocate>, i64) {
        let out = state.write_buffer.take(&*state.active.file);
        let alignment = state.active.file.alignment() as u64;
        let write_end = out.file_position + align_up(out.end - out.file_position, alignment as usize);
        // Logs that fdatasync every append zero-fill a short distance ahead (the zeros are written once
        // per ZERO_FILL_AHEAD_BYTES of appends); the others only reserve space, further ahead.
        let zero_fill = state.config.flush_policy() == FlushPolicy::EveryAppend;
        let preallocate = (write_end > state.active.allocated_bytes).then(|| {
            let ahead_bytes = if zero_fill { ZERO_FILL_AHEAD_BYTES } else { state.config.preallocate_bytes };
            let cap = align_up(state.config.segment_bytes, alignment as usize);
            // Up, never down: the block holding an unaligned end may carry synced data, and zeros
            // written over it could outlive a crash that loses the rewrite of that block.
            let from = align_up(state.active.allocated_bytes, alignment as usize);
            Preallocate { from, to: (write_end + ahead_bytes).min(cap).max(write_end), zero_fill }
        });
        (state.active.file.clone(), out, preallocate, state.log_end_offset())
    }

    /// Returns once every batch below `next_offset` has been fdatasync'd. An fdatasync covers every write
    /// completed when it starts, so appenders waiting together share one (group commit).
    pub(crate) async fn sync_through(&self, next_offset: i64) -> Result<(), ErrorCode> {
        enum Step<F> {
            Wait,
            WriteFirst,
            Sync(Rc<F>, i64),
        }
        loop {
            let listener = self.changed.listen();
            let step = {
                let mut state = self.state();
                if state.synced_next_offset >= next_offset {
                    return Ok(());
                }
                state.check_writable()?;
                if state.written_next_offset < next_offset {
                    if state.write_in_flight {
                        Step::Wait
                    } else {
                        Step::WriteFirst
                    }
                } else if state.sync_in_flight {
                    Step::Wait
                } else {
                    state.sync_in_flight = true;
                    Step::Sync(state.active.file.clone(), state.written_next_offset)
                }
            };
            let (file, covers_offset) = match step {
                Step::Wait => {
                    listener.await;
                    continue;
                }
                Step::WriteFirst => {
                    self.write_through(next_offset).await?;
                    continue;
                }
                Step::Sync(file, covers_offset) => (file, covers_offset),
            };
            let mut guard = InFlight { log: self, kind: InFlightKind::Sync, buffer_taken: false, finished: false };
            // An explicit flush (acks=-1 on a log that does not flush every append, an interval flush) waits the
            // group-commit window before its fdatasync, then covers every write completed meanwhile. (Under
            // flush-every-append the window was spent before the write.) A roll waits for this sync, so the
            // active file cannot change during the window.
            let mut covers_offset = covers_offset;
            if let Some(window) = self.group_commit_window(false) {
                self.disk.sleep(window).await;
                let state = self.state();
                if Rc::ptr_eq(&state.active.file, &file) {
                    covers_offset = covers_offset.max(state.written_next_offset);
                }
            }
            let result = file.sync_data().await;
            guard.finished = true;
            let mut state = self.state();
            state.sync_in_flight = false;
            match result {
                Ok(()) => {
                    state.synced_next_offset = state.synced_next_offset.max(covers_offset);
                    self.changed.notify(usize::MAX);
                }
                Err(error) => return Err(self.fail(&mut state, "fdatasync of a segment", error)),
            }
        }
    }

    /// The group-commit window to wait before a write (`before_write`) or an fdatasync, if any: before the write
    /// only under [`FlushPolicy::EveryAppend`] (its fdatasync follows at once), before an fdatasync only under
    /// the other policies (so a flush-every-append round waits once, not twice).
    fn group_commit_window(&self, before_write: bool) -> Option<std::time::Duration> {
        let state = self.state.borrow();
        let every_append = state.config.flush_policy() == FlushPolicy::EveryAppend;
        let window_us = state.config.group_commit_window_us;
        (window_us > 0 && every_append == before_write).then(|| std::time::Duration::from_micros(window_us))
    }

    /// Writes and fdatasyncs everything appended so far (shared with concurrent callers).
    pub async fn flush(&self) -> Result<(), ErrorCode> {
        let end = self.log_end_offset();
        self.sync_through(end).await
    }

    /// For [`FlushPolicy::Interval`]: flushes if `flush.ms` has passed since the last flush. The shard's
    /// ticker calls this.
    pub async fn flush_if_due(&self, now_ms: i64) -> Result<(), ErrorCode> {
        let due = {
            let mut state = self.state();
            match state.config.flush_policy() {
                FlushPolicy::Interval { interval_ms, .. } if now_ms - state.last_flush_ms >= interval_ms => {
                    state.last_flush_ms = now_ms;
                    state.synced_next_offset < state.log_end_offset()
                }
                _ => false,
            }
        };
        if due {
            self.flush().await?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at the log end offset. Appends wait meanwhile.
    /// Sealing makes the old segment durable in every flush mode (data synced, file cut to its logical size,
    /// indexes written), so after a crash only the newest segment can have a torn tail.
    pub async fn roll(&self, now_ms: i64) -> Result<(), ErrorCode> {
        {
            let mut state = self.state();
            state.check_writable()?;
            // An empty active segment already starts at the log end offset: there is nothing to seal, and a new
            // segment there would collide with its file.
            if state.rolling || state.active.is_empty() {
                return Ok(());
            }
            state.rolling = true;
        }
        let result = self.roll_inner(now_ms).await;
        self.state().rolling = false;
        self.changed.notify(usize::MAX);
        result
    }

    async fn roll_inner(&self, now_ms: i64) -> Result<(), ErrorCode> {
        let end = self.log_end_offset();
        self.sync_through(end).await?;
        self.seal_active().await?;
        let path = segment_path(&self.dir, end, LOG_SUFFIX);
        let opened = self.disk.open(&path, OpenMode::CreateNew).await;
        let mut state = self.state();
        let file = match opened {
            Ok(file) => file,
            Err(error) => return Err(self.fail(&mut state, "creating a segment", error)),
        };
        let capacity = state.config.write_buffer_bytes;
        let fresh = Segment::new(end, file, now_ms);
        let write_buffer = WriteBuffer::new(&*fresh.file, 0, &[], capacity);
        let old = std::mem::replace(&mut state.active, fresh);
        state.sealed.insert(old.base_offset, old);
        state.write_buffer = write_buffer;
        state.written_bytes = 0;
        tracing::debug!(dir = %self.dir.display(), base_offset = end, "rolled a new segment");
        Ok(())
    }

    /// Makes the active segment's files final: cut to its logical size, synced, indexes written whole.
    pub(crate) async fn seal_active(&self) -> Result<(), ErrorCode> {
        let (file, size, base_offset, index, time_index) = {
            let mut state = self.state();
            state.active.finish_time_index();
            let active = &state.active;
            (
                active.file.clone(),
                active.size,
                active.base_offset,
                active.offset_index.encode(),
                active.time_index.encode(),
            )
        };
        let result = async {
            file.truncate(size).await.map_err(|e| ("truncating a sealed segment", e))?;
            file.sync_data().await.map_err(|e| ("syncing a sealed segment", e))?;
            let index_path = segment_path(&self.dir, base_offset, INDEX_SUFFIX);
            self.disk.write_file_atomic(&index_path, &index).await.map_err(|e| ("writing an offset index", e))?;
            let time_path = segment_path(&self.dir, base_offset, TIME_INDEX_SUFFIX);
            self.disk.write_file_atomic(&time_path, &time_index).await.map_err(|e| ("writing a time index", e))
        }
        .await;
        let mut state = self.state();
        match result {
            Ok(()) => {
                state.active.allocated_bytes = size;
                Ok(())
            }
            Err((what, error)) => Err(self.fail(&mut state, what, error)),
        }
    }
}

/// Exclusive right to remove or replace sealed segment files (retention, DeleteRecords, the cleaner's swap),
/// so that a swap never races a deletion of the same files.
pub(crate) struct SegmentFilesGuard<'a, D: Disk> {
    log: &'a Log<D>,
}

impl<D: Disk> Log<D> {
    pub(crate) async fn lock_segment_files(&self) -> SegmentFilesGuard<'_, D> {
        loop {
            let listener = self.changed.listen();
            {
                let mut state = self.state();
                if !state.segment_files_busy {
                    state.segment_files_busy = true;
                    return SegmentFilesGuard { log: self };
                }
            }
            listener.await;
        }
    }
}

impl<D: Disk> Drop for SegmentFilesGuard<'_, D> {
    fn drop(&mut self) {
        self.log.state().segment_files_busy = false;
        self.log.changed.notify(usize::MAX);
    }
}

#[derive(Clone, Copy)]
enum InFlightKind {
    Write,
    Sync,
}

/// Owns the log's single write or sync slot while that operation is in flight. If the future running it is
/// dropped before it finishes (its task cancelled), the slot is released so the log does not hang. A dropped
/// sync loses nothing; a dropped write lost the buffer it took, so the file would have a hole: the log fails.
struct InFlight<'a, D: Disk> {
    log: &'a Log<D>,
    kind: InFlightKind,
    /// A write took the buffered bytes: abandoning it now leaves them unwritten.
    buffer_taken: bool,
    finished: bool,
}

impl<D: Disk> InFlight<'_, D> {
    /// Gives the slot back before anything was taken from the buffer.
    fn release(&mut self) {
        self.finished = true;
        let mut state = self.log.state();
        state.write_in_flight = false;
        drop(state);
        self.log.changed.notify(usize::MAX);
    }
}

impl<D: Disk> Drop for InFlight<'_, D> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut state = self.log.state();
        match self.kind {
            InFlightKind::Sync => state.sync_in_flight = false,
            InFlightKind::Write => {
                state.write_in_flight = false;
                if self.buffer_taken && state.failure.is_none() {
                    tracing::error!(dir = %self.log.dir.display(), "a segment write was abandoned; the log refuses further writes");
                    state.failure = Some("a segment write was abandoned mid-flight".to_string());
                }
            }
        }
        drop(state);
        self.log.changed.notify(usize::MAX);
    }
}

fn needs_roll<F: DiskFile>(state: &LogState<F>, len: usize, record_count: i64, now_ms: i64) -> bool {
    let active = &state.active;
    if active.is_empty() {
        return false;
    }
    let too_big = active.size + len as u64 > state.config.segment_bytes;
    let clock_start = active.roll_clock_start_ms.unwrap_or(active.created_ms);
    let too_old = now_ms - clock_start >= state.config.segment_ms;
    // Relative offsets in the index are 32-bit.
    let offsets_overflow = active.next_offset + record_count - active.base_offset > i64::from(u32::MAX);
    too_big || too_old || offsets_overflow
}
