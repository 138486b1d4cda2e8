//! The background cache writer: bounded, coalescing per key, never blocking the caller.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::Instrument;

use super::stats::{bump, Counters};
use crate::{CacheKey, ReductionCache};

/// One pending cache write.
#[derive(Debug)]
pub(crate) struct Job {
    /// Delete the stored entry first (it was found corrupt or stale).
    pub(crate) purge: bool,
    /// The entry to store, with its `through_index`.
    pub(crate) entry: Option<(u32, Vec<u8>)>,
}

impl Job {
    fn through_index(&self) -> Option<u32> {
        self.entry.as_ref().map(|(i, _)| *i)
    }

    /// Folds a newer job for the same key into this one.
    fn absorb(&mut self, newer: Job) {
        self.purge |= newer.purge;
        if newer.through_index() >= self.through_index() {
            self.entry = newer.entry;
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    pending: HashMap<CacheKey, Job>,
    order: VecDeque<CacheKey>,
    in_flight: usize,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    outstanding: watch::Sender<usize>,
    started: AtomicBool,
    cache: Arc<dyn ReductionCache>,
    counters: Arc<Counters>,
    timeout: Duration,
    capacity: usize,
    concurrency: usize,
}

/// Handle to the writer task; dropping it lets the task drain its queue and exit.
#[derive(Debug)]
pub(crate) struct Writer {
    shared: Arc<Shared>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue inconsistent (every update
        // is a single insert or remove), so a poisoned lock is still usable.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, queue: &Queue) {
        let depth = queue.pending.len() + queue.in_flight;
        crate::telemetry::cache_queue(depth);
        self.outstanding.send_replace(depth);
    }
}

impl Writer {
    pub(crate) fn new(
        cache: Arc<dyn ReductionCache>,
        counters: Arc<Counters>,
        timeout: Duration,
        capacity: usize,
        concurrency: usize,
    ) -> Self {
        let (outstanding, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                outstanding,
                started: AtomicBool::new(false),
                cache,
                counters,
                timeout,
                capacity: capacity.max(1),
                concurrency: concurrency.max(1),
            }),
        }
    }

    /// Queues a job without waiting: coalesces with a pending job for the same key, or drops
    /// and counts the job when the queue is full or no tokio runtime is running.
    pub(crate) fn submit(&self, key: CacheKey, job: Job) {
        let shared = &self.shared;
        if !shared.started.load(Ordering::Acquire) && !self.start() {
            bump(&shared.counters.dropped_writes);
            tracing::warn!(key = %key, "cache write dropped: no tokio runtime to run the writer");
            return;
        }
        let mut queue = shared.lock();
        if let Some(pending) = queue.pending.get_mut(&key) {
            pending.absorb(job);
            return;
        }
        if queue.pending.len() >= shared.capacity {
            drop(queue);
            bump(&shared.counters.dropped_writes);
            tracing::warn!(key = %key, capacity = shared.capacity, "cache write dropped: queue full");
            return;
        }
        queue.order.push_back(key.clone());
        queue.pending.insert(key, job);
        shared.publish(&queue);
        drop(queue);
        shared.wake.notify_one();
    }

    fn start(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if !self.shared.started.swap(true, Ordering::AcqRel) {
            let shared = Arc::clone(&self.shared);
            runtime.spawn(run(shared).instrument(tracing::debug_span!("eventlogs.cache_writer")));
        }
        true
    }

    /// Waits until every job queued before the call (and any queued meanwhile) is done.
    pub(crate) async fn flush(&self) {
        let mut outstanding = self.shared.outstanding.subscribe();
        // The sender lives as long as `self`, so this only ends when the count reaches zero.
        let _ = outstanding.wait_for(|n| *n == 0).await;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

async fn run(shared: Arc<Shared>) {
    loop {
        let batch: Vec<(CacheKey, Job)> = {
            let mut queue = shared.lock();
            let mut batch = Vec::new();
            while batch.len() < shared.concurrency {
                let Some(key) = queue.order.pop_front() else {
                    break;
                };
                if let Some(job) = queue.pending.remove(&key) {
                    batch.push((key, job));
                }
            }
            queue.in_flight = batch.len();
            shared.publish(&queue);
            if batch.is_empty() && queue.closed {
                return;
            }
            batch
        };
        if batch.is_empty() {
            shared.wake.notified().await;
            continue;
        }
        futures::future::join_all(batch.into_iter().map(|(key, job)| write(&shared, key, job)))
            .await;
        let mut queue = shared.lock();
        queue.in_flight = 0;
        shared.publish(&queue);
    }
}

async fn write(shared: &Shared, key: CacheKey, job: Job) {
    let span = tracing::debug_span!("eventlogs.cache.put", key = %key, through_index = job.through_index());
    async {
        let counters = &shared.counters;
        if job.purge {
            match tokio::time::timeout(shared.timeout, shared.cache.delete(&key)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    bump(&counters.write_errors);
                    tracing::warn!(%error, "cache delete failed");
                }
                Err(_) => {
                    bump(&counters.write_errors);
                    tracing::warn!(timeout = ?shared.timeout, "cache delete timed out");
                }
            }
        }
        let Some((through_index, bytes)) = job.entry else {
            return;
        };
        match tokio::time::timeout(
            shared.timeout,
            shared.cache.put(&key, through_index, &bytes),
        )
        .await
        {
            Ok(Ok(true)) => bump(&counters.writes),
            Ok(Ok(false)) => {
                bump(&counters.writes_superseded);
                tracing::debug!("cache held a newer reduction; write skipped");
            }
            Ok(Err(error)) => {
                bump(&counters.write_errors);
                tracing::warn!(%error, "cache write failed");
            }
            Err(_) => {
                bump(&counters.write_errors);
                tracing::warn!(timeout = ?shared.timeout, "cache write timed out");
            }
        }
    }
    .instrument(span)
    .await;
}
