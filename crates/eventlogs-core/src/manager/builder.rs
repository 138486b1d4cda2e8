//! `LogManagerBuilder`: the cache, caching policy, timeouts and queue bounds of a `LogManager`.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{read_gate::ReadGate, stats::Counters, writer::Writer, CacheLink, Inner, LogManager};
use crate::{
    Aggregate, Always, CacheKeys, CacheReads, CachingPolicy, EventStore, ReductionCache,
    RetryPolicy, Upcasters,
};

/// Configures a [`LogManager`]. Every setting has a default; only the store is required. The
/// cache entry size limit is the cache's own ([`ReductionCache::max_entry_bytes`]).
///
/// ```
/// # use eventlogs_core::*;
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Default, Serialize, Deserialize)] struct Counter(u64);
/// # impl Aggregate for Counter {
/// #     type Event = u64; const NAME: &'static str = "counter"; const VERSION: u32 = 1;
/// #     fn apply(&mut self, r: &EventRecord<u64>) { self.0 += r.event; }
/// # }
/// # fn demo(store: impl EventStore, cache: impl ReductionCache) {
/// let logs = LogManager::<Counter>::builder(store)
///     .cache(cache)
///     .caching_policy(LogLengthPolicy::at_least(20))
///     .cache_timeout(std::time::Duration::from_millis(25))
///     .build();
/// # }
/// ```
pub struct LogManagerBuilder<A: Aggregate> {
    store: Arc<dyn EventStore>,
    cache: Option<Arc<dyn ReductionCache>>,
    policy: Box<dyn CachingPolicy<A>>,
    cache_timeout: Duration,
    retry: RetryPolicy,
    queue_capacity: usize,
    write_concurrency: usize,
    min_events_per_write: u64,
    cache_reads: CacheReads,
    upcasters: Upcasters,
    cache_keys: Option<CacheKeys>,
    _aggregate: PhantomData<fn() -> A>,
}

/// Default of [`LogManagerBuilder::min_events_per_write`], from the benchmarks (see the
/// README's cache section): below it, a write costs more than the reads it spares.
const DEFAULT_MIN_EVENTS_PER_WRITE: u64 = 32;

/// Whether an aggregate name can sit in a cache key unambiguously.
const fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 128 {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b':' || b == b'{' || b == b'}' || b.is_ascii_whitespace() || b.is_ascii_control() {
            return false;
        }
        i += 1;
    }
    true
}

struct NameCheck<A>(PhantomData<A>);

impl<A: Aggregate> NameCheck<A> {
    const OK: () = assert!(
        valid_name(A::NAME),
        "Aggregate::NAME must be 1 to 128 bytes without ':', '{{', '}}', whitespace or control characters"
    );
}

