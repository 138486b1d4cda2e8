//! `FakeEventStore`: an in-memory event store enforcing the same invariants as a database.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use eventlogs_core::{
    backend::{
        check_idempotency_key, AppendRequest, Appended, RawEvent, RawEventStream, StoredKey,
    },
    Error, EventFeed, EventStore, FeedEvent, FeedPosition, Limits, LogId, Result, SubscriptionName,
    Timestamp,
};
use futures::StreamExt;

/// How many events a stream copies out per lock, bounding its memory.
const STREAM_CHUNK: usize = 256;

/// An in-memory [`EventStore`]: dense logs, one winner per index, idempotency keys stored
/// atomically with their events and checked against the request hash. Thread-safe; every
/// append takes one short lock.
///
/// ```
/// # async fn demo() -> eventlogs_core::Result<()> {
/// use eventlogs_core::{EventStore, LogId, LogState, backend::{AppendRequest, NewEvent}};
/// use eventlogs_fake::FakeEventStore;
///
/// let store = FakeEventStore::new();
/// let log = LogId::new();
/// let request = AppendRequest::new(LogState::empty(log), vec![NewEvent::new(&1)?], None, None);
/// let written = store.append(&request).await?;
/// assert_eq!(written.state().next_index(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct FakeEventStore {
    pub(crate) state: Arc<Mutex<State>>,
    limits: Limits,
    /// The number of commits, announced to waiting subscriptions.
    pub(crate) commits: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) logs: HashMap<LogId, Vec<RawEvent>>,
    keys: HashMap<String, (StoredKey, Timestamp)>,
    /// Deleted logs: the marker left in each (the index the log would have written next, and
    /// when it was deleted).
    pub(crate) deleted: HashMap<LogId, RawEvent>,
    /// Every event in commit order: the global feed.
    pub(crate) feed: Vec<(FeedPosition, LogId, u32)>,
    commits: u64,
    /// Subscription checkpoints.
    pub(crate) checkpoints: HashMap<SubscriptionName, FeedPosition>,
    /// Subscriptions with an active consumer.
    pub(crate) claimed: HashSet<SubscriptionName>,
}

impl FakeEventStore {
    /// An empty store with default [`Limits`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store enforcing `limits`.
    #[must_use]
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            state: Arc::default(),
            limits,
            commits: tokio::sync::watch::Sender::default(),
        }
    }

    /// Number of events in `log_id` (0 for an unknown log).
    #[must_use]
    pub fn len(&self, log_id: &LogId) -> usize {
        self.lock().logs.get(log_id).map_or(0, Vec::len)
    }

    /// Number of logs with at least one event.
    #[must_use]
    pub fn log_count(&self) -> usize {
        self.lock().logs.len()
    }

    /// Number of idempotency keys stored.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.lock().keys.len()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

#[async_trait]
impl EventStore for FakeEventStore {
    async fn append(&self, request: &AppendRequest) -> Result<Appended> {
        request.validate(&self.limits)?;
        let log_id = request.log_id();
        let count = u32::try_from(request.events().len()).unwrap_or(u32::MAX);
        let mut state = self.lock();
        if let Some(key) = request.idempotency_key() {
            if let Some((used, _)) = state.keys.get(key) {
                return Err(match request.key_already_used(used) {
                    Error::IdempotentReplay { log_id, .. }
                        if state.deleted.contains_key(&log_id) =>
                    {
                        Error::LogDeleted { log_id }
                    }
                    other => other,
                });
            }
        }
        if state.deleted.contains_key(&log_id) {
            return Err(Error::LogDeleted { log_id });
        }
        let len = state.logs.get(&log_id).map_or(0, Vec::len) as u64;
        let expected = request.expected_index();
        if expected < len {
            return Err(Error::ConcurrentAppend {
                log_id,
                index: expected,
            });
        }
        if expected > len {
            return Err(if len == 0 {
                Error::LogNotFound { log_id }
            } else {
                Error::IndexGap {
                    log_id,
                    index: expected,
                }
            });
        }
        let first_index = request.first_index();
        let recorded_at = Timestamp::now();
        let key = request.idempotency_key().map(str::to_owned);
        let metadata = request.metadata().map(str::to_owned);
        let events = request
            .events()
            .iter()
            .enumerate()
            .map(|(offset, event)| RawEvent {
                index: first_index + offset as u32,
                recorded_at,
                idempotency_key: key.clone(),
                metadata: metadata.clone(),
                payload: event.json().to_owned(),
                version: request.event_version(),
            });
        state.logs.entry(log_id).or_default().extend(events);
        state.commits += 1;
        let commit = state.commits;
        for offset in 0..count {
            let position = FeedPosition {
                transaction: commit,
                sequence: u64::from(offset) + 1,
            };
            state.feed.push((position, log_id, first_index + offset));
        }
        if let Some(key) = key {
            let record = StoredKey {
                log_id,
                first_index,
                count,
                request_hash: request.request_hash(),
            };
            state.keys.insert(key, (record, recorded_at));
        }
        drop(state);
        self.commits.send_replace(commit);
        Ok(Appended {
            log_id,
            first_index,
            count,
            recorded_at,
        })
    }

    async fn find_idempotency_key(&self, key: &str) -> Result<Option<StoredKey>> {
        check_idempotency_key(key, &self.limits)?;
        Ok(self.lock().keys.get(key).map(|(record, _)| *record))
    }

