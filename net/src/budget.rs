//! The per-shard memory budget for requests and responses: an async semaphore of bytes, shard-local.
//!
//! Every shard has one [`MemoryBudget`] (`memory_budget_bytes_per_shard`), shared by its connections
//! through an `Rc`: no lock, no atomics. A connection acquires a frame's size ([`MemoryBudget::acquire`])
//! as soon as the frame's size prefix is known and before it reserves or reads the body; the
//! [`Permit`] travels with the request and, once the response exists, is resized to the response's
//! size ([`Permit::resize`]) and dropped when the response has been written to the socket.
//!
//! Waiters are served first come, first served: a large frame is not starved by a stream of small
//! ones, and [`MemoryBudget::try_acquire`] never jumps the queue. A request for more than the whole
//! budget would wait forever, so callers refuse such frames up front ([`MemoryBudget::total`]).
//!
//! Growing a permit never waits: it may take the budget past its total (a response larger than its
//! request), and then no waiter is admitted until enough is released. Waiting there instead could
//! deadlock a connection that holds permits while it waits for more.
//!
//! Two shares are derived from the total, so that one client cannot take the whole budget:
//! - [`MemoryBudget::connection_share`] (an eighth): what one connection may hold at once. A connection
//!   at its share stops reading until its own answers leave, while the others keep being admitted
//!   ([`MemoryBudget::within_connection_share`]); a request larger than the share is still admitted
//!   when its connection holds nothing else, so no request the budget can hold waits for ever.
//! - [`MemoryBudget::fetch_reservation_cap`] (a sixty-fourth): the most response bytes a Fetch reserves
//!   before it runs, and so the most record bytes its answer carries after its first batch.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// [`MemoryBudget::connection_share`] is the total divided by this: up to 7 connections that read
/// none of their answers leave room for everyone else.
pub const CONNECTION_SHARE_DIVISOR: usize = 8;
/// [`MemoryBudget::fetch_reservation_cap`] is the total divided by this: a Fetch holds its reservation
/// while it long-polls, so 64 waiting consumers (asking for that much or more) fill a shard's budget.
pub const FETCH_RESERVATION_DIVISOR: usize = 64;

/// A shard's budget of bytes; clones share it.
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Rc<Inner>,
}

struct Inner {
    total_bytes: usize,
    /// `fetch_max_bytes`: a further cap on [`MemoryBudget::fetch_reservation_cap`].
    fetch_max_bytes: usize,
    used_bytes: Cell<usize>,
    waiters: RefCell<VecDeque<Rc<Waiter>>>,
}

