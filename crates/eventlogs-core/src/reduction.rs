//! `Reduction<A>`: an aggregate with the log position it was folded through.

use serde::{Deserialize, Serialize};

use crate::{LogId, LogState, Timestamp};

/// How the cache took part in a [`reduce`](crate::LogManager::reduce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CacheOutcome {
    /// No cache is configured.
    Disabled,
    /// A cached reduction was confirmed by the store and used.
    Hit,
    /// The cache held nothing for the log.
    Miss,
    /// The cache was not asked, because recent reads spared fewer events than they cost (see
    /// [`CacheReads::Adaptive`](crate::CacheReads::Adaptive)); folded from index 0.
    Skipped,
    /// The cache failed or timed out; treated as a miss.
    Failed,
    /// The cached entry could not be decoded, or belongs to another key; refolded from 0.
    Corrupt,
    /// The cached entry decoded but the store no longer has its last event (restored or
    /// rewritten log, or an entry ahead of the log); refolded from 0.
    Stale,
}

/// An aggregate folded from a log's events `0..=through_index`.
///
/// Two reductions are equal when they are the same state: the same log, folded through the
/// same index, to equal aggregates. When and how they were computed (`reduced_at`,
/// `events_read`, `cache`) does not take part, so a reduction from the cache equals one
/// folded from index 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reduction<A> {
    /// The log reduced.
    pub log_id: LogId,
    /// When the aggregate was folded (this machine's clock; for a cache hit with no new
    /// events, when the cached value was folded).
    pub reduced_at: Timestamp,
    /// When the log's first event was recorded (the store's clock): the log's age, whatever
    /// its id looks like. [`LogAgePolicy`](crate::LogAgePolicy) measures from it.
    pub created_at: Timestamp,
    /// The index of the last event folded.
    pub through_index: u64,
    /// The folded state.
    pub aggregate: A,
    /// How many events this call read from the store (including the one that confirmed a
    /// cached value).
    #[serde(skip)]
    pub events_read: u64,
    /// How the cache took part.
    #[serde(skip, default = "disabled")]
    pub cache: CacheOutcome,
    #[serde(skip)]
    pub(crate) fingerprint: u64,
}

fn disabled() -> CacheOutcome {
    CacheOutcome::Disabled
}

impl<A: PartialEq> PartialEq for Reduction<A> {
    fn eq(&self, other: &Self) -> bool {
        self.log_id == other.log_id
            && self.through_index == other.through_index
            && self.aggregate == other.aggregate
    }
}

impl<A: Eq> Eq for Reduction<A> {}

impl<A> Reduction<A> {
    /// The state to append with: the next index is `through_index + 1`.
    #[must_use]
    pub fn state(&self) -> LogState {
        LogState::new(self.log_id, self.len())
    }

    /// Number of events in the log when it was reduced.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.through_index + 1
    }

    /// Always false: a reduction folds at least one event.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Builds a reduction by hand, for tests of caching policies: folded now, of a log created
    /// now.
    #[must_use]
    pub fn new(log_id: LogId, through_index: u64, aggregate: A) -> Self {
        let now = Timestamp::now();
        Self {
            log_id,
            reduced_at: now,
            created_at: now,
            through_index,
            aggregate,
            events_read: 0,
            cache: CacheOutcome::Disabled,
            fingerprint: 0,
        }
    }
}
