//! `spate serve`: the shards, their listeners and connections, and shutdown.
//!
//! Startup, on the main thread: create the data directory, load or create `meta.properties`, resolve
//! `--cores` against the CPUs this process may use, bind one SO_REUSEPORT socket per shard (so a port
//! in use fails here, before any shard starts), then start the shard pool. Each shard accepts on its
//! own socket, at most `max_connections_per_shard` connections at a time, and serves each connection
//! as a task ([`crate::connection`]). The shard's connections share its [`MemoryBudget`]
//! (`memory_budget_bytes_per_shard`) for the requests and responses they hold.
//!
//! Before the shards start, the topic table is loaded from `<data_dir>/__cluster_metadata/topics.json`
//! (a bad file stops the start). Each shard then opens the partitions it owns
//! ([`crate::shard::start`]) before it accepts connections.
//!
//! Shutdown: the process-wide [`Shutdown`] is triggered (by the signal thread in the binary). Each
//! shard stops accepting and closes its listener; connections finish the requests already read and
//! close; the shard waits up to [`SHUTDOWN_GRACE`] for them, then (after every shard got that far, or
//! a bounded wait) closes its logs cleanly ([`crate::shard::stop`]) and returns. If a shard ends on
//! its own (a panic, a failed start), the others are shut down the same way and [`run`] reports it,
//! so the process never keeps serving with a shard missing. A fatal I/O error exits the process at
//! once with status 74 (`crate::shard::partitions::EXIT_IO_ERROR`).

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spate_core::runtime::tcp::{self, Listener};
use spate_core::runtime::{
    available_cpus, format_cpus, sleep, spawn_local, ExitKind, LocalSignal, PoolConfig, ShardExit, ShardId,
    ShardPlacement, ShardPool, Shutdown,
};
use tracing::{error, info, warn};

use crate::broker::BrokerInfo;
use crate::budget::MemoryBudget;
use crate::config::{default_batch_cache_bytes, default_memory_budget_bytes, ServeConfig};
use crate::connection;
use crate::frame::FrameDecoder;
use crate::meta_properties;
use crate::shard::topics::TopicTable;
use crate::shard::{self, ShardContext, ShardHandle, ShardSetup};

/// How long a shard waits for its connections to finish after shutdown is triggered.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);

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

/// Takes an exclusive `flock` on `<data-dir>/.lock` (Kafka's lock file name), failing if another process
/// holds it. The lock goes with the returned file, so a crash releases it.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, ServeError> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| ServeError::DataDir(format!("cannot open {}: {error}", path.display())))?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = io::Error::last_os_error();
        return Err(ServeError::DataDir(format!(
            "{} is in use by another broker ({}): {error}",
            data_dir.display(),
            path.display()
        )));
    }
    Ok(file)
}

/// How long startup waits for the listen port to come free before giving up.
const BIND_RETRY_LIMIT: Duration = Duration::from_secs(3);

