//! Closed-loop load: N workers run an operation back to back for a fixed time; latencies and
//! throughput are collected per run.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::FutureExt;

/// Whether `seconds` is a smoke run's (under a second per measurement: `cargo xtask test`
/// checks that every scenario runs, not what it measures), so scenarios with fixed sizes can
/// shrink them.
pub(crate) fn smoke(seconds: Duration) -> bool {
    seconds < Duration::from_secs(1)
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    /// Operations completed.
    pub(crate) ops: u64,
    /// Events written or read by those operations.
    pub(crate) events: u64,
    /// Operations that failed (reported, not timed).
    pub(crate) errors: u64,
    /// Wall time of the run.
    pub(crate) elapsed: Duration,
    /// Sorted latencies of completed operations.
    pub(crate) latencies: Vec<Duration>,
}

impl Sample {
    pub(crate) fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(crate) fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let at = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[at.min(self.latencies.len() - 1)]
    }
}

/// An operation `op(worker, iteration)` that can be run again and again.
pub(crate) type Workload =
    Arc<dyn Fn(usize, u64) -> BoxFuture<'static, Result<u64, String>> + Send + Sync>;

/// Wraps an operation as a [`Workload`].
pub(crate) fn workload<F, Fut>(op: F) -> Workload
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    Arc::new(move |worker, i| op(worker, i).boxed())
}

impl Sample {
    pub(crate) fn merge(&mut self, other: Sample) {
        self.ops += other.ops;
        self.events += other.events;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.latencies.sort_unstable();
    }
}

/// Runs the library and the raw baseline in `rounds` alternating slices of `duration / rounds`
/// each and merges each side's slices, so drift on a noisy machine (a checkpoint, another
/// process) falls on both sides alike.
pub(crate) async fn alternate(
    concurrency: usize,
    duration: Duration,
    rounds: u32,
    library: &Workload,
    raw: &Workload,
) -> (Sample, Sample) {
    let (lib, base, _) = alternate_rounds(concurrency, duration, rounds, library, raw).await;
    (lib, base)
}

/// [`alternate`], also returning each round's throughput ratio (library over raw, operations
/// per second), whose median a burst of load on one slice cannot move much.
pub(crate) async fn alternate_rounds(
    concurrency: usize,
    duration: Duration,
    rounds: u32,
    library: &Workload,
    raw: &Workload,
) -> (Sample, Sample, Vec<f64>) {
    let slice = duration / rounds.max(1);
    let (mut lib, mut base) = (Sample::default(), Sample::default());
    let mut ratios = Vec::with_capacity(rounds.max(1) as usize);
    for round in 0..rounds.max(1) {
        // Alternate which side goes first as well.
        let (l, b) = if round % 2 == 0 {
            let b = run_workload(concurrency, slice, raw).await;
            (run_workload(concurrency, slice, library).await, b)
        } else {
            let l = run_workload(concurrency, slice, library).await;
            (l, run_workload(concurrency, slice, raw).await)
        };
        ratios.push(l.ops_per_sec() / b.ops_per_sec().max(1e-9));
        lib.merge(l);
        base.merge(b);
    }
    (lib, base, ratios)
}

/// The median of `values` (0 for none).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Runs `op(worker, iteration)` on `concurrency` workers for `duration`. Each call returns the
/// number of events it handled, or an error that is counted.
pub(crate) async fn run<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    run_workload(concurrency, duration, &workload(op)).await
}

/// Runs a [`Workload`] on `concurrency` workers for `duration`.
pub(crate) async fn run_workload(concurrency: usize, duration: Duration, op: &Workload) -> Sample {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let op = Arc::clone(op);
            tokio::spawn(async move {
                let mut sample = Sample::default();
                let mut iteration = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    match op(worker, iteration).await {
                        Ok(events) => {
                            sample.latencies.push(t.elapsed());
                            sample.ops += 1;
                            sample.events += events;
                        }
                        Err(e) => {
                            if sample.errors == 0 {
                                eprintln!("bench: worker {worker}: {e}");
                            }
                            sample.errors += 1;
                        }
                    }
                    iteration += 1;
                }
                sample
            })
        })
        .collect();
    let mut total = Sample::default();
    for worker in workers {
        if let Ok(sample) = worker.await {
            total.ops += sample.ops;
            total.events += sample.events;
            total.errors += sample.errors;
            total.latencies.extend(sample.latencies);
        }
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    total
}

/// One log per worker and the next index each worker writes to it, for the raw baselines
/// that append by hand (a worker owns its log, so its indexes never collide).
pub(crate) struct WorkerLogs {
    logs: Vec<uuid::Uuid>,
    next: Vec<AtomicI64>,
}

impl WorkerLogs {
    /// `workers` fresh logs, each written from `first_index` on.
    pub(crate) fn new(workers: usize, first_index: i64) -> Arc<Self> {
        Arc::new(Self {
            logs: (0..workers)
                .map(|_| uuid::Uuid::from_u128(eventlogs::LogId::new().to_u128()))
                .collect(),
            next: (0..workers).map(|_| AtomicI64::new(first_index)).collect(),
        })
    }

    /// Every worker's log.
    pub(crate) fn logs(&self) -> &[uuid::Uuid] {
        &self.logs
    }

    /// The log of `worker`.
    pub(crate) fn log(&self, worker: usize) -> &uuid::Uuid {
        &self.logs[worker]
    }

    /// Takes the next `count` indexes of `worker`'s log; returns the first.
    pub(crate) fn take(&self, worker: usize, count: i64) -> i64 {
        self.next[worker].fetch_add(count, Ordering::Relaxed)
    }
}
