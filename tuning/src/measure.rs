//! Measures the data directory's disk, as Seastar's iotune does: sequential write and read bandwidth at two
//! block sizes and three queue depths, 4 KiB random read IOPS at three queue depths, and the latency and rate of
//! 4 KiB write + fdatasync (what a group commit costs).
//!
//! Queue depth is emulated with N threads, each issuing blocking `pwrite`/`pread` on one shared O_DIRECT file
//! descriptor with aligned buffers, rather than with glommio's io_uring. Reasons: N threads blocked in the
//! kernel are exactly N requests outstanding at the device, which is what the saturation point depends on;
//! the tuner then needs no executor, no registered memory and no io_uring (which seccomp profiles of some
//! containers forbid, and where `spate tune` should still produce numbers); and every request is timed with a
//! plain clock. The cost of a thread per request is a few microseconds of CPU, small beside a device request;
//! the broker's own submission path is what `bench` measures.
//!
//! The test file (`.spate-tune-<pid>.tmp` in the data directory) is written in full before anything is
//! read, so reads hit allocated blocks, and is deleted afterwards (also on error). If the file system refuses
//! O_DIRECT (tmpfs), the measurement falls back to buffered I/O and says so (`direct_io = false`): those
//! numbers then measure the page cache, not a device.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Block sizes of the sequential passes.
pub const SEQ_BLOCK_SIZES: [(usize, &str); 2] = [(128 << 10, "128k"), (1 << 20, "1m")];
/// Queue depths of the sequential passes.
pub const SEQ_QUEUE_DEPTHS: [usize; 3] = [1, 4, 16];
/// Queue depths of the 4 KiB random read pass.
pub const RANDOM_READ_QUEUE_DEPTHS: [usize; 3] = [1, 8, 32];
/// Block size of the random reads and of the write + fdatasync pass.
pub const SMALL_BLOCK: usize = 4096;
/// Alignment of every buffer, offset and length (covers logical block sizes up to 4 KiB).
const ALIGN: usize = 4096;
/// A queue depth "saturates" once it reaches this share of the best bandwidth measured.
pub const SATURATION_SHARE: f64 = 0.9;
/// Free space left untouched beside the test file.
const FREE_SPACE_MARGIN: u64 = 256 << 20;

/// How long and how large a measurement is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// `"quick"` or `"full"`.
    pub mode: &'static str,
    /// Size of the test file.
    pub file_bytes: u64,
    /// Time spent on each bandwidth or IOPS point.
    pub point_duration: Duration,
    /// Time spent on the write + fdatasync pass.
    pub sync_duration: Duration,
}

impl Plan {
    /// For tests and a first look: 32 MiB, about 1-3 s in all.
    pub fn quick() -> Plan {
        Plan {
            mode: "quick",
            file_bytes: 32 << 20,
            point_duration: Duration::from_millis(60),
            sync_duration: Duration::from_millis(300),
        }
    }

    /// The default: 512 MiB, 15 points of 3 s and 5 s of fdatasync, under a minute on a disk that writes
    /// 100 MiB/s or more.
    pub fn full() -> Plan {
        Plan {
            mode: "full",
            file_bytes: 512 << 20,
            point_duration: Duration::from_secs(3),
            sync_duration: Duration::from_secs(5),
        }
    }
}

/// What was measured; written as the profile's `[disk_measured]` section. The keys are stable (a benchmark
/// script reads them as baselines): see the crate documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskMeasured {
    /// `"quick"` or `"full"`.
    pub mode: String,
    /// Whether the file was opened with O_DIRECT (false: buffered fallback, page-cache numbers).
    pub direct_io: bool,
    /// Size of the test file, in bytes.
    pub test_file_bytes: u64,
    /// Wall time of the whole measurement, in seconds.
    pub duration_s: f64,
    /// Sequential write bandwidth with 1 MiB blocks, MiB/s: the best over the queue depths.
    pub seq_write_1m_mib_s: f64,
    /// Sequential read bandwidth with 1 MiB blocks, MiB/s: the best over the queue depths.
    pub seq_read_1m_mib_s: f64,
    /// 4 KiB random read IOPS: the best over the queue depths.
    pub rand_read_4k_iops: f64,
    /// Queue depth at which 1 MiB sequential writes reach 90% of their best bandwidth.
    pub write_saturation_qd: u32,
    /// Queue depth at which 1 MiB sequential reads reach 90% of their best bandwidth.
    pub read_saturation_qd: u32,
    /// 4 KiB write + fdatasync round trips per second, one at a time.
    pub fdatasync_per_s: f64,
    /// Median latency of a 4 KiB write + fdatasync, microseconds.
    pub fdatasync_p50_us: f64,
    /// 99th percentile latency of a 4 KiB write + fdatasync, microseconds.
    pub fdatasync_p99_us: f64,
    /// Every point: `seq_write_<128k|1m>_qd<1|4|16>_mib_s`, `seq_read_…_mib_s`, `rand_read_4k_qd<1|8|32>_iops`.
    pub points: std::collections::BTreeMap<String, f64>,
}