/// One listener per shard. A port in use is retried for [`BIND_RETRY_LIMIT`]: right after a broker is
/// killed (kill -9) the kernel tears its io_uring instances down asynchronously, and the pending accepts
/// keep its listeners open for a few milliseconds after the process is gone, so an immediate restart
/// (systemd's, or an operator's) would otherwise fail.
fn bind_listeners(listen: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>, ServeError> {
    let started = Instant::now();
    let mut warned = false;
    loop {
        match tcp::bind_shared(listen, count) {
            Ok(listeners) => return Ok(listeners),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse && started.elapsed() < BIND_RETRY_LIMIT => {
                if !warned {
                    warn!(%listen, "port in use; waiting up to {BIND_RETRY_LIMIT:?} in case a previous broker's sockets are still closing");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => return Err(ServeError::Bind(format!("cannot listen on {listen}: {error}"))),
        }
    }
}

/// Runs the broker until `shutdown` is triggered and every shard has stopped.
pub fn run(config: ServeConfig, shutdown: Shutdown) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|error| ServeError::DataDir(format!("cannot create {}: {error}", config.data_dir.display())))?;
    // Held until the process exits: a second broker on this directory would corrupt its logs.
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    let meta = meta_properties::load_or_create(&config.data_dir, config.node_id)
        .map_err(|error| ServeError::DataDir(error.to_string()))?;
    let table = TopicTable::load(&config.data_dir).map_err(ServeError::DataDir)?;

    let allowed = available_cpus().map_err(|error| ServeError::Cores(format!("cannot read CPU affinity: {error}")))?;
    let cpus = config.cores.resolve(&allowed).map_err(|error| ServeError::Cores(error.to_string()))?;
    let listeners = bind_listeners(config.listen, cpus.len())?;
    let metrics = Arc::new(crate::metrics::Metrics::new(cpus.len()));
    if let Some(admin_listen) = config.admin_listen {
        let admin = crate::metrics::http::bind(admin_listen)
            .map_err(|error| ServeError::Bind(format!("cannot listen on {admin_listen} (admin_listen): {error}")))?;
        let bound = admin.local_addr().map_err(|error| ServeError::Bind(error.to_string()))?;
        crate::metrics::http::spawn(admin, metrics.clone())
            .map_err(|error| ServeError::Bind(format!("cannot start the admin listener: {error}")))?;
        info!(admin_listen = %bound, "admin listener: /metrics, /healthz, /readyz");
    }
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
        topics = table.len(),
        "starting"
    );
    let cache_bytes = config.batch_cache_bytes_per_shard.unwrap_or_else(|| default_batch_cache_bytes(cpus.len()));
    let memory_budget_bytes =
        config.memory_budget_bytes_per_shard.unwrap_or_else(|| default_memory_budget_bytes(cpus.len()));
    info!(
        batch_cache_bytes_per_shard = cache_bytes,
        memory_budget_bytes_per_shard = memory_budget_bytes,
        auto_create_topics = config.topics.auto_create,
        num_partitions = config.topics.num_partitions,
        "topic settings"
    );
    if memory_budget_bytes < config.max_frame_bytes + crate::frame::SIZE_PREFIX_BYTES {
        warn!(
            memory_budget_bytes_per_shard = memory_budget_bytes,
            socket_request_max_bytes = config.max_frame_bytes,
            "the memory budget is smaller than the largest request allowed; larger requests will be refused"
        );
    }

    let shard_config = ShardConfig {
        setup: ShardSetup {
            broker,
            data_dir: config.data_dir.clone(),
            topics: config.topics.clone(),
            table,
            cache_bytes,
            retention_check_interval: config.retention_check_interval,
            log_cleaner_backoff: config.log_cleaner_backoff,
            group_commit_window: config.group_commit_window,
            max_inflight_writes_per_shard: config.max_inflight_writes_per_shard,
            metrics,
        },
        decoder: FrameDecoder::new(config.max_frame_bytes),
        max_connections: config.max_connections_per_shard,
        memory_budget_bytes,
        socket_send_buffer_bytes: config.socket_send_buffer_bytes,
        socket_receive_buffer_bytes: config.socket_receive_buffer_bytes,
        fetch_max_bytes: config.fetch_max_bytes,
    };
    let mut listeners = listeners.into_iter();
    let mut pool_config = PoolConfig::new("spate-shard", ShardPlacement::Pinned(cpus));
    pool_config.spin_before_park = config.spin_before_park;
    pool_config.ring_depth = config.io_ring_depth;
    pool_config.io_memory_bytes = config.io_memory_bytes_per_shard;
    pool_config.preempt_timer = config.preempt_timer;
    info!(
        io_ring_depth = ?config.io_ring_depth,
        io_memory_bytes_per_shard = ?config.io_memory_bytes_per_shard,
        spin_before_park = ?config.spin_before_park,
        preempt_timer = ?config.preempt_timer,
        group_commit_window = ?config.group_commit_window,
        max_inflight_writes_per_shard = config.max_inflight_writes_per_shard,
        fetch_max_bytes = config.fetch_max_bytes,
        socket_send_buffer_bytes = ?config.socket_send_buffer_bytes,
        socket_receive_buffer_bytes = ?config.socket_receive_buffer_bytes,
        "runtime settings (None: the runtime's or kernel's default)"
    );
    let pool = ShardPool::start(pool_config, |_| {
        let (listener, shard_config, shutdown) = (listeners.next(), shard_config.clone(), shutdown.clone());
        move |shard: ShardHandle| async move {
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
    setup: ShardSetup,
    decoder: FrameDecoder,
    max_connections: usize,
    /// Each shard's [`MemoryBudget`], in bytes.
    memory_budget_bytes: usize,
    /// `fetch_max_bytes`: the most record bytes in one Fetch response (after its first batch).
    fetch_max_bytes: usize,
    /// SO_SNDBUF for accepted connections; `None`: the kernel's autotuning.
    socket_send_buffer_bytes: Option<usize>,
    /// SO_RCVBUF for accepted connections; `None`: the kernel's autotuning.
    socket_receive_buffer_bytes: Option<usize>,
}

/// One shard: open its partitions, accept until shutdown, wait (bounded) for the connections to
/// finish, then close its logs.
async fn shard_main(shard: ShardHandle, listener: std::net::TcpListener, config: ShardConfig, shutdown: Shutdown) {
    let id = shard.id();
    let cpu = shard.cpu();
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
    let context = shard::start(shard, config.setup.clone(), signal.clone()).await;
    let budget = MemoryBudget::with_fetch_max_bytes(config.memory_budget_bytes, config.fetch_max_bytes);
    let config = Rc::new(config);
    let open = Rc::new(Cell::new(0usize));
    info!(shard = %id, cpu = ?cpu, "accepting");
    context.metrics.global().shard_ready();
    accept_loop(id, &listener, &config, &context, &budget, &signal, &open).await;
    drop(listener);

    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while open.get() > 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
    }
    if open.get() > 0 {
        warn!(shard = %id, connections = open.get(), "connections still open after the grace period; closing them");
    }
    shard::stop(&context).await;
    info!(shard = %id, "stopped");
}

async fn accept_loop(
    id: ShardId,
    listener: &Listener,
    config: &Rc<ShardConfig>,
    context: &Rc<ShardContext>,
    budget: &MemoryBudget,
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
        if config.socket_send_buffer_bytes.is_some() || config.socket_receive_buffer_bytes.is_some() {
            match connection.set_buffer_sizes(config.socket_send_buffer_bytes, config.socket_receive_buffer_bytes) {
                Ok((send, receive)) => {
                    tracing::debug!(shard = %id, %peer, send, receive, "socket buffer sizes (as the kernel reports them)")
                }
                Err(error) => warn!(shard = %id, %peer, "cannot set socket buffer sizes: {error}"),
            }
        }
        let (decoder, context, budget, signal, open) =
            (config.decoder, context.clone(), budget.clone(), signal.clone(), open.clone());
        open.set(open.get() + 1);
        context.metrics.connection(true);
        spawn_local(async move {
            let _open = OpenConnection(open, context.metrics.clone());
            let mut connection = connection;
            let stall = Some(connection::WRITE_STALL_LIMIT);
            let dispatcher = crate::dispatch::ConnectionDispatcher { context, peer };
            connection::serve(&mut connection, peer, &dispatcher, decoder, &budget, stall, &signal).await;
        })
        .detach();
    }
}

/// Counts a connection as open until dropped (the task ends or is dropped with its executor).
struct OpenConnection(Rc<Cell<usize>>, Rc<crate::metrics::ShardMetrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
        self.1.connection(false);
    }
}
