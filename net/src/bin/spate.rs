//! The `spate` command. `spate serve` runs the broker (see `net::server`).
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 1 when the broker cannot start
//! (configuration, data directory, address in use), 70 when a shard stopped unexpectedly, 74
//! (`EX_IOERR`) after a fatal I/O error on a log or the data directory, 130 when a second signal cut
//! the shutdown short.

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
}

#[derive(clap::Args)]
struct ServeArgs {
    /// HOST:PORT to accept Kafka clients on [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
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
}

fn main() -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let Cli { command: Command::Serve(args) } = Cli::parse();
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
        advertise: args.advertise,
        data_dir: args.data_dir,
        cores: args.cores.map(CoresValue::Text),
        node_id: args.node_id,
        ..Settings::default()
    };
    let config = file.overridden_by(flags).resolve().map_err(|error| ServeError::Config(error.to_string()))?;

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
