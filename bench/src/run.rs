//! One benchmark run: create the topic, start consumers and producers pinned where asked, warm up,
//! measure, stop, and summarise.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{Connection, Result};
use crate::consumer::{run_consumer, ConsumerPlan};
use crate::producer::{run_producer, ProducerPlan};
use crate::report::Progress;
use crate::stats::{Percentiles, Phase, Stats};
use crate::workload::{ConsumerStart, Workload};

/// How long a run waits for consumers to drain after producers stop (end-to-end tail).
const DRAIN: Duration = Duration::from_millis(500);

/// What the caller asks on top of the workload file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub bootstrap: String,
    pub label: String,
    /// Fixed total rate; overrides the workload's rate and `rate_of_max`.
    pub rate_msgs_per_s: Option<f64>,
    pub topic_prefix: String,
    /// Leave the run's topic on the broker instead of deleting it afterwards.
    pub keep_topic: bool,
    /// Print a progress line every second to stderr.
    pub progress: bool,
}

/// The JSON line printed per run (the contract the comparison script reads).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub spate_bench: u32,
    pub label: String,
    pub workload: String,
    pub bootstrap: String,
    pub topic: String,
    pub mode: &'static str,
    pub target_rate_msgs_per_s: f64,
    pub duration_s: f64,
    pub produce: Throughput,
    pub consume: ConsumeThroughput,
    pub e2e_latency_ms: Option<Percentiles>,
    pub backlog: Option<Backlog>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub messages: u64,
    pub bytes: u64,
    pub msgs_per_s: f64,
    pub mib_per_s: f64,
    pub errors: u64,
    pub latency_ms: Option<Percentiles>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumeThroughput {
    pub messages: u64,
    pub bytes: u64,
    pub msgs_per_s: f64,
    pub mib_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backlog {
    pub messages: u64,
    pub bytes: u64,
    pub produce_s: f64,
}

type Failure = Arc<Mutex<Option<String>>>;

/// Tells every worker to stop when a run ends, early returns included.
struct StopOnDrop(Arc<Stats>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.set_phase(Phase::Stop);
    }
}

/// Runs a workload; with `rate_of_max` and no explicit rate, a max-rate probe runs first.
pub fn run(workload: &Workload, options: &RunOptions) -> Result<Summary> {
    let rate = match (options.rate_msgs_per_s, workload.rate_of_max) {
        (Some(rate), _) => rate,
        (None, Some(fraction)) => {
            let probe = Workload {
                name: format!("{}-probe", workload.name),
                rate_msgs_per_s: 0.0,
                rate_of_max: None,
                consumers: 0,
                duration_s: workload.duration_s.min(10.0),
                warmup_s: workload.warmup_s.min(2.0),
                ..workload.clone()
            };
            let summary = run_once(&probe, options, 0.0)?;
            eprintln!("probe: {:.0} msg/s at max; running at {fraction} of it", summary.produce.msgs_per_s);
            summary.produce.msgs_per_s * fraction
        }
        (None, None) => workload.rate_msgs_per_s,
    };
    run_once(workload, options, rate)
}

