//! Closed-loop load: N workers run an operation back to back for a fixed time; latencies and
//! throughput are collected per run.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Runs `op(worker, iteration)` on `concurrency` workers for `duration`. Each call returns the
/// number of events it handled, or an error that is counted.
pub(crate) async fn run<F, Fut>(concurrency: usize, duration: Duration, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    let op = Arc::new(op);
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let op = Arc::clone(&op);
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
