//! Real-process crash test on the production backend (glommio DMA files): a child process appends with
//! flush-on-every-append from several concurrent tasks (so appends share writes and fdatasyncs) and prints one
//! `ACK <base offset> <id>` line per acknowledged append; the parent SIGKILLs it at a random moment, reopens the
//! log, and checks that every acknowledged batch is there, whole and byte-identical, with no offset gap; then the
//! next child continues the same log from the recovered end. Rounds: `SPATE_CRASH_ROUNDS` (default 20).
//!
//! The child is the `#[ignore]`d test `child_process_appends` of this same binary, started with
//! `SPATE_CRASH_CHILD=<data dir>`; without that variable it returns at once.

use bytes::BytesMut;
use glommio::LocalExecutorBuilder;
use rand::Rng;
use spate_core::batch::{build_batch, set_base_offset, BatchOptions};
use spate_core::record::{RecordIter, RecordSpec};
use spate_core::{BatchView, BATCH_HEADER_LEN};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use storage::disk::dma::DmaDisk;
use storage::{BatchCache, Log, LogConfig};

const CHILD_ENV: &str = "SPATE_CRASH_CHILD";
const FIRST_ID_ENV: &str = "SPATE_CRASH_FIRST_ID";
const ROUNDS_ENV: &str = "SPATE_CRASH_ROUNDS";
const DEFAULT_ROUNDS: usize = 20;
const LOG_DIR: &str = "topic-0";
const APPENDERS: usize = 4;
/// The clock the log sees, fixed so that no segment ever rolls by age.
const NOW_MS: i64 = 1_700_000_000_000;

/// flush.messages=1 (acknowledged means fdatasync'd), and small segments so that rolls happen all the time.
fn config() -> LogConfig {
    LogConfig { segment_bytes: 256 << 10, ..LogConfig::default() }.flush_every_append()
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The producer batch the child sends for `id`, derived from the id alone: 1 to 4 records, 100 to 20000 bytes
/// of values in all, every key starting with the id.
fn producer_batch(id: u64) -> Vec<u8> {
    let mut rng = id;
    let records = 1 + (splitmix(&mut rng) % 4) as usize;
    let total = 100 + (splitmix(&mut rng) % 19_900) as usize;
    let keys: Vec<[u8; 9]> = (0..records as u8)
        .map(|i| {
            let mut key = [i; 9];
            key[..8].copy_from_slice(&id.to_be_bytes());
            key
        })
        .collect();
    let values: Vec<Vec<u8>> = (0..records)
        .map(|_| {
            let len = total / records;
            let mut value: Vec<u8> = (0..len.div_ceil(8)).flat_map(|_| splitmix(&mut rng).to_le_bytes()).collect();
            value.truncate(len);
            value
        })
        .collect();
    let specs: Vec<RecordSpec<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(key, value)| RecordSpec { key: Some(key), value: Some(value), headers: &[], timestamp_ms: NOW_MS })
        .collect();
    build_batch(&specs, BatchOptions::default())
}

/// The id a stored batch was produced for (the first 8 bytes of its first key).
fn id_of(batch: &[u8]) -> Option<u64> {
    let record = RecordIter::new(&batch[BATCH_HEADER_LEN..]).next()?.ok()?;
    Some(u64::from_be_bytes(record.key?.get(..8)?.try_into().ok()?))
}

/// One whole line on stdout, written and flushed at once so a kill leaves at most one partial line.
fn emit(line: String) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{line}\n").as_bytes()).expect("write stdout");
    out.flush().expect("flush stdout");
}

#[test]
#[ignore = "the child side of acknowledged_appends_survive_sigkill; does nothing unless SPATE_CRASH_CHILD is set"]
fn child_process_appends() {
    let Some(root) = std::env::var_os(CHILD_ENV) else { return };
    let root = PathBuf::from(root);
    let first_id: u64 = std::env::var(FIRST_ID_ENV).expect(FIRST_ID_ENV).parse().expect("numeric first id");
    LocalExecutorBuilder::default().make().expect("glommio executor").run(async move {
        // Before any segment is opened: the device's first DMA file must not be a new empty one.
        let disk = DmaDisk::new(&root).await.expect("probe the data directory");
        let log = Log::open(disk, root.join(LOG_DIR), config(), BatchCache::new(8 << 20), NOW_MS).await;
        let log = Rc::new(log.unwrap_or_else(|e| panic!("child: open failed: {e}")));
        emit(format!("START {}", log.log_end_offset()));
        let next_id = Rc::new(Cell::new(first_id));
        let appenders: Vec<_> = (0..APPENDERS)
            .map(|_| {
                let (log, next_id) = (log.clone(), next_id.clone());
                glommio::spawn_local(async move {
                    loop {
                        let id = next_id.get();
                        next_id.set(id + 1);
                        let batch = BytesMut::from(&producer_batch(id)[..]);
                        let info = log.append(batch, NOW_MS).await;
                        let info = info.unwrap_or_else(|e| panic!("child: append of id {id} failed: {e:?}"));
                        emit(format!("ACK {} {id}", info.base_offset));
                    }
                })
            })
            .collect();
        for appender in appenders {
            appender.await;
        }
    });
}

