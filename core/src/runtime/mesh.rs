//! Cross-shard calls: a request to another shard and its reply, over glommio's channel mesh.
//!
//! Two full meshes connect every pair of shards: one carries requests, the other replies, so a reply
//! never waits behind requests (a shard that is busy handling calls still completes its own). Each
//! shard runs one receive loop per peer and mesh. Incoming requests are handled as separate tasks, at
//! most `max_concurrent_calls` at a time per shard (plus one received request per peer waiting for a
//! slot); when that many are running the receive loops stop draining, the bounded channels fill and
//! callers wait in `send`: backpressure, not growth.
//!
//! A handler that itself calls another shard holds its slot while it waits: cycles of such calls can
//! exhaust every slot on the shards involved and deadlock. Keep handlers to local work, or size
//! `max_concurrent_calls` for the fan-in.
//!
//! Glommio surprises handled here:
//! - Mesh peer indices are the shards' glommio *executor ids* in sorted order, not the order in
//!   which they joined. Each shard records its executor id before joining, and indices are mapped
//!   from that.
//! - glommio's `ConnectedSender::send` waits for room, then `try_send`s and panics ("operation would
//!   block") if the slot is gone: a task woken for a freed slot can lose it to a task that sends
//!   without waiting. The stress test has not hit that window, but nothing in glommio closes it, so
//!   sends on each channel go through a one-permit semaphore (a "lane"): one sender at a time.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};

use glommio::channels::channel_mesh::{Full, MeshBuilder, Receivers, Senders};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::channels::shared_channel::ConnectedReceiver;
use glommio::sync::Semaphore;

use super::ShardId;

/// A request on the wire between shards.
pub(crate) struct Envelope<Req> {
    call_id: u64,
    body: Req,
}

/// A reply to the request with the same `call_id`.
pub(crate) struct Reply<Resp> {
    call_id: u64,
    body: Resp,
}

type Handler<Req, Resp> = Rc<dyn Fn(ShardId, Req) -> Pin<Box<dyn Future<Output = Resp>>>>;

/// Why a cross-shard call got no reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// No shard has this id.
    NoSuchShard(ShardId),
    /// A call to this shard itself before it called [`Shard::serve`].
    NotServing(ShardId),
    /// The other shard stopped (its executor ended) before replying.
    Disconnected(ShardId),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NoSuchShard(shard) => write!(f, "there is no shard {shard}"),
            CallError::NotServing(shard) => write!(f, "shard {shard} does not serve calls yet"),
            CallError::Disconnected(shard) => write!(f, "shard {shard} stopped before replying"),
        }
    }
}

impl std::error::Error for CallError {}

