//! `execute`: a command in one call (reduce, decide, create or append, retry on conflict,
//! replay a repeated idempotency key without deciding again).

use tracing::Instrument;

use super::LogManager;
use crate::store::{AppendRequest, Appended, StoredKey};
use crate::{
    Aggregate, AppendOptions, CacheOutcome, Error, LogId, LogState, NewEvent, RawEvent, Reduction,
    Result, Timestamp,
};

/// What a command did: the log after it, and which events it wrote.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Executed<A> {
    /// The log after the command: the state it decided on with its events folded in, through
    /// the last event it wrote. On a replay, the log as it is now.
    pub reduction: Reduction<A>,
    /// The index of the first event written (on a replay, by the original call; with no
    /// events, the log's length).
    pub first_index: u64,
    /// How many events were written (on a replay, by the original call); 0 when the decision
    /// returned none.
    pub count: u64,
    /// The idempotency key had been used by an earlier call that committed: this call wrote
    /// nothing and did not run the decision.
    pub replayed: bool,
}

impl<A: Aggregate> LogManager<A> {
    /// Runs a command: reduces the log (`None` when it has no events yet), lets `decide` turn
    /// the state into events, and writes them at the index it decided on, creating the log
    /// when it did not exist. Returns the log after the command.
    ///
    /// - **Conflicts are retried**: when another writer took the index first, the log is
    ///   reduced again and `decide` runs again on the fresh state, as the manager's
    ///   [`RetryPolicy`](crate::RetryPolicy) allows (jittered backoff), then
    ///   [`Error::Contended`]. Server errors are returned at once, never retried here.
    /// - **Repeated requests are replays**: with an idempotency key that an earlier call
    ///   committed, nothing is written and `decide` is not run (a guard such as "insufficient
    ///   funds" would refuse a retried withdrawal otherwise): the result has `replayed` set and
    ///   names the original write. A key used for another log replays too while `log_id` has
    ///   no events (a create retried with a fresh id); once `log_id` has events it is
    ///   [`Error::IdempotencyConflict`]. This is the store's rule, with the key standing for
    ///   the command.
    /// - **Domain errors pass through typed**: `decide` returns your error type `E`, which only
    ///   needs `From<eventlogs::Error>` for the store's errors.
    /// - **No events, no write**: when `decide` returns an empty list the current reduction is
    ///   returned (with `count` 0), or [`Error::LogNotFound`] when the log does not exist.
    ///
    /// The result is folded locally from the state decided on and the events written (with the
    /// store's commit time), so a command costs one reduce and one append.
    ///
    /// ```
    /// # use eventlogs_core::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Debug, Default, Serialize, Deserialize)] struct Counter(u64);
    /// # impl Aggregate for Counter {
    /// #     type Event = u64; const NAME: &'static str = "counter"; const VERSION: u32 = 1;
    /// #     fn apply(&mut self, r: &EventRecord<u64>) { self.0 += r.event; }
    /// # }
    /// #[derive(Debug)]
    /// enum CounterError { TooHigh, Store(Error) }
    /// impl From<Error> for CounterError {
    ///     fn from(e: Error) -> Self { CounterError::Store(e) }
    /// }
    ///
    /// async fn add(logs: &LogManager<Counter>, id: &LogId, n: u64) -> Result<u64, CounterError> {
    ///     let done = logs
    ///         .execute(id, &AppendOptions::new(), |counter: Option<&Counter>| {
    ///             let total = counter.map_or(0, |c| c.0) + n;
    ///             if total > 100 { Err(CounterError::TooHigh) } else { Ok(vec![n]) }
    ///         })
    ///         .await?;
    ///     Ok(done.reduction.aggregate.0)
    /// }
    /// ```
    pub async fn execute<E, F>(
        &self,
        log_id: &LogId,
        options: &AppendOptions,
        decide: F,
    ) -> Result<Executed<A>, E>
    where
        F: FnMut(Option<&A>) -> Result<Vec<A::Event>, E>,
        E: From<Error>,
    {
        let span = tracing::info_span!("eventlogs.execute", log_id = %log_id, aggregate = A::NAME);
        self.run_command(*log_id, options, decide)
            .instrument(span)
            .await
    }

