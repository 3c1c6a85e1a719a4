//! The production [`Disk`]: glommio DMA files (O_DIRECT through io_uring) for segment data.
//!
//! Directory-level operations (create, list, remove, rename, exists, and the small metadata files) use
//! blocking `std::fs`: they are rare and small (open, segment roll, retention), and glommio's DMA API
//! does not cover them. Each one that changes a directory fsyncs that directory before returning, so it
//! is durable when the call returns, as the contract promises.

use super::{with_suffix, Disk, DiskBuf, DiskFile, OpenMode};
use bytes::{Bytes, BytesMut};
use glommio::io::{DmaBuffer, DmaFile, OpenOptions};
use glommio::GlommioError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Name of the non-empty file opened first on the data directory's device; see [`DmaDisk::new`].
const PROBE_NAME: &str = ".spate-dma-probe";
const PROBE_LEN: usize = 4096;

/// Glommio errors to `std::io::Error`, keeping the OS error kind (`NotFound`, `AlreadyExists`, ...);
/// glommio's own conversion adds the operation and path to the message.
fn io_err(err: GlommioError<()>) -> io::Error {
    io::Error::from(err)
}

/// fsyncs a directory so that entries created, renamed or removed in it survive a power loss.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    std::fs::File::open(dir)?.sync_all()
}

/// Runs `work` (file-system metadata calls and the fsyncs that make them durable, which io_uring
/// cannot do here) on glommio's blocking thread pool, so the shard's reactor keeps serving clients
/// meanwhile: a directory fsync can take milliseconds, and segments roll and cleaned segments swap
/// while producers wait.
async fn off_reactor<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    glommio::executor().spawn_blocking(work).await
}

fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()), // the root has no parent entry to persist
    }
}

/// A [`Disk`] backed by glommio DMA files. Clones share the probe file. Must be used on the glommio
/// executor (shard) that created it.
#[derive(Clone)]
pub struct DmaDisk {
    data_dir: Rc<PathBuf>,
    /// Kept open for the disk's lifetime so the device's first-opened DMA file stays a non-empty one.
    _probe: Rc<DmaFile>,
    writes: Rc<WriteGate>,
}

/// The shard-wide cap on direct writes in flight (`max_inflight_writes_per_shard`), shared by every
/// file the disk opens, and the writes in flight now and at most so far.
struct WriteGate {
    slots: Option<glommio::sync::Semaphore>,
    in_flight: std::cell::Cell<u64>,
    in_flight_max: std::cell::Cell<u64>,
    /// Reads and fdatasyncs in flight (for metrics; they are not capped).
    reads_in_flight: std::cell::Cell<u64>,
    syncs_in_flight: std::cell::Cell<u64>,
    /// Told how long each fdatasync took (metrics).
    sync_observer: std::cell::RefCell<Option<SyncObserver>>,
}

impl WriteGate {
    fn new(slots: Option<glommio::sync::Semaphore>) -> WriteGate {
        WriteGate {
            slots,
            in_flight: Default::default(),
            in_flight_max: Default::default(),
            reads_in_flight: Default::default(),
            syncs_in_flight: Default::default(),
            sync_observer: Default::default(),
        }
    }
}

/// A callback told the duration of every fdatasync of a segment file.
pub type SyncObserver = Rc<dyn Fn(std::time::Duration)>;

/// Direct I/O operations in flight on one disk (one shard).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoInFlight {
    pub writes: u64,
    pub reads: u64,
    pub syncs: u64,
}

impl DmaDisk {
    /// Creates `data_dir` if needed and probes its device. Must run inside a glommio executor.
    ///
    /// Glommio decides per device whether to use the io_uring poll ring by reading the first block of
    /// the first DMA file opened there (glommio issues #605 and #670). If that file is new and empty the
    /// read "succeeds" with 0 bytes even where the device cannot poll, and every later read fails with
    /// EOPNOTSUPP. Opening and reading a non-empty probe file first makes the probe honest.
    pub async fn new(data_dir: &Path) -> io::Result<DmaDisk> {
        std::fs::create_dir_all(data_dir)?;
        let probe_path = data_dir.join(PROBE_NAME);
        // Several shards create their disks on the same directory at once. `fs::write` would truncate
        // the probe another shard is about to read (making its probe read 0 bytes, the very failure
        // this file exists to avoid), so the probe is written once, under a private name, and renamed
        // into place: readers only ever see a whole one.
        let whole = std::fs::metadata(&probe_path).is_ok_and(|meta| meta.len() == PROBE_LEN as u64);
        if !whole {
            let thread = format!("{:?}", std::thread::current().id());
            let private: String = thread.chars().filter(char::is_ascii_alphanumeric).collect();
            let tmp = data_dir.join(format!("{PROBE_NAME}.{}.{private}.tmp", std::process::id()));
            std::fs::write(&tmp, [0u8; PROBE_LEN])?;
            std::fs::rename(&tmp, &probe_path)?;
        }
        let probe = OpenOptions::new().read(true).dma_open(&probe_path).await.map_err(io_err)?;
        probe.read_at_aligned(0, probe.alignment() as usize).await.map_err(io_err)?;
        let writes = Rc::new(WriteGate::new(None));
        Ok(DmaDisk { data_dir: Rc::new(data_dir.to_path_buf()), _probe: Rc::new(probe), writes })
    }