struct Waiter {
    bytes: usize,
    granted: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl MemoryBudget {
    /// A budget of `total_bytes`.
    pub fn new(total_bytes: usize) -> Self {
        Self::with_fetch_max_bytes(total_bytes, usize::MAX)
    }

    /// A budget of `total_bytes` whose Fetch reservations are also capped at `fetch_max_bytes` (the
    /// broker's `fetch_max_bytes`, Kafka's `fetch.max.bytes`).
    pub fn with_fetch_max_bytes(total_bytes: usize, fetch_max_bytes: usize) -> Self {
        let inner = Inner { total_bytes, fetch_max_bytes, used_bytes: Cell::new(0), waiters: RefCell::default() };
        Self { inner: Rc::new(inner) }
    }

    /// The configured size, in bytes.
    pub fn total(&self) -> usize {
        self.inner.total_bytes
    }

    /// Bytes held by permits now (may exceed [`total`](Self::total) after permits grew).
    pub fn used(&self) -> usize {
        self.inner.used_bytes.get()
    }

    /// The most one connection may hold at once (an eighth of the budget): see
    /// [`within_connection_share`](Self::within_connection_share).
    pub fn connection_share(&self) -> usize {
        (self.inner.total_bytes / CONNECTION_SHARE_DIVISOR).max(1)
    }

    /// Whether a connection that holds `held` bytes may ask for `bytes` more: when that stays within
    /// its [`connection_share`](Self::connection_share), or when it holds nothing (a request larger than
    /// the share, up to the whole budget, is admitted alone rather than never).
    pub fn within_connection_share(&self, held: usize, bytes: usize) -> bool {
        held == 0 || held.saturating_add(bytes) <= self.connection_share()
    }

    /// The most response bytes a Fetch reserves before it runs (a sixty-fourth of the budget, or the
    /// broker's `fetch_max_bytes` if smaller): its answer is limited to that (after its first batch,
    /// which goes whole).
    pub fn fetch_reservation_cap(&self) -> usize {
        (self.inner.total_bytes / FETCH_RESERVATION_DIVISOR).min(self.inner.fetch_max_bytes)
    }

    /// Acquirers waiting now.
    pub fn waiting(&self) -> usize {
        self.inner.waiters.borrow().len()
    }

    /// `bytes` now if they are free and nobody is waiting; `None` otherwise.
    pub fn try_acquire(&self, bytes: usize) -> Option<Permit> {
        self.inner.waiters.borrow().is_empty().then_some(())?;
        self.inner.fits(bytes).then(|| self.inner.grant(bytes))
    }

    /// Waits for `bytes`, in arrival order. `bytes` must not exceed [`total`](Self::total): such an
    /// acquisition would never complete.
    pub fn acquire(&self, bytes: usize) -> Acquire {
        debug_assert!(bytes <= self.inner.total_bytes, "{bytes} bytes can never fit a budget of {}", self.total());
        Acquire { inner: self.inner.clone(), bytes, waiter: None }
    }
}

impl Inner {
    fn fits(&self, bytes: usize) -> bool {
        self.used_bytes.get().saturating_add(bytes) <= self.total_bytes
    }

    fn grant(self: &Rc<Self>, bytes: usize) -> Permit {
        self.used_bytes.set(self.used_bytes.get() + bytes);
        Permit { inner: self.clone(), bytes }
    }

    fn release(&self, bytes: usize) {
        self.used_bytes.set(self.used_bytes.get() - bytes);
        self.admit_waiters();
    }

