//! The active segment's direct-I/O write buffer.
//!
//! Appends are copied into an aligned buffer whose first byte sits at an aligned file position. A write-out
//! hands the filled blocks to the disk and keeps the partially filled last block at the start of a fresh
//! buffer, so the next write-out rewrites that block whole, with the bytes already on disk unchanged: nothing
//! already written is lost, and O_DIRECT's alignment rules are met.

use crate::disk::{DiskBuf, DiskFile};

pub(crate) fn align_down(value: u64, alignment: usize) -> u64 {
    value - value % alignment as u64
}

pub(crate) fn align_up(value: u64, alignment: usize) -> u64 {
    align_down(value + alignment as u64 - 1, alignment)
}

pub(crate) struct WriteBuffer<B> {
    buf: B,
    buf_len: usize,
    /// Aligned file position of `buf[0]`.
    file_position: u64,
    /// Bytes of `buf` holding data (already written or not).
    len: usize,
    alignment: usize,
    /// Buffer size to grow to when appends arrive (`write.buffer.bytes`).
    capacity: usize,
}

/// A buffer handed to the disk: write `buf` at `file_position`; afterwards the file holds data up to `end`.
pub(crate) struct WriteOut<B> {
    pub buf: B,
    pub file_position: u64,
    pub end: u64,
}

impl<B: DiskBuf> WriteBuffer<B> {
    /// A buffer for a segment whose data ends at `size`; `tail` holds the file's bytes from
    /// `align_down(size)` to `size`, so the partial last block is rewritten intact.
    pub fn new<F: DiskFile<Buf = B>>(file: &F, size: u64, tail: &[u8], capacity: usize) -> Self {
        let alignment = file.alignment();
        let file_position = align_down(size, alignment);
        assert_eq!(tail.len() as u64, size - file_position, "tail must be the partial last block");
        let buf_len = alignment;
        let mut buf = file.alloc_buf(buf_len);
        buf.as_mut_slice()[..tail.len()].copy_from_slice(tail);
        WriteBuffer { buf, buf_len, file_position, len: tail.len(), alignment, capacity: capacity.max(alignment) }
    }

    /// The logical file position after the buffered data.
    pub fn end(&self) -> u64 {
        self.file_position + self.len as u64
    }

    pub fn fits(&self, extra: usize) -> bool {
        self.len + extra <= self.buf_len
    }

    /// Makes room for `extra` more bytes by moving to a larger buffer: at least double the current one (up to
    /// the capacity) so streams of small appends do not reallocate each time, and exactly enough for a large
    /// batch. The caller writes out pending data first when the buffer is at capacity, so this copies at most
    /// one block plus pending data below `capacity`.
    pub fn grow<F: DiskFile<Buf = B>>(&mut self, file: &F, extra: usize) {
        let doubled = (self.buf_len * 2).min(self.capacity);
        let wanted = align_up((self.len + extra).max(doubled) as u64, self.alignment) as usize;
        let mut bigger = file.alloc_buf(wanted);
        bigger.as_mut_slice()[..self.len].copy_from_slice(&self.buf.as_slice()[..self.len]);
        self.buf = bigger;
        self.buf_len = wanted;
    }

    /// Whether growing would go past the configured capacity (then pending data should be written out first).
    pub fn at_capacity(&self, extra: usize) -> bool {
        self.len + extra > self.capacity
    }

    pub fn append(&mut self, bytes: &[u8]) {
        assert!(self.fits(bytes.len()), "append without room");
        self.buf.as_mut_slice()[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Takes everything buffered for writing. The partial last block is copied into a fresh buffer so it can be
    /// rewritten with more data later.
    pub fn take<F: DiskFile<Buf = B>>(&mut self, file: &F) -> WriteOut<B> {
        let keep_from = align_down(self.len as u64, self.alignment) as usize;
        let write_len = align_up(self.len as u64, self.alignment) as usize;
        let mut fresh = file.alloc_buf(self.alignment);
        fresh.as_mut_slice()[..self.len - keep_from].copy_from_slice(&self.buf.as_slice()[keep_from..self.len]);
        let mut full = std::mem::replace(&mut self.buf, fresh);
        // Buffers come unzeroed: the padding after the data must be zeros on disk (recovery reads a zero length
        // there as the end of the log).
        full.as_mut_slice()[self.len..write_len].fill(0);
        full.trim(write_len);
        let out = WriteOut { buf: full, file_position: self.file_position, end: self.end() };
        self.file_position += keep_from as u64;
        self.len -= keep_from;
        self.buf_len = self.alignment;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_down(4097, 4096), 4096);
        assert_eq!(align_up(4097, 4096), 8192);
        assert_eq!(align_up(4096, 4096), 4096);
        assert_eq!(align_up(0, 512), 0);
    }
}
