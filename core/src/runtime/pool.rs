//! The executor pool: one glommio `LocalExecutor` per shard, each on its own thread, pinned to its
//! CPU, all joined into the cross-shard mesh before the shard's main future starts.

use std::future::Future;
use std::io;
use std::sync::mpsc;
use std::time::Duration;

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use super::mesh::{MeshSetup, Shard};
use super::{ShardId, CURRENT_SHARD};

/// Where the shards run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardPlacement {
    /// One shard per listed CPU, pinned to it (shard `i` on `cpus[i]`).
    Pinned(Vec<usize>),
    /// This many shards, left to the OS scheduler (tests on small machines). Glommio ignores
    /// `spin_before_park` for unpinned executors.
    Unpinned(usize),
}

impl ShardPlacement {
    /// How many shards this placement starts.
    pub fn nr_shards(&self) -> usize {
        match self {
            ShardPlacement::Pinned(cpus) => cpus.len(),
            ShardPlacement::Unpinned(count) => *count,
        }
    }

    /// `count` shards pinned to the first `count` CPUs this process may use, or unpinned if there
    /// are fewer CPUs than that.
    pub fn first_cpus_or_unpinned(count: usize) -> Self {
        match super::available_cpus() {
            Ok(cpus) if cpus.len() >= count => ShardPlacement::Pinned(cpus[..count].to_vec()),
            _ => ShardPlacement::Unpinned(count),
        }
    }

    fn cpu(&self, shard: usize) -> Option<usize> {
        match self {
            ShardPlacement::Pinned(cpus) => Some(cpus[shard]),
            ShardPlacement::Unpinned(_) => None,
        }
    }
}

/// How to start the pool.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Thread name prefix; glommio appends `-<executor id>`.
    pub name: String,
    /// Where the shards run.
    pub placement: ShardPlacement,
    /// How long an idle executor spins before it sleeps in the kernel: lower wakeup latency for
    /// cross-shard messages and network completions, paid in CPU while idle. `None` never spins.
    pub spin_before_park: Option<Duration>,
    /// Messages each mesh channel (one per ordered pair of shards, per direction) holds before
    /// senders wait.
    pub mesh_capacity: usize,
    /// Calls from other shards a shard handles at once before it stops taking more.
    pub max_concurrent_calls: usize,
    /// Entries of each of the executor's io_uring rings (glommio's `ring_depth`): how many I/O requests a
    /// shard can have submitted to the kernel at once. `None`: glommio's default (128).
    pub ring_depth: Option<usize>,
    /// Bytes of I/O memory each executor preallocates and registers with io_uring (glommio's `io_memory`).
    /// `None`: glommio's default (10 MiB).
    pub io_memory_bytes: Option<usize>,
    /// How often a long-running task queue is told to yield to the others (glommio's `preempt_timer`).
    /// `None`: glommio's default (100 ms).
    pub preempt_timer: Option<Duration>,
}

impl PoolConfig {
    /// Defaults for `placement`: 50 µs spin, 1024-message channels, 1024 concurrent calls.
    pub fn new(name: &str, placement: ShardPlacement) -> Self {
        Self {
            name: name.to_owned(),
            placement,
            spin_before_park: Some(Duration::from_micros(50)),
            mesh_capacity: 1024,
            max_concurrent_calls: 1024,
            ring_depth: None,
            io_memory_bytes: None,
            preempt_timer: None,
        }
    }
}

/// How a shard's thread ended, as reported by [`ShardPool::wait_exit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// Its main future returned.
    Returned,
    /// It panicked.
    Panicked,
    /// Its executor could not be created (pinning, io_uring setup); see [`ShardPool::join`].
    FailedToStart,
}

/// One shard's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardExit {
    /// Which shard.
    pub shard: ShardId,
    /// How it ended.
    pub kind: ExitKind,
}

/// Sends the shard's exit when dropped: when its main future completes, when a panic unwinds through
/// it, or (never started) when the executor thread drops the unused closure.
struct ExitReporter {
    shard: ShardId,
    started: bool,
    exits: mpsc::Sender<ShardExit>,
}

impl Drop for ExitReporter {
    fn drop(&mut self) {
        let kind = if std::thread::panicking() {
            ExitKind::Panicked
        } else if self.started {
            ExitKind::Returned
        } else {
            ExitKind::FailedToStart
        };
        let _ = self.exits.send(ShardExit { shard: self.shard, kind });
    }
}