    /// Caps the direct writes in flight at once over every file this disk opens (0: no cap). Each log
    /// has at most one write in flight, so this bounds what a shard with many active partitions queues
    /// on the device. Set it before opening files.
    pub fn with_write_limit(mut self, max_in_flight: u64) -> DmaDisk {
        let slots = (max_in_flight > 0).then(|| glommio::sync::Semaphore::new(max_in_flight));
        let observer = self.writes.sync_observer.borrow_mut().take();
        self.writes = Rc::new(WriteGate::new(slots));
        *self.writes.sync_observer.borrow_mut() = observer;
        self
    }

    /// Tells `observer` how long every fdatasync of a file this disk opens takes.
    pub fn set_sync_observer(&self, observer: SyncObserver) {
        *self.writes.sync_observer.borrow_mut() = Some(observer);
    }

    /// The direct writes, reads and fdatasyncs in flight now.
    pub fn in_flight(&self) -> IoInFlight {
        IoInFlight {
            writes: self.writes.in_flight.get(),
            reads: self.writes.reads_in_flight.get(),
            syncs: self.writes.syncs_in_flight.get(),
        }
    }

    /// The most direct writes that were in flight at once so far.
    pub fn writes_in_flight_max(&self) -> u64 {
        self.writes.in_flight_max.get()
    }

    /// The directory this disk was created for.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// A segment file opened for direct reads and writes.
pub struct DmaSegmentFile {
    file: DmaFile,
    writes: Rc<WriteGate>,
}

/// A zeroed DMA buffer. `None` for a zero-length buffer, which glommio cannot allocate.
pub struct DmaBuf(Option<DmaBuffer>);

impl DiskBuf for DmaBuf {
    fn as_slice(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |b| b.as_bytes())
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Some(b) => b.as_bytes_mut(),
            None => &mut [],
        }
    }
    fn trim(&mut self, len: usize) {
        if len == 0 {
            self.0 = None;
        } else if let Some(b) = &mut self.0 {
            b.trim_to_size(len); // asserts len <= current length
        } else {
            panic!("trim to {len} past an empty buffer");
        }
    }
}

impl DmaSegmentFile {
    /// The underlying glommio file, for callers that need glommio-specific calls.
    pub fn inner(&self) -> &DmaFile {
        &self.file
    }
}

impl DiskFile for DmaSegmentFile {
    type Buf = DmaBuf;

    fn alignment(&self) -> usize {
        self.file.alignment() as usize
    }

    fn alloc_buf(&self, len: usize) -> DmaBuf {
        if len == 0 {
            return DmaBuf(None);
        }
        // Contents unspecified (the contract): the log writes every byte it hands back, padding included, so a
        // memset here would only cost time (it was ~40% of the CPU of a 1 MiB append).
        DmaBuf(Some(self.file.alloc_dma_buffer(len)))
    }

