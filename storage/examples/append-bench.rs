//! Throughput of the partition log on a real disk, next to raw O_DIRECT baselines measured in the same run on
//! the same device.
//!
//! ```text
//! cargo run --release -p storage --example append-bench -- --json [--data-dir DIR] [--seconds S]
//! cargo run --release -p storage --example append-bench -- --smoke [--data-dir DIR] [--hold-file FILE]
//! ```
//!
//! Prints one JSON line on stdout (with `--json`) and a table against the targets on stderr. A missed target
//! never makes it fail. `--smoke` appends a few batches through `Log<DmaDisk>` (with segment rolls and a
//! reopen) and exits; with `--hold-file` it prints `SMOKE-READY` and keeps the segment files open until that
//! file is removed (at most two minutes), so that `scripts/check-odirect.sh` can inspect their open flags.

use bytes::BytesMut;
use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::json;
use spate_core::batch::{build_batch, BatchOptions};
use spate_core::record::RecordSpec;
use spate_core::BatchHeader;
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use storage::disk::dma::DmaDisk;
use storage::{BatchCache, Log, LogConfig};

const MIB: usize = 1 << 20;
const SMALL_BATCH: usize = 16 * 1024;
const BIG_BATCH: usize = MIB;
const GROUP_APPENDERS: usize = 16;
const CACHE_FILL_BYTES: usize = 256 * MIB;

struct Args {
    json: bool,
    data_dir: PathBuf,
    seconds: f64,
    smoke: bool,
    hold_file: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: append-bench [--json] [--data-dir DIR] [--seconds S] | --smoke [--data-dir DIR] [--hold-file FILE]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args =
        Args { json: false, data_dir: PathBuf::from("spate-bench-data"), seconds: 3.0, smoke: false, hold_file: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--json" => args.json = true,
            "--smoke" => args.smoke = true,
            "--data-dir" => args.data_dir = PathBuf::from(value()),
            "--seconds" => args.seconds = value().parse().unwrap_or_else(|_| usage()),
            "--hold-file" => args.hold_file = Some(PathBuf::from(value())),
            "--bench" => {} // passed by `cargo bench --examples`; harmless
            _ => usage(),
        }
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        usage();
    }
    args
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// CPU time of this thread (the executor's: user and kernel, I/O submission included).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-parameter; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn mb_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// An uncompressed v2 batch of exactly `total` bytes holding one record.
fn batch_of_len(total: usize, fill: u8) -> Vec<u8> {
    let mut value_len = total.saturating_sub(80);
    for _ in 0..8 {
        let value = vec![fill; value_len];
        let spec = RecordSpec { key: None, value: Some(&value), headers: &[], timestamp_ms: now_ms() };
        let batch = build_batch(&[spec], BatchOptions::default());
        if batch.len() == total {
            return batch;
        }
        value_len = (value_len + total).checked_sub(batch.len()).expect("batch overhead larger than the batch");
    }
    panic!("cannot build a batch of exactly {total} bytes")
}

fn bench_config() -> LogConfig {
    LogConfig { segment_bytes: 1 << 30, ..LogConfig::default() }
}

async fn open_log(disk: &DmaDisk, dir: PathBuf, config: LogConfig, cache: Rc<BatchCache>) -> Rc<Log<DmaDisk>> {
    let _ = std::fs::remove_dir_all(&dir);
    let log = Log::open(disk.clone(), dir, config, cache, now_ms()).await;
    Rc::new(log.unwrap_or_else(|e| panic!("opening a log: {e}")))
}

async fn close_log(log: Rc<Log<DmaDisk>>) {
    let dir = log.dir().to_path_buf();
    log.close().await.expect("closing the log");
    drop(log);
    std::fs::remove_dir_all(dir).expect("removing a log directory");
}