fn run_once(workload: &Workload, options: &RunOptions, rate: f64) -> Result<Summary> {
    let topic = format!("{}{}-{}", options.topic_prefix, workload.name, unique_suffix());
    let mut admin = Connection::open(&options.bootstrap)?;
    let configs: Vec<(String, String)> = workload.topic_config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    admin.create_topic(&topic, workload.partitions, &configs)?;
    let leaders = admin.wait_for_leaders(&topic, workload.partitions, Duration::from_secs(30))?;
    let stats = Arc::new(Stats::new());
    let _stop_workers_on_error = StopOnDrop(stats.clone());
    let failure: Failure = Arc::new(Mutex::new(None));
    let workload = Arc::new(workload.clone());
    let backlog = workload.backlog_bytes > 0;

    let mut consumers = Vec::new();
    if !backlog && workload.consumers > 0 {
        let start = match workload.consumer_start {
            ConsumerStart::Earliest => -2,
            ConsumerStart::Latest => -1,
        };
        let partitions: Vec<i32> = (0..workload.partitions).collect();
        let offsets = admin.list_offsets(&topic, &partitions, start)?;
        consumers = spawn_consumers(&workload, &topic, &leaders, &offsets, None, &stats, &failure)?;
    }

    let started = Instant::now();
    let generated = Arc::new(AtomicU64::new(0));
    let producers = spawn_producers(
        &workload,
        &topic,
        &leaders,
        rate,
        backlog.then(|| (workload.backlog_bytes, generated)),
        &stats,
        &failure,
    )?;
    let progress = options.progress.then(|| Progress::start(stats.clone(), workload.name.clone()));

    let (measured, backlog_summary) = if backlog {
        // Catch-up: the backlog is written unmeasured, then the consumers' read of it is the measurement.
        join_all(producers, &failure)?;
        let backlog_summary = Backlog {
            messages: stats.produced_messages_all.load(Ordering::Relaxed),
            bytes: stats.produced_bytes_all.load(Ordering::Relaxed),
            produce_s: started.elapsed().as_secs_f64(),
        };
        let partitions: Vec<i32> = (0..workload.partitions).collect();
        let ends = admin.list_offsets(&topic, &partitions, -1)?;
        let starts = admin.list_offsets(&topic, &partitions, -2)?;
        stats.set_phase(Phase::Measure);
        let measuring = Instant::now();
        let consumers = spawn_consumers(&workload, &topic, &leaders, &starts, Some(&ends), &stats, &failure)?;
        join_all(consumers, &failure)?;
        let measured = measuring.elapsed();
        stats.set_phase(Phase::Stop);
        (measured, Some(backlog_summary))
    } else {
        sleep_checking(Duration::from_secs_f64(workload.warmup_s), &failure)?;
        stats.set_phase(Phase::Measure);
        let measuring = Instant::now();
        sleep_checking(Duration::from_secs_f64(workload.duration_s), &failure)?;
        let measured = measuring.elapsed();
        // Producers stop generating; acks still in flight arrive after the measuring window and do not count.
        stats.set_phase(Phase::Stop);
        join_all(producers, &failure)?;
        std::thread::sleep(if consumers.is_empty() { Duration::ZERO } else { DRAIN });
        join_all(consumers, &failure)?;
        (measured, None)
    };
    if let Some(progress) = progress {
        progress.stop();
    }
    if !options.keep_topic {
        admin.delete_topic(&topic)?;
    }
    admin.close();
    if let Some(message) = failure.lock().unwrap_or_else(|p| p.into_inner()).clone() {
        return Err(message.into());
    }

    let seconds = measured.as_secs_f64();
    let (produce_latency, e2e_latency) = stats.totals();
    let produced_bytes = stats.produced_bytes.load(Ordering::Relaxed);
    let consumed_bytes = stats.consumed_bytes.load(Ordering::Relaxed);
    let produced_messages = stats.produced_messages.load(Ordering::Relaxed);
    let consumed_messages = stats.consumed_messages.load(Ordering::Relaxed);
    Ok(Summary {
        spate_bench: 1,
        label: options.label.clone(),
        workload: workload.name.clone(),
        bootstrap: options.bootstrap.clone(),
        topic,
        mode: if rate > 0.0 { "fixed" } else { "max" },
        target_rate_msgs_per_s: rate,
        duration_s: seconds,
        produce: Throughput {
            messages: produced_messages,
            bytes: produced_bytes,
            msgs_per_s: produced_messages as f64 / seconds,
            mib_per_s: produced_bytes as f64 / seconds / (1 << 20) as f64,
            errors: stats.produce_errors.load(Ordering::Relaxed),
            latency_ms: Percentiles::of(&produce_latency),
        },
        consume: ConsumeThroughput {
            messages: consumed_messages,
            bytes: consumed_bytes,
            msgs_per_s: consumed_messages as f64 / seconds,
            mib_per_s: consumed_bytes as f64 / seconds / (1 << 20) as f64,
        },
        e2e_latency_ms: if backlog { None } else { Percentiles::of(&e2e_latency) },
        backlog: backlog_summary,
    })
}

fn spawn_producers(
    workload: &Arc<Workload>,
    topic: &str,
    leaders: &[String],
    rate: f64,
    generate_bytes_max: Option<(u64, Arc<AtomicU64>)>,
    stats: &Arc<Stats>,
    failure: &Failure,
) -> Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::new();
    for index in 0..workload.producers {
        let plan = ProducerPlan {
            index,
            topic: topic.to_owned(),
            leaders: leaders.to_vec(),
            rate_msgs_per_s: rate / workload.producers as f64,
            generate_bytes_max: generate_bytes_max.clone(),
            cpu: pick(&workload.producer_cpus, index),
        };
        let (workload, stats, failure) = (workload.clone(), stats.clone(), failure.clone());
        handles.push(std::thread::Builder::new().name(format!("producer-{index}")).spawn(move || {
            if let Err(error) = run_producer(&workload, plan, stats, failure.clone()) {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("producer {index}: {error}"));
            }
        })?);
    }
    Ok(handles)
}

fn spawn_consumers(
    workload: &Arc<Workload>,
    topic: &str,
    leaders: &[String],
    starts: &[(i32, i64)],
    stops: Option<&[(i32, i64)]>,
    stats: &Arc<Stats>,
    failure: &Failure,
) -> Result<Vec<JoinHandle<()>>> {
    let count = workload.consumers.max(1);
    let mut handles = Vec::new();
    for index in 0..count {
        let partitions = starts
            .iter()
            .filter(|(partition, _)| *partition as usize % count == index)
            .map(|&(partition, start)| {
                let stop = stops.and_then(|stops| stops.iter().find(|(p, _)| *p == partition).map(|&(_, end)| end));
                (partition, leaders[partition as usize].clone(), start, stop)
            })
            .collect::<Vec<_>>();
        if partitions.is_empty() {
            continue;
        }
        let plan = ConsumerPlan { topic: topic.to_owned(), partitions, cpu: pick(&workload.consumer_cpus, index) };
        let (workload, stats, failure) = (workload.clone(), stats.clone(), failure.clone());
        handles.push(std::thread::Builder::new().name(format!("consumer-{index}")).spawn(move || {
            if let Err(error) = run_consumer(&workload, plan, stats, failure.clone()) {
                failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("consumer {index}: {error}"));
            }
        })?);
    }
    Ok(handles)
}

fn pick(cpus: &[usize], index: usize) -> Option<usize> {
    (!cpus.is_empty()).then(|| cpus[index % cpus.len()])
}

fn join_all(handles: Vec<JoinHandle<()>>, failure: &Failure) -> Result<()> {
    for handle in handles {
        if handle.join().is_err() {
            failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert("a worker thread panicked".into());
        }
    }
    Ok(())
}

/// Sleeps, returning early with the error if a worker failed.
fn sleep_checking(duration: Duration, failure: &Failure) -> Result<()> {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if let Some(message) = failure.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Err(message.into());
        }
        std::thread::sleep((deadline - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

fn unique_suffix() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}", now.as_millis(), std::process::id())
}