    async fn write_at(&self, buf: DmaBuf, pos: u64) -> io::Result<()> {
        let Some(buf) = buf.0 else { return Ok(()) };
        let len = buf.len();
        let gate = &self.writes;
        let _slot = match &gate.slots {
            Some(slots) => Some(slots.acquire_permit(1).await.map_err(io_err)?),
            None => None,
        };
        gate.in_flight.set(gate.in_flight.get() + 1);
        gate.in_flight_max.set(gate.in_flight_max.get().max(gate.in_flight.get()));
        let written = self.file.write_at(buf, pos).await.map_err(io_err);
        gate.in_flight.set(gate.in_flight.get() - 1);
        let written = written?;
        if written < len {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short direct write at {pos}: {written} of {len} bytes"),
            ));
        }
        Ok(())
    }

    /// Reads with aligned direct reads and copies the wanted range into `Bytes` (one memcpy): glommio's
    /// `ReadResult` is `!Send` and pins a DMA buffer, so it cannot leave the disk layer.
    ///
    /// Not glommio's unaligned `read_at`: near the end of the file it returns `min(read, len)` bytes from
    /// the in-block offset, i.e. bytes past the end of what was read (garbage) when `pos` is unaligned.
    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let align = self.file.alignment();
        let mut out = BytesMut::with_capacity(len);
        let mut cur = pos; // next byte wanted
        while out.len() < len {
            let block = cur - cur % align;
            let skip = (cur - block) as usize;
            let want = (len - out.len()) + skip;
            let size = want.div_ceil(align as usize) * align as usize;
            let gate = &self.writes;
            gate.reads_in_flight.set(gate.reads_in_flight.get() + 1);
            let got = self.file.read_at_aligned(block, size).await.map_err(io_err);
            gate.reads_in_flight.set(gate.reads_in_flight.get() - 1);
            let got = got?;
            if got.len() <= skip {
                break; // end of file
            }
            let take = (got.len() - skip).min(len - out.len());
            out.extend_from_slice(&got[skip..skip + take]);
            cur += take as u64;
            // An unaligned short read means end of file; an aligned one may be a partial read: go on.
            if got.len() < size && !got.len().is_multiple_of(align as usize) {
                break;
            }
        }
        Ok(out.freeze())
    }

    async fn sync_data(&self) -> io::Result<()> {
        let gate = &self.writes;
        gate.syncs_in_flight.set(gate.syncs_in_flight.get() + 1);
        let started = std::time::Instant::now();
        let synced = self.file.fdatasync().await.map_err(io_err);
        gate.syncs_in_flight.set(gate.syncs_in_flight.get() - 1);
        if let Some(observer) = gate.sync_observer.borrow().as_ref() {
            observer(started.elapsed());
        }
        synced
    }

    /// fallocate, then fdatasync so the new size is durable like every other metadata change.
    async fn preallocate(&self, len: u64) -> io::Result<()> {
        if len > self.file.file_size().await.map_err(io_err)? {
            // No fdatasync: the one that later covers data written here persists the extents too, and on
            // virtualised disks each extra sync can cost milliseconds.
            self.file.pre_allocate(len, false).await.map_err(io_err)?;
        }
        Ok(())
    }

    /// ftruncate, then fdatasync: the contract makes truncation durable on return.
    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.truncate(len).await.map_err(io_err)?;
        self.file.fdatasync().await.map_err(io_err)
    }

    async fn size(&self) -> io::Result<u64> {
        self.file.file_size().await.map_err(io_err)
    }

    async fn close(self) -> io::Result<()> {
        self.file.close().await.map_err(io_err)
    }
}

impl Disk for DmaDisk {
    type File = DmaSegmentFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<DmaSegmentFile> {
        // Read and write: `DmaFile::create` would open write-only, and reads would then fail with EBADF.
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if mode == OpenMode::CreateNew {
            opts.create_new(true);
        }
        let file = opts.dma_open(path).await.map_err(io_err)?;
        if mode == OpenMode::CreateNew {
            // The new directory entry must survive a power loss like the data synced into it later.
            let parent = path.to_path_buf();
            if let Err(e) = off_reactor(move || sync_parent(&parent)).await {
                let _ = file.close().await;
                return Err(e);
            }
        }
        Ok(DmaSegmentFile { file, writes: self.writes.clone() })
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = dir.to_path_buf();
        off_reactor(move || {
            let missing: Vec<PathBuf> = dir
                .ancestors()
                .take_while(|a| !a.as_os_str().is_empty() && !a.is_dir())
                .map(Path::to_path_buf)
                .collect();
            std::fs::create_dir_all(&dir)?;
            // Persist each new entry, outermost first.
            for created in missing.iter().rev() {
                sync_parent(created)?;
            }
            Ok(())
        })
        .await
    }