/// Measures the disk under `dir` (which must exist) with `plan`, shrinking the test file to fit free space.
pub fn measure(dir: &Path, plan: Plan) -> io::Result<DiskMeasured> {
    let started = Instant::now();
    let free = crate::discover::free_bytes(dir).unwrap_or(u64::MAX);
    let file_bytes = fit_file_size(plan.file_bytes, free).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "{} has {} MiB free; measuring needs at least 16 MiB plus a 256 MiB margin",
                dir.display(),
                free >> 20
            ),
        )
    })?;
    let path = dir.join(format!(".spate-tune-{}.tmp", std::process::id()));
    let test_file = TestFile::create(&path)?;
    let result = run_passes(&test_file, file_bytes, plan);
    drop(test_file);
    let mut measured = result?;
    measured.duration_s = started.elapsed().as_secs_f64();
    Ok(measured)
}

/// The test file size: the plan's, reduced to what free space allows, in whole MiB; `None` under 16 MiB.
pub fn fit_file_size(wanted: u64, free: u64) -> Option<u64> {
    let allowed = free.saturating_sub(FREE_SPACE_MARGIN).min(wanted) & !((1 << 20) - 1);
    (allowed >= 16 << 20).then_some(allowed)
}

/// The open test file; removed when dropped.
struct TestFile {
    path: PathBuf,
    file: File,
    direct_io: bool,
}

