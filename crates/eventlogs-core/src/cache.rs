//! The `ReductionCache` trait and the key under which a reduction is cached.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{Aggregate, LogId, Result};

/// Where one aggregate's reduction of one log is cached: `{name}:v{version}:{log_id}`.
///
/// Backends put their own prefix in front. Two aggregates over one log, or two versions of one
/// aggregate, never share a key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    key: String,
    log_id: LogId,
}

impl CacheKey {
    /// The key of aggregate `A`'s reduction of `log_id`.
    #[must_use]
    pub fn of<A: Aggregate>(log_id: LogId) -> Self {
        Self::new(A::NAME, A::VERSION, log_id)
    }

    /// The key of the aggregate named `name` at schema `version` for `log_id`.
    #[must_use]
    pub fn new(name: &str, version: u32, log_id: LogId) -> Self {
        Self {
            key: format!("{name}:v{version}:{log_id}"),
            log_id,
        }
    }

    /// The key of a reduction folded from events read through upcasters with
    /// [`fingerprint`](crate::Upcasters::fingerprint): `{name}:v{version}.u{fingerprint}:{log_id}`
    /// (unchanged for 0, no upcasters).
    #[must_use]
    pub fn upcast_with(self, fingerprint: u64) -> Self {
        if fingerprint == 0 {
            return self;
        }
        let log_id = self.log_id;
        let Some(prefix) = self.key.strip_suffix(&format!(":{log_id}")) else {
            return self;
        };
        Self {
            key: format!("{prefix}.u{fingerprint:016x}:{log_id}"),
            log_id,
        }
    }

    /// The key as text, without a backend prefix.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The log the key belongs to.
    #[must_use]
    pub fn log_id(&self) -> LogId {
        self.log_id
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.key)
    }
}

/// Storage for encoded reductions (see [`CacheEntry`](crate::CacheEntry) for the bytes).
///
/// Implementations are a pure byte store with one rule: [`put`](Self::put) is an atomic
/// compare-and-set that replaces an entry only when the stored entry's `through_index` (read
/// from its header with [`CacheEntry::peek_through_index`](crate::CacheEntry::peek_through_index))
/// is lower than the new one, or when the stored bytes have no readable header. So an older
/// reduction never overwrites a newer one. Errors are reported, never hidden: the
/// [`LogManager`](crate::LogManager) turns every cache error into a miss.
#[async_trait]
pub trait ReductionCache: Send + Sync + fmt::Debug + 'static {
    /// The stored bytes, or `None`. Implementations bound what they read.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>>;

    /// Stores `entry` unless the stored entry has a `through_index` of at least
    /// `through_index`. Returns whether it stored.
    async fn put(&self, key: &CacheKey, through_index: u32, entry: &[u8]) -> Result<bool>;

    /// Removes the entry, if any.
    async fn delete(&self, key: &CacheKey) -> Result<()>;

    /// The largest entry this cache stores and reads back, in bytes. The
    /// [`LogManager`](crate::LogManager) takes its entry limit from here, so the two can never
    /// disagree. Default: [`DEFAULT_MAX_ENTRY_BYTES`].
    fn max_entry_bytes(&self) -> usize {
        DEFAULT_MAX_ENTRY_BYTES
    }
}

/// The entry size limit of a cache that sets none: 1 MiB.
pub const DEFAULT_MAX_ENTRY_BYTES: usize = 1024 * 1024;

#[async_trait]
impl<T: ReductionCache + ?Sized> ReductionCache for Arc<T> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        (**self).get(key).await
    }

    async fn put(&self, key: &CacheKey, through_index: u32, entry: &[u8]) -> Result<bool> {
        (**self).put(key, through_index, entry).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<()> {
        (**self).delete(key).await
    }

    fn max_entry_bytes(&self) -> usize {
        (**self).max_entry_bytes()
    }
}
