//! The admin CLI: `spate topic|group|cluster|produce|consume … --bootstrap HOST:PORT`.
//!
//! Every command speaks the Kafka protocol through `bench::client::Connection` (blocking sockets,
//! versions negotiated with ApiVersions), so it works against any broker, Spate or Apache Kafka.
//! Output is an aligned table by default and JSON with `--json` ([`output`]); a failure prints one
//! line naming the broker, the request and the Kafka error, and exits with status 1 ([`client`]).
//!
//! | module | commands |
//! | --- | --- |
//! | [`topic`] | create, list, describe, alter-config, delete, add-partitions |
//! | [`group`] | list, describe (members, committed offsets, lag), delete |
//! | [`reset`] | group reset-offsets (dry run by default, `--execute` commits) |
//! | [`cluster`] | info (cluster id, controller, brokers, API versions) |
//! | [`produce`] | lines from stdin to a topic |
//! | [`consume`] | records of a topic to stdout, optionally from and to a group's committed offsets |

pub mod client;
pub mod cluster;
pub mod consume;
pub mod formats;
pub mod group;
pub mod output;
pub mod produce;
pub mod records;
pub mod reset;
pub mod topic;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

pub use client::{CliError, CliResult};

/// Where the admin commands connect, and how they print. Accepted after any subcommand.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// A broker to bootstrap from, HOST:PORT
    #[arg(long, global = true, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Print JSON for scripts instead of tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Limit for connecting and for each request, in ms [default: 30000]; for `consume`, also how long
    /// to wait for a record before exiting
    #[arg(long, global = true, value_name = "MS")]
    pub timeout_ms: Option<u64>,
}

/// Default for `--timeout-ms`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

impl Common {
    /// The limit for connecting and for each request.
    pub fn request_timeout(&self) -> Duration {
        self.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis)
    }
}

/// The admin subcommands of `spate`, flattened into its command list.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Topics: create, list, describe, alter-config, delete, add-partitions
    Topic {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Consumer groups: list, describe (with lag), reset-offsets, delete
    Group {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// The cluster: id, controller, brokers, API versions
    Cluster {
        #[command(flatten)]
        common: Common,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Produce lines from stdin to a topic (one record per line)
    Produce {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: produce::ProduceArgs,
    },
    /// Consume records of a topic and print them
    Consume {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: consume::ConsumeArgs,
    },
}

/// Runs one admin command; prints `error: …` and returns status 1 if it fails.
pub fn run(command: AdminCommand) -> ExitCode {
    let result = match command {
        AdminCommand::Topic { common, command } => topic::run(&common, command),
        AdminCommand::Group { common, command } => group::run(&common, command),
        AdminCommand::Cluster { common, command } => cluster::run(&common, command),
        AdminCommand::Produce { common, args } => produce::run(&common, args),
        AdminCommand::Consume { common, args } => consume::run(&common, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
