//! A runtime-agnostic `yield_now`: the log runs on glommio in production and on plain executors in tests.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Returns `Pending` once (waking itself), so every other ready task of this thread runs before we continue.
pub(crate) async fn yield_now() {
    YieldOnce(false).await
}

/// Yields this task's whole task queue under glommio (so tasks of other queues, such as the request
/// path while the cleaner runs in the background queue, run before we continue), and like
/// [`yield_now`] elsewhere. A plain `yield_now` would only let the same queue's other tasks run: glommio
/// switches queues when the running one yields or its preemption slice (100 ms by default) ends.
pub(crate) async fn yield_task_queue() {
    glommio::executor().yield_task_queue_now().await
}

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
