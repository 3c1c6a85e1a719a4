//! A deterministic, fault-injecting in-memory [`Disk`] for tests.
//!
//! Model: every file is an inode with `durable` bytes (what survives a power loss), an ordered list of
//! completed but unsynced writes (`pending`), and `visible` bytes (durable with pending applied) that
//! reads see. The invariant `visible == apply(durable, pending)` holds at all times. `sync_data` folds
//! `pending` into `durable`; metadata operations (create, preallocate, truncate, remove, rename,
//! `write_file_atomic`, directories) are durable immediately, which is what the contract promises.
//!
//! [`MemDisk::crash`] simulates a kill or power loss: each file keeps its durable bytes plus a subset of
//! the pending writes chosen by a seeded PRNG, and every handle opened before the crash goes stale.
//!
//! Every future completes immediately, so tests can drive it with `futures_lite::future::block_on`.

use super::{Disk, DiskBuf, DiskFile, OpenMode};
use bytes::Bytes;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Block size of the simulated device. 512 rather than 4096 so that tests hit partial-block rewrites
/// (the log rewriting its last, partially filled block) often.
const ALIGNMENT: usize = 512;

/// Which of the unsynced writes survive a [`MemDisk::crash`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Power loss where the device cache is lost: keep none of the unsynced writes.
    DropUnsynced,
    /// kill -9: every completed write survives.
    KeepUnsynced,
    /// Power loss mid-flight: each unsynced write is independently kept whole, dropped, or torn (only a
    /// random prefix of its 512-byte sectors reaches the medium). Survivors apply in their original order.
    Random,
}

/// splitmix64: tiny, seedable and good enough to pick crash outcomes; avoids a non-dev dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for test purposes (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

struct Inode {
    durable: Vec<u8>,
    pending: Vec<(u64, Vec<u8>)>,
    visible: Vec<u8>,
    /// Whether a name still refers to it; an unlinked inode lives on while handles are open (POSIX).
    linked: bool,
    open_handles: usize,
}

impl Inode {
    fn new(data: Vec<u8>) -> Inode {
        Inode { durable: data.clone(), pending: Vec::new(), visible: data, linked: true, open_handles: 0 }
    }
}

struct State {
    names: BTreeMap<PathBuf, u64>,
    inodes: BTreeMap<u64, Inode>,
    dirs: BTreeSet<PathBuf>,
    next_inode: u64,
    /// Bumped by every crash; handles remember the generation they were opened in.
    generation: u64,
    rng: SplitMix64,
    fail_writes: usize,
    fail_syncs: usize,
    sync_count: u64,
    write_count: u64,
    /// When set, writes and syncs yield to the executor once before they take effect, like real I/O, so
    /// concurrent callers can interleave (group commit is only observable then).
    yield_on_io: bool,
    /// Mutating operations left before the simulated process dies (see [`MemDisk::die_after`]).
    ops_until_death: Option<u64>,
}

impl State {
    /// Counts one mutating operation; fails it (and every later one) once the process is dead.
    fn mutate(&mut self) -> io::Result<()> {
        match &mut self.ops_until_death {
            None => Ok(()),
            Some(0) => Err(io::Error::other("simulated process death")),
            Some(left) => {
                *left -= 1;
                Ok(())
            }
        }
    }

    fn is_dir(&self, path: &Path) -> bool {
        // The root (and the empty relative root) always exist.
        path.parent().is_none() || path.as_os_str().is_empty() || self.dirs.contains(path)
    }

    fn parent_exists(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) if !self.is_dir(parent) => {
                Err(not_found(&format!("parent directory of {} does not exist", path.display())))
            }
            _ => Ok(()),
        }
    }

    /// Drops the name `path`; the inode goes away too unless a handle still has it open.
    fn unlink(&mut self, path: &Path) -> Option<u64> {
        let ino = self.names.remove(path)?;
        let gone = match self.inodes.get_mut(&ino) {
            Some(inode) => {
                inode.linked = false;
                inode.open_handles == 0
            }
            None => false,
        };
        if gone {
            self.inodes.remove(&ino);
        }
        Some(ino)
    }

    fn add_file(&mut self, path: &Path, data: Vec<u8>) -> u64 {
        self.unlink(path);
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(ino, Inode::new(data));
        self.names.insert(path.to_path_buf(), ino);
        ino
    }
}

