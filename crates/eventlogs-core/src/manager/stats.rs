//! Cache counters: what the cache did for `reduce` and what the background writer stored or dropped.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::telemetry;

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

#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) hits: Counted,
    pub(crate) misses: Counted,
    pub(crate) skipped_reads: Counted,
    pub(crate) errors: Counted,
    pub(crate) timeouts: Counted,
    pub(crate) corrupt: Counted,
    pub(crate) stale: Counted,
    pub(crate) writes: Counted,
    pub(crate) writes_superseded: Counted,
    pub(crate) write_errors: Counted,
    pub(crate) dropped_writes: Counted,
}

pub(crate) fn bump(counter: &Counted) {
    counter.value.fetch_add(1, Ordering::Relaxed);
    (counter.emit)();
}

/// A counter of [`Counters`], also emitted as a metric (see [`crate::telemetry`]).
pub(crate) struct Counted {
    value: AtomicU64,
    emit: fn(),
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl Counted {
    const fn new(emit: fn()) -> Self {
        Self {
            value: AtomicU64::new(0),
            emit,
        }
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            hits: Counted::new(|| telemetry::cache_read("hit")),
            misses: Counted::new(|| telemetry::cache_read("miss")),
            skipped_reads: Counted::new(|| telemetry::cache_read("skipped")),
            errors: Counted::new(|| telemetry::cache_read("error")),
            timeouts: Counted::new(|| telemetry::cache_read("timeout")),
            corrupt: Counted::new(|| telemetry::cache_read("corrupt")),
            stale: Counted::new(|| telemetry::cache_read("stale")),
            writes: Counted::new(|| telemetry::cache_write("written")),
            writes_superseded: Counted::new(|| telemetry::cache_write("superseded")),
            write_errors: Counted::new(|| telemetry::cache_write("error")),
            dropped_writes: Counted::new(|| telemetry::cache_write("dropped")),
        }
    }
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |c: &Counted| c.value.load(Ordering::Relaxed);
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