    async fn delete(&self, log_id: &LogId) -> Result<u64> {
        let mut state = self.lock();
        if state.deleted.contains_key(log_id) {
            return Ok(0);
        }
        let Some(events) = state.logs.remove(log_id) else {
            return Err(Error::LogNotFound { log_id: *log_id });
        };
        let removed = events.len() as u64;
        let marker = RawEvent {
            index: u32::try_from(removed).unwrap_or(u32::MAX),
            recorded_at: Timestamp::now(),
            idempotency_key: None,
            metadata: None,
            payload: "null".into(),
            version: 1,
        };
        state.deleted.insert(*log_id, marker);
        state.feed.retain(|(_, log, _)| log != log_id);
        state.commits += 1;
        let commit = state.commits;
        state.feed.push((
            FeedPosition {
                transaction: commit,
                sequence: 1,
            },
            *log_id,
            u32::try_from(removed).unwrap_or(u32::MAX),
        ));
        drop(state);
        self.commits.send_replace(commit);
        Ok(removed)
    }

    async fn remove_idempotency_keys(&self, older_than: Duration, max_keys: u32) -> Result<u64> {
        let cutoff = Timestamp::now().as_unix_micros()
            - i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX);
        let mut state = self.lock();
        let old: Vec<String> = state
            .keys
            .iter()
            .filter(|(_, (_, at))| at.as_unix_micros() < cutoff)
            .map(|(key, _)| key.clone())
            .take(max_keys as usize)
            .collect();
        for key in &old {
            state.keys.remove(key);
        }
        Ok(old.len() as u64)
    }

    async fn load(
        &self,
        log_id: &LogId,
        from_index: u32,
        max_events: u32,
    ) -> Result<Vec<RawEvent>> {
        self.limits.check_page(max_events)?;
        let state = self.lock();
        if state.deleted.contains_key(log_id) {
            return Err(Error::LogDeleted { log_id: *log_id });
        }
        let Some(events) = state.logs.get(log_id) else {
            return Ok(Vec::new());
        };
        let from = (from_index as usize).min(events.len());
        let to = from.saturating_add(max_events as usize).min(events.len());
        Ok(events[from..to].to_vec())
    }

    async fn stream(&self, log_id: &LogId, from_index: u32) -> Result<RawEventStream> {
        // The stream copies one chunk per lock, so it holds at most one chunk in memory.
        let log_id = *log_id;
        let chunks = futures::stream::unfold(
            (Arc::clone(&self.state), from_index as usize),
            move |(state, from)| async move {
                let chunk = match chunk(&state, &log_id, from) {
                    Ok(chunk) => chunk,
                    // A log deleted before or during the read ends the stream with the error.
                    Err(error) => {
                        return Some((futures::stream::iter(vec![Err(error)]), (state, usize::MAX)))
                    }
                };
                if chunk.is_empty() || from == usize::MAX {
                    return None;
                }
                let next = from + chunk.len();
                Some((
                    futures::stream::iter(chunk.into_iter().map(Ok).collect::<Vec<_>>()),
                    (state, next),
                ))
            },
        );
        Ok(chunks.flatten().boxed())
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update is applied after all checks pass, so a poisoned lock still guards
    // consistent data.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Copies at most one chunk of events out of the store.
fn chunk(state: &Mutex<State>, log_id: &LogId, from: usize) -> Result<Vec<RawEvent>> {
    let state = lock(state);
    if from == usize::MAX {
        return Ok(Vec::new());
    }
    if state.deleted.contains_key(log_id) {
        return Err(Error::LogDeleted { log_id: *log_id });
    }
    let Some(events) = state.logs.get(log_id) else {
        return Ok(Vec::new());
    };
    let from = from.min(events.len());
    Ok(events[from..(from + STREAM_CHUNK).min(events.len())].to_vec())
}

impl State {
    /// The feed's entry for event `index` of `log_id` (or the log's deletion marker).
    pub(crate) fn feed_event(
        &self,
        position: FeedPosition,
        log_id: LogId,
        index: u32,
    ) -> Option<FeedEvent> {
        if let Some(marker) = self.deleted.get(&log_id) {
            return (marker.index == index).then(|| FeedEvent {
                position,
                log_id,
                event: marker.clone(),
                deleted: true,
            });
        }
        let event = self.logs.get(&log_id)?.get(index as usize)?.clone();
        Some(FeedEvent {
            position,
            log_id,
            event,
            deleted: false,
        })
    }
}

#[async_trait]
impl EventFeed for FakeEventStore {
    async fn head(&self) -> Result<FeedPosition> {
        Ok(self
            .lock()
            .feed
            .last()
            .map_or(FeedPosition::START, |(p, _, _)| *p))
    }

    async fn read_feed(&self, after: FeedPosition, max: u32) -> Result<Vec<FeedEvent>> {
        // Appends commit under the lock in feed order, so nothing can commit late here.
        let state = self.lock();
        let start = state.feed.partition_point(|(p, _, _)| *p <= after);
        Ok(state.feed[start..]
            .iter()
            .take(max as usize)
            .filter_map(|(position, log_id, index)| state.feed_event(*position, *log_id, *index))
            .collect())
    }
}
