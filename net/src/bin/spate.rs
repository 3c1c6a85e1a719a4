//! The `spate` command. `spate serve` runs the broker (see `net::server`); `spate tune` discovers the
//! machine, measures the data directory's disk and writes a profile for `spate serve --profile` (see the
//! `tuning` crate). `spate topic|group|cluster|produce|consume … --bootstrap HOST:PORT` is the admin CLI,
//! a Kafka client of any broker (see `net::cli`).
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the broker cannot start
//! (configuration, data directory, address in use), 70 when a shard stopped unexpectedly, 74
//! (`EX_IOERR`) after a fatal I/O error on a log or the data directory, 130 when a second signal cut
//! the shutdown short. `spate tune`: 0 once the profile is written, 1 if discovery, measurement or writing
//! failed. Admin commands: 0 on success, 1 with an `error: …` line naming the broker and the Kafka error,
//! 2 for bad usage.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use net::config::{CoresValue, Settings};
use net::server::{self, ServeError};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use spate_core::runtime::Shutdown;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

const EXIT_START_FAILED: u8 = 1;
const EXIT_SHARD_FAILED: u8 = 70;
const EXIT_SECOND_SIGNAL: i32 = 130;

#[derive(Parser)]
#[command(name = "spate", version, about = "A Kafka-compatible event streaming broker, thread-per-core")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Discover the machine, measure the data directory's disk, and write a tuning profile.
    Tune(TuneArgs),
    /// The load generator: `spate bench run --workload FILE --bootstrap HOST:PORT` (see `spate bench --help`).
    #[command(disable_help_flag = true)]
    Bench {
        /// Arguments for spate-bench
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    #[command(flatten)]
    Admin(net::cli::AdminCommand),
}

#[derive(clap::Args)]
struct TuneArgs {
    /// Data directory whose disk is measured (a test file is written there and deleted)
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Where to write the profile (TOML)
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// A 1-3 s measurement with a small file instead of the full one (under a minute)
    #[arg(long)]
    quick: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// HOST:PORT to accept Kafka clients on [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Log lines as `text` or `json` (one object per line) [default: text, or $SPATE_LOG_FORMAT]
    #[arg(long, value_name = "text|json", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// HOST:PORT of the admin HTTP listener (/metrics, /healthz, /readyz), or "off" [default: 127.0.0.1:9644]
    #[arg(long, value_name = "HOST:PORT|off")]
    admin_listen: Option<String>,
    /// HOST:PORT clients are told to connect to [default: the listen address]
    #[arg(long, value_name = "HOST:PORT")]
    advertise: Option<String>,
    /// Data directory, created if missing [default: ./spate-data]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Shards: a count ("2"), CPU ids ("0,1", "0-3"), or "all" [default: all]
    #[arg(long, value_name = "N|LIST")]
    cores: Option<String>,
    /// TOML file with the same settings (listen, advertise, data_dir, cores, node_id, ...); flags win
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This broker's node id [default: 0]
    #[arg(long, value_name = "N")]
    node_id: Option<i32>,
    /// Tuning profile: a file written by `spate tune`, or latency, throughput or balanced; --config and
    /// flags override its settings
    #[arg(long, value_name = "FILE|NAME")]
    profile: Option<String>,
}