/// What one child printed before it was killed (whole lines only; a line the kill cut short is dropped).
#[derive(Default)]
struct ChildReport {
    /// The log end offset the child found on open, and when (after the spawn) it said so.
    start: Option<(i64, Duration)>,
    /// (base offset, id) of every acknowledged append.
    acks: Vec<(i64, u64)>,
}

/// When to kill a child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This many ms after the spawn, wherever it is (often while it opens and recovers the log).
    AfterSpawnMs(u64),
    /// This many ms after it opened the log and started appending.
    AfterStartMs(u64),
}

/// Runs one child, SIGKILLs it as `kill_at` says, and returns what it printed.
fn run_child(root: &Path, first_id: u64, kill_at: KillAt) -> ChildReport {
    let exe = std::env::current_exe().expect("current exe");
    let spawned = Instant::now();
    let mut child = Command::new(exe)
        .args(["--exact", "child_process_appends", "--nocapture", "--ignored", "--test-threads=1"])
        .env(CHILD_ENV, root)
        .env(FIRST_ID_ENV, first_id.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let (started_tx, started_rx) = mpsc::channel();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let stdout = std::thread::spawn(move || {
        let mut report = ChildReport::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            match stdout.read_until(b'\n', &mut line) {
                Ok(_) if line.last() == Some(&b'\n') => {}
                _ => return report, // end of output, or a partial last line
            }
            let text = String::from_utf8_lossy(&line);
            let fields: Vec<&str> = text.split_whitespace().collect();
            // libtest prints "test child_process_appends ... " without a newline before the test runs.
            if let Some(at) = fields.iter().position(|f| *f == "START") {
                let end = fields.get(at + 1).and_then(|f| f.parse().ok()).expect("START offset");
                report.start = Some((end, spawned.elapsed()));
                let _ = started_tx.send(());
            } else if let ["ACK", base, id] = fields[..] {
                report.acks.push((base.parse().expect("ACK offset"), id.parse().expect("ACK id")));
            }
        }
    });
    let mut stderr = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    match kill_at {
        KillAt::AfterSpawnMs(delay) => std::thread::sleep(Duration::from_millis(delay)),
        KillAt::AfterStartMs(delay) => {
            if started_rx.recv_timeout(Duration::from_secs(20)).is_ok() {
                std::thread::sleep(Duration::from_millis(delay));
            }
        }
    }
    let exited_early = child.try_wait().expect("poll the child");
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap the child");
    let report = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    if exited_early.is_some() || status.signal() != Some(libc::SIGKILL) {
        panic!("the child exited by itself ({status}) instead of being killed\n{}", String::from_utf8_lossy(&stderr));
    }
    if matches!(kill_at, KillAt::AfterStartMs(_)) && report.start.is_none() {
        panic!("the child did not open the log within 20 s\n{}", String::from_utf8_lossy(&stderr));
    }
    report
}

/// A batch verified in an earlier round: its id and CRC. It must stay exactly as it was.
type Verified = BTreeMap<i64, (u64, u32)>;