/// The running shards.
pub struct ShardPool<T: Send + 'static> {
    handles: Vec<(ShardId, ExecutorJoinHandle<T>)>,
    exits: mpsc::Receiver<ShardExit>,
}

impl<T: Send + 'static> ShardPool<T> {
    /// Starts one executor per shard. `make_main` is called here, once per shard in id order, and
    /// returns that shard's main: a `Send` closure that runs on the shard's thread, gets the shard's
    /// [`Shard`] handle once every shard has joined the mesh, and returns the shard's future. Per-shard
    /// resources (a listening socket) move into it.
    ///
    /// `Req` and `Resp` are the types of cross-shard calls ([`Shard::call`]).
    pub fn start<Req, Resp, M, G, F>(config: PoolConfig, mut make_main: M) -> io::Result<Self>
    where
        Req: Send + 'static,
        Resp: Send + 'static,
        M: FnMut(ShardId) -> G,
        G: FnOnce(Shard<Req, Resp>) -> F + Send + 'static,
        F: Future<Output = T> + 'static,
    {
        let nr_shards = config.placement.nr_shards();
        assert!(nr_shards > 0, "a pool needs at least one shard");
        assert!(nr_shards <= usize::from(u16::MAX), "{nr_shards} shards is more than a ShardId can name");
        assert!(config.mesh_capacity > 0 && config.max_concurrent_calls > 0, "zero capacity in {config:?}");
        assert!(config.ring_depth != Some(0), "a ring depth of 0 in {config:?}");
        let mesh = MeshSetup::<Req, Resp>::new(nr_shards, config.mesh_capacity);
        let (exit_tx, exits) = mpsc::channel();
        let mut handles = Vec::with_capacity(nr_shards);
        // Executors are created in shard order on this thread, so glommio hands out increasing
        // executor ids; the mesh does not rely on it (see `mesh`).
        for index in 0..nr_shards {
            let shard = ShardId::from_index(index);
            let cpu = config.placement.cpu(index);
            let placement = cpu.map_or(Placement::Unbound, Placement::Fixed);
            let mut builder = LocalExecutorBuilder::new(placement).name(&format!("{}-{index}", config.name));
            if let Some(spin) = config.spin_before_park {
                builder = builder.spin_before_park(spin);
            }
            if let Some(depth) = config.ring_depth {
                builder = builder.ring_depth(depth);
            }
            if let Some(bytes) = config.io_memory_bytes {
                builder = builder.io_memory(bytes);
            }
            if let Some(timer) = config.preempt_timer {
                builder = builder.preempt_timer(timer);
            }
            let main = make_main(shard);
            let mesh = mesh.clone();
            let max_concurrent_calls = config.max_concurrent_calls;
            let mut reporter = ExitReporter { shard, started: false, exits: exit_tx.clone() };
            let handle = builder
                .spawn(move || async move {
                    reporter.started = true;
                    CURRENT_SHARD.with(|current| current.set(Some(shard)));
                    let handle = Shard::join(mesh, shard, cpu, max_concurrent_calls).await;
                    let output = main(handle).await;
                    drop(reporter);
                    output
                })
                .map_err(io::Error::from)?;
            handles.push((shard, handle));
        }
        Ok(Self { handles, exits })
    }

    /// How many shards the pool runs.
    pub fn nr_shards(&self) -> usize {
        self.handles.len()
    }

    /// Waits for the next shard to end, up to `timeout` (forever if `None`). `None` on timeout or
    /// once every shard has been reported.
    pub fn wait_exit(&self, timeout: Option<Duration>) -> Option<ShardExit> {
        match timeout {
            Some(timeout) => self.exits.recv_timeout(timeout).ok(),
            None => self.exits.recv().ok(),
        }
    }

    /// Waits for every shard's thread and returns each one's output, or why it has none.
    pub fn join(self) -> Vec<(ShardId, Result<T, String>)> {
        self.handles
            .into_iter()
            .map(|(shard, handle)| {
                let result = match handle.join() {
                    Ok(output) => Ok(output),
                    Err(error) => Err(error.to_string()),
                };
                (shard, result)
            })
            .collect()
    }
}
