//! The shard runtime: one executor per core, pinned, sharing nothing; explicit messages between them.
//!
//! This module is the only place that names glommio for placement, tasks, timers, TCP and messaging
//! (storage uses glommio's DMA files directly). The rest of Spate sees:
//!
//! - [`ShardPool`]: starts one executor thread per shard ([`PoolConfig`], [`ShardPlacement`],
//!   [`CoreSpec`] for the `--cores` syntax), joins them into the mesh, and reports how they end.
//! - [`Shard`]: a shard's own handle — its [`ShardId`], and [`Shard::call`] / [`Shard::serve`], a
//!   request/reply call to another shard over glommio's channel mesh.
//! - [`spawn_local`], [`spawn_detached`], [`sleep`], [`timeout`]: tasks and time on the current shard;
//!   [`spawn_background`]: a detached task in the shard's low-priority queue (the log cleaner).
//! - [`tcp`]: SO_REUSEPORT listeners bound once for all shards, and accepted connections as
//!   `futures-io` streams.
//! - [`Shutdown`]: a signal any thread can trigger and any shard can await.
//!
//! Everything returned here that is not `Send` must stay on the shard that made it.

mod mesh;
mod placement;
mod pool;
mod shutdown;
pub mod tcp;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pub use mesh::{CallError, Shard};
pub use placement::{available_cpus, format_cpus, parse_cpu_list, CoreSpec, PlacementError};
pub use pool::{ExitKind, PoolConfig, ShardExit, ShardPlacement, ShardPool};
pub use shutdown::{LocalSignal, Shutdown};

/// A shard's number, `0..nr_shards`. Shard `i` runs on the `i`-th CPU of its placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(u16);

impl ShardId {
    /// The shard with this number.
    pub const fn new(id: u16) -> Self {
        Self(id)
    }

    /// The shard's number as an index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }

    /// The shard's number.
    pub fn get(self) -> u16 {
        self.0
    }

    /// # Panics
    /// If `index` does not fit a `u16` (the pool refuses that many shards up front).
    fn from_index(index: usize) -> Self {
        match u16::try_from(index) {
            Ok(id) => Self(id),
            Err(_) => panic!("shard index {index} does not fit a ShardId"),
        }
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

thread_local! {
    static CURRENT_SHARD: Cell<Option<ShardId>> = const { Cell::new(None) };
    /// The shard's background task queue, created on first use.
    static BACKGROUND_QUEUE: Cell<Option<glommio::TaskQueueHandle>> = const { Cell::new(None) };
}

/// CPU shares of the background queue against the default queue's 1000: when both have work, background
/// tasks get about 1/11 of the shard.
const BACKGROUND_SHARES: usize = 100;

/// The shard this thread runs, or `None` outside a [`ShardPool`].
pub fn current_shard() -> Option<ShardId> {
    CURRENT_SHARD.with(Cell::get)
}

/// A task on the current shard. Dropping it cancels the task; [`detach`](Task::detach) lets it run
/// on. Awaiting it gives the task's output.
#[must_use = "a dropped Task is cancelled; call .detach() to let it run"]
pub struct Task<T>(glommio::Task<T>);

impl<T> Task<T> {
    /// Lets the task run to completion in the background.
    pub fn detach(self) {
        self.0.detach();
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Spawns `future` on the current shard's executor.
///
/// # Panics
/// Outside a shard's executor.
pub fn spawn_local<T: 'static>(future: impl Future<Output = T> + 'static) -> Task<T> {
    Task(glommio::spawn_local(future))
}

/// Spawns `future` on the current shard's executor as a task that runs to completion even if nobody
/// waits for it: dropping the returned [`Detached`] only forgets the result. Use it for work that must
/// not be cut short halfway (a log append or flush: their in-flight state must be cleared by the code
/// that set it).
///
/// # Panics
/// Outside a shard's executor.
pub fn spawn_detached<T: 'static>(future: impl Future<Output = T> + 'static) -> Detached<T> {
    Detached(glommio::spawn_local(future).detach())
}

/// The result of a [`spawn_detached`] task: `Some(output)`, or `None` if the task was cancelled (its
/// executor stopped). Dropping it does not cancel the task.
#[must_use = "await it for the result; dropping it lets the task run on unobserved"]
pub struct Detached<T>(glommio::task::JoinHandle<T>);

impl<T> Future for Detached<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Like [`spawn_detached`], in the shard's background task queue: few shares and no latency promise, so
/// that long work (log cleaning) runs in the time the request path leaves.
///
/// # Panics
/// Outside a shard's executor.
pub fn spawn_background<T: 'static>(future: impl Future<Output = T> + 'static) -> Detached<T> {
    let queue = BACKGROUND_QUEUE.with(|queue| match queue.get() {
        Some(handle) => handle,
        None => {
            let handle = glommio::executor().create_task_queue(
                glommio::Shares::Static(BACKGROUND_SHARES),
                glommio::Latency::NotImportant,
                "background",
            );
            queue.set(Some(handle));
            handle
        }
    });
    // Only a queue unknown to this executor is refused, and this one was made on it (same thread).
    match glommio::spawn_local_into(future, queue) {
        Ok(task) => Detached(task.detach()),
        Err(error) => panic!("the shard's background task queue is gone: {error}"),
    }
}

/// Waits `duration` on the current shard's timer.
pub async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// Runs `future` for at most `duration`: `None` if the time ran out first (the future is dropped).
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    futures_lite::future::or(async { Some(future.await) }, async {
        sleep(duration).await;
        None
    })
    .await
}

#[cfg(test)]
mod tests;