    async fn run_command<E, F>(
        &self,
        log_id: LogId,
        options: &AppendOptions,
        mut decide: F,
    ) -> Result<Executed<A>, E>
    where
        F: FnMut(Option<&A>) -> Result<Vec<A::Event>, E>,
        E: From<Error>,
    {
        let policy = self.inner.retry;
        for attempt in 0..policy.max_attempts() {
            if attempt > 0 {
                tokio::time::sleep(policy.backoff(attempt - 1)).await;
            }
            if let Some(key) = options.idempotency_key() {
                if let Some(stored) = self.inner.store.find_idempotency_key(key).await? {
                    return Ok(self.replay_of_stored(log_id, key, &stored).await?);
                }
            }
            let current = match self.reduce(&log_id).await {
                Ok(reduction) => Some(reduction),
                Err(Error::LogNotFound { .. }) => None,
                Err(error) => return Err(error.into()),
            };
            let events = decide(current.as_ref().map(|r| &r.aggregate))?;
            if events.is_empty() {
                let reduction = current.ok_or(Error::LogNotFound { log_id })?;
                return Ok(Executed {
                    first_index: reduction.len(),
                    count: 0,
                    replayed: false,
                    reduction,
                });
            }
            let state = current
                .as_ref()
                .map_or(LogState::empty(log_id), Reduction::state);
            let request = self.request(state, &events, options)?;
            match self.send(&request, "execute").await {
                Ok(appended) => return Ok(fold_written(current, &request, &appended)?),
                Err(error) if error.is_conflict() => {
                    tracing::debug!(attempt, error = %error, "command lost a race; deciding again");
                }
                Err(Error::IdempotentReplay {
                    log_id: original,
                    first_index,
                    count,
                    ..
                }) => {
                    // A call with the same key committed after our lookup; the store applied
                    // the replay rule.
                    return Ok(self.replayed(original, first_index, count).await?);
                }
                Err(error) => return Err(error.into()),
            }
        }
        tracing::warn!(
            attempts = policy.max_attempts(),
            "command gave up after losing every race"
        );
        Err(Error::Contended {
            log_id,
            attempts: policy.max_attempts(),
        }
        .into())
    }

    /// The result of a command whose key an earlier call committed, by the store's rule.
    async fn replay_of_stored(
        &self,
        log_id: LogId,
        key: &str,
        stored: &StoredKey,
    ) -> Result<Executed<A>> {
        // The store's rule (the decision's events, and so the content hash, are unknown
        // here): the command would create `log_id` when that log has no events.
        let creates =
            stored.log_id != log_id && self.inner.store.load(&log_id, 0, 1).await?.is_empty();
        if !stored.replays_on(log_id, creates) {
            return Err(Error::IdempotencyConflict {
                key: key.to_owned(),
            });
        }
        tracing::debug!(key, original = %stored.log_id, "idempotent replay; the decision was not run");
        self.replayed(
            stored.log_id,
            u64::from(stored.first_index),
            u64::from(stored.count),
        )
        .await
    }

    /// The replay result: the original log as it is now, and what the original call wrote.
    async fn replayed(&self, log_id: LogId, first_index: u64, count: u64) -> Result<Executed<A>> {
        Ok(Executed {
            reduction: self.reduce(&log_id).await?,
            first_index,
            count,
            replayed: true,
        })
    }

    /// The request for `events` at `state`, serialized and counted.
    pub(super) fn request(
        &self,
        state: LogState,
        events: &[A::Event],
        options: &AppendOptions,
    ) -> Result<AppendRequest> {
        // An over-long batch is refused before anything is serialized; sizes and contents are
        // checked once, by the store's `AppendRequest::validate`.
        crate::store::check_count(events.len(), self.inner.store.limits())?;
        let new_events = events
            .iter()
            .map(NewEvent::new)
            .collect::<Result<Vec<_>>>()?;
        let metadata = options.metadata().map(NewEvent::new).transpose()?;
        Ok(AppendRequest::new(
            state,
            new_events,
            metadata,
            options.idempotency_key().map(str::to_owned),
        )
        .with_event_version(self.inner.upcasters.version()))
    }
}

/// The reduction after a command: the state decided on with the written events folded in, as
/// the store recorded them (index, commit time, key, metadata, the JSON sent).
fn fold_written<A: Aggregate>(
    current: Option<Reduction<A>>,
    request: &AppendRequest,
    appended: &Appended,
) -> Result<Executed<A>> {
    let log_id = appended.log_id;
    let (mut aggregate, created_at, events_read, cache) = match current {
        Some(r) => (r.aggregate, r.created_at, r.events_read, r.cache),
        None => (
            A::default(),
            appended.recorded_at,
            0,
            CacheOutcome::Disabled,
        ),
    };
    let first = appended.first_index;
    let mut last = u64::from(first);
    for (offset, event) in request.events().iter().enumerate() {
        let index = u32::try_from(offset)
            .ok()
            .and_then(|offset| first.checked_add(offset))
            .ok_or(Error::LogFull {
                log_id,
                next_index: u64::from(first),
                count: request.events().len() as u64,
            })?;
        let raw = RawEvent {
            index,
            recorded_at: appended.recorded_at,
            idempotency_key: request.idempotency_key().map(str::to_owned),
            metadata: request.metadata().map(str::to_owned),
            payload: event.json().to_owned(),
            version: request.event_version(),
        };
        aggregate.apply(&raw.decode(&log_id)?);
        last = u64::from(index);
    }
    Ok(Executed {
        reduction: Reduction {
            log_id,
            reduced_at: Timestamp::now(),
            created_at,
            through_index: last,
            aggregate,
            events_read,
            cache,
            // Not a fingerprint of the stored row (the store may normalise the JSON), so this
            // reduction is never written to the cache.
            fingerprint: 0,
        },
        first_index: u64::from(first),
        count: u64::from(appended.count),
        replayed: false,
    })
}