fn not_found(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, msg.to_string())
}

/// Writes `data` at `pos`, zero-filling any gap past the end.
fn apply(dst: &mut Vec<u8>, pos: u64, data: &[u8]) {
    let pos = pos as usize;
    let end = pos + data.len();
    if dst.len() < end {
        dst.resize(end, 0);
    }
    dst[pos..end].copy_from_slice(data);
}

/// An in-memory disk; clones share the same files.
#[derive(Clone)]
pub struct MemDisk {
    state: Rc<RefCell<State>>,
}

impl MemDisk {
    /// An empty disk whose crash outcomes are determined by `seed`.
    pub fn new(seed: u64) -> MemDisk {
        MemDisk {
            state: Rc::new(RefCell::new(State {
                names: BTreeMap::new(),
                inodes: BTreeMap::new(),
                dirs: BTreeSet::new(),
                next_inode: 1,
                generation: 0,
                rng: SplitMix64(seed),
                fail_writes: 0,
                fail_syncs: 0,
                sync_count: 0,
                write_count: 0,
                yield_on_io: false,
                ops_until_death: None,
            })),
        }
    }

    /// The next `n` `write_at` calls fail with an `Other` error and change nothing.
    pub fn fail_next_writes(&self, n: usize) {
        self.state.borrow_mut().fail_writes = n;
    }

    /// The next `n` `sync_data` calls fail with an `Other` error and make nothing durable.
    /// Makes writes and syncs yield once to the executor before taking effect (see `State::yield_on_io`).
    pub fn set_yield_on_io(&self, on: bool) {
        self.state.borrow_mut().yield_on_io = on;
    }

    /// After `ops` more mutating operations (writes, syncs, truncations, creations, removals, renames,
    /// atomic file writes) every mutating operation fails, as if the process had been killed there; reads
    /// still work. The next [`MemDisk::crash`] revives it.
    pub fn die_after(&self, ops: u64) {
        self.state.borrow_mut().ops_until_death = Some(ops);
    }

    pub fn fail_next_syncs(&self, n: usize) {
        self.state.borrow_mut().fail_syncs = n;
    }

    /// Simulates a crash: every file becomes its durable bytes plus the unsynced writes `mode` keeps,
    /// unlinked-but-open files vanish, and every handle opened before now returns errors.
    pub fn crash(&self, mode: CrashMode) {
        let mut guard = self.state.borrow_mut();
        let st = &mut *guard;
        st.generation += 1;
        st.ops_until_death = None;
        st.inodes.retain(|_, inode| inode.linked);
        for inode in st.inodes.values_mut() {
            inode.open_handles = 0;
            for (pos, data) in std::mem::take(&mut inode.pending) {
                let keep = match mode {
                    CrashMode::DropUnsynced => 0,
                    CrashMode::KeepUnsynced => data.len(),
                    CrashMode::Random => match st.rng.below(3) {
                        0 => data.len(),
                        1 => 0,
                        _ => {
                            let sectors = data.len().div_ceil(ALIGNMENT) as u64;
                            let torn = st.rng.below(sectors + 1) as usize;
                            (torn * ALIGNMENT).min(data.len())
                        }
                    },
                };
                if keep > 0 {
                    apply(&mut inode.durable, pos, &data[..keep]);
                }
            }
            inode.visible = inode.durable.clone();
        }
    }

    /// Number of `sync_data` calls that succeeded.
    pub fn sync_count(&self) -> u64 {
        self.state.borrow().sync_count
    }

