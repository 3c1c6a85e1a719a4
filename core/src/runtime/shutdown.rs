//! A process-wide shutdown signal that any thread may trigger and any shard may await.
//!
//! Triggered once (by the signal-handling thread, or by the process when a shard dies); never reset.
//! Waiting is a wakeup from another thread into a shard's executor (glommio's foreign-wake path), so
//! this is for control, not for the data path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use event_listener::Event;

/// A cloneable handle on one shutdown signal.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    event: Event,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown").field("triggered", &self.is_triggered()).finish()
    }
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers the signal and wakes every waiter; later calls do nothing. Returns whether this call
    /// was the one that triggered it.
    pub fn trigger(&self) -> bool {
        let first = !self.inner.triggered.swap(true, Ordering::SeqCst);
        if first {
            self.inner.event.notify(usize::MAX);
        }
        first
    }

    /// Whether [`trigger`](Self::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Resolves once the signal is triggered (at once if it already was).
    pub async fn wait(&self) {
        loop {
            if self.is_triggered() {
                return;
            }
            let listener = self.inner.event.listen();
            // Re-check after registering, or a trigger between the check and `listen` is missed.
            if self.is_triggered() {
                return;
            }
            listener.await;
        }
    }
}

/// A signal for the tasks of one shard: the same contract as [`Shutdown`], but not `Send`, so that
/// many tasks waiting on it (one per connection) touch nothing shared with other shards. A shard
/// usually forwards the process-wide [`Shutdown`] into one of these.
#[derive(Default)]
pub struct LocalSignal {
    triggered: std::cell::Cell<bool>,
    event: Event,
    /// Makes the type `!Send`: it is meant for one shard only.
    _not_send: std::marker::PhantomData<std::rc::Rc<()>>,
}

impl std::fmt::Debug for LocalSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSignal").field("triggered", &self.triggered.get()).finish()
    }
}

impl LocalSignal {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Triggers the signal and wakes every waiter; later calls do nothing.
    pub fn trigger(&self) {
        if !self.triggered.replace(true) {
            self.event.notify(usize::MAX);
        }
    }

    /// Whether [`trigger`](Self::trigger) has been called.
    pub fn is_triggered(&self) -> bool {
        self.triggered.get()
    }

    /// Resolves once the signal is triggered (at once if it already was).
    pub async fn wait(&self) {
        while !self.triggered.get() {
            // Single-threaded: nothing can trigger between the check and `listen`.
            self.event.listen().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_returns_at_once_when_already_triggered() {
        let shutdown = Shutdown::new();
        assert!(shutdown.trigger());
        assert!(!shutdown.trigger(), "only the first trigger counts");
        futures_lite::future::block_on(shutdown.wait());
    }

    #[test]
    fn local_signal_wakes_its_waiters() {
        let signal = std::rc::Rc::new(LocalSignal::new());
        let waiter = {
            let signal = signal.clone();
            async move { signal.wait().await }
        };
        let trigger = async {
            futures_lite::future::yield_now().await;
            signal.trigger();
        };
        futures_lite::future::block_on(futures_lite::future::zip(waiter, trigger));
        assert!(signal.is_triggered());
    }

    #[test]
    fn trigger_from_another_thread_wakes_the_waiter() {
        let shutdown = Shutdown::new();
        let remote = shutdown.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            remote.trigger();
        });
        futures_lite::future::block_on(shutdown.wait());
        assert!(shutdown.is_triggered());
        thread.join().unwrap();
    }
}
