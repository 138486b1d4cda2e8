//! Group append: the queue that gathers appends while statements are in flight, the runners
//! that send them together, and the split that keeps one request's failure its own.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use eventlogs_core::{
    backend::{AppendRequest, Appended},
    Error, LogId, Result,
};
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::group_config::AppendGrouping;
use crate::store::PostgresEventStore;

/// Counters of grouped appends since the store was built, from
/// [`PostgresEventStore::append_group_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppendGroupStats {
    /// Statements that carried more than one request.
    pub group_statements: u64,
    /// Requests those statements carried.
    pub grouped_requests: u64,
    /// The most requests one statement carried.
    pub largest_group: u64,
    /// Group statements that failed because of some of their requests and were split and run
    /// again.
    pub splits: u64,
    /// Requests waiting for a statement now.
    pub waiting: u64,
}

/// The queue of one store.
pub(crate) struct Groups {
    settings: AppendGrouping,
    queue: Mutex<Queue>,
    group_statements: AtomicU64,
    grouped_requests: AtomicU64,
    largest_group: AtomicU64,
    splits: AtomicU64,
}

/// What waits, and what is in flight.
#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    /// Statements in flight: requests sent alone, and tasks sending groups.
    running: usize,
    /// Tasks sending groups, among `running`.
    runners: usize,
    /// Logs and keys of requests in flight: a request that shares one waits for the next
    /// statement, so no statement depends on another in flight from this store.
    busy_logs: HashSet<LogId>,
    busy_keys: HashSet<String>,
}

struct Waiting {
    request: AppendRequest,
    reply: oneshot::Sender<Result<Appended>>,
}

impl Queue {
    fn free(&self, request: &AppendRequest) -> bool {
        !self.busy_logs.contains(&request.log_id())
            && request
                .idempotency_key()
                .is_none_or(|key| !self.busy_keys.contains(key))
    }

    fn hold(&mut self, request: &AppendRequest) {
        self.busy_logs.insert(request.log_id());
        if let Some(key) = request.idempotency_key() {
            self.busy_keys.insert(key.to_owned());
        }
    }

    fn release(&mut self, log_id: &LogId, key: Option<&str>) {
        self.busy_logs.remove(log_id);
        if let Some(key) = key {
            self.busy_keys.remove(key);
        }
    }

    /// Whether a new runner may start, and would find something to send. If so, counts it.
    fn start_runner(&mut self, settings: &AppendGrouping) -> bool {
        let start = self.running < settings.max_statements()
            && self.runners < settings.max_group_statements()
            && self.waiting.iter().any(|w| self.free(&w.request));
        if start {
            self.running += 1;
            self.runners += 1;
        }
        start
    }
}

/// The payload bytes of a request, as counted against `max_bytes`.
fn bytes(request: &AppendRequest) -> usize {
    request
        .events()
        .iter()
        .map(|e| e.json().len())
        .sum::<usize>()
        + request.metadata().map_or(0, str::len)
}