    /// Number of `write_at` calls that succeeded.
    pub fn write_count(&self) -> u64 {
        self.state.borrow().write_count
    }

    /// Sorted names of the files (not directories) directly inside `dir`.
    pub fn file_names(&self, dir: &Path) -> Vec<String> {
        let st = self.state.borrow();
        st.names.keys().filter(|p| p.parent() == Some(dir)).filter_map(|p| file_name(p)).collect()
    }

    /// Flips every bit of the byte at `pos`, durably, as bit rot would. Panics if there is no such byte:
    /// it is a test helper, and a test that corrupts nothing is wrong.
    pub fn corrupt_byte(&self, path: &Path, pos: u64) {
        let mut st = self.state.borrow_mut();
        let ino = *st.names.get(path).unwrap_or_else(|| panic!("corrupt_byte: no file {}", path.display()));
        let Some(inode) = st.inodes.get_mut(&ino) else { panic!("corrupt_byte: dangling inode") };
        let p = pos as usize;
        assert!(p < inode.visible.len(), "corrupt_byte: {pos} is past the end of {}", path.display());
        inode.visible[p] ^= 0xFF;
        if let Some(b) = inode.durable.get_mut(p) {
            *b ^= 0xFF;
        }
        // Flip it in the unsynced writes too, so a sync or crash cannot resurrect the original byte.
        for (wpos, data) in &mut inode.pending {
            if let Some(off) = pos.checked_sub(*wpos) {
                if let Some(b) = data.get_mut(off as usize) {
                    *b ^= 0xFF;
                }
            }
        }
    }

    /// Length of the file as reads see it, or `None` if it does not exist.
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        let st = self.state.borrow();
        let ino = st.names.get(path)?;
        st.inodes.get(ino).map(|i| i.visible.len() as u64)
    }
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// An open in-memory file.
pub struct MemFile {
    state: Rc<RefCell<State>>,
    ino: u64,
    generation: u64,
    path: PathBuf,
}

/// A plain zero-filled vector; alignment only matters to the real device.
pub struct MemBuf(Vec<u8>);

impl DiskBuf for MemBuf {
    fn as_slice(&self) -> &[u8] {
        &self.0
    }
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn trim(&mut self, len: usize) {
        // Same precondition as glommio's `trim_to_size`, so misuse fails here too and not only in production.
        assert!(len <= self.0.len(), "trim to {len} past the buffer's {} bytes", self.0.len());
        self.0.truncate(len);
    }
}

impl MemFile {
    async fn maybe_yield(&self) {
        if self.state.borrow().yield_on_io {
            crate::yield_now::yield_now().await;
        }
    }

    /// Runs `f` on this handle's inode, or fails if a crash made the handle stale.
    fn with<T>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.state.borrow_mut();
        if st.generation != self.generation || !st.inodes.contains_key(&self.ino) {
            return Err(io::Error::other(format!(
                "stale handle for {}: the disk crashed after it was opened",
                self.path.display()
            )));
        }
        f(&mut st, self.ino)
    }
}

fn inode(st: &mut State, ino: u64) -> &mut Inode {
    // `MemFile::with` checked that the inode exists and nothing removed it since.
    st.inodes.get_mut(&ino).unwrap_or_else(|| unreachable!("inode {ino} vanished"))
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut st = self.state.borrow_mut();
        if st.generation != self.generation {
            return; // the crash already forgot all handles
        }
        let gone = match st.inodes.get_mut(&self.ino) {
            Some(inode) => {
                inode.open_handles = inode.open_handles.saturating_sub(1);
                !inode.linked && inode.open_handles == 0
            }
            None => false,
        };
        if gone {
            st.inodes.remove(&self.ino);
        }
    }
}

impl DiskFile for MemFile {
    type Buf = MemBuf;

    fn alignment(&self) -> usize {
        ALIGNMENT
    }