/// Opens the log after a kill and checks it batch by batch: contiguous from offset 0; every batch verified
/// before unchanged; every new batch whole and byte-identical to what the child sent for its id; every
/// acknowledged batch present at its offset. Then closes the log cleanly or just drops it (as a crash would), so
/// children open it both ways. Returns the log end and every batch.
async fn verify(
    root: &Path,
    before: &Verified,
    acked: &BTreeMap<i64, u64>,
    close: bool,
    context: &str,
) -> (i64, Verified) {
    let disk = DmaDisk::new(root).await.expect("probe the data directory");
    let log = Log::open(disk, root.join(LOG_DIR), config(), BatchCache::new(0), NOW_MS).await;
    let log = log.unwrap_or_else(|e| panic!("{context}: reopening after the kill failed: {e}"));
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    assert_eq!(start, 0, "{context}: nothing deletes records here");
    let mut found = Verified::new();
    let mut offset = start;
    while offset < end {
        let read = log.read(offset, 1 << 20, end).await;
        let read = read.unwrap_or_else(|e| panic!("{context}: read at {offset} failed: {e:?}"));
        assert!(!read.batches.is_empty(), "{context}: no batch at {offset} below the log end {end}");
        for bytes in read.batches {
            let view = BatchView::check_stored(&bytes)
                .unwrap_or_else(|e| panic!("{context}: torn or corrupt batch at offset {offset}: {e:?}"));
            let header = view.header;
            assert_eq!(header.base_offset, offset, "{context}: offsets must be contiguous");
            let id = id_of(&bytes).unwrap_or_else(|| panic!("{context}: batch at {offset} names no id"));
            match before.get(&offset) {
                Some(&old) => {
                    assert_eq!((id, header.crc), old, "{context}: batch at {offset} changed since last round")
                }
                None => {
                    let mut expected = producer_batch(id);
                    set_base_offset(&mut expected, offset);
                    assert!(bytes[..] == expected[..], "{context}: batch at {offset} (id {id}) is not what was sent");
                }
            }
            found.insert(offset, (id, header.crc));
            offset = header.next_offset();
        }
    }
    if let Some((&base, _)) = before.iter().find(|(base, _)| !found.contains_key(base)) {
        panic!("{context}: batch at {base}, verified in an earlier round, is gone; log end {end}");
    }
    for (&base, &id) in acked {
        match found.get(&base) {
            Some(&(stored, _)) if stored == id => {}
            Some(&(stored, _)) => panic!("{context}: offset {base} was acknowledged for id {id} but holds id {stored}"),
            None => panic!("{context}: acknowledged batch at offset {base} (id {id}) is missing; log end {end}"),
        }
    }
    if close {
        log.close().await.unwrap_or_else(|e| panic!("{context}: clean close failed: {e:?}"));
    }
    (end, found)
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let rounds = match std::env::var(ROUNDS_ENV) {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("{ROUNDS_ENV} must be a number, not {value:?}")),
        Err(_) => DEFAULT_ROUNDS,
    };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let root = std::env::temp_dir().join(format!("spate-crash-process-{}-{nanos}", std::process::id()));
    let began = Instant::now();
    let mut rng = rand::thread_rng();
    // Every acknowledged append of every round: base offset -> id.
    let mut acked: BTreeMap<i64, u64> = BTreeMap::new();
    let mut verified = Verified::new();
    let mut recovered_end = None;
    let mut startup_ms = 100;
    for round in 0..rounds {
        let context = format!("round {round} (data in {})", root.display());
        // Mostly kill while appending; every fourth round at any moment, often while it opens the log.
        let kill_at = if round % 4 == 3 {
            KillAt::AfterSpawnMs(rng.gen_range(0..startup_ms + 50))
        } else {
            KillAt::AfterStartMs(rng.gen_range(50..400))
        };
        let report = run_child(&root, (round as u64 + 1) << 32, kill_at);
        if let Some((child_start, up_after)) = report.start {
            startup_ms = up_after.as_millis() as u64;
            if let Some(end) = recovered_end {
                assert_eq!(child_start, end, "{context}: the child must continue from the recovered log end");
            }
        }
        for &(base, id) in &report.acks {
            if let Some(previous) = acked.insert(base, id) {
                panic!("{context}: offset {base} acknowledged twice (ids {previous} and {id})");
            }
        }
        let close = round % 2 == 1;
        let outcome = {
            let (root, before, acked, context) = (root.clone(), verified, acked.clone(), context.clone());
            std::thread::spawn(move || {
                let executor = LocalExecutorBuilder::default().make().expect("glommio executor");
                executor.run(async move { verify(&root, &before, &acked, close, &context).await })
            })
            .join()
        };
        let (end, found) = outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        println!(
            "{context}: {kill_at:?}, log opened: {}, {} acks, {} acked in all, log end {end} in {} batches, {}",
            report.start.map_or("no".to_string(), |(_, at)| format!("after {} ms", at.as_millis())),
            report.acks.len(),
            acked.len(),
            found.len(),
            if close { "closed cleanly" } else { "left unclean" }
        );
        recovered_end = Some(end);
        verified = found;
    }
    println!("{rounds} rounds, {} acknowledged appends verified, {:.1} s", acked.len(), began.elapsed().as_secs_f64());
    assert!(!acked.is_empty() || rounds == 0, "no child acknowledged anything: the test tested nothing");
    std::fs::remove_dir_all(&root).expect("remove the data directory");
}
