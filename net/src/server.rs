//! `spate serve`: the shards, their listeners and connections, and shutdown.
//!
//! Startup, on the main thread: create the data directory, load or create `meta.properties`, resolve
//! `--cores` against the CPUs this process may use, bind one SO_REUSEPORT socket per shard (so a port
//! in use fails here, before any shard starts), then start the shard pool. Each shard accepts on its
//! own socket, at most `max_connections_per_shard` connections at a time, and serves each connection
//! as a task ([`crate::connection`]).
//!
//! Shutdown: the process-wide [`Shutdown`] is triggered (by the signal thread in the binary). Each
//! shard stops accepting and closes its listener; connections finish the requests already read and
//! close; the shard waits up to [`SHUTDOWN_GRACE`] for them and then returns. If a shard ends on its
//! own (a panic, a failed start), the others are shut down the same way and [`run`] reports it, so the
//! process never keeps serving with a shard missing.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use spate_core::runtime::tcp::{self, Listener};
use spate_core::runtime::{
    available_cpus, format_cpus, sleep, spawn_local, ExitKind, LocalSignal, PoolConfig, Shard, ShardExit, ShardId,
    ShardPlacement, ShardPool, Shutdown,
};
use tracing::{error, info, warn};

use crate::broker::BrokerInfo;
use crate::config::ServeConfig;
use crate::connection;
use crate::frame::FrameDecoder;
use crate::meta_properties;

/// How long a shard waits for its connections to finish after shutdown is triggered.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Cross-shard calls: none yet (produce and fetch routing will add theirs).
type ShardRequest = ();
type ShardReply = ();

/// Why the broker could not start, or stopped badly.
#[derive(Debug)]
pub enum ServeError {
    /// The settings are invalid (or the config file unreadable).
    Config(String),
    /// Creating the data directory or `meta.properties` failed.
    DataDir(String),
    /// `--cores` names CPUs this process cannot use.
    Cores(String),
    /// Binding the listen address failed.
    Bind(String),
    /// Starting the executors failed.
    Start(io::Error),
    /// A shard ended without being asked to.
    ShardFailed(ShardExit),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Config(reason) => write!(f, "{reason}"),
            ServeError::DataDir(reason) => write!(f, "data directory: {reason}"),
            ServeError::Cores(reason) => write!(f, "{reason}"),
            ServeError::Bind(reason) => write!(f, "{reason}"),
            ServeError::Start(error) => write!(f, "cannot start the shards: {error}"),
            ServeError::ShardFailed(exit) => write!(f, "shard {} stopped unexpectedly ({:?})", exit.shard, exit.kind),
        }
    }
}

impl std::error::Error for ServeError {}

/// Runs the broker until `shutdown` is triggered and every shard has stopped.
pub fn run(config: ServeConfig, shutdown: Shutdown) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|error| ServeError::DataDir(format!("cannot create {}: {error}", config.data_dir.display())))?;
    let meta = meta_properties::load_or_create(&config.data_dir, config.node_id)
        .map_err(|error| ServeError::DataDir(error.to_string()))?;

    let allowed = available_cpus().map_err(|error| ServeError::Cores(format!("cannot read CPU affinity: {error}")))?;
    let cpus = config.cores.resolve(&allowed).map_err(|error| ServeError::Cores(error.to_string()))?;
    let listeners = tcp::bind_shared(config.listen, cpus.len())
        .map_err(|error| ServeError::Bind(format!("cannot listen on {}: {error}", config.listen)))?;
    let bound = listeners[0].local_addr().map_err(|error| ServeError::Bind(error.to_string()))?;
    let (advertised_host, advertised_port) =
        config.advertise.clone().unwrap_or_else(|| (config.listen_host.clone(), bound.port()));
    let broker = BrokerInfo { node_id: config.node_id, advertised_host, advertised_port, cluster_id: meta.cluster_id };
    info!(
        listen = %bound,
        advertise = %format!("{}:{}", broker.advertised_host, broker.advertised_port),
        node_id = broker.node_id,
        cluster_id = %broker.cluster_id,
        data_dir = %config.data_dir.display(),
        shards = cpus.len(),
        cpus = %format_cpus(&cpus),
        "starting"
    );

    let shard_config = ShardConfig {
        broker,
        decoder: FrameDecoder::new(config.max_frame_bytes),
        max_connections: config.max_connections_per_shard,
    };
    let mut listeners = listeners.into_iter();
    let pool_config = PoolConfig::new("spate-shard", ShardPlacement::Pinned(cpus));
    let pool = ShardPool::start(pool_config, |_| {
        let (listener, shard_config, shutdown) = (listeners.next(), shard_config.clone(), shutdown.clone());
        move |shard: Shard<ShardRequest, ShardReply>| async move {
            match listener {
                Some(listener) => shard_main(shard, listener, shard_config, shutdown).await,
                None => unreachable!("one listener was bound per shard"),
            }
        }
    })
    .map_err(ServeError::Start)?;
    supervise(pool, &shutdown)
}

