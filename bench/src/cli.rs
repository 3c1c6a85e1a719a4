//! The command line: `spate-bench run …` and `spate-bench loopback …` (also reachable as `spate bench …`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::run::{run, RunOptions};
use crate::workload::Workload;

#[derive(Parser)]
#[command(name = "spate-bench", version, about = "Kafka-protocol throughput and latency load generator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload file against a broker.
    Run(RunArgs),
    /// Measure loopback TCP throughput between two threads (a raw baseline).
    Loopback(LoopbackArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Any Kafka-compatible broker
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Workload file (TOML), e.g. bench/workloads/max-1k-16p.toml
    #[arg(long, value_name = "FILE")]
    workload: PathBuf,
    /// A name for this run in the output (e.g. the broker's name)
    #[arg(long, default_value = "")]
    label: String,
    /// Fixed total produce rate in messages per second (overrides the workload)
    #[arg(long, value_name = "MSGS_PER_S")]
    rate: Option<f64>,
    /// Measured seconds (overrides the workload)
    #[arg(long, value_name = "S")]
    duration_s: Option<f64>,
    /// Warm-up seconds (overrides the workload)
    #[arg(long, value_name = "S")]
    warmup_s: Option<f64>,
    /// Catch-up backlog in bytes (overrides the workload)
    #[arg(long, value_name = "BYTES")]
    backlog_bytes: Option<u64>,
    /// CPUs for all producer and consumer threads, e.g. "1" or "1,2" (overrides the workload)
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Prefix of the topic created for the run
    #[arg(long, default_value = "bench-")]
    topic_prefix: String,
    /// Keep the run's topic (by default it is deleted after the run, so that runs do not fill the disk)
    #[arg(long)]
    keep_topic: bool,
    /// Print only the JSON line on stdout (progress still goes to stderr unless --quiet)
    #[arg(long)]
    json: bool,
    /// No progress lines
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct LoopbackArgs {
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// CPU of the sending thread (the broker's side)
    #[arg(long)]
    sender_cpu: Option<usize>,
    /// CPU of the receiving thread (the client's side)
    #[arg(long)]
    receiver_cpu: Option<usize>,
    #[arg(long)]
    json: bool,
}

/// Parses `args` (program name first) and runs; exit 0 on success, 1 on a failed run, 2 on bad usage.
pub fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let outcome = match cli.command {
        Command::Run(args) => run_command(args),
        Command::Loopback(args) => loopback_command(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("spate-bench: {error}");
            ExitCode::from(1)
        }
    }
}

fn run_command(args: RunArgs) -> crate::client::Result<()> {
    let mut workload = Workload::from_file(&args.workload)?;
    if let Some(duration) = args.duration_s {
        workload.duration_s = duration;
    }
    if let Some(warmup) = args.warmup_s {
        workload.warmup_s = warmup;
    }
    if let Some(backlog) = args.backlog_bytes {
        workload.backlog_bytes = backlog;
    }
    if let Some(list) = &args.cpus {
        let cpus = parse_cpus(list)?;
        workload.producer_cpus = cpus.clone();
        workload.consumer_cpus = cpus;
    }
    workload.check()?;
    let options = RunOptions {
        bootstrap: args.bootstrap,
        label: args.label,
        rate_msgs_per_s: args.rate.filter(|rate| *rate > 0.0),
        topic_prefix: args.topic_prefix,
        keep_topic: args.keep_topic,
        progress: !args.quiet,
    };
    let summary = run(&workload, &options)?;
    if !args.json {
        print!("{}", crate::report::table(&summary));
    }
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

fn loopback_command(args: LoopbackArgs) -> crate::client::Result<()> {
    let summary =
        crate::loopback::measure(Duration::from_secs_f64(args.duration_s), args.sender_cpu, args.receiver_cpu)?;
    if !args.json {
        println!("loopback TCP: {:.1} MiB/s over {:.1} s", summary.mib_per_s, summary.duration_s);
    }
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

/// "1", "0,1", "2-3".
fn parse_cpus(list: &str) -> crate::client::Result<Vec<usize>> {
    let cpus = spate_core::runtime::parse_cpu_list(list).map_err(|error| format!("--cpus {list:?}: {error}"))?;
    if cpus.is_empty() {
        return Err(format!("--cpus {list:?} names no CPU").into());
    }
    Ok(cpus)
}
