//! Shard runtime tests: real executors (pinned to the first CPUs when there are enough, else
//! unpinned), real mesh channels.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::*;

fn placement(shards: usize) -> ShardPlacement {
    ShardPlacement::first_cpus_or_unpinned(shards)
}

/// Joins the pool, expecting every shard to have returned.
fn outputs<T: Send + 'static>(pool: ShardPool<T>) -> Vec<T> {
    pool.join()
        .into_iter()
        .map(|(shard, result)| result.unwrap_or_else(|error| panic!("shard {shard}: {error}")))
        .collect()
}

/// Each shard calls every shard (itself included) and gets back the callee's id and the doubled
/// value; nobody leaves until everyone has all their replies.
#[test]
fn cross_shard_call_gets_the_reply_from_the_other_shard() {
    let nr_shards = 2;
    let finished = Arc::new(AtomicUsize::new(0));
    let shutdown = Shutdown::new();
    let config = PoolConfig::new("test-call", placement(nr_shards));
    let pool = ShardPool::start(config, |_| {
        let (finished, shutdown) = (finished.clone(), shutdown.clone());
        move |shard: Shard<u64, (ShardId, ShardId, u64)>| async move {
            let me = shard.id();
            let served_on = current_shard();
            shard.serve(move |from, value| async move { (from, me, value * 2) });
            let mut replies = Vec::new();
            for to in shard.all() {
                let value = 100 * u64::from(me.get()) + u64::from(to.get());
                replies.push(shard.call(to, value).await.unwrap());
            }
            if finished.fetch_add(1, Ordering::SeqCst) + 1 == shard.nr_shards() {
                shutdown.trigger();
            }
            shutdown.wait().await;
            (me, served_on, shard.cpu(), replies)
        }
    })
    .unwrap();
    assert_eq!(pool.nr_shards(), nr_shards);

    let allowed = available_cpus().unwrap();
    for (index, (me, current, cpu, replies)) in outputs(pool).into_iter().enumerate() {
        assert_eq!(me.index(), index);
        assert_eq!(current, Some(me), "current_shard() on the shard's thread");
        if allowed.len() >= nr_shards {
            assert_eq!(cpu, Some(allowed[index]), "shard {me} pinned to its CPU");
        }
        assert_eq!(replies.len(), nr_shards);
        for (to, (from, callee, doubled)) in replies.into_iter().enumerate() {
            assert_eq!(from, me, "the callee saw the caller's id");
            assert_eq!(callee.index(), to, "the reply came from the shard called");
            assert_eq!(doubled, 2 * (100 * index as u64 + to as u64));
        }
    }
}

/// Many more concurrent calls than channel slots or handler slots: callers wait, nothing is lost,
/// and concurrent senders on one channel do not trip glommio's "operation would block" panic.
#[test]
fn concurrent_calls_beyond_capacity_all_complete() {
    const CALLS: u64 = 6_000;
    const LOOPS: u64 = 64;
    let shutdown = Shutdown::new();
    let mut config = PoolConfig::new("test-load", placement(2));
    config.mesh_capacity = 4;
    config.max_concurrent_calls = 3;
    let pool = ShardPool::start(config, |_| {
        let shutdown = shutdown.clone();
        move |shard: Shard<u64, u64>| async move {
            let running = Rc::new(Cell::new(0usize));
            let most_running = Rc::new(Cell::new(0usize));
            let (running_in, most_in) = (running.clone(), most_running.clone());
            shard.serve(move |_, value| {
                let (running, most_running) = (running_in.clone(), most_in.clone());
                async move {
                    running.set(running.get() + 1);
                    most_running.set(most_running.get().max(running.get()));
                    sleep(Duration::from_micros(50)).await;
                    running.set(running.get() - 1);
                    value + 1
                }
            });
            if shard.id().index() == 0 {
                // Closed loops: each task calls again as soon as its reply arrives, so fresh sends
                // race with senders woken for freed slots.
                let tasks: Vec<_> = (0..LOOPS)
                    .map(|task| {
                        let shard = shard.clone();
                        spawn_local(async move {
                            for value in (task..CALLS).step_by(LOOPS as usize) {
                                assert_eq!(shard.call(ShardId::new(1), value).await, Ok(value + 1));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await;
                }
                shutdown.trigger();
            }
            shutdown.wait().await;
            most_running.get()
        }
    })
    .unwrap();
    let most_running = outputs(pool);
    assert!(most_running[1] <= 3, "handler concurrency bounded: {most_running:?}");
    assert!(most_running[1] >= 2, "handlers did run concurrently: {most_running:?}");
}

#[test]
fn calls_to_no_shard_or_to_self_before_serving_fail_cleanly() {
    let pool = ShardPool::start(PoolConfig::new("test-errors", placement(1)), |_| {
        |shard: Shard<(), ()>| async move {
            let me = shard.id();
            assert_eq!(shard.call(ShardId::new(7), ()).await, Err(CallError::NoSuchShard(ShardId::new(7))));
            assert_eq!(shard.call(me, ()).await, Err(CallError::NotServing(me)));
            shard.serve(|_, ()| async {});
            assert_eq!(shard.call(me, ()).await, Ok(()));
            assert_eq!(timeout(Duration::from_millis(1), futures_lite::future::pending::<()>()).await, None);
            assert_eq!(timeout(Duration::from_secs(5), async { 3 }).await, Some(3));
        }
    })
    .unwrap();
    assert_eq!(pool.wait_exit(None), Some(ShardExit { shard: ShardId::new(0), kind: ExitKind::Returned }));
    outputs(pool);
}

#[test]
fn a_panicking_shard_is_reported() {
    let pool = ShardPool::start(PoolConfig::new("test-panic", ShardPlacement::Unpinned(1)), |_| {
        |_shard: Shard<(), ()>| async move {
            panic!("deliberate test panic");
        }
    })
    .unwrap();
    let exit = pool.wait_exit(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(exit, ShardExit { shard: ShardId::new(0), kind: ExitKind::Panicked });
    let joined = pool.join();
    assert!(joined[0].1.is_err());
}

/// With one handler slot, a quiet peer must not starve a busy one (the receive loop for the quiet
/// peer must not sit on the slot while it waits).
#[test]
fn a_quiet_peer_does_not_starve_a_busy_one() {
    let shutdown = Shutdown::new();
    let mut config = PoolConfig::new("test-starve", placement(3));
    config.max_concurrent_calls = 1;
    let pool = ShardPool::start(config, |_| {
        let shutdown = shutdown.clone();
        move |shard: Shard<u32, u32>| async move {
            shard.serve(|_, value| async move { value + 1 });
            let mut reply = None;
            if shard.id() == ShardId::new(1) {
                reply = timeout(Duration::from_secs(10), shard.call(ShardId::new(2), 41)).await;
                shutdown.trigger();
            }
            shutdown.wait().await;
            reply
        }
    })
    .unwrap();
    assert_eq!(outputs(pool)[1], Some(Ok(42)));
}