impl<A: Aggregate> LogManagerBuilder<A> {
    pub(super) fn new(store: Arc<dyn EventStore>) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = NameCheck::<A>::OK;
        Self {
            store,
            cache: None,
            policy: Box::new(Always),
            cache_timeout: Duration::from_millis(50),
            retry: RetryPolicy::default(),
            queue_capacity: 10_000,
            write_concurrency: 8,
            min_events_per_write: DEFAULT_MIN_EVENTS_PER_WRITE,
            cache_reads: CacheReads::Adaptive,
            upcasters: Upcasters::new(),
            cache_keys: None,
            _aggregate: PhantomData,
        }
    }

    /// Caches reductions in `cache` (default: no cache).
    #[must_use]
    pub fn cache(mut self, cache: impl ReductionCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Which reductions to cache (default: [`Always`]), among those that pass
    /// [`min_events_per_write`](Self::min_events_per_write).
    #[must_use]
    pub fn caching_policy(mut self, policy: impl CachingPolicy<A>) -> Self {
        self.policy = Box::new(policy);
        self
    }

    /// Writes a reduction to the cache only when it folded at least `events` events that the
    /// cache did not hold (default 32): on a miss, the whole log; on a hit, the events after the
    /// cached one. `1` writes every reduction that folded anything new (the rule before this
    /// setting existed); `0` is taken as `1`.
    ///
    /// A write costs a Redis call in the background and server time; it pays for itself only
    /// when it spares later reads more events than that. So logs shorter than `events` are never
    /// written (folding them costs about what a cache hit costs), and a cached reduction is
    /// refreshed once `events` new events have piled up behind it, so a read never folds more
    /// than `events - 1` events beyond the cache for want of a write. The
    /// [caching policy](Self::caching_policy) is asked only about reductions that pass this rule.
    ///
    /// ```
    /// # use eventlogs_core::*;
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Default, Serialize, Deserialize)] struct Counter(u64);
    /// # impl Aggregate for Counter {
    /// #     type Event = u64; const NAME: &'static str = "counter"; const VERSION: u32 = 1;
    /// #     fn apply(&mut self, r: &EventRecord<u64>) { self.0 += r.event; }
    /// # }
    /// # fn demo(store: impl EventStore, cache: impl ReductionCache) {
    /// // Aggregates whose every event is costly to fold: cache from the 4th event on, and
    /// // refresh the entry every 4 events.
    /// let logs = LogManager::<Counter>::builder(store)
    ///     .cache(cache)
    ///     .min_events_per_write(4)
    ///     .build();
    /// # }
    /// ```
    #[must_use]
    pub fn min_events_per_write(mut self, events: u64) -> Self {
        self.min_events_per_write = events.max(1);
        self
    }

    /// When `reduce` asks the cache (default: [`CacheReads::Adaptive`], only while its answers
    /// spare, on average, at least [`min_events_per_write`](Self::min_events_per_write) events
    /// of folding; [`CacheReads::Always`] asks every time).
    ///
    /// A read is a round trip before the store's; where logs are too short to be cached it can
    /// only cost, so the adaptive rule asks on one reduce in 16 until reads pay again.
    #[must_use]
    pub fn cache_reads(mut self, reads: CacheReads) -> Self {
        self.cache_reads = reads;
        self
    }

    /// The deadline of each cache read and write (default 50 ms). A read that passes it is a
    /// miss, so it bounds how much a slow cache can delay `reduce`.
    #[must_use]
    pub fn cache_timeout(mut self, timeout: Duration) -> Self {
        self.cache_timeout = timeout;
        self
    }

    /// How [`execute`](LogManager::execute) retries a command that lost a race (default:
    /// [`RetryPolicy::default`]).
    #[must_use]
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How many distinct logs may wait for a cache write (default 10,000). Writes for a log
    /// already waiting are coalesced; past the bound they are dropped and counted.
    #[must_use]
    pub fn write_queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// How many cache writes the background writer sends at once (default 8).
    #[must_use]
    pub fn write_concurrency(mut self, concurrency: usize) -> Self {
        self.write_concurrency = concurrency;
        self
    }

    /// How this manager's events evolved (default: none, version 1): new events are written
    /// at [`Upcasters::version`], and every read rewrites older events through the steps
    /// after their version before deserializing them. Cached reductions are keyed with
    /// [`Upcasters::fingerprint`], so an entry folded under another chain is never read. See
    /// the README's "Evolving events".
    #[must_use]
    pub fn upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Authenticates cache entries with `keys` (default: none): entries are written with a
    /// keyed MAC, and an entry without a MAC that an accepted key verifies is corrupt (a
    /// miss, refolded and replaced). Use it when anyone who can write to the cache must not
    /// be able to change what `reduce` returns; see [`CacheKeys`] for rotation.
    #[must_use]
    pub fn cache_keys(mut self, keys: CacheKeys) -> Self {
        self.cache_keys = Some(keys);
        self
    }

    /// Builds the manager. The background writer starts with the first cache write.
    #[must_use]
    pub fn build(self) -> LogManager<A> {
        let cache = self.cache.map(|cache| {
            let counters = Arc::new(Counters::default());
            CacheLink {
                max_entry_bytes: cache.max_entry_bytes(),
                writer: Writer::new(
                    Arc::clone(&cache),
                    Arc::clone(&counters),
                    self.cache_timeout,
                    self.queue_capacity,
                    self.write_concurrency,
                ),
                cache,
                counters,
                timeout: self.cache_timeout,
                min_events_per_write: self.min_events_per_write,
                reads: ReadGate::new(self.cache_reads, self.min_events_per_write),
                keys: self.cache_keys,
            }
        });
        LogManager {
            inner: Arc::new(Inner {
                store: self.store,
                cache,
                policy: self.policy,
                retry: self.retry,
                upcasters: self.upcasters,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_that_would_blur_a_cache_key_are_invalid() {
        assert!(valid_name("account"));
        assert!(valid_name("Account.v2-summary"));
        for bad in ["", "a:b", "{a}", "a b", "a\nb"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert!(!valid_name(&"x".repeat(129)));
    }
}
