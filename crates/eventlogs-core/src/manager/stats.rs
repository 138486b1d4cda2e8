//! Cache counters: what the cache did for `reduce` and what the background writer stored or dropped.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// A snapshot of a [`LogManager`](crate::LogManager)'s cache counters since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reduces that used a confirmed cached value.
    pub hits: u64,
    /// Reduces that found no entry.
    pub misses: u64,
    /// Reduces that did not ask the cache, because recent reads spared fewer events than they
    /// cost ([`CacheReads::Adaptive`](crate::CacheReads::Adaptive)).
    pub skipped_reads: u64,
    /// Cache reads that failed (errors); each was treated as a miss.
    pub errors: u64,
    /// Cache reads that passed the cache timeout; each was treated as a miss.
    pub timeouts: u64,
    /// Entries that did not decode (damaged, truncated, oversized, another key's).
    pub corrupt: u64,
    /// Entries that decoded but whose last event the store no longer confirms.
    pub stale: u64,
    /// Entries the background writer stored.
    pub writes: u64,
    /// Writes the cache refused because it held a newer reduction.
    pub writes_superseded: u64,
    /// Writes that failed or timed out.
    pub write_errors: u64,
    /// Writes dropped before they were sent: queue full, no runtime, or entry over the size limit.
    pub dropped_writes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) skipped_reads: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) stale: AtomicU64,
    pub(crate) writes: AtomicU64,
    pub(crate) writes_superseded: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) dropped_writes: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            hits: get(&self.hits),
            misses: get(&self.misses),
            skipped_reads: get(&self.skipped_reads),
            errors: get(&self.errors),
            timeouts: get(&self.timeouts),
            corrupt: get(&self.corrupt),
            stale: get(&self.stale),
            writes: get(&self.writes),
            writes_superseded: get(&self.writes_superseded),
            write_errors: get(&self.write_errors),
            dropped_writes: get(&self.dropped_writes),
        }
    }
}