/// The two mesh builders every shard joins, plus the executor ids that map mesh peers to shards.
pub(crate) struct MeshSetup<Req: Send + 'static, Resp: Send + 'static> {
    requests: MeshBuilder<Envelope<Req>, Full>,
    replies: MeshBuilder<Reply<Resp>, Full>,
    executor_ids: std::sync::Arc<std::sync::Mutex<Vec<Option<usize>>>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Clone for MeshSetup<Req, Resp> {
    fn clone(&self) -> Self {
        Self { requests: self.requests.clone(), replies: self.replies.clone(), executor_ids: self.executor_ids.clone() }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> MeshSetup<Req, Resp> {
    pub(crate) fn new(nr_shards: usize, capacity: usize) -> Self {
        Self {
            requests: MeshBuilder::full(nr_shards, capacity),
            replies: MeshBuilder::full(nr_shards, capacity),
            executor_ids: std::sync::Arc::new(std::sync::Mutex::new(vec![None; nr_shards])),
        }
    }
}

/// This shard's handle on the runtime: its id, and calls to the other shards. Cheap to clone; not
/// `Send` (it belongs to the shard's thread).
pub struct Shard<Req: Send + 'static, Resp: Send + 'static> {
    inner: Rc<Inner<Req, Resp>>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Clone for Shard<Req, Resp> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

struct Inner<Req: Send + 'static, Resp: Send + 'static> {
    id: ShardId,
    nr_shards: usize,
    cpu: Option<usize>,
    /// Mesh peer index of each shard, by shard index.
    peer_of: Vec<usize>,
    /// Shard of each mesh peer index.
    shard_of: Vec<ShardId>,
    requests: Senders<Envelope<Req>>,
    replies: Senders<Reply<Resp>>,
    request_lanes: Vec<Semaphore>,
    reply_lanes: Vec<Semaphore>,
    incoming: RefCell<Option<Receivers<Envelope<Req>>>>,
    /// Calls awaiting a reply: call id → (peer index, where the reply goes).
    pending: RefCell<HashMap<u64, (usize, LocalSender<Resp>)>>,
    next_call_id: Cell<u64>,
    handler: RefCell<Option<Handler<Req, Resp>>>,
    max_concurrent_calls: usize,
}

impl<Req: Send + 'static, Resp: Send + 'static> Shard<Req, Resp> {
    /// Joins both meshes (waits until every shard has) and starts receiving replies. Runs on the
    /// shard's executor.
    pub(crate) async fn join(
        setup: MeshSetup<Req, Resp>,
        id: ShardId,
        cpu: Option<usize>,
        max_concurrent_calls: usize,
    ) -> Self {
        let nr_shards = setup.requests.nr_peers();
        setup.executor_ids.lock().unwrap_or_else(|poisoned| poisoned.into_inner())[id.index()] =
            Some(glommio::executor().id());
        let (requests, incoming) = match setup.requests.join().await {
            Ok(joined) => joined,
            Err(error) => panic!("shard {id} cannot join the request mesh: {error}"),
        };
        let (replies, mut reply_receivers) = match setup.replies.join().await {
            Ok(joined) => joined,
            Err(error) => panic!("shard {id} cannot join the reply mesh: {error}"),
        };
        // Every shard wrote its executor id before joining, and the joins completed only after
        // every shard had joined, so the table is complete.
        let executor_ids: Vec<usize> = setup
            .executor_ids
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|executor_id| executor_id.unwrap_or_else(|| panic!("a shard joined the mesh without its id")))
            .collect();
        let peer_of: Vec<usize> =
            executor_ids.iter().map(|own| executor_ids.iter().filter(|other| *other < own).count()).collect();
        let mut shard_of = vec![ShardId::new(0); nr_shards];
        for (shard, peer) in peer_of.iter().enumerate() {
            shard_of[*peer] = ShardId::from_index(shard);
        }
        assert_eq!(requests.peer_id(), peer_of[id.index()], "mesh peer index of shard {id}");
        assert_eq!(replies.peer_id(), peer_of[id.index()], "reply mesh disagrees on shard {id}");

        let inner = Rc::new(Inner {
            id,
            nr_shards,
            cpu,
            peer_of,
            shard_of,
            requests,
            replies,
            request_lanes: (0..nr_shards).map(|_| Semaphore::new(1)).collect(),
            reply_lanes: (0..nr_shards).map(|_| Semaphore::new(1)).collect(),
            incoming: RefCell::new(Some(incoming)),
            pending: RefCell::new(HashMap::new()),
            next_call_id: Cell::new(0),
            handler: RefCell::new(None),
            max_concurrent_calls,
        });
        for (peer, receiver) in reply_receivers.streams() {
            glommio::spawn_local(receive_replies(Rc::downgrade(&inner), peer, receiver)).detach();
        }
        Shard { inner }
    }

    /// This shard's id.
    pub fn id(&self) -> ShardId {
        self.inner.id
    }

    /// How many shards the runtime has; their ids are `0..nr_shards`.
    pub fn nr_shards(&self) -> usize {
        self.inner.nr_shards
    }

    /// Every shard id, this one included, in order.
    pub fn all(&self) -> impl Iterator<Item = ShardId> {
        (0..self.inner.nr_shards).map(ShardId::from_index)
    }

    /// The CPU this shard is pinned to, if it is pinned.
    pub fn cpu(&self) -> Option<usize> {
        self.inner.cpu
    }

    /// Starts handling calls from other shards (and from this one) with `handler`, which gets the
    /// caller's id and the request. Until this is called, calls to this shard wait.
    ///
    /// # Panics
    /// If called twice on the same shard.
    pub fn serve<H, F>(&self, handler: H)
    where
        H: Fn(ShardId, Req) -> F + 'static,
        F: Future<Output = Resp> + 'static,
    {
        let Some(mut incoming) = self.inner.incoming.borrow_mut().take() else {
            panic!("Shard::serve called twice on shard {}", self.inner.id);
        };
        let handler: Handler<Req, Resp> = Rc::new(move |from, request| Box::pin(handler(from, request)));
        *self.inner.handler.borrow_mut() = Some(handler.clone());
        let slots = Rc::new(Semaphore::new(self.inner.max_concurrent_calls as u64));
        for (peer, receiver) in incoming.streams() {
            let from = self.inner.shard_of[peer];
            let task =
                receive_requests(Rc::downgrade(&self.inner), peer, from, receiver, handler.clone(), slots.clone());
            glommio::spawn_local(task).detach();
        }
    }

    /// Sends `request` to shard `to` and waits for its reply. A call to this shard itself runs the
    /// handler directly. Dropping the returned future abandons the call (the reply, if any, is
    /// discarded); the other shard may still act on the request.
    pub async fn call(&self, to: ShardId, request: Req) -> Result<Resp, CallError> {
        let inner = &self.inner;
        if to.index() >= inner.nr_shards {
            return Err(CallError::NoSuchShard(to));
        }
        if to == inner.id {
            let handler = inner.handler.borrow().clone().ok_or(CallError::NotServing(to))?;
            return Ok(handler(inner.id, request).await);
        }
        let peer = inner.peer_of[to.index()];
        let call_id = inner.next_call_id.get();
        inner.next_call_id.set(call_id.wrapping_add(1));
        let (reply_to, reply) = local_channel::new_bounded(1);
        inner.pending.borrow_mut().insert(call_id, (peer, reply_to));
        let _pending = PendingCall { inner, call_id };
        {
            let _lane = inner.request_lanes[peer].acquire_permit(1).await.map_err(|_| CallError::Disconnected(to))?;
            let envelope = Envelope { call_id, body: request };
            inner.requests.send_to(peer, envelope).await.map_err(|_| CallError::Disconnected(to))?;
        }
        reply.recv().await.ok_or(CallError::Disconnected(to))
    }
}

/// Forgets a call's pending entry when the call ends, replied to or abandoned.
struct PendingCall<'a, Req: Send + 'static, Resp: Send + 'static> {
    inner: &'a Inner<Req, Resp>,
    call_id: u64,
}

impl<Req: Send + 'static, Resp: Send + 'static> Drop for PendingCall<'_, Req, Resp> {
    fn drop(&mut self) {
        self.inner.pending.borrow_mut().remove(&self.call_id);
    }
}

async fn receive_replies<Req: Send + 'static, Resp: Send + 'static>(
    inner: Weak<Inner<Req, Resp>>,
    peer: usize,
    receiver: ConnectedReceiver<Reply<Resp>>,
) {
    while let Some(Reply { call_id, body }) = receiver.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let waiting = inner.pending.borrow_mut().remove(&call_id);
        if let Some((_, reply_to)) = waiting {
            // Fails only if the caller gave up meanwhile; then nobody wants the reply.
            let _ = reply_to.try_send(body);
        }
    }
    // The peer is gone: fail the calls still waiting on it (dropping their senders wakes them).
    if let Some(inner) = inner.upgrade() {
        inner.pending.borrow_mut().retain(|_, (call_peer, _)| *call_peer != peer);
        tracing::debug!(shard = %inner.id, peer = %inner.shard_of[peer], "reply channel closed");
    }
}

async fn receive_requests<Req: Send + 'static, Resp: Send + 'static>(
    inner: Weak<Inner<Req, Resp>>,
    peer: usize,
    from: ShardId,
    receiver: ConnectedReceiver<Envelope<Req>>,
    handler: Handler<Req, Resp>,
    slots: Rc<Semaphore>,
) {
    loop {
        // Receive, then wait for a handler slot: a loop idling on a quiet peer must not hold a slot
        // that a busy peer's requests need. At most one request per peer waits here.
        let Some(Envelope { call_id, body }) = receiver.recv().await else { return };
        let Ok(slot) = slots.acquire_static_permit(1).await else { return };
        let response = handler(from, body);
        let inner = inner.clone();
        glommio::spawn_local(async move {
            let body = response.await;
            let Some(inner) = inner.upgrade() else { return };
            let sent = match inner.reply_lanes[peer].acquire_permit(1).await {
                Ok(_lane) => inner.replies.send_to(peer, Reply { call_id, body }).await.is_ok(),
                Err(_) => false,
            };
            if !sent {
                tracing::debug!(shard = %inner.id, to = %from, "caller stopped before the reply");
            }
            drop(slot);
        })
        .detach();
    }
}
