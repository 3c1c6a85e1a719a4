//! The broker on one shard: its copy of the topic table, the partitions it owns, the controller (on
//! shard 0 only), and the cross-shard messages that tie the shards together.
//!
//! - [`topics`]: the topic table, naming rules, placement (`owner_shard`) and `topics.json`.
//! - [`controller`]: shard 0, the table's one writer: creates topics, persists, broadcasts.
//! - [`partitions`]: this shard's logs, the fatal-I/O rule, the background ticker's work.
//! - [`producer_ids`]: InitProducerId's id blocks, persisted next to the topic table.
//! - [`messages`]: every cross-shard request and reply, and the handler that serves them.
//! - [`scatter`]: a request's partitions sent to their owners, all at once, and the answers put back.
//!
//! A shard's life: [`start`] opens its disk and the partitions it owns, then serves cross-shard
//! calls and runs a ticker (interval flushes, retention); the server accepts connections; at shutdown
//! [`stop`] waits (bounded) until every shard has drained its connections, then closes every log.

pub mod controller;
pub mod messages;
pub mod partitions;
pub mod producer_ids;
pub mod scatter;
pub mod topics;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::Event;
use spate_core::runtime::{sleep, spawn_local, timeout, CallError, LocalSignal, Shard, ShardId};
use tracing::{info, warn};

use crate::broker::BrokerInfo;
use crate::config::TopicSettings;
use crate::metrics::ShardMetrics;
use controller::Controller;
use messages::{ShardReply, ShardRequest};
use partitions::{fatal_io, Partitions, TICK_INTERVAL};
use topics::TopicTable;

/// This shard's runtime handle, typed with Spate's cross-shard messages.
pub type ShardHandle = Shard<ShardRequest, ShardReply>;

/// How long a stopping shard waits for the others to drain their connections before closing its logs.
pub const DRAIN_BARRIER_WAIT: Duration = Duration::from_secs(3);

/// How often a shard publishes its state gauges (log offsets and sizes, cache, I/O, committed offsets).
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// What every shard is started with (cloned into each).
#[derive(Clone, Debug)]
pub struct ShardSetup {
    /// This broker.
    pub broker: BrokerInfo,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Auto-creation and the broker-wide topic defaults.
    pub topics: TopicSettings,
    /// The topic table loaded at start.
    pub table: TopicTable,
    /// Batch cache budget of each shard, in bytes.
    pub cache_bytes: usize,
    /// How often retention runs (Kafka's `log.retention.check.interval.ms`).
    pub retention_check_interval: Duration,
    /// How often compacted logs are checked for cleaning (Kafka's `log.cleaner.backoff.ms`).
    pub log_cleaner_backoff: Duration,
    /// Every log's group-commit window (`group_commit_window_us`).
    pub group_commit_window: Duration,
    /// Direct writes in flight at once over the shard's logs (`max_inflight_writes_per_shard`; 0: no cap).
    pub max_inflight_writes_per_shard: u64,
    /// The process's metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The broker's state on one shard.
pub struct ShardContext {
    /// This broker.
    pub broker: BrokerInfo,
    /// This shard's handle: its id and calls to the others.
    pub shard: ShardHandle,
    /// Auto-creation and topic defaults.
    pub settings: TopicSettings,
    /// The partitions this shard owns.
    pub partitions: Partitions,
    /// The controller, on shard 0 only.
    pub controller: Option<Controller>,
    /// Long-polling fetches on this shard waiting to be woken.
    pub waiters: Waiters,
    /// The consumer groups this shard coordinates (see [`crate::group`]).
    pub groups: crate::group::Groups,
    /// The consumer-protocol (KIP-848) groups this shard coordinates.
    pub consumer_groups: crate::group::consumer::ConsumerGroups,
    /// Triggered when the shard shuts down.
    pub shutdown: Rc<LocalSignal>,
    topics: RefCell<Rc<TopicTable>>,
    drained: Cell<usize>,
    drained_event: Event,
    /// This shard's metrics handles.
    pub metrics: Rc<ShardMetrics>,
}

impl ShardContext {
    /// This shard's copy of the topic table.
    pub fn topics(&self) -> Rc<TopicTable> {
        self.topics.borrow().clone()
    }

    /// Installs a newer table (an older or equal version is ignored).
    pub fn install_topics(&self, table: TopicTable) {
        if table.version() > self.topics.borrow().version() {
            *self.topics.borrow_mut() = Rc::new(table);
        }
    }

    /// The shard owning `partition` of topic `topic_id`.
    pub fn owner(&self, topic_id: &uuid::Uuid, partition: i32) -> ShardId {
        topics::owner_shard(topic_id, partition, self.shard.nr_shards())
    }

