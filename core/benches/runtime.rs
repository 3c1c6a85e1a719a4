//! Cross-shard hop: the round trip of a [`Shard::call`] from shard 0 to shard 1 over glommio's
//! channel mesh, two executors pinned to the first two CPUs (unpinned if the machine has fewer).
//! This is what a request pays when the connection's shard does not own the partition.
//!
//! The pool lives for the whole benchmark; criterion's thread hands shard 0 a count of calls and
//! gets back the time they took (`iter_custom`), so pool start-up is never measured.
//!
//! - `call_round_trip`: one call in flight, each sent when the previous reply is back (latency).
//! - `call_pipelined_64`: 64 calls in flight from 64 tasks on shard 0 (throughput; time per call).
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use spate_core::runtime::{spawn_local, PoolConfig, Shard, ShardId, ShardPlacement, ShardPool, Shutdown};

/// What criterion's thread asks shard 0 to do.
enum Job {
    /// This many calls, one at a time.
    Sequential(u64),
    /// This many calls, split over this many concurrent tasks.
    Concurrent(u64, u64),
}

struct Pool {
    pool: Option<ShardPool<()>>,
    jobs: mpsc::Sender<Option<Job>>,
    times: mpsc::Receiver<Duration>,
    shutdown: Shutdown,
}

impl Pool {
    fn start() -> Self {
        let (jobs, job_rx) = mpsc::channel::<Option<Job>>();
        let (time_tx, times) = mpsc::channel();
        let shutdown = Shutdown::new();
        let mut job_rx = Some(job_rx);
        let config = PoolConfig::new("bench-hop", ShardPlacement::first_cpus_or_unpinned(2));
        let pool = ShardPool::start(config, |id| {
            let job_rx = if id.index() == 0 { job_rx.take() } else { None };
            let (time_tx, shutdown) = (time_tx.clone(), shutdown.clone());
            move |shard: Shard<u64, u64>| async move {
                shard.serve(|_, value| async move { value + 1 });
                let Some(job_rx) = job_rx else {
                    shutdown.wait().await;
                    return;
                };
                // Blocking on the std channel between jobs is fine: shard 0 has nothing else to run.
                while let Ok(Some(job)) = job_rx.recv() {
                    let start = Instant::now();
                    match job {
                        Job::Sequential(calls) => {
                            for value in 0..calls {
                                let reply = shard.call(ShardId::new(1), value).await;
                                assert_eq!(reply, Ok(value + 1));
                            }
                        }
                        Job::Concurrent(calls, tasks) => {
                            let running: Vec<_> = (0..tasks)
                                .map(|task| {
                                    // Exactly `calls` in all: the first `calls % tasks` take one more.
                                    let per_task = calls / tasks + u64::from(task < calls % tasks);
                                    let shard = shard.clone();
                                    spawn_local(async move {
                                        for value in 0..per_task {
                                            let reply = shard.call(ShardId::new(1), value).await;
                                            assert_eq!(reply, Ok(value + 1));
                                        }
                                    })
                                })
                                .collect();
                            for task in running {
                                task.await;
                            }
                        }
                    }
                    time_tx.send(start.elapsed()).expect("criterion waits for the time");
                }
                shutdown.trigger();
            }
        })
        .expect("the shard pool starts");
        Pool { pool: Some(pool), jobs, times, shutdown }
    }

    fn run(&self, job: Job) -> Duration {
        self.jobs.send(Some(job)).expect("shard 0 takes jobs");
        self.times.recv().expect("shard 0 reports the time")
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.jobs.send(None);
        self.shutdown.trigger();
        if let Some(pool) = self.pool.take() {
            for (shard, result) in pool.join() {
                if let Err(error) = result {
                    panic!("shard {shard}: {error}");
                }
            }
        }
    }
}

fn cross_shard_call(c: &mut Criterion) {
    let pool = Pool::start();
    let mut group = c.benchmark_group("cross_shard");
    group.bench_function("call_round_trip", |b| b.iter_custom(|iters| pool.run(Job::Sequential(iters))));
    group.bench_function("call_pipelined_64", |b| b.iter_custom(|iters| pool.run(Job::Concurrent(iters, 64))));
    group.finish();
    drop(pool);
}

criterion_group!(benches, cross_shard_call);
criterion_main!(benches);
