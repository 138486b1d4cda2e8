//! `FakeReductionCache`: an in-memory reduction cache that reports operations and injects faults.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use eventlogs_core::{
    backend::{CacheEntry, CacheKey},
    Error, ReductionCache, Result,
};
use tokio::sync::mpsc;

/// A fault the cache injects into every call until it is cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheFault {
    /// Every call fails with [`Error::Unavailable`].
    Fail,
    /// Every call waits this long first.
    Delay(Duration),
    /// Every call waits forever (as a paused server would).
    Hang,
    /// `get` returns the stored bytes with one bit flipped.
    Corrupt,
    /// `get` returns the bytes stored under some other key.
    Foreign,
}

/// One call the cache answered, sent to the channel of [`FakeReductionCache::with_operations`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOperation {
    /// A read, and whether it found an entry.
    Get {
        /// The key read.
        key: String,
        /// Whether bytes were returned.
        found: bool,
    },
    /// A compare-and-set write, and whether it stored.
    Put {
        /// The key written.
        key: String,
        /// The reduction's last index.
        through_index: u32,
        /// Whether the entry was stored.
        stored: bool,
    },
    /// A delete.
    Delete {
        /// The key deleted.
        key: String,
    },
}

/// An in-memory [`ReductionCache`] with the same compare-and-set rule as the Redis cache.
///
/// ```
/// # async fn demo() {
/// use eventlogs_fake::{CacheFault, CacheOperation, FakeReductionCache};
/// let (cache, mut ops) = FakeReductionCache::with_operations(64);
/// cache.set_fault(Some(CacheFault::Fail)); // every call now fails; reduce still succeeds
/// cache.set_fault(None);
/// # let _ = ops.try_recv();
/// # }
/// ```
#[derive(Debug, Default)]
pub struct FakeReductionCache {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    fault: Mutex<Option<CacheFault>>,
    operations: Option<mpsc::Sender<CacheOperation>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl FakeReductionCache {
    /// An empty cache.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache that reports every call it answers on a channel of `capacity`
    /// operations. When the channel is full, further reports are dropped (a call never waits).
    #[must_use]
    pub fn with_operations(capacity: usize) -> (Self, mpsc::Receiver<CacheOperation>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let cache = Self {
            operations: Some(tx),
            ..Self::default()
        };
        (cache, rx)
    }

    /// Injects `fault` into every following call; `None` clears it.
    pub fn set_fault(&self, fault: Option<CacheFault>) {
        *lock(&self.fault) = fault;
    }

    /// Number of stored entries.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Whether the cache is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn report(&self, operation: CacheOperation) {
        if let Some(tx) = &self.operations {
            let _ = tx.try_send(operation);
        }
    }

    /// Applies the current fault's waiting or failing part.
    async fn before_call(&self) -> Result<Option<CacheFault>> {
        let fault = lock(&self.fault).clone();
        match fault {
            Some(CacheFault::Fail) => Err(Error::unavailable("fake cache", "injected failure")),
            Some(CacheFault::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(None)
            }
            Some(CacheFault::Hang) => std::future::pending().await,
            other => Ok(other),
        }
    }
}

#[async_trait]
impl ReductionCache for FakeReductionCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let fault = self.before_call().await?;
        let found = {
            let entries = lock(&self.entries);
            match fault {
                Some(CacheFault::Foreign) => entries
                    .iter()
                    .find(|(k, _)| k.as_str() != key.as_str())
                    .map(|(_, v)| v.clone()),
                _ => entries.get(key.as_str()).cloned(),
            }
        };
        let found = match (fault, found) {
            (Some(CacheFault::Corrupt), Some(mut bytes)) if !bytes.is_empty() => {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x10;
                Some(bytes)
            }
            (_, found) => found,
        };
        self.report(CacheOperation::Get {
            key: key.to_string(),
            found: found.is_some(),
        });
        Ok(found)
    }

    async fn put(&self, key: &CacheKey, through_index: u32, entry: &[u8]) -> Result<bool> {
        self.before_call().await?;
        let stored = {
            let mut entries = lock(&self.entries);
            let current = entries
                .get(key.as_str())
                .and_then(|bytes| CacheEntry::<()>::peek_through_index(bytes));
            let replace = current.is_none_or(|current| current < through_index);
            if replace {
                entries.insert(key.to_string(), entry.to_vec());
            }
            replace
        };
        self.report(CacheOperation::Put {
            key: key.to_string(),
            through_index,
            stored,
        });
        Ok(stored)
    }

    async fn delete(&self, key: &CacheKey) -> Result<()> {
        self.before_call().await?;
        lock(&self.entries).remove(key.as_str());
        self.report(CacheOperation::Delete {
            key: key.to_string(),
        });
        Ok(())
    }
}