    /// Calls shard `to` (or this one, directly).
    pub async fn call(&self, to: ShardId, request: ShardRequest) -> Result<ShardReply, CallError> {
        let started = Instant::now();
        let reply = self.shard.call(to, request).await;
        if to != self.shard.id() {
            self.metrics.call(to.index() as u32, started.elapsed());
        }
        reply
    }

    /// Publishes this shard's partitions, batch cache and I/O state to the metrics.
    pub fn publish_metrics(&self) {
        let samples = self
            .partitions
            .all()
            .iter()
            .map(|partition| {
                let sample = crate::metrics::PartitionSample {
                    log_start_offset: partition.log.log_start_offset(),
                    log_end_offset: partition.log.log_end_offset(),
                    size_bytes: partition.log.size_bytes(),
                };
                ((partition.topic.clone(), partition.index), sample)
            })
            .collect();
        self.metrics.publish_partitions(samples);
        let cache = self.partitions.cache_stats();
        self.metrics.publish_cache(cache.used_bytes, cache.budget_bytes, cache.hits, cache.misses);
        let io = self.partitions.io_in_flight();
        self.metrics.publish_io(io.writes, io.reads, io.syncs);
        self.metrics.publish_committed(self.groups.committed_offsets());
    }
}

/// Starts the broker on this shard: opens the disk and every partition it owns, serves cross-shard
/// calls, and starts the ticker. Fatal (exit 74) if the disk or a log cannot be opened.
pub async fn start(shard: ShardHandle, setup: ShardSetup, shutdown: Rc<LocalSignal>) -> Rc<ShardContext> {
    let id = shard.id();
    let metrics = Rc::new(ShardMetrics::new(setup.metrics.clone(), id.index() as u32));
    let partitions = match Partitions::new(
        id,
        shard.nr_shards(),
        setup.data_dir.clone(),
        setup.topics.defaults.clone(),
        setup.cache_bytes,
        setup.group_commit_window,
        setup.max_inflight_writes_per_shard,
    )
    .await
    {
        Ok(partitions) => partitions,
        Err(error) => fatal_io(&format!("shard {id}: cannot open the data directory for direct I/O: {error}")),
    };
    let sync_metrics = metrics.clone();
    partitions.observe_syncs(Rc::new(move |elapsed| sync_metrics.fdatasync(elapsed)));
    let started = Instant::now();
    partitions.sync_with(&setup.table).await;
    if !partitions.is_empty() {
        info!(shard = %id, partitions = partitions.len(), elapsed_ms = started.elapsed().as_millis() as u64, "opened partitions");
    }
    let controller = (id.index() == 0).then(|| Controller::new(setup.table.clone(), setup.data_dir.clone()));
    let context = Rc::new(ShardContext {
        broker: setup.broker,
        shard: shard.clone(),
        settings: setup.topics,
        partitions,
        controller,
        waiters: Waiters::default(),
        groups: crate::group::Groups::default(),
        consumer_groups: crate::group::consumer::ConsumerGroups::default(),
        shutdown: shutdown.clone(),
        topics: RefCell::new(Rc::new(setup.table)),
        drained: Cell::new(0),
        drained_event: Event::new(),
        metrics,
    });
    context.groups.load(&context).await;
    let weak = Rc::downgrade(&context);
    shard.serve(move |from, request| {
        let context = weak.upgrade();
        async move {
            match context {
                Some(context) => messages::handle(context, from, request).await,
                None => ShardReply::Unavailable,
            }
        }
    });
    let ticker = context.clone();
    let interval = setup.retention_check_interval;
    let cleaner_backoff = setup.log_cleaner_backoff;
    spawn_local(async move {
        let mut last_retention = Instant::now();
        let mut last_metrics = Instant::now();
        ticker.publish_metrics();
        let mut last_cleaner_check = Instant::now();
        while !ticker.shutdown.is_triggered() && !ticker.partitions.is_closing() {
            if last_metrics.elapsed() >= METRICS_INTERVAL {
                last_metrics = Instant::now();
                ticker.publish_metrics();
            }
            let due = last_retention.elapsed() >= interval;
            if due {
                last_retention = Instant::now();
            }
            ticker.partitions.tick(due).await;
            if last_cleaner_check.elapsed() >= cleaner_backoff {
                last_cleaner_check = Instant::now();
                ticker.partitions.start_cleaning();
            }
            futures_lite::future::or(sleep(TICK_INTERVAL), ticker.shutdown.wait()).await;
        }
    })
    .detach();
    let group_waker = context.clone();
    spawn_local(async move { group_waker.groups.wake_parked(&group_waker).await }).detach();
    let group_ticker = context.clone();
    spawn_local(async move {
        let mut offsets_checked = Instant::now();
        while !group_ticker.shutdown.is_triggered() {
            group_ticker.groups.tick();
            group_ticker.groups.save_changed(&group_ticker).await;
            if offsets_checked.elapsed() >= group_ticker.settings.offsets_retention_check_interval {
                offsets_checked = Instant::now();
                group_ticker.groups.expire_offsets(&group_ticker).await;
            }
            group_ticker.consumer_groups.tick();
            futures_lite::future::or(sleep(crate::group::state::GROUP_TICK), group_ticker.shutdown.wait()).await;
        }
    })
    .detach();
    context
}

/// Stops the broker on this shard once its connections are done: waits (at most
/// [`DRAIN_BARRIER_WAIT`]) until every shard got here, so no shard still forwards produce requests,
/// then closes every log cleanly.
pub async fn stop(context: &ShardContext) {
    let barrier = timeout(DRAIN_BARRIER_WAIT, context.call(ShardId::new(0), ShardRequest::Drained)).await;
    // Shard 0 stops only after the barrier passed (or the process is failing anyway), so a call it
    // could not answer because its executor just ended counts as passed.
    if !matches!(barrier, Some(Ok(ShardReply::Done) | Err(CallError::Disconnected(_)))) {
        warn!(shard = %context.shard.id(), "not every shard drained in time; closing logs anyway");
    }
    context.partitions.close_all().await;
}

/// Shard 0's side of the drain barrier: counts arrivals, returns once every shard has arrived.
pub(crate) async fn drain_barrier(context: &ShardContext) {
    context.drained.set(context.drained.get() + 1);
    context.drained_event.notify(usize::MAX);
    while context.drained.get() < context.shard.nr_shards() {
        let listener = context.drained_event.listen();
        if context.drained.get() >= context.shard.nr_shards() {
            break;
        }
        listener.await;
    }
}

/// Long-polling fetches waiting on this shard, woken by `Wake` messages from the shards that own
/// their partitions.
#[derive(Default)]
pub struct Waiters {
    next_id: Cell<u64>,
    waiting: RefCell<HashMap<u64, Rc<Waiter>>>,
}

/// One waiting fetch, or parked group call.
#[derive(Default)]
pub struct Waiter {
    woken: Cell<bool>,
    event: Event,
}

impl Waiter {
    /// Forgets a wake, to wait for the next one.
    pub fn reset(&self) {
        self.woken.set(false);
    }

