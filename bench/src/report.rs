//! The live progress line (stderr, once a second) and the final human-readable table.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::run::Summary;
use crate::stats::{Percentiles, Phase, Stats};

const MIB: f64 = (1 << 20) as f64;

/// The progress thread.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

impl Progress {
    pub fn start(stats: Arc<Stats>, name: String) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut last = (Instant::now(), 0u64, 0u64, 0u64, 0u64);
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.0.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                let now = Instant::now();
                let seconds = now.duration_since(last.0).as_secs_f64();
                let produced = stats.produced_messages_all.load(Ordering::Relaxed);
                let produced_bytes = stats.produced_bytes_all.load(Ordering::Relaxed);
                let consumed = stats.consumed_messages.load(Ordering::Relaxed);
                let consumed_bytes = stats.consumed_bytes.load(Ordering::Relaxed);
                let (produce, e2e) = stats.take_interval();
                let phase = match stats.phase() {
                    Phase::Warmup => "warmup ",
                    Phase::Measure => "measure",
                    Phase::Stop => "stop   ",
                };
                let mut line = format!(
                    "[{name} {:6.1}s {phase}] produce {:>9.0} msg/s {:>8.1} MiB/s",
                    started.elapsed().as_secs_f64(),
                    (produced - last.1) as f64 / seconds,
                    (produced_bytes - last.2) as f64 / seconds / MIB,
                );
                if let Some(p) = Percentiles::of(&produce) {
                    let _ = write!(line, " ack p50 {:.2} p99 {:.2} ms", p.p50, p.p99);
                }
                if consumed > 0 || consumed_bytes > 0 {
                    let _ = write!(
                        line,
                        " | consume {:>9.0} msg/s {:>8.1} MiB/s",
                        consumed.saturating_sub(last.3) as f64 / seconds,
                        consumed_bytes.saturating_sub(last.4) as f64 / seconds / MIB
                    );
                }
                if let Some(p) = Percentiles::of(&e2e) {
                    let _ = write!(line, " e2e p99 {:.2} ms", p.p99);
                }
                eprintln!("{line}");
                last = (now, produced, produced_bytes, consumed, consumed_bytes);
            }
        });
        Progress { stop, handle }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.handle.join();
    }
}

/// The final table.
pub fn table(summary: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "workload {} ({}) against {} [{}], topic {}, {:.1} s measured, mode {}{}",
        summary.workload,
        summary.label,
        summary.bootstrap,
        env!("CARGO_PKG_VERSION"),
        summary.topic,
        summary.duration_s,
        summary.mode,
        if summary.target_rate_msgs_per_s > 0.0 {
            format!(" at {:.0} msg/s", summary.target_rate_msgs_per_s)
        } else {
            String::new()
        },
    );
    let _ = writeln!(out, "{:<22} {:>14} {:>12} {:>10}", "", "messages", "msg/s", "MiB/s");
    let _ = writeln!(
        out,
        "{:<22} {:>14} {:>12.0} {:>10.1}",
        "produced (acked)", summary.produce.messages, summary.produce.msgs_per_s, summary.produce.mib_per_s
    );
    let _ = writeln!(
        out,
        "{:<22} {:>14} {:>12.0} {:>10.1}",
        "consumed", summary.consume.messages, summary.consume.msgs_per_s, summary.consume.mib_per_s
    );
    if let Some(backlog) = &summary.backlog {
        let _ = writeln!(
            out,
            "backlog: {} messages, {:.1} MiB written in {:.1} s before the measured read",
            backlog.messages,
            backlog.bytes as f64 / MIB,
            backlog.produce_s
        );
    }
    let _ =
        writeln!(out, "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9}", "latency (ms)", "p50", "p99", "p99.9", "p99.99", "max");
    for (name, percentiles) in [("produce ack", summary.produce.latency_ms), ("end to end", summary.e2e_latency_ms)] {
        if let Some(p) = percentiles {
            let _ = writeln!(
                out,
                "{name:<22} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                p.p50, p.p99, p.p999, p.p9999, p.max
            );
        }
    }
    if summary.produce.errors > 0 {
        let _ = writeln!(out, "produce errors: {}", summary.produce.errors);
    }
    out
}