/// Space for a raw-write file: enough for the run at a fast NVMe's speed, bounded by a quarter of the free space.
fn raw_file_capacity(dir: &Path, seconds: f64) -> u64 {
    let wanted = ((seconds * 4e9) as u64).clamp(256 << 20, 32 << 30);
    let free = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok().and_then(|c| {
        // SAFETY: statvfs is plain old data, for which all zeroes is a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
        (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
    });
    let capacity = free.map_or(wanted, |free| wanted.min(free / 4));
    capacity - capacity % MIB as u64
}

async fn open_raw(path: &Path, preallocate: u64) -> DmaFile {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new().read(true).write(true).create(true).dma_open(path).await.expect("opening a raw file");
    file.pre_allocate(preallocate, false).await.expect("preallocating a raw file");
    file
}

async fn remove_raw(path: &Path, file: DmaFile) {
    file.fdatasync().await.expect("fdatasync");
    file.close().await.expect("close");
    std::fs::remove_file(path).expect("removing a raw file");
}

/// Sequential 1 MiB O_DIRECT writes, one in flight, into preallocated space; no fdatasync while timed.
struct RawWriter {
    path: PathBuf,
    file: DmaFile,
    capacity: u64,
    position: u64,
    elapsed: Duration,
    cpu: Duration,
    slow_writes: u64,
    slow_time: Duration,
}

impl RawWriter {
    async fn open(dir: &Path, seconds: f64) -> RawWriter {
        let path = dir.join("raw-direct-write.dat");
        let capacity = raw_file_capacity(dir, seconds);
        let file = open_raw(&path, capacity).await;
        let zero = Duration::ZERO;
        RawWriter { path, file, capacity, position: 0, elapsed: zero, cpu: zero, slow_writes: 0, slow_time: zero }
    }

    async fn run(&mut self, duration: Duration) {
        let cpu = thread_cpu();
        let start = Instant::now();
        while start.elapsed() < duration && self.position + BIG_BATCH as u64 <= self.capacity {
            let mut buf = self.file.alloc_dma_buffer(BIG_BATCH);
            buf.as_bytes_mut()[..8].copy_from_slice(&self.position.to_be_bytes());
            let t = Instant::now();
            let written = self.file.write_at(buf, self.position).await.expect("raw write");
            if t.elapsed() >= SLOW_IO {
                self.slow_writes += 1;
                self.slow_time += t.elapsed();
            }
            assert_eq!(written, BIG_BATCH, "short raw write");
            self.position += BIG_BATCH as u64;
        }
        self.elapsed += start.elapsed();
        self.cpu += thread_cpu() - cpu;
    }

    async fn finish(self) -> serde_json::Value {
        remove_raw(&self.path, self.file).await;
        let writes = self.position / BIG_BATCH as u64;
        json!({
            "mb_s": round(mb_s(self.position, self.elapsed)),
            "writes": writes,
            "cpu_us_per_write": round(self.cpu.as_secs_f64() * 1e6 / writes.max(1) as f64),
            "writes_over_5ms": self.slow_writes,
            "ms_in_writes_over_5ms": round(self.slow_time.as_secs_f64() * 1e3),
        })
    }
}

/// `block`-byte O_DIRECT write then fdatasync, appending into preallocated space; returns fdatasyncs per second.
/// 4 KiB is the latency-bound baseline; 256 KiB is what one group commit of 16 x 16 KiB appends writes and syncs.
async fn raw_fdatasync(dir: &Path, block: usize, duration: Duration) -> f64 {
    let path = dir.join("raw-fdatasync.dat");
    let file = open_raw(&path, 1 << 30).await;
    let block = block.max(file.alignment() as usize);
    let mut position = 0u64;
    let mut syncs = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration && position + (block as u64) <= 1 << 30 {
        file.write_at(file.alloc_dma_buffer(block), position).await.expect("raw write");
        file.fdatasync().await.expect("fdatasync");
        position += block as u64;
        syncs += 1;
    }
    let rate = syncs as f64 / start.elapsed().as_secs_f64();
    remove_raw(&path, file).await;
    rate
}

/// One appender, 1 MiB batches, default flush policy (never fdatasync on the append path). Throughput counts
/// only time inside `Log::append`; `wall_mb_s` also counts building each 1 MiB request buffer (what the
/// network layer would have done).
struct NeverAppender {
    log: Rc<Log<DmaDisk>>,
    template: Vec<u8>,
    appends: u64,
    in_append: Duration,
    wall: Duration,
    cpu: Duration,
    slow_appends: u64,
    slow_time: Duration,
}

/// Writes and appends slower than this are counted apart: they waited for something besides their own write
/// (a log's preallocation with its fdatasync, a segment roll, a stall of the device).
const SLOW_IO: Duration = Duration::from_millis(5);

impl NeverAppender {
    async fn open(disk: &DmaDisk, dir: &Path) -> NeverAppender {
        let config = LogConfig { max_message_bytes: 2 * MIB, write_buffer_bytes: 2 * MIB, ..bench_config() };
        let log = open_log(disk, dir.join("flush-never-0"), config, BatchCache::new(64 * MIB)).await;
        let template = batch_of_len(BIG_BATCH, 0x5a);
        let zero = Duration::ZERO;
        NeverAppender {
            log,
            template,
            appends: 0,
            in_append: zero,
            wall: zero,
            cpu: zero,
            slow_appends: 0,
            slow_time: zero,
        }
    }

    async fn run(&mut self, duration: Duration) {
        let start = Instant::now();
        while start.elapsed() < duration {
            let records = BytesMut::from(&self.template[..]);
            let cpu = thread_cpu();
            let t = Instant::now();
            self.log.append(records, now_ms()).await.expect("append");
            let took = t.elapsed();
            self.cpu += thread_cpu() - cpu;
            self.in_append += took;
            if took >= SLOW_IO {
                self.slow_appends += 1;
                self.slow_time += took;
            }
            self.appends += 1;
        }
        self.wall += start.elapsed();
    }

    async fn finish(self) -> serde_json::Value {
        close_log(self.log).await;
        let bytes = self.appends * self.template.len() as u64;
        json!({
            "mb_s": round(mb_s(bytes, self.in_append)),
            "wall_mb_s": round(mb_s(bytes, self.wall)),
            "appends": self.appends,
            "cpu_us_per_append": round(self.cpu.as_secs_f64() * 1e6 / self.appends.max(1) as f64),
            "appends_over_5ms": self.slow_appends,
            "ms_in_appends_over_5ms": round(self.slow_time.as_secs_f64() * 1e3),
        })
    }
}

/// `appenders` tasks each appending 16 KiB batches in a loop on a flush-every-append log; returns MB/s and
/// details (appends per second, CPU per append, share of the wall time the executor's thread was on CPU).
async fn append_flush_each(
    disk: &DmaDisk,
    dir: &Path,
    appenders: usize,
    duration: Duration,
) -> (f64, serde_json::Value) {
    let name = format!("flush-each-{appenders}");
    let log = open_log(disk, dir.join(name), bench_config().flush_every_append(), BatchCache::new(64 * MIB)).await;
    let template = Rc::new(batch_of_len(SMALL_BATCH, 0x6b));
    let appends = Rc::new(Cell::new(0u64));
    let cpu = thread_cpu();
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let (log, template, appends) = (log.clone(), template.clone(), appends.clone());
            glommio::spawn_local(async move {
                while start.elapsed() < duration {
                    log.append(BytesMut::from(&template[..]), now_ms()).await.expect("append");
                    appends.set(appends.get() + 1);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await;
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu() - cpu;
    assert_eq!(log.durable_offset(), log.log_end_offset(), "every acknowledged append is synced");
    close_log(log).await;
    let appends = appends.get();
    let detail = json!({
        "appends_per_s": round(appends as f64 / elapsed.as_secs_f64()),
        "cpu_us_per_append": round(cpu.as_secs_f64() * 1e6 / appends.max(1) as f64),
        "cpu_busy": round3(cpu.as_secs_f64() / elapsed.as_secs_f64()),
    });
    (mb_s(appends * SMALL_BATCH as u64, elapsed), detail)
}

/// Fills a log's cache with ~256 MiB of 16 KiB batches, then reads them back in 1 MiB fetches. Returns MB/s
/// (bytes of the batches returned; reads hand out `Bytes` handles, so no byte is copied) and fetches per second.
async fn cache_read(disk: &DmaDisk, dir: &Path, duration: Duration) -> (f64, f64) {
    let cache = BatchCache::new(512 * MIB);
    let log = open_log(disk, dir.join("cache-read-0"), bench_config(), cache.clone()).await;
    // Record sets of 64 batches (1 MiB) to fill quickly; the cache still holds one entry per 16 KiB batch.
    let batch = batch_of_len(SMALL_BATCH, 0x7c);
    let set: Vec<u8> = batch.iter().copied().cycle().take(batch.len() * 64).collect();
    while log.size_bytes() < CACHE_FILL_BYTES as u64 {
        log.append(BytesMut::from(&set[..]), now_ms()).await.expect("append");
    }
    let (first, end) = (log.log_start_offset(), log.log_end_offset());
    let (mut bytes, mut fetches) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < duration {
        let mut offset = first;
        while offset < end {
            let read = log.read(offset, MIB, end).await.expect("read");
            let last = read.batches.last().unwrap_or_else(|| panic!("nothing read at {offset} below {end}"));
            offset = BatchHeader::parse(last).expect("stored batch").next_offset();
            bytes += read.total_bytes() as u64;
            fetches += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(cache.stats().misses, 0, "every read is served from the cache");
    close_log(log).await;
    (mb_s(bytes, elapsed), fetches as f64 / elapsed.as_secs_f64())
}

struct Target {
    name: &'static str,
    measured: String,
    goal: String,
    met: Option<bool>,
}

fn report_table(targets: &[Target]) {
    eprintln!("{:<34} {:>16} {:>14}  result", "measurement", "measured", "target");
    for t in targets {
        let result = match t.met {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "-",
        };
        eprintln!("{:<34} {:>16} {:>14}  {result}", t.name, t.measured, t.goal);
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn run_bench(data_dir: PathBuf, seconds: f64, json: bool, nproc: usize) {
    let disk = DmaDisk::new(&data_dir).await.expect("probing the data directory's device");
    let duration = Duration::from_secs_f64(seconds);
    let step = |what: &str| eprintln!("append-bench: {what} ({seconds} s)...");

    // The raw baseline and the log alternate in rounds of about a second, so that drift in the device's speed
    // (a VM's host cache filling, SSD garbage collection) hits both alike.
    let rounds = (seconds.round() as u32).max(1);
    step(&format!("raw O_DIRECT 1 MiB writes and Log flush-never 1 MiB appends, alternating in {rounds} rounds"));
    let mut raw = RawWriter::open(&data_dir, seconds).await;
    let mut never = NeverAppender::open(&disk, &data_dir).await;
    for _ in 0..rounds {
        raw.run(duration / rounds).await;
        never.run(duration / rounds).await;
    }
    let raw = raw.finish().await;
    let never = never.finish().await;
    step("raw 4 KiB (then 256 KiB, half the time) write + fdatasync");
    let raw_syncs = raw_fdatasync(&data_dir, 4096, duration).await;
    let raw_syncs_256k = raw_fdatasync(&data_dir, 256 * 1024, duration / 2).await;
    step("Log append, flush every append, 1 appender");
    let (serial, serial_detail) = append_flush_each(&disk, &data_dir, 1, duration).await;
    step("Log append, flush every append, 16 appenders");
    let (group, group_detail) = append_flush_each(&disk, &data_dir, GROUP_APPENDERS, duration).await;
    step("cache reads (after filling 256 MiB)");
    let (cache, cache_fetches) = cache_read(&disk, &data_dir, duration).await;

    let raw_write = raw["mb_s"].as_f64().unwrap_or(0.0);
    let never_mb_s = never["mb_s"].as_f64().unwrap_or(0.0);
    let flush_never_vs_raw = never_mb_s / raw_write;
    let group_vs_serial = group / serial;
    let data_dir_shown = std::fs::canonicalize(&data_dir).unwrap_or(data_dir.clone());
    let line = json!({
        "raw_direct_write_mb_s": raw_write,
        "append_flush_never_mb_s": never_mb_s,
        "append_flush_each_serial_mb_s": round(serial),
        "append_flush_each_group_mb_s": round(group),
        "raw_fdatasync_per_s": round(raw_syncs),
        "cache_read_mb_s": round(cache),
        "flush_never_vs_raw": round3(flush_never_vs_raw),
        "group_vs_serial": round3(group_vs_serial),
        "machine": { "nproc": nproc },
        "data_dir": data_dir_shown.display().to_string(),
        "detail": {
            "seconds_per_measurement": seconds,
            "raw_direct_write": raw,
            "append_flush_never": never,
            "raw_fdatasync_256kib_writes_per_s": round(raw_syncs_256k),
            "append_flush_each_serial": serial_detail,
            "append_flush_each_group": group_detail,
            "cache_read_fetches_per_s": round(cache_fetches),
        },
    });
    let mb = |x: f64| format!("{x:.1} MB/s");
    report_table(&[
        Target { name: "raw_direct_write (1 MiB, QD1)", measured: mb(raw_write), goal: "baseline".into(), met: None },
        Target {
            name: "append_flush_never (1 MiB)",
            measured: mb(never_mb_s),
            goal: mb(0.8 * raw_write),
            met: Some(flush_never_vs_raw >= 0.8),
        },
        Target {
            name: "  flush_never_vs_raw",
            measured: format!("{flush_never_vs_raw:.3}"),
            goal: ">= 0.800".into(),
            met: None,
        },
        Target {
            name: "raw_fdatasync (4 KiB)",
            measured: format!("{raw_syncs:.0} /s"),
            goal: "baseline".into(),
            met: None,
        },
        Target { name: "append_flush_each_serial (16 KiB)", measured: mb(serial), goal: "baseline".into(), met: None },
        Target {
            name: "append_flush_each_group (16 x)",
            measured: mb(group),
            goal: mb(4.0 * serial),
            met: Some(group_vs_serial >= 4.0),
        },
        Target {
            name: "  group_vs_serial",
            measured: format!("{group_vs_serial:.2}x"),
            goal: ">= 4.00x".into(),
            met: None,
        },
        Target { name: "cache_read (1 core)", measured: mb(cache), goal: mb(2000.0), met: Some(cache >= 2000.0) },
    ]);
    eprintln!("details: {}", line["detail"]);
    if json {
        println!("{line}");
    }
}

/// Appends a few batches through `Log<DmaDisk>`: one log that rolls segments (new files) and one that is
/// closed and reopened (existing files), then optionally holds the files open while `hold_file` exists.
async fn run_smoke(data_dir: PathBuf, hold_file: Option<PathBuf>) {
    let disk = DmaDisk::new(&data_dir).await.expect("probing the data directory's device");
    let config = LogConfig { segment_bytes: 64 * 1024, preallocate_bytes: 64 * 1024, ..LogConfig::default() };
    let batch = batch_of_len(SMALL_BATCH, 0x11);

    let rolling = open_log(&disk, data_dir.join("smoke-rolling-0"), config.clone(), BatchCache::new(MIB)).await;
    for _ in 0..10 {
        rolling.append(BytesMut::from(&batch[..]), now_ms()).await.expect("append");
    }
    rolling.flush().await.expect("flush");

    let reopened_dir = data_dir.join("smoke-reopen-0");
    let first = open_log(&disk, reopened_dir.clone(), config.clone(), BatchCache::new(MIB)).await;
    for _ in 0..6 {
        first.append(BytesMut::from(&batch[..]), now_ms()).await.expect("append");
    }
    first.close().await.expect("close");
    drop(first);
    let reopened = Log::open(disk.clone(), reopened_dir, config, BatchCache::new(MIB), now_ms()).await.expect("reopen");
    reopened.append(BytesMut::from(&batch[..]), now_ms()).await.expect("append after reopen");
    let read = reopened.read(0, MIB, reopened.log_end_offset()).await.expect("read from disk");
    assert!(!read.batches.is_empty(), "reading back what was appended");

    eprintln!(
        "SMOKE-READY pid={} o_direct=0{:o} segments={}+{} end_offsets={}+{}",
        std::process::id(),
        libc::O_DIRECT,
        rolling.segment_count(),
        reopened.segment_count(),
        rolling.log_end_offset(),
        reopened.log_end_offset()
    );
    if let Some(hold_file) = hold_file {
        let give_up = Instant::now() + Duration::from_secs(120);
        while hold_file.exists() && Instant::now() < give_up {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
    }
    close_log(rolling).await;
    reopened.close().await.expect("close");
}

/// Removes what this run left in the data directory (and the directory itself if this run created it).
fn clean_up(data_dir: &Path, created: bool) {
    if let Ok(entries) = std::fs::read_dir(data_dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
    if created {
        let _ = std::fs::remove_dir(data_dir);
    }
}

fn main() {
    let args = parse_args();
    let created = !args.data_dir.exists();
    // Before the executor pins this thread to CPU 0, which would make the count 1.
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::fs::create_dir_all(&args.data_dir).expect("creating the data directory");
    let executor =
        LocalExecutorBuilder::new(Placement::Fixed(0)).name("append-bench").make().expect("glommio executor");
    let data_dir = args.data_dir.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if args.smoke {
            executor.run(run_smoke(data_dir, args.hold_file.clone()));
        } else {
            executor.run(run_bench(data_dir, args.seconds, args.json, nproc));
        }
    }));
    clean_up(&args.data_dir, created);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