    /// Grants waiters from the front of the queue while they fit.
    fn admit_waiters(&self) {
        let mut woken = Vec::new();
        {
            let mut waiters = self.waiters.borrow_mut();
            while let Some(front) = waiters.front() {
                if !self.fits(front.bytes) {
                    break;
                }
                self.used_bytes.set(self.used_bytes.get() + front.bytes);
                front.granted.set(true);
                if let Some(waiter) = waiters.pop_front() {
                    woken.push(waiter);
                }
            }
        }
        for waiter in woken {
            if let Some(waker) = waiter.waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }
}

/// Bytes held from a [`MemoryBudget`]; released when dropped.
pub struct Permit {
    inner: Rc<Inner>,
    bytes: usize,
}

impl Permit {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `bytes` instead: shrinking releases the difference (waking waiters), growing takes it at
    /// once, even past the budget's total.
    pub fn resize(&mut self, bytes: usize) {
        if bytes < self.bytes {
            let released = self.bytes - bytes;
            self.bytes = bytes;
            self.inner.release(released);
        } else {
            self.inner.used_bytes.set(self.inner.used_bytes.get() + (bytes - self.bytes));
            self.bytes = bytes;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.inner.release(self.bytes);
    }
}

/// [`MemoryBudget::acquire`]'s future. Dropping it gives up its place (and any bytes just granted).
pub struct Acquire {
    inner: Rc<Inner>,
    bytes: usize,
    waiter: Option<Rc<Waiter>>,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let this = &mut *self;
        match &this.waiter {
            None => {
                if this.inner.waiters.borrow().is_empty() && this.inner.fits(this.bytes) {
                    return Poll::Ready(this.inner.grant(this.bytes));
                }
                let waiter = Rc::new(Waiter {
                    bytes: this.bytes,
                    granted: Cell::new(false),
                    waker: RefCell::new(Some(cx.waker().clone())),
                });
                this.inner.waiters.borrow_mut().push_back(waiter.clone());
                this.waiter = Some(waiter);
                Poll::Pending
            }
            Some(waiter) if waiter.granted.get() => {
                this.waiter = None;
                // Already counted in `used_bytes` by `admit_waiters`.
                Poll::Ready(Permit { inner: this.inner.clone(), bytes: this.bytes })
            }
            Some(waiter) => {
                *waiter.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else { return };
        if waiter.granted.get() {
            self.inner.release(self.bytes);
        } else {
            self.inner.waiters.borrow_mut().retain(|queued| !Rc::ptr_eq(queued, &waiter));
            // The head may have been what held the others back.
            self.inner.admit_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_lite::future::{block_on, poll_once};

    use super::*;

    #[test]
    fn acquire_waits_for_release_in_arrival_order() {
        let budget = MemoryBudget::new(100);
        let first = budget.try_acquire(60).unwrap();
        assert!(budget.try_acquire(50).is_none());
        let mut big = Box::pin(budget.acquire(70));
        let mut small = Box::pin(budget.acquire(10));
        assert!(block_on(poll_once(big.as_mut())).is_none());
        assert!(block_on(poll_once(small.as_mut())).is_none(), "no jumping the queue");
        assert!(budget.try_acquire(1).is_none(), "try_acquire does not jump the queue either");
        drop(first);
        let big = block_on(big);
        let small = block_on(small);
        assert_eq!((big.bytes(), small.bytes(), budget.used()), (70, 10, 80));
        drop((big, small));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn dropped_acquirers_release_or_leave_the_queue() {
        let budget = MemoryBudget::new(100);
        let held = budget.try_acquire(100).unwrap();
        let mut head = Box::pin(budget.acquire(90));
        let mut next = Box::pin(budget.acquire(20));
        assert!(block_on(poll_once(head.as_mut())).is_none());
        assert!(block_on(poll_once(next.as_mut())).is_none());
        drop(head);
        assert_eq!(budget.waiting(), 1);
        drop(held);
        assert_eq!(budget.used(), 20, "granted to the waiter on release");
        drop(next);
        assert_eq!(budget.used(), 0, "a granted but unclaimed permit is returned");
    }

    #[test]
    fn a_connection_may_hold_its_share_or_one_request_of_any_size() {
        let budget = MemoryBudget::new(800);
        assert_eq!((budget.connection_share(), budget.fetch_reservation_cap()), (100, 12));
        assert_eq!(MemoryBudget::with_fetch_max_bytes(800, 5).fetch_reservation_cap(), 5, "fetch_max_bytes caps it");
        assert_eq!(MemoryBudget::with_fetch_max_bytes(800, 500).fetch_reservation_cap(), 12, "the 64th still does");
        assert!(budget.within_connection_share(0, 30));
        assert!(budget.within_connection_share(70, 30), "up to the share");
        assert!(!budget.within_connection_share(71, 30), "not past it while holding something");
        assert!(budget.within_connection_share(0, 800), "alone, anything the budget can hold");
        assert!(!budget.within_connection_share(1, 800));
        assert!(!budget.within_connection_share(usize::MAX, 1), "no overflow");
        assert_eq!(MemoryBudget::new(3).connection_share(), 1);
    }

    #[test]
    fn resize_shrinks_and_overdraws() {
        let budget = MemoryBudget::new(100);
        let mut permit = budget.try_acquire(50).unwrap();
        permit.resize(150);
        assert_eq!(budget.used(), 150);
        assert!(budget.try_acquire(1).is_none());
        permit.resize(10);
        assert_eq!(budget.used(), 10);
        assert!(budget.try_acquire(90).is_some());
    }
}
