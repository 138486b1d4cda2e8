//! `LogManager<A>`: the API users call — execute, create, append, reduce, load, stream, flush.

mod append;
mod builder;
mod command;
mod delete;
mod read;
mod read_gate;
mod reduce;
mod stats;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use builder::LogManagerBuilder;
pub use command::Executed;
pub use stats::CacheStats;

use crate::{
    Aggregate, CacheKey, CachingPolicy, EventStore, LogId, ReductionCache, RetryPolicy, Upcasters,
};

/// Reads and writes the logs of one aggregate type over an [`EventStore`], with an optional
/// [`ReductionCache`].
///
/// Cheap to clone (the clones share the store, cache and background writer); build one per
/// aggregate type with [`LogManager::builder`].
pub struct LogManager<A: Aggregate> {
    inner: Arc<Inner<A>>,
}

struct Inner<A: Aggregate> {
    store: Arc<dyn EventStore>,
    cache: Option<CacheLink>,
    policy: Box<dyn CachingPolicy<A>>,
    retry: RetryPolicy,
    upcasters: Upcasters,
}

struct CacheLink {
    cache: Arc<dyn ReductionCache>,
    writer: writer::Writer,
    counters: Arc<stats::Counters>,
    timeout: Duration,
    max_entry_bytes: usize,
    /// The fewest new events a reduction must have folded to be written.
    min_events_per_write: u64,
    /// Whether a reduce asks the cache.
    reads: read_gate::ReadGate,
    /// Keys that sign and authenticate entries, if any.
    keys: Option<crate::CacheKeys>,
}

impl<A: Aggregate> Clone for LogManager<A> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<A: Aggregate> fmt::Debug for LogManager<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogManager")
            .field("aggregate", &A::NAME)
            .field("version", &A::VERSION)
            .field("store", &self.inner.store)
            .field("cache", &self.inner.cache.as_ref().map(|c| &c.cache))
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> LogManager<A> {
    /// A manager over `store` with no cache.
    pub fn new(store: impl EventStore) -> Self {
        Self::builder(store).build()
    }

    /// Starts building a manager over `store` (any store, or an `Arc` of one to share it).
    pub fn builder(store: impl EventStore) -> LogManagerBuilder<A> {
        LogManagerBuilder::new(Arc::new(store))
    }

    /// The store this manager writes to.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The upcasters this manager reads and writes events with.
    #[must_use]
    pub fn upcasters(&self) -> &Upcasters {
        &self.inner.upcasters
    }

    /// The key of this manager's cached reduction of `log_id`.
    pub(crate) fn cache_key(&self, log_id: LogId) -> CacheKey {
        CacheKey::of::<A>(log_id).upcast_with(self.inner.upcasters.fingerprint())
    }

    /// What the cache has done so far; all zero without a cache.
    #[must_use]
    pub fn cache_stats(&self) -> CacheStats {
        self.inner
            .cache
            .as_ref()
            .map(|c| c.counters.snapshot())
            .unwrap_or_default()
    }

    /// Waits until every cache write queued so far has been sent (or has failed). Returns at
    /// once without a cache.
    pub async fn flush(&self) {
        if let Some(link) = &self.inner.cache {
            link.writer.flush().await;
        }
    }
}