    /// Resolves once woken (at once if it already was).
    pub async fn wait(&self) {
        while !self.woken.get() {
            let listener = self.event.listen();
            if self.woken.get() {
                return;
            }
            listener.await;
        }
    }
}

/// A registered waiter; unregistered when dropped.
pub struct WaiterGuard<'a> {
    waiters: &'a Waiters,
    /// The id owners send back in `Wake`.
    pub id: u64,
    /// The waiter.
    pub waiter: Rc<Waiter>,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.waiters.waiting.borrow_mut().remove(&self.id);
    }
}

impl Waiters {
    /// Registers a new waiter.
    pub fn register(&self) -> WaiterGuard<'_> {
        let id = self.next_id.get();
        self.next_id.set(id.wrapping_add(1));
        let waiter = Rc::new(Waiter::default());
        self.waiting.borrow_mut().insert(id, waiter.clone());
        WaiterGuard { waiters: self, id, waiter }
    }

    /// Wakes waiter `id`, if it is still waiting.
    pub fn wake(&self, id: u64) {
        if let Some(waiter) = self.waiting.borrow().get(&id) {
            waiter.woken.set(true);
            waiter.event.notify(usize::MAX);
        }
    }

    /// How many fetches are waiting.
    pub fn len(&self) -> usize {
        self.waiting.borrow().len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.waiting.borrow().is_empty()
    }
}

/// Runs every future concurrently and returns their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> = futures.into_iter().map(|future| Some(Box::pin(future))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx: &mut Context<'_>| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().map(|output| output.unwrap_or_else(|| unreachable!("every future completed"))).collect()
}

/// Resolves when the first of `futures` does (never, for an empty list).
pub async fn first_of<F: Future>(futures: Vec<F>) -> F::Output {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    std::future::poll_fn(|cx: &mut Context<'_>| {
        for future in pending.iter_mut() {
            if let Poll::Ready(value) = future.as_mut().poll(cx) {
                return Poll::Ready(value);
            }
        }
        Poll::Pending
    })
    .await
}
