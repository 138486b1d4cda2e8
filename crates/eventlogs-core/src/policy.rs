//! Caching policies: which reductions the background writer stores in the cache.

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::Reduction;

/// Decides whether a fresh reduction is worth caching.
///
/// The manager asks only about reductions that folded at least
/// [`min_events_per_write`](crate::LogManagerBuilder::min_events_per_write) events the cache did
/// not hold (32 by default), so a policy narrows that rule and never widens it.
///
/// Any `Fn(&Reduction<A>) -> bool` is a policy:
///
/// ```
/// use eventlogs_core::{CachingPolicy, Reduction, LogId};
/// let big_logs_only = |r: &Reduction<u64>| r.len() >= 100;
/// assert!(!big_logs_only.should_cache(&Reduction::new(LogId::new(), 3, 0)));
/// ```
pub trait CachingPolicy<A>: Send + Sync + 'static {
    /// Whether `reduction` should be written to the cache.
    fn should_cache(&self, reduction: &Reduction<A>) -> bool;
}

impl<A, F> CachingPolicy<A> for F
where
    F: Fn(&Reduction<A>) -> bool + Send + Sync + 'static,
{
    fn should_cache(&self, reduction: &Reduction<A>) -> bool {
        self(reduction)
    }
}

/// Caches every reduction that passes
/// [`min_events_per_write`](crate::LogManagerBuilder::min_events_per_write) (the default
/// policy).
#[derive(Debug, Clone, Copy, Default)]
pub struct Always;

impl<A> CachingPolicy<A> for Always {
    fn should_cache(&self, _: &Reduction<A>) -> bool {
        true
    }
}

/// When [`reduce`](crate::LogManager::reduce) asks the cache
/// ([`LogManagerBuilder::cache_reads`](crate::LogManagerBuilder::cache_reads)).
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
/// // Ask the cache on every reduce, even when its answers spare nothing.
/// let logs = LogManager::<Counter>::builder(store)
///     .cache(cache)
///     .cache_reads(CacheReads::Always)
///     .build();
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheReads {
    /// Ask the cache while its answers pay for the round trip (the default): while recent reads
    /// spared, on average, at least
    /// [`min_events_per_write`](crate::LogManagerBuilder::min_events_per_write) events of
    /// folding each. Otherwise (logs too short to be cached, a cold or failing cache) ask on one
    /// reduce in 16, which keeps the average up to date, and fold the others from index 0
    /// without a round trip ([`CacheOutcome::Skipped`](crate::CacheOutcome::Skipped)). A new
    /// manager reads the cache for its first few dozen reduces whatever they find.
    #[default]
    Adaptive,
    /// Ask the cache on every reduce.
    Always,
}

/// Caches nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Never;

impl<A> CachingPolicy<A> for Never {
    fn should_cache(&self, _: &Reduction<A>) -> bool {
        false
    }
}

/// Caches by the number of events in the log: short logs are cheap to fold.
///
/// ```
/// use eventlogs_core::{CachingPolicy, LogLengthPolicy, Reduction, LogId};
/// let p = LogLengthPolicy::at_least(10);
/// assert!(!CachingPolicy::<()>::should_cache(&p, &Reduction::new(LogId::new(), 8, ())));
/// assert!(CachingPolicy::<()>::should_cache(&p, &Reduction::new(LogId::new(), 9, ())));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLengthPolicy {
    lengths: RangeInclusive<u64>,
}

impl LogLengthPolicy {
    /// Caches logs of at least `min` events.
    #[must_use]
    pub fn at_least(min: u64) -> Self {
        Self {
            lengths: min..=u64::MAX,
        }
    }

    /// Caches logs of at most `max` events.
    #[must_use]
    pub fn until(max: u64) -> Self {
        Self { lengths: 0..=max }
    }

    /// Caches logs of `min` to `max` events, both included.
    #[must_use]
    pub fn between(min: u64, max: u64) -> Self {
        Self { lengths: min..=max }
    }
}

impl<A> CachingPolicy<A> for LogLengthPolicy {
    fn should_cache(&self, reduction: &Reduction<A>) -> bool {
        self.lengths.contains(&reduction.len())
    }
}

/// Caches by the age of the log: the time from its first event to the reduction
/// ([`Reduction::created_at`] to [`Reduction::reduced_at`]), measured on the store's record, so
/// it holds for ids of any origin (a ULID, or a UUID from another system).
///
/// `LogAgePolicy::until(Duration::from_secs(86_400))` caches only logs created in the last
/// day, for workloads where old entities are rarely read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAgePolicy {
    ages: RangeInclusive<Duration>,
}

impl LogAgePolicy {
    /// Caches logs at least `min` old.
    #[must_use]
    pub fn at_least(min: Duration) -> Self {
        Self {
            ages: min..=Duration::MAX,
        }
    }

    /// Caches logs at most `max` old.
    #[must_use]
    pub fn until(max: Duration) -> Self {
        Self {
            ages: Duration::ZERO..=max,
        }
    }

    /// Caches logs aged `min` to `max`, both included.
    #[must_use]
    pub fn between(min: Duration, max: Duration) -> Self {
        Self { ages: min..=max }
    }
}

impl<A> CachingPolicy<A> for LogAgePolicy {
    fn should_cache(&self, reduction: &Reduction<A>) -> bool {
        let age = reduction.created_at.elapsed_until(reduction.reduced_at);
        self.ages.contains(&age)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogId, Timestamp};
    use ulid::Ulid;

    fn at(len: u64) -> Reduction<()> {
        Reduction::new(LogId::new(), len - 1, ())
    }

    #[test]
    fn length_policies_bound_the_log_length() {
        let between = LogLengthPolicy::between(5, 10);
        assert!(!between.should_cache(&at(4)));
        assert!(between.should_cache(&at(5)));
        assert!(between.should_cache(&at(10)));
        assert!(!between.should_cache(&at(11)));
        assert!(LogLengthPolicy::until(3).should_cache(&at(3)));
        assert!(!LogLengthPolicy::until(3).should_cache(&at(4)));
        assert!(CachingPolicy::<()>::should_cache(&Always, &at(1)));
        assert!(!CachingPolicy::<()>::should_cache(&Never, &at(1)));
    }

    #[test]
    fn age_policies_use_the_first_event_time_not_the_id() {
        // An id whose time part says 1970 (a UUID from elsewhere): the age comes from the
        // first event, an hour before the reduction.
        let id = LogId::from_ulid(Ulid::from_parts(0, 7));
        let mut r = Reduction::new(id, 0, ());
        r.created_at = Timestamp::from_unix_micros(r.reduced_at.as_unix_micros() - 3_600_000_000);
        assert!(LogAgePolicy::at_least(Duration::from_secs(3_000)).should_cache(&r));
        assert!(!LogAgePolicy::until(Duration::from_secs(3_000)).should_cache(&r));
        let band = LogAgePolicy::between(Duration::from_secs(3_500), Duration::from_secs(3_700));
        assert!(band.should_cache(&r));
    }
}
