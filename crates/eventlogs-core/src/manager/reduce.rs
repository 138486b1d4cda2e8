//! `reduce`: fold a log, starting from a cached reduction only once the store confirms it.

use futures::StreamExt;
use tracing::Instrument;

use super::stats::bump;
use super::writer::Job;
use super::{CacheLink, LogManager};
use crate::{
    Aggregate, CacheEntry, CacheKey, CacheOutcome, Error, LogId, RawEvent, Reduction, Result,
    Timestamp,
};

/// What the fold starts from.
struct Start<A> {
    aggregate: A,
    /// Index of the first event to read (the cached `through_index` when confirming).
    from: u32,
    /// The cached entry's last event, which the first row must match.
    confirm: Option<(u32, u64, Timestamp)>,
    /// When the log's first event was recorded, when the cache knows.
    created_at: Option<Timestamp>,
}

impl<A: Aggregate> LogManager<A> {
    /// Folds every event of the log into `A`, reading only events newer than a cached
    /// reduction when the cache holds one the store confirms.
    ///
    /// The result always equals a fold of all events from index 0, whatever the cache holds or
    /// however it fails; cache problems only cost time (at most the cache timeout) and are
    /// counted in [`cache_stats`](Self::cache_stats). An empty log is [`Error::LogNotFound`].
    pub async fn reduce(&self, log_id: &LogId) -> Result<Reduction<A>> {
        let span = tracing::info_span!("eventlogs.reduce", log_id = %log_id, aggregate = A::NAME);
        async {
            let started = std::time::Instant::now();
            let result = self.try_reduce(*log_id).await;
            crate::telemetry::reduce(
                result.as_ref().map(|r| (r.cache, r.events_read)),
                started.elapsed(),
            );
            match &result {
                Ok(r) => tracing::debug!(
                    through_index = r.through_index,
                    events_read = r.events_read,
                    cache = ?r.cache,
                    "reduced"
                ),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "reduce failed with a retryable error")
                }
                Err(e) => tracing::debug!(error = %e, kind = e.kind().as_str(), "reduce failed"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn try_reduce(&self, log_id: LogId) -> Result<Reduction<A>> {
        let key = self.cache_key(log_id);
        let (cached, mut outcome) = match &self.inner.cache {
            Some(link) if link.reads.should_read() => read_cache::<A>(link, &key).await,
            Some(link) => {
                bump(&link.counters.skipped_reads);
                tracing::debug!(key = %key, "cache not asked: recent reads did not pay");
                (None, CacheOutcome::Skipped)
            }
            None => (None, CacheOutcome::Disabled),
        };
        if let Some(entry) = cached {
            // What the read spares when the store confirms it: every event before the cached one.
            let spared = u64::from(entry.through_index);
            let start = Start {
                from: entry.through_index,
                confirm: Some((entry.through_index, entry.fingerprint, entry.reduced_at)),
                created_at: Some(entry.created_at),
                aggregate: entry.aggregate,
            };
            if let Some(reduction) = self.fold(log_id, start, CacheOutcome::Hit).await? {
                if let Some(link) = &self.inner.cache {
                    bump(&link.counters.hits);
                    link.reads.record(spared);
                }
                self.write_back(&key, &reduction, false);
                return Ok(reduction);
            }
            outcome = CacheOutcome::Stale;
            if let Some(link) = &self.inner.cache {
                bump(&link.counters.stale);
                tracing::info!(key = %key, "cached reduction not confirmed by the store; folding from index 0");
            }
        }
        if let Some(link) = &self.inner.cache {
            if outcome != CacheOutcome::Skipped {
                // A miss, an unusable entry or a failure: the read spared nothing.
                link.reads.record(0);
            }
        }
        let start = Start {
            aggregate: A::default(),
            from: 0,
            confirm: None,
            created_at: None,
        };
        let reduction = self
            .fold(log_id, start, outcome)
            .await?
            .ok_or(Error::LogNotFound { log_id })?;
        let purge = matches!(outcome, CacheOutcome::Stale | CacheOutcome::Corrupt);
        self.write_back(&key, &reduction, purge);
        Ok(reduction)
    }

    /// Folds the stream from `start`. `None` when a cached start is not confirmed by its first
    /// row, or when the log has no events.
    async fn fold(
        &self,
        log_id: LogId,
        start: Start<A>,
        cache: CacheOutcome,
    ) -> Result<Option<Reduction<A>>> {
        let mut stream = self.inner.store.stream(&log_id, start.from).await?;
        let mut aggregate = start.aggregate;
        let mut created_at = start.created_at;
        let mut events_read = 0u64;
        // The confirmed cached event, then the last event folded: its fingerprint is computed
        // once, at the end, not for every row.
        let mut confirmed: Option<(u32, u64, Timestamp)> = None;
        let mut last: Option<RawEvent> = None;
        if let Some((index, fingerprint, cached_at)) = start.confirm {
            match stream.next().await.transpose()? {
                Some(raw) if raw.index == index && raw.fingerprint() == fingerprint => {
                    events_read = 1;
                    confirmed = Some((index, fingerprint, cached_at));
                }
                _ => return Ok(None),
            }
        }
        let mut expected = confirmed.map_or(Some(0), |(i, _, _)| i.checked_add(1));
        while let Some(raw) = stream.next().await.transpose()? {
            if Some(raw.index) != expected {
                return Err(Error::Corrupt {
                    log_id,
                    index: u64::from(raw.index),
                    reason: format!(
                        "the store returned index {} where {expected:?} was due",
                        raw.index
                    ),
                });
            }
            let record = self.inner.upcasters.decode(&log_id, &raw)?;
            created_at.get_or_insert(record.recorded_at);
            aggregate.apply(&record);
            events_read += 1;
            expected = raw.index.checked_add(1);
            last = Some(raw);
        }
        let end = match last {
            Some(raw) => Some((raw.index, raw.fingerprint(), Timestamp::now())),
            None => confirmed,
        };
        Ok(
            end.map(|(through_index, fingerprint, reduced_at)| Reduction {
                log_id,
                reduced_at,
                created_at: created_at.unwrap_or(reduced_at),
                through_index: u64::from(through_index),
                aggregate,
                events_read,
                cache,
                fingerprint,
            }),
        )
    }

    /// Hands a reduction to the writer when the write pays for itself (it folded at least
    /// `min_events_per_write` events the cache did not hold, and the policy agrees), and a bad
    /// entry's removal whatever the reduction.
    fn write_back(&self, key: &CacheKey, reduction: &Reduction<A>, purge: bool) {
        let Some(link) = &self.inner.cache else {
            return;
        };
        let entry = if new_events(reduction) >= link.min_events_per_write
            && self.inner.policy.should_cache(reduction)
        {
            encode(link, key, reduction)
        } else {
            None
        };
        if entry.is_some() || purge {
            link.writer.submit(key.clone(), Job { purge, entry });
        }
    }
}

/// How many events `reduction` folded beyond what the cache held: on a hit, the events read
/// after the one that confirmed the entry; otherwise every event read (from index 0).
fn new_events<A>(reduction: &Reduction<A>) -> u64 {
    match reduction.cache {
        CacheOutcome::Hit => reduction.events_read.saturating_sub(1),
        _ => reduction.events_read,
    }
}

fn encode<A: Aggregate>(
    link: &CacheLink,
    key: &CacheKey,
    reduction: &Reduction<A>,
) -> Option<(u32, Vec<u8>)> {
    // A reduction's index came from the store, which keeps `u32` indexes.
    let through_index = u32::try_from(reduction.through_index).ok()?;
    let entry = CacheEntry {
        through_index,
        fingerprint: reduction.fingerprint,
        reduced_at: reduction.reduced_at,
        created_at: reduction.created_at,
        aggregate: &reduction.aggregate,
    };
    let encoded = match &link.keys {
        Some(keys) => entry.encode_signed(key, keys),
        None => entry.encode(key),
    };
    match encoded {
        Ok(bytes) if bytes.len() <= link.max_entry_bytes => Some((through_index, bytes)),
        Ok(bytes) => {
            bump(&link.counters.dropped_writes);
            tracing::warn!(key = %key, size = bytes.len(), max = link.max_entry_bytes, "reduction over the cache entry limit; not cached");
            None
        }
        Err(error) => {
            bump(&link.counters.dropped_writes);
            tracing::warn!(key = %key, %error, "reduction does not encode; not cached");
            None
        }
    }
}

/// The entry in `bytes`, authenticated when the link has keys.
fn decode<A: Aggregate>(
    link: &CacheLink,
    key: &CacheKey,
    bytes: &[u8],
) -> Result<CacheEntry<A>, crate::backend::EntryError> {
    match &link.keys {
        Some(keys) => CacheEntry::decode_signed(key, bytes, link.max_entry_bytes, keys),
        None => CacheEntry::decode(key, bytes, link.max_entry_bytes),
    }
}

/// Reads and decodes the cached entry; every failure is a miss, counted and logged.
async fn read_cache<A: Aggregate>(
    link: &CacheLink,
    key: &CacheKey,
) -> (Option<CacheEntry<A>>, CacheOutcome) {
    let span = tracing::debug_span!("eventlogs.cache.get", key = %key);
    let read = tokio::time::timeout(link.timeout, link.cache.get(key))
        .instrument(span)
        .await;
    let counters = &link.counters;
    match read {
        Ok(Ok(Some(bytes))) => match decode::<A>(link, key, &bytes) {
            Ok(entry) => (Some(entry), CacheOutcome::Hit),
            Err(error) => {
                bump(&counters.corrupt);
                tracing::warn!(key = %key, %error, "cache entry unusable; folding from index 0");
                (None, CacheOutcome::Corrupt)
            }
        },
        Ok(Ok(None)) => {
            bump(&counters.misses);
            tracing::debug!(key = %key, "cache miss");
            (None, CacheOutcome::Miss)
        }
        // The cache's own deadline may fire before ours: a timeout is a timeout, whichever
        // layer notices it first.
        Ok(Err(Error::Timeout { operation, after })) => {
            bump(&counters.timeouts);
            tracing::warn!(key = %key, operation, timeout = ?after, "cache read timed out; treated as a miss");
            (None, CacheOutcome::Failed)
        }
        Ok(Err(error)) => {
            bump(&counters.errors);
            tracing::warn!(key = %key, %error, "cache read failed; treated as a miss");
            (None, CacheOutcome::Failed)
        }
        Err(_) => {
            bump(&counters.timeouts);
            tracing::warn!(key = %key, timeout = ?link.timeout, "cache read timed out; treated as a miss");
            (None, CacheOutcome::Failed)
        }
    }
}