impl TestFile {
    fn create(path: &Path) -> io::Result<TestFile> {
        let open = |direct: bool| {
            let mut options = OpenOptions::new();
            options.read(true).write(true).create_new(true);
            if direct {
                options.custom_flags(libc::O_DIRECT);
            }
            options.open(path)
        };
        match open(true) {
            Ok(file) => Ok(TestFile { path: path.to_owned(), file, direct_io: true }),
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                let _ = std::fs::remove_file(path);
                Ok(TestFile { path: path.to_owned(), file: open(false)?, direct_io: false })
            }
            Err(error) => Err(error),
        }
    }
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn run_passes(test: &TestFile, file_bytes: u64, plan: Plan) -> io::Result<DiskMeasured> {
    let fd = test.file.as_raw_fd();
    // Write the whole file once, so that every later read hits written blocks.
    fill(fd, file_bytes)?;
    let mut points = std::collections::BTreeMap::new();
    let mut write_1m = Vec::new();
    let mut read_1m = Vec::new();
    for (block, label) in SEQ_BLOCK_SIZES {
        for qd in SEQ_QUEUE_DEPTHS {
            let rate = run_point(fd, Op::Write, Pattern::Sequential, block, qd, file_bytes, plan.point_duration)?;
            let mib_s = rate.bytes_per_s / f64::from(1 << 20);
            points.insert(format!("seq_write_{label}_qd{qd}_mib_s"), round2(mib_s));
            if block == 1 << 20 {
                write_1m.push((qd, mib_s));
            }
        }
    }
    for (block, label) in SEQ_BLOCK_SIZES {
        for qd in SEQ_QUEUE_DEPTHS {
            let rate = run_point(fd, Op::Read, Pattern::Sequential, block, qd, file_bytes, plan.point_duration)?;
            let mib_s = rate.bytes_per_s / f64::from(1 << 20);
            points.insert(format!("seq_read_{label}_qd{qd}_mib_s"), round2(mib_s));
            if block == 1 << 20 {
                read_1m.push((qd, mib_s));
            }
        }
    }
    let mut best_iops: f64 = 0.0;
    for qd in RANDOM_READ_QUEUE_DEPTHS {
        let rate = run_point(fd, Op::Read, Pattern::Random, SMALL_BLOCK, qd, file_bytes, plan.point_duration)?;
        points.insert(format!("rand_read_4k_qd{qd}_iops"), round2(rate.ops_per_s));
        best_iops = best_iops.max(rate.ops_per_s);
    }
    let sync = sync_pass(fd, file_bytes, plan.sync_duration)?;
    Ok(DiskMeasured {
        mode: plan.mode.to_owned(),
        direct_io: test.direct_io,
        test_file_bytes: file_bytes,
        duration_s: 0.0,
        seq_write_1m_mib_s: round2(best(&write_1m)),
        seq_read_1m_mib_s: round2(best(&read_1m)),
        rand_read_4k_iops: round2(best_iops),
        write_saturation_qd: saturation_qd(&write_1m),
        read_saturation_qd: saturation_qd(&read_1m),
        fdatasync_per_s: round2(sync.per_s),
        fdatasync_p50_us: round2(sync.p50_us),
        fdatasync_p99_us: round2(sync.p99_us),
        points,
    })
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn best(points: &[(usize, f64)]) -> f64 {
    points.iter().map(|&(_, value)| value).fold(0.0, f64::max)
}

/// The smallest queue depth whose bandwidth reaches [`SATURATION_SHARE`] of the best (points in QD order).
pub fn saturation_qd(points: &[(usize, f64)]) -> u32 {
    let target = best(points) * SATURATION_SHARE;
    let qd = points.iter().find(|&&(_, value)| value >= target).map_or(1, |&(qd, _)| qd);
    u32::try_from(qd).unwrap_or(u32::MAX)
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Write,
    Read,
}

#[derive(Clone, Copy, PartialEq)]
enum Pattern {
    Sequential,
    Random,
}

struct Rate {
    bytes_per_s: f64,
    ops_per_s: f64,
}

/// A heap buffer aligned for O_DIRECT.
struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len, ALIGN).expect("a valid buffer layout");
        // SAFETY: `layout` has a non-zero size (every caller asks for at least one block).
        let ptr = unsafe { std::alloc::alloc(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `ptr` points at `len` writable bytes; fill them so nothing uninitialized reaches the disk, with
        // a pattern a compressing device cannot shrink to nothing.
        unsafe {
            let first = len.min(ALIGN);
            for index in 0..first {
                *ptr.add(index) = (index.wrapping_mul(2_654_435_761) >> 7) as u8;
            }
            let mut done = first;
            while done < len {
                let chunk = done.min(len - done);
                std::ptr::copy_nonoverlapping(ptr, ptr.add(done), chunk);
                done += chunk;
            }
        }
        AlignedBuf { ptr, layout }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// One `pwrite` or `pread` of the whole buffer at `offset`; short transfers are errors (blocks are aligned).
fn transfer(fd: i32, op: Op, buf: &AlignedBuf, offset: u64) -> io::Result<()> {
    let len = buf.layout.size();
    let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    loop {
        // SAFETY: `buf` holds `len` bytes for the duration of the call; `fd` is open for the whole pass.
        let done = unsafe {
            match op {
                Op::Write => libc::pwrite(fd, buf.ptr.cast(), len, offset),
                Op::Read => libc::pread(fd, buf.ptr.cast(), len, offset),
            }
        };
        if done < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if done as usize != len {
            return Err(io::Error::other(format!("short transfer: {done} of {len} bytes")));
        }
        return Ok(());
    }
}

fn fill(fd: i32, file_bytes: u64) -> io::Result<()> {
    let buf = AlignedBuf::new(1 << 20);
    let mut offset = 0;
    while offset < file_bytes {
        transfer(fd, Op::Write, &buf, offset)?;
        offset += 1 << 20;
    }
    // SAFETY: fdatasync on an open descriptor.
    if unsafe { libc::fdatasync(fd) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `qd` threads transfer `block`-sized pieces for `duration`. Sequential: one shared cursor over the file,
/// wrapping at its end (threads take consecutive blocks, as a device queue sees a streaming writer); random:
/// each thread picks aligned offsets with its own generator.
fn run_point(
    fd: i32,
    op: Op,
    pattern: Pattern,
    block: usize,
    qd: usize,
    file_bytes: u64,
    duration: Duration,
) -> io::Result<Rate> {
    let blocks = (file_bytes / block as u64).max(1);
    let cursor = Arc::new(AtomicU64::new(0));
    // Every worker has its buffer before the clock starts; each does at least one transfer.
    let ready = Arc::new(std::sync::Barrier::new(qd + 1));
    let (started, results) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..qd)
            .map(|worker| {
                let (cursor, ready) = (cursor.clone(), ready.clone());
                scope.spawn(move || -> io::Result<(u64, Instant)> {
                    let buf = AlignedBuf::new(block);
                    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (worker as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    let mut ops = 0u64;
                    ready.wait();
                    let deadline = Instant::now() + duration;
                    loop {
                        let index = match pattern {
                            Pattern::Sequential => cursor.fetch_add(1, Ordering::Relaxed) % blocks,
                            Pattern::Random => xorshift(&mut state) % blocks,
                        };
                        transfer(fd, op, &buf, index * block as u64)?;
                        ops += 1;
                        if Instant::now() >= deadline {
                            return Ok((ops, Instant::now()));
                        }
                    }
                })
            })
            .collect();
        ready.wait();
        let started = Instant::now();
        let results: Vec<_> = workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or_else(|_| Err(io::Error::other("a worker panicked"))))
            .collect();
        (started, results)
    });
    let mut ops = 0;
    let mut last_end = started;
    for result in results {
        let (worker_ops, ended) = result?;
        ops += worker_ops;
        last_end = last_end.max(ended);
    }
    let elapsed = last_end.duration_since(started).as_secs_f64().max(1e-9);
    Ok(Rate { bytes_per_s: (ops * block as u64) as f64 / elapsed, ops_per_s: ops as f64 / elapsed })
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

struct SyncResult {
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// One thread: write 4 KiB at the next offset, fdatasync, repeat for `duration` (at least 10 rounds). The
/// blocks are already allocated and written, so this is the device's flush cost plus one small write, which is
/// what a group commit of a preallocated segment pays.
fn sync_pass(fd: i32, file_bytes: u64, duration: Duration) -> io::Result<SyncResult> {
    let buf = AlignedBuf::new(SMALL_BLOCK);
    let blocks = file_bytes / SMALL_BLOCK as u64;
    let started = Instant::now();
    let mut latencies_us = Vec::new();
    while started.elapsed() < duration || latencies_us.len() < 10 {
        let offset = (latencies_us.len() as u64 % blocks) * SMALL_BLOCK as u64;
        let begun = Instant::now();
        transfer(fd, Op::Write, &buf, offset)?;
        // SAFETY: fdatasync on an open descriptor.
        if unsafe { libc::fdatasync(fd) } != 0 {
            return Err(io::Error::last_os_error());
        }
        latencies_us.push(begun.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_by(f64::total_cmp);
    Ok(SyncResult {
        per_s: latencies_us.len() as f64 / elapsed,
        p50_us: percentile(&latencies_us, 0.50),
        p99_us: percentile(&latencies_us, 0.99),
    })
}

/// The `share` percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((share * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_the_first_depth_near_the_best() {
        assert_eq!(saturation_qd(&[(1, 100.0), (4, 380.0), (16, 400.0)]), 4);
        assert_eq!(saturation_qd(&[(1, 100.0), (4, 200.0), (16, 400.0)]), 16);
        assert_eq!(saturation_qd(&[(1, 500.0), (4, 480.0), (16, 470.0)]), 1);
        assert_eq!(saturation_qd(&[]), 1);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_test_file_fits_free_space() {
        assert_eq!(fit_file_size(512 << 20, 100 << 30), Some(512 << 20));
        assert_eq!(fit_file_size(512 << 20, (256 + 100) << 20), Some(100 << 20));
        assert_eq!(fit_file_size(512 << 20, 260 << 20), None);
    }

    #[test]
    fn a_quick_measurement_reports_every_point_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Plan {
            point_duration: Duration::from_millis(10),
            sync_duration: Duration::from_millis(20),
            ..Plan::quick()
        };
        let measured = measure(dir.path(), plan).unwrap();
        assert_eq!(measured.points.len(), 2 * 3 * 2 + 3, "{:?}", measured.points.keys());
        assert!(measured.points.values().all(|value| *value > 0.0), "{:?}", measured.points);
        assert!(measured.seq_write_1m_mib_s > 0.0 && measured.fdatasync_per_s > 0.0);
        assert!(measured.fdatasync_p50_us > 0.0 && measured.fdatasync_p99_us >= measured.fdatasync_p50_us);
        assert!([1, 4, 16].contains(&measured.write_saturation_qd));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the test file is gone");
    }
}