/// Logs to stderr, filtered by RUST_LOG (default `info`), as text or one JSON object per line.
fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json_flag = match &cli.command {
        Command::Serve(args) => args.log_format.as_deref().map(|format| format.eq_ignore_ascii_case("json")),
        _ => None,
    };
    let json_env = std::env::var("SPATE_LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    init_logging(json_flag.unwrap_or(json_env));

    let args = match cli.command {
        Command::Serve(args) => args,
        Command::Tune(args) => return tune(args),
        Command::Bench { args } => return bench::cli::main(std::iter::once("spate bench".into()).chain(args)),
        Command::Admin(command) => return net::cli::run(command),
    };
    match serve(args) {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error @ ServeError::ShardFailed(_)) => {
            error!("{error}");
            ExitCode::from(EXIT_SHARD_FAILED)
        }
        Err(error) => {
            error!("{error}");
            ExitCode::from(EXIT_START_FAILED)
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path).map_err(|error| ServeError::Config(error.to_string()))?,
        None => Settings::default(),
    };
    let flags = Settings {
        listen: args.listen,
        admin_listen: args.admin_listen,
        advertise: args.advertise,
        data_dir: args.data_dir,
        cores: args.cores.map(CoresValue::Text),
        node_id: args.node_id,
        ..Settings::default()
    };
    let profile = match &args.profile {
        Some(name_or_path) => {
            let data_dir = flags.data_dir.clone().or_else(|| file.data_dir.clone());
            let data_dir = data_dir.unwrap_or_else(|| PathBuf::from(net::config::DEFAULT_DATA_DIR));
            let profile = tuning::Profile::load(name_or_path, &data_dir)
                .map_err(|error| ServeError::Config(format!("--profile: {error}")))?;
            info!(profile = %name_or_path, name = %profile.name, "{}", profile.description);
            Some(Settings::from_profile(&profile.broker))
        }
        None => None,
    };
    log_tuning_sources(args.profile.as_deref(), profile.as_ref(), &file, &flags);
    let merged = profile.unwrap_or_default().overridden_by(file).overridden_by(flags);
    let config = merged.resolve().map_err(|error| ServeError::Config(error.to_string()))?;

    let shutdown = Shutdown::new();
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|error| {
        ServeError::Start(std::io::Error::other(format!("cannot install signal handlers: {error}")))
    })?;
    let on_signal = shutdown.clone();
    std::thread::Builder::new()
        .name("spate-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
                if on_signal.is_triggered() {
                    warn!("received {name} again, exiting without waiting");
                    std::process::exit(EXIT_SECOND_SIGNAL);
                }
                info!("received {name}, shutting down");
                on_signal.trigger();
            }
        })
        .map_err(ServeError::Start)?;
    server::run(config, shutdown)
}

/// Logs each tuning setting that a layer sets, with its value and the layer it comes from (flags beat
/// --config, which beats the profile).
fn log_tuning_sources(profile_name: Option<&str>, profile: Option<&Settings>, file: &Settings, flags: &Settings) {
    let layers = [
        (String::from("flag"), flags.tuning_values()),
        (String::from("config file"), file.tuning_values()),
        (
            format!("profile {}", profile_name.unwrap_or_default()),
            profile.map(Settings::tuning_values).unwrap_or_default(),
        ),
    ];
    for (index, (name, _)) in layers[0].1.iter().enumerate() {
        let applied = layers.iter().find_map(|(source, values)| {
            values.get(index).and_then(|(_, value)| value.as_ref()).map(|value| (value, source))
        });
        if let Some((value, source)) = applied {
            info!("applied {name} = {value} (from {source})");
        }
    }
}

/// `spate tune`: discover, measure, write the profile, print a summary.
fn tune(args: TuneArgs) -> ExitCode {
    let plan = if args.quick { tuning::Plan::quick() } else { tuning::Plan::full() };
    info!(data_dir = %args.data_dir.display(), mode = plan.mode, "measuring the data directory's disk");
    let profile = match tuning::tune(&args.data_dir, plan) {
        Ok(profile) => profile,
        Err(error) => {
            error!("cannot measure {}: {error}", args.data_dir.display());
            return ExitCode::from(EXIT_START_FAILED);
        }
    };
    if let Err(error) = std::fs::write(&args.out, profile.to_toml()) {
        error!("cannot write {}: {error}", args.out.display());
        return ExitCode::from(EXIT_START_FAILED);
    }
    print!("{}", tuning::summary(&profile));
    println!("wrote {}", args.out.display());
    ExitCode::SUCCESS
}