/// Waits for the shards. The first one to end without shutdown having been triggered is a failure:
/// the rest are shut down and the failure reported.
fn supervise(pool: ShardPool<()>, shutdown: &Shutdown) -> Result<(), ServeError> {
    let nr_shards = pool.nr_shards();
    let mut failure = None;
    let mut exited = 0;
    while exited < nr_shards {
        // Before shutdown, wait as long as it takes; after it, the shards have their grace period plus
        // a margin, and a shard that takes longer is abandoned (the process is exiting anyway).
        let timeout = shutdown.is_triggered().then_some(SHUTDOWN_GRACE + Duration::from_secs(2));
        let Some(exit) = pool.wait_exit(timeout) else {
            warn!(stopped = exited, shards = nr_shards, "shards did not stop in time; exiting anyway");
            return failure.map_or(Ok(()), Err);
        };
        exited += 1;
        if !shutdown.is_triggered() || exit.kind != ExitKind::Returned {
            error!(shard = %exit.shard, kind = ?exit.kind, "shard stopped unexpectedly; shutting down");
            shutdown.trigger();
            failure.get_or_insert(ServeError::ShardFailed(exit));
        }
    }
    for (shard, result) in pool.join() {
        if let Err(reason) = result {
            error!(%shard, "shard failed: {reason}");
        }
    }
    failure.map_or(Ok(()), Err)
}

/// What every shard needs, cloned into each.
#[derive(Clone)]
struct ShardConfig {
    broker: BrokerInfo,
    decoder: FrameDecoder,
    max_connections: usize,
}

/// One shard: accept until shutdown, then wait (bounded) for the connections to finish.
async fn shard_main(
    shard: Shard<ShardRequest, ShardReply>,
    listener: std::net::TcpListener,
    config: ShardConfig,
    shutdown: Shutdown,
) {
    let id = shard.id();
    shard.serve(|_, ()| async {});
    let listener = Listener::new(listener);
    let signal = Rc::new(LocalSignal::new());
    {
        let signal = signal.clone();
        spawn_local(async move {
            shutdown.wait().await;
            signal.trigger();
        })
        .detach();
    }
    let config = Rc::new(config);
    let open = Rc::new(Cell::new(0usize));
    info!(shard = %id, cpu = ?shard.cpu(), "accepting");
    accept_loop(id, &listener, &config, &signal, &open).await;
    drop(listener);

    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while open.get() > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
    if open.get() > 0 {
        warn!(shard = %id, connections = open.get(), "connections still open after the grace period; closing them");
    }
    info!(shard = %id, "stopped");
}

async fn accept_loop(
    id: ShardId,
    listener: &Listener,
    config: &Rc<ShardConfig>,
    signal: &Rc<LocalSignal>,
    open: &Rc<Cell<usize>>,
) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            signal.wait().await;
            None
        })
        .await;
        let connection = match accepted {
            None => return,
            Some(Ok(connection)) => connection,
            Some(Err(error)) => {
                warn!(shard = %id, "accept failed: {error}");
                sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        let peer = match connection.peer_addr() {
            Ok(peer) => peer,
            Err(error) => {
                warn!(shard = %id, "accepted a connection without a peer address: {error}");
                continue;
            }
        };
        if open.get() >= config.max_connections {
            warn!(shard = %id, %peer, limit = config.max_connections, "connection limit reached; closing new connection");
            continue;
        }
        if let Err(error) = connection.set_nodelay(true) {
            warn!(shard = %id, %peer, "cannot set TCP_NODELAY: {error}");
        }
        let (config, signal, open) = (config.clone(), signal.clone(), open.clone());
        open.set(open.get() + 1);
        spawn_local(async move {
            let _open = OpenConnection(open);
            let mut connection = connection;
            connection::serve(&mut connection, peer, &config.broker, config.decoder, &signal).await;
        })
        .detach();
    }
}

/// Counts a connection as open until dropped (the task ends or is dropped with its executor).
struct OpenConnection(Rc<Cell<usize>>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