    fn alloc_buf(&self, len: usize) -> MemBuf {
        // Garbage, not zeros: the contract leaves contents unspecified, and tests must not depend on zeros.
        MemBuf(vec![0xa5; len])
    }

    async fn write_at(&self, buf: MemBuf, pos: u64) -> io::Result<()> {
        self.maybe_yield().await;
        self.with(|st, ino| {
            // Enforce the O_DIRECT rules so the log cannot pass tests that a real device would fail.
            if !pos.is_multiple_of(ALIGNMENT as u64) || !buf.0.len().is_multiple_of(ALIGNMENT) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unaligned write: pos {pos}, len {}", buf.0.len()),
                ));
            }
            st.mutate()?;
            if st.fail_writes > 0 {
                st.fail_writes -= 1;
                return Err(io::Error::other("injected write failure"));
            }
            st.write_count += 1;
            let inode = inode(st, ino);
            apply(&mut inode.visible, pos, &buf.0);
            inode.pending.push((pos, buf.0));
            Ok(())
        })
    }

    async fn read_at(&self, pos: u64, len: usize) -> io::Result<Bytes> {
        self.with(|st, ino| {
            let data = &inode(st, ino).visible;
            let start = (pos as usize).min(data.len());
            let end = start.saturating_add(len).min(data.len());
            Ok(Bytes::copy_from_slice(&data[start..end]))
        })
    }

    async fn sync_data(&self) -> io::Result<()> {
        self.maybe_yield().await;
        self.with(|st, ino| {
            st.mutate()?;
            if st.fail_syncs > 0 {
                st.fail_syncs -= 1;
                return Err(io::Error::other("injected sync failure"));
            }
            st.sync_count += 1;
            let inode = inode(st, ino);
            for (pos, data) in std::mem::take(&mut inode.pending) {
                apply(&mut inode.durable, pos, &data);
            }
            Ok(())
        })
    }

    async fn preallocate(&self, len: u64) -> io::Result<()> {
        self.with(|st, ino| {
            st.mutate()?;
            let inode = inode(st, ino);
            let len = len as usize;
            // Growing durable to >= visible.len() keeps `visible == apply(durable, pending)`.
            if len > inode.visible.len() {
                inode.visible.resize(len, 0);
                inode.durable.resize(len, 0);
            }
            Ok(())
        })
    }

    async fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|st, ino| {
            st.mutate()?;
            let inode = inode(st, ino);
            // The size change is durable, but unsynced data below `len` stays unsynced: stricter than a
            // real fdatasync-backed truncate, so the log cannot come to rely on truncate syncing data.
            inode.pending.retain_mut(|(pos, data)| {
                data.truncate(len.saturating_sub(*pos) as usize);
                !data.is_empty()
            });
            inode.durable.resize(len as usize, 0);
            inode.visible.resize(len as usize, 0);
            Ok(())
        })
    }

    async fn size(&self) -> io::Result<u64> {
        self.with(|st, ino| Ok(inode(st, ino).visible.len() as u64))
    }

    async fn close(self) -> io::Result<()> {
        self.with(|_, _| Ok(()))
        // Drop releases the handle.
    }
}

impl Disk for MemDisk {
    type File = MemFile;