impl Groups {
    pub(crate) fn new(settings: AppendGrouping) -> Self {
        Self {
            settings,
            queue: Mutex::new(Queue::default()),
            group_statements: AtomicU64::new(0),
            grouped_requests: AtomicU64::new(0),
            largest_group: AtomicU64::new(0),
            splits: AtomicU64::new(0),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.settings.enabled()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // No code panics while holding the lock; a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> AppendGroupStats {
        AppendGroupStats {
            group_statements: self.group_statements.load(Ordering::Relaxed),
            grouped_requests: self.grouped_requests.load(Ordering::Relaxed),
            largest_group: self.largest_group.load(Ordering::Relaxed),
            splits: self.splits.load(Ordering::Relaxed),
            waiting: self.lock().waiting.len() as u64,
        }
    }

    /// Counts a statement carrying `n` requests.
    pub(crate) fn count_statement(&self, n: u64) {
        self.group_statements.fetch_add(1, Ordering::Relaxed);
        self.grouped_requests.fetch_add(n, Ordering::Relaxed);
        self.largest_group.fetch_max(n, Ordering::Relaxed);
    }

    /// Counts a split.
    pub(crate) fn count_split(&self) {
        self.splits.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the next group: waiting requests whose log and key are free, in arrival order,
    /// within the bounds (at least one request). Marks them busy.
    fn take(&self) -> Vec<Waiting> {
        let mut queue = self.lock();
        let (mut taken, mut kept) = (Vec::new(), VecDeque::new());
        let mut size = 0;
        while let Some(w) = queue.waiting.pop_front() {
            let fits = taken.is_empty()
                || (taken.len() < self.settings.max_requests()
                    && size + bytes(&w.request) <= self.settings.max_bytes());
            if fits && queue.free(&w.request) {
                size += bytes(&w.request);
                queue.hold(&w.request);
                taken.push(w);
            } else {
                kept.push_back(w);
            }
        }
        queue.waiting = kept;
        taken
    }
}

/// How an append goes, decided under the queue's lock.
enum Route {
    /// At once, alone, outside the slots: its log or key is in a statement in flight.
    Race,
    /// At once, alone, in a slot of its own.
    Alone,
    /// In the queue; whether it started a runner, and where its outcome arrives.
    Queued(bool, oneshot::Receiver<Result<Appended>>),
}

/// A runner's place among the `max_statements`: freed when it ends (or unwinds), at which
/// point a new runner starts if something waiting can go.
struct Slot {
    store: PostgresEventStore,
    /// The log and key of the request sent alone, released with the slot.
    alone: Option<(LogId, Option<String>)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let groups = self.store.groups();
        let restart = {
            let mut queue = groups.lock();
            match &self.alone {
                Some((log_id, key)) => queue.release(log_id, key.as_deref()),
                None => queue.runners -= 1,
            }
            queue.running -= 1;
            queue.start_runner(&groups.settings)
        };
        if restart {
            start_runner(&self.store);
        }
    }
}

/// Starts a task that sends groups until nothing waiting can go. Its slot is already counted
/// (see `Queue::start_runner`).
fn start_runner(store: &PostgresEventStore) {
    let slot = Slot {
        store: store.clone(),
        alone: None,
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(run(slot));
        }
        Err(_) => {
            // No runtime (it is shutting down): the waiting callers' futures are gone too.
            let mut queue = store.groups().lock();
            queue.running -= 1;
            queue.runners -= 1;
            queue.waiting.clear();
            std::mem::forget(slot);
        }
    }
}

/// A runner: sends groups while there are any.
async fn run(slot: Slot) {
    let store = &slot.store;
    loop {
        let group = store.groups().take();
        if group.is_empty() {
            return;
        }
        let (requests, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|w| (w.request, w.reply)).unzip();
        let span = tracing::debug_span!("eventlogs.append_group", requests = requests.len());
        let outcomes = store.send_group(&requests).instrument(span).await;
        {
            let mut queue = store.groups().lock();
            for request in &requests {
                queue.release(&request.log_id(), request.idempotency_key());
            }
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // A caller that stopped waiting no longer needs its outcome.
            let _ = reply.send(outcome);
        }
    }
}

impl PostgresEventStore {
    /// Appends `request` (validated, on a schema on one server) through the group queue: at
    /// once and alone when a statement slot is free and nothing waits, else with the next
    /// group.
    pub(crate) async fn append_grouped(&self, request: &AppendRequest) -> Result<Appended> {
        let groups = self.groups();
        let route = {
            let mut queue = groups.lock();
            let free_slot = queue.running < groups.settings.max_statements();
            if !queue.free(request) {
                Route::Race
            } else if free_slot && queue.waiting.is_empty() {
                queue.running += 1;
                queue.hold(request);
                Route::Alone
            } else {
                let (reply, outcome) = oneshot::channel();
                queue.waiting.push_back(Waiting {
                    request: request.clone(),
                    reply,
                });
                Route::Queued(queue.start_runner(&groups.settings), outcome)
            }
        };
        let (start, outcome) = match route {
            // Its log or key is in a statement in flight: a race on one log. It goes at once,
            // alone, and the database settles the race as without grouping.
            Route::Race => return self.append_single(request).await,
            Route::Alone => {
                // In a slot of its own, released when this future ends or is dropped.
                let _slot = Slot {
                    store: self.clone(),
                    alone: Some((
                        request.log_id(),
                        request.idempotency_key().map(str::to_owned),
                    )),
                };
                return self.append_single(request).await;
            }
            Route::Queued(start, outcome) => (start, outcome),
        };
        if start {
            start_runner(self);
        }
        outcome.await.unwrap_or_else(|_| {
            Err(Error::unavailable(
                "postgres",
                "the append's group ended without an outcome; retry with the same idempotency key",
            ))
        })
    }
}