    /// Sorted, for deterministic iteration. Non-UTF-8 names come back lossily converted; the log
    /// ignores names it does not recognise anyway.
    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = dir.to_path_buf();
        off_reactor(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                names.push(entry?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(names)
        })
        .await
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let path = path.to_path_buf();
        off_reactor(move || {
            std::fs::remove_file(&path)?;
            sync_parent(&path)
        })
        .await
    }

    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = dir.to_path_buf();
        off_reactor(move || {
            std::fs::remove_dir_all(&dir)?;
            sync_parent(&dir)
        })
        .await
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        off_reactor(move || {
            std::fs::rename(&from, &to)?;
            sync_parent(&to)?;
            if from.parent() != to.parent() {
                sync_parent(&from)?;
            }
            Ok(())
        })
        .await
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let (path, data) = (path.to_path_buf(), data.to_vec());
        off_reactor(move || {
            let tmp = with_suffix(&path, ".tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            sync_parent(&path)
        })
        .await
    }

    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let path = path.to_path_buf();
        off_reactor(move || std::fs::read(&path)).await
    }

    async fn sleep(&self, duration: std::time::Duration) {
        glommio::timer::sleep(duration).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("spate-dma-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn run<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce(PathBuf) -> F + Send + 'static) {
        let tmp = TempDir::new();
        let dir = tmp.0.clone();
        glommio::LocalExecutorBuilder::default().make().unwrap().run(f(dir));
    }

    fn filled(f: &DmaSegmentFile, len: usize, byte: impl Fn(usize) -> u8) -> DmaBuf {
        let mut b = f.alloc_buf(len);
        assert_eq!(b.as_slice().len(), len);
        for (i, x) in b.as_mut_slice().iter_mut().enumerate() {
            *x = byte(i);
        }
        b
    }

    fn pattern(i: usize) -> u8 {
        (i % 251) as u8
    }

    #[test]
    fn write_then_read_unaligned_ranges() {
        run(|dir| async move {
            let disk = DmaDisk::new(&dir).await.unwrap();
            assert!(dir.join(PROBE_NAME).exists());
            let f = disk.open(&dir.join("0.log"), OpenMode::CreateNew).await.unwrap();
            let a = f.alignment();
            assert!(a >= 512 && a.is_power_of_two());
            f.write_at(filled(&f, 4 * a, pattern), 0).await.unwrap();
            assert_eq!(f.size().await.unwrap(), 4 * a as u64);
            for (pos, len) in [(0, 1), (1, 10), (a - 3, 7), (a + 17, 2 * a + 5), (0, 4 * a), (3 * a + 9, 10 * a)] {
                let r = f.read_at(pos as u64, len).await.unwrap();
                let end = (pos + len).min(4 * a);
                let want: Vec<u8> = (pos..end).map(pattern).collect();
                assert_eq!(&r[..], &want[..], "pos {pos} len {len}");
            }
            // Past the end, and reads ending in a partial block.
            assert!(f.read_at(4 * a as u64, 10).await.unwrap().is_empty());
            assert!(f.read_at(100 * a as u64, 10).await.unwrap().is_empty());
            assert!(f.read_at(0, 0).await.unwrap().is_empty());
            f.truncate(a as u64 + 100).await.unwrap();
            let r = f.read_at(a as u64 + 50, 4 * a).await.unwrap();
            assert_eq!(&r[..], &(a + 50..a + 100).map(pattern).collect::<Vec<_>>()[..]);
            let r = f.read_at(a as u64 + 200, 10).await.unwrap();
            assert!(r.is_empty());
            // Rewriting a partially filled block.
            f.write_at(filled(&f, a, |_| 0xEE), a as u64).await.unwrap();
            assert_eq!(&f.read_at(a as u64 - 1, 2).await.unwrap()[..], &[pattern(a - 1), 0xEE]);
            // A trimmed buffer writes only its remaining length.
            let mut b = filled(&f, 3 * a, |_| 0xDD);
            b.trim(a);
            assert_eq!(b.as_slice().len(), a);
            f.write_at(b, 2 * a as u64).await.unwrap();
            assert_eq!(f.size().await.unwrap(), 3 * a as u64);
            let mut empty = f.alloc_buf(a);
            empty.trim(0);
            assert!(empty.as_slice().is_empty());
            f.write_at(empty, 0).await.unwrap();
            f.sync_data().await.unwrap();
            f.close().await.unwrap();
        });
    }

    #[test]
    fn write_limit_caps_writes_in_flight_across_files() {
        run(|dir| async move {
            for (limit, cap) in [(2u64, Some(2u64)), (0, None)] {
                let disk = DmaDisk::new(&dir).await.unwrap().with_write_limit(limit);
                let mut files = Vec::new();
                for i in 0..4 {
                    files.push(disk.open(&dir.join(format!("{limit}-{i}.log")), OpenMode::CreateNew).await.unwrap());
                }
                let a = files[0].alignment();
                // Eight writes at once, two per file, each to its own block.
                let writes = files.iter().flat_map(|f| {
                    (0..2).map(move |block| f.write_at(filled(f, a, move |_| block as u8 + 1), (block * a) as u64))
                });
                for result in crate::testing::join_all(writes.collect()).await {
                    result.unwrap();
                }
                let seen = disk.writes_in_flight_max();
                match cap {
                    Some(cap) => assert!(seen >= 1 && seen <= cap, "limit {limit}: {seen} writes in flight at once"),
                    None => assert!(seen > 2, "without a limit the eight writes overlap: {seen}"),
                }
                for f in files {
                    for block in 0..2 {
                        let bytes = f.read_at((block * a) as u64, a).await.unwrap();
                        assert!(bytes.iter().all(|&b| b == block as u8 + 1), "every write landed");
                    }
                    f.close().await.unwrap();
                }
            }
        });
    }

    #[test]
    fn preallocate_truncate_and_reopen() {
        run(|dir| async move {
            let disk = DmaDisk::new(&dir).await.unwrap();
            let path = dir.join("0.log");
            let f = disk.open(&path, OpenMode::CreateNew).await.unwrap();
            let a = f.alignment();
            f.preallocate(1 << 20).await.unwrap();
            assert_eq!(f.size().await.unwrap(), 1 << 20);
            assert!(f.read_at(4096, 100).await.unwrap().iter().all(|&b| b == 0));
            f.preallocate(4096).await.unwrap(); // never shrinks
            assert_eq!(f.size().await.unwrap(), 1 << 20);
            f.write_at(filled(&f, a, |_| 7), 0).await.unwrap();
            f.sync_data().await.unwrap();
            f.truncate(a as u64).await.unwrap();
            assert_eq!(f.size().await.unwrap(), a as u64);
            f.close().await.unwrap();

            let g = disk.open(&path, OpenMode::Existing).await.unwrap();
            assert_eq!(g.size().await.unwrap(), a as u64);
            assert_eq!(&g.read_at(0, a).await.unwrap()[..], &vec![7; a][..]);
            g.close().await.unwrap();
        });
    }

    #[test]
    fn open_mode_errors() {
        run(|dir| async move {
            let disk = DmaDisk::new(&dir).await.unwrap();
            let path = dir.join("0.log");
            disk.open(&path, OpenMode::CreateNew).await.unwrap().close().await.unwrap();
            let e = disk.open(&path, OpenMode::CreateNew).await.err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
            let e = disk.open(&dir.join("missing.log"), OpenMode::Existing).await.err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        });
    }

    #[test]
    fn directory_operations() {
        run(|dir| async move {
            let disk = DmaDisk::new(&dir).await.unwrap();
            assert_eq!(disk.data_dir(), dir.as_path());
            let part = dir.join("topic-0");
            disk.create_dir_all(&part.join("sub/deeper")).await.unwrap();
            assert!(disk.exists(&part.join("sub/deeper")).await.unwrap());
            let f = disk.open(&part.join("0.log"), OpenMode::CreateNew).await.unwrap();
            f.close().await.unwrap();
            disk.rename(&part.join("0.log"), &part.join("1.log")).await.unwrap();
            disk.write_file_atomic(&part.join("meta"), b"one").await.unwrap();
            disk.write_file_atomic(&part.join("meta"), b"two").await.unwrap();
            assert_eq!(disk.read_file(&part.join("meta")).await.unwrap(), b"two");
            assert!(!disk.exists(&with_suffix(&part.join("meta"), ".tmp")).await.unwrap());
            assert_eq!(disk.list_dir(&part).await.unwrap(), ["1.log", "meta", "sub"]);
            disk.remove_file(&part.join("1.log")).await.unwrap();
            let e = disk.remove_file(&part.join("1.log")).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound);
            disk.remove_dir_all(&part.join("sub")).await.unwrap();
            assert_eq!(disk.list_dir(&part).await.unwrap(), ["meta"]);
            disk.remove_dir_all(&part).await.unwrap();
            assert!(!disk.exists(&part).await.unwrap());
            assert_eq!(disk.list_dir(&dir).await.unwrap(), [PROBE_NAME]);
        });
    }
}