    async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<MemFile> {
        let mut st = self.state.borrow_mut();
        if st.is_dir(path) {
            let kind = match mode {
                OpenMode::CreateNew => io::ErrorKind::AlreadyExists,
                OpenMode::Existing => io::ErrorKind::IsADirectory,
            };
            return Err(io::Error::new(kind, path.display().to_string()));
        }
        let ino = match (mode, st.names.get(path).copied()) {
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, path.display().to_string()))
            }
            (OpenMode::CreateNew, None) => {
                st.parent_exists(path)?;
                st.mutate()?;
                st.add_file(path, Vec::new())
            }
            (OpenMode::Existing, Some(ino)) => ino,
            (OpenMode::Existing, None) => return Err(not_found(&path.display().to_string())),
        };
        inode(&mut st, ino).open_handles += 1;
        Ok(MemFile { state: self.state.clone(), ino, generation: st.generation, path: path.to_path_buf() })
    }

    async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        let mut missing = Vec::new();
        for anc in dir.ancestors() {
            if st.is_dir(anc) {
                break;
            }
            if st.names.contains_key(anc) {
                return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is a file", anc.display())));
            }
            missing.push(anc.to_path_buf());
        }
        st.dirs.extend(missing);
        Ok(())
    }

    async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.borrow();
        if !st.is_dir(dir) {
            if st.names.contains_key(dir) {
                return Err(io::Error::new(io::ErrorKind::NotADirectory, dir.display().to_string()));
            }
            return Err(not_found(&dir.display().to_string()));
        }
        let files = st.names.keys();
        let dirs = st.dirs.iter();
        let mut names: Vec<String> =
            files.chain(dirs).filter(|p| p.parent() == Some(dir)).filter_map(|p| file_name(p)).collect();
        names.sort();
        Ok(names)
    }

    async fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        if st.dirs.contains(path) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, path.display().to_string()));
        }
        st.mutate()?;
        match st.unlink(path) {
            Some(_) => Ok(()),
            None => Err(not_found(&path.display().to_string())),
        }
    }

    async fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        if !st.dirs.contains(dir) {
            return Err(not_found(&dir.display().to_string()));
        }
        let files: Vec<PathBuf> = st.names.keys().filter(|p| p.starts_with(dir)).cloned().collect();
        for f in files {
            st.unlink(&f);
        }
        st.dirs.retain(|d| !d.starts_with(dir));
        Ok(())
    }

    async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        if from == to {
            return Ok(());
        }
        st.parent_exists(to)?;
        st.mutate()?;
        if let Some(ino) = st.names.get(from).copied() {
            if st.dirs.contains(to) {
                return Err(io::Error::new(io::ErrorKind::IsADirectory, to.display().to_string()));
            }
            st.unlink(to); // POSIX rename replaces the target atomically
            st.names.remove(from);
            st.names.insert(to.to_path_buf(), ino);
            return Ok(());
        }
        if !st.dirs.contains(from) {
            return Err(not_found(&from.display().to_string()));
        }
        if to.starts_with(from) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot move a directory into itself"));
        }
        if st.names.contains_key(to) {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, to.display().to_string()));
        }
        let non_empty = st.names.keys().chain(st.dirs.iter()).any(|p| p != to && p.starts_with(to));
        if non_empty {
            return Err(io::Error::new(io::ErrorKind::DirectoryNotEmpty, to.display().to_string()));
        }
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        let files: Vec<(PathBuf, u64)> = st.names.iter().filter_map(|(p, ino)| moved(p).map(|np| (np, *ino))).collect();
        st.names.retain(|p, _| !p.starts_with(from));
        st.names.extend(files);
        let dirs: Vec<PathBuf> = st.dirs.iter().filter_map(|p| moved(p)).collect();
        st.dirs.retain(|p| !p.starts_with(from));
        st.dirs.extend(dirs);
        Ok(())
    }

    async fn exists(&self, path: &Path) -> io::Result<bool> {
        let st = self.state.borrow();
        Ok(st.names.contains_key(path) || st.is_dir(path))
    }

    async fn write_file_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.borrow_mut();
        st.parent_exists(path)?;
        if st.dirs.contains(path) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, path.display().to_string()));
        }
        st.mutate()?;
        // A fresh inode, as temp-file-plus-rename gives: open handles keep seeing the old contents.
        st.add_file(path, data.to_vec());
        Ok(())
    }

    async fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.state.borrow();
        let ino = st.names.get(path).ok_or_else(|| not_found(&path.display().to_string()))?;
        st.inodes.get(ino).map(|i| i.visible.clone()).ok_or_else(|| not_found(&path.display().to_string()))
    }
}

#[cfg(test)]
#[path = "mem_tests.rs"]
mod tests;
