//! The disk seam: the few file operations the log needs, so that the same log logic runs on glommio DMA files
//! in production ([`dma::DmaDisk`]) and on a fault-injecting in-memory disk in tests ([`mem::MemDisk`]).
//!
//! Contract (both implementations honour it, and the log relies on nothing else):
//! - Segment data is written with [`DiskFile::write_at`] in whole aligned blocks from buffers obtained with
//!   [`DiskFile::alloc_buf`]: `pos` and the buffer length are multiples of [`DiskFile::alignment`].
//! - A completed `write_at` survives a crash of the process (kill -9) but not a power loss; data survives a
//!   power loss once a later [`DiskFile::sync_data`] (fdatasync) has completed.
//! - Directory operations (create, remove, rename) and the small metadata files written with
//!   [`Disk::write_file_atomic`] are durable when the call returns.
//! - Futures are `!Send`: every file belongs to the shard that opened it.

pub mod dma;
pub mod mem;

use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a new file; fails with `AlreadyExists` if it is there.
    CreateNew,
    /// Open an existing file for reading and writing; fails with `NotFound` if it is missing.
    Existing,
}

/// An aligned buffer for direct writes. Its initial contents are unspecified: the writer fills what it writes
/// (zeroing the padding of a partial last block itself), so no allocation pays for a memset.
pub trait DiskBuf {
    fn as_slice(&self) -> &[u8];
    fn as_mut_slice(&mut self) -> &mut [u8];
    /// Shortens the buffer to `len` bytes (a multiple of the alignment), so a write carries only that much.
    fn trim(&mut self, len: usize);
}

/// One open file.
#[allow(async_fn_in_trait)]
pub trait DiskFile {
    type Buf: DiskBuf;

    /// The direct-I/O block size: write positions and lengths are multiples of it.
    fn alignment(&self) -> usize;

    /// A buffer of `len` bytes (a multiple of [`DiskFile::alignment`]) with unspecified contents.
    fn alloc_buf(&self, len: usize) -> Self::Buf;

    /// Writes the whole buffer at `pos` (aligned). Returns once the data is on the device (not yet synced).
    async fn write_at(&self, buf: Self::Buf, pos: u64) -> io::Result<()>;

    /// Reads up to `len` bytes at any `pos`; shorter only at the end of the file.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes>;

    /// fdatasync: everything written before the call survives a power loss once it returns.
    async fn sync_data(&self) -> io::Result<()>;

    /// Reserves space up to `len` bytes, growing the file size to `len` (the new tail reads as zeros). Not
    /// synced: the fdatasync that later covers data written there also persists the size and extents.
    async fn preallocate(&self, len: u64) -> io::Result<()>;

    /// Sets the file size. Durable when it returns (the log syncs data before truncating up to it).
    async fn truncate(&self, len: u64) -> io::Result<()>;

    async fn size(&self) -> io::Result<u64>;

    async fn close(self) -> io::Result<()>;
}

/// A directory tree of files.
#[allow(async_fn_in_trait)]
pub trait Disk: Clone + 'static {
    type File: DiskFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File>;

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// File names (not paths) directly inside `dir`.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    async fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes `dir` and everything under it.
    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    async fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Replaces `path` with `data` so that after a crash it holds either the old or the new contents:
    /// write a temporary file, sync it, rename it over `path`, sync the directory.
    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()>;

    /// Reads a whole (small) file.
    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Waits `duration` (the log's group-commit window). The default, for runtime-agnostic test disks, yields
    /// to the other tasks of this thread until the time has passed; [`dma::DmaDisk`] uses a glommio timer.
    async fn sleep(&self, duration: std::time::Duration) {
        let deadline = std::time::Instant::now() + duration;
        loop {
            crate::yield_now::yield_now().await;
            if std::time::Instant::now() >= deadline {
                return;
            }
        }
    }
}

/// `path` with `suffix` appended to its file name (`00.log` + `.tmp` -> `00.log.tmp`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}
