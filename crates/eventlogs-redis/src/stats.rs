//! Counters of what the Redis cache answered, and their snapshot [`RedisCacheStats`].

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of a [`RedisReductionCache`](crate::RedisReductionCache)'s counters since it
/// was built (shared by its clones).
///
/// These count Redis calls; whether a found entry was usable is counted by the
/// `LogManager`'s `cache_stats()` (a hit here can be a corrupt or stale entry there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RedisCacheStats {
    /// `get` calls that found an entry.
    pub hits: u64,
    /// `get` calls that found nothing.
    pub misses: u64,
    /// `put` calls that stored their entry.
    pub writes: u64,
    /// `put` calls refused because Redis held an entry with an equal or higher `through_index`.
    pub writes_superseded: u64,
    /// `delete` calls that succeeded.
    pub deletes: u64,
    /// Calls that failed with an error other than a timeout (connection down, error reply).
    pub errors: u64,
    /// Calls that passed their deadline.
    pub timeouts: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) writes_superseded: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
}

/// Adds one.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// The current values.
    pub(crate) fn snapshot(&self) -> RedisCacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisCacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            writes: get(&self.writes),
            writes_superseded: get(&self.writes_superseded),
            deletes: get(&self.deletes),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
        }
    }
}
