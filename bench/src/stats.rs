//! Counters and HDR histograms shared by the workers, the live progress line, and the final summary.
//!
//! Latencies are recorded in microseconds. Produce latency runs from a message's *intended* send time
//! (its slot in the fixed-rate schedule, or the moment it was generated at max rate) to the arrival of
//! the acknowledgement of its request, so a stalled broker is charged for every message that should
//! have been sent meanwhile (no coordinated omission). End-to-end latency runs from the same intended
//! time, carried in the value's first 8 bytes, to the consumer seeing the record.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency the histograms resolve (an hour), in microseconds.
const LATENCY_MAX_US: u64 = 3_600_000_000;

/// The process-wide clock origin: send times in payloads are nanoseconds since it.
pub fn now_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("static bounds are valid")
}

/// What the run is doing: only the measuring phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Warmup = 0,
    Measure = 1,
    Stop = 2,
}

/// Everything the workers report.
pub struct Stats {
    phase: AtomicU8,
    pub produced_messages: AtomicU64,
    pub produced_bytes: AtomicU64,
    pub produce_errors: AtomicU64,
    pub consumed_messages: AtomicU64,
    pub consumed_bytes: AtomicU64,
    /// Messages produced in any phase (the backlog phase of catch-up runs counts them here).
    pub produced_messages_all: AtomicU64,
    pub produced_bytes_all: AtomicU64,
    produce_latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
    e2e_latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            phase: AtomicU8::new(Phase::Warmup as u8),
            produced_messages: AtomicU64::new(0),
            produced_bytes: AtomicU64::new(0),
            produce_errors: AtomicU64::new(0),
            consumed_messages: AtomicU64::new(0),
            consumed_bytes: AtomicU64::new(0),
            produced_messages_all: AtomicU64::new(0),
            produced_bytes_all: AtomicU64::new(0),
            produce_latency: Mutex::new((histogram(), histogram())),
            e2e_latency: Mutex::new((histogram(), histogram())),
        }
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Warmup,
            1 => Phase::Measure,
            _ => Phase::Stop,
        }
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
    }

    pub fn measuring(&self) -> bool {
        self.phase() == Phase::Measure
    }

    /// Acknowledged messages with their intended send times (ns since [`now_ns`]'s origin); acks=0
    /// sends pass no times.
    pub fn record_acked(&self, messages: u64, intended_ns: &[u64], bytes: u64, acked_ns: u64) {
        self.produced_messages_all.fetch_add(messages, Ordering::Relaxed);
        self.produced_bytes_all.fetch_add(bytes, Ordering::Relaxed);
        if !self.measuring() {
            return;
        }
        self.produced_messages.fetch_add(messages, Ordering::Relaxed);
        self.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
        if intended_ns.is_empty() {
            return;
        }
        let mut histograms = self.produce_latency.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for &intended in intended_ns {
            let micros = acked_ns.saturating_sub(intended) / 1000;
            histograms.0.saturating_record(micros.max(1));
            histograms.1.saturating_record(micros.max(1));
        }
    }

    /// Consumed messages and the end-to-end latencies of those that carried a send time.
    pub fn record_consumed(&self, messages: u64, bytes: u64, e2e_us: &[u64]) {
        if !self.measuring() {
            return;
        }
        self.consumed_messages.fetch_add(messages, Ordering::Relaxed);
        self.consumed_bytes.fetch_add(bytes, Ordering::Relaxed);
        if e2e_us.is_empty() {
            return;
        }
        let mut histograms = self.e2e_latency.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for &micros in e2e_us {
            histograms.0.saturating_record(micros.max(1));
            histograms.1.saturating_record(micros.max(1));
        }
    }

    /// The interval histograms since the last call (reset), for the progress line.
    pub fn take_interval(&self) -> (Histogram<u64>, Histogram<u64>) {
        let produce = {
            let mut guard = self.produce_latency.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(&mut guard.1, histogram())
        };
        let e2e = {
            let mut guard = self.e2e_latency.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::replace(&mut guard.1, histogram())
        };
        (produce, e2e)
    }

    /// The whole measuring phase's histograms.
    pub fn totals(&self) -> (Histogram<u64>, Histogram<u64>) {
        let produce = self.produce_latency.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0.clone();
        let e2e = self.e2e_latency.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).0.clone();
        (produce, e2e)
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

impl Percentiles {
    /// `None` for an empty histogram.
    pub fn of(histogram: &Histogram<u64>) -> Option<Percentiles> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Percentiles {
            p50: ms(histogram.value_at_quantile(0.50)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            p9999: ms(histogram.value_at_quantile(0.9999)),
            max: ms(histogram.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_measuring_phase_counts() {
        let stats = Stats::new();
        stats.record_acked(2, &[0, 0], 100, 5_000_000);
        stats.record_consumed(2, 100, &[10]);
        assert_eq!(stats.produced_messages.load(Ordering::Relaxed), 0);
        assert_eq!(stats.produced_messages_all.load(Ordering::Relaxed), 2);
        stats.set_phase(Phase::Measure);
        stats.record_acked(2, &[1_000_000, 2_000_000], 100, 5_000_000);
        stats.record_consumed(3, 300, &[7_000]);
        assert_eq!(stats.produced_messages.load(Ordering::Relaxed), 2);
        assert_eq!(stats.consumed_bytes.load(Ordering::Relaxed), 300);
        let (produce, e2e) = stats.totals();
        let produce = Percentiles::of(&produce).unwrap();
        // From the intended times: 4 ms and 3 ms.
        assert!((produce.max - 4.0).abs() < 0.01, "{produce:?}");
        assert!((produce.p50 - 3.0).abs() < 0.01, "{produce:?}");
        assert!((Percentiles::of(&e2e).unwrap().p50 - 7.0).abs() < 0.01);
        let (interval, _) = stats.take_interval();
        assert_eq!(interval.len(), 2);
        assert!(stats.take_interval().0.is_empty(), "taking resets the interval");
        assert_eq!(stats.totals().0.len(), 2, "but not the totals");
    }
}
