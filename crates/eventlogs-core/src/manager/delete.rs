//! `delete` of logs (with their cached reductions) and the retention of idempotency keys.

use std::time::Duration;

use tracing::Instrument;

use super::LogManager;
use crate::{Aggregate, LogId, Result};

/// How many idempotency keys one call of the store removes.
const KEYS_PER_CALL: u32 = 1_000;

impl<A: Aggregate> LogManager<A> {
    /// Deletes a log for good and purges this manager's cached reduction of it; returns how
    /// many events were removed (0 when it was already deleted).
    ///
    /// Afterwards every write to the id is refused with
    /// [`Error::LogDeleted`](crate::Error::LogDeleted), and so are reads and the replay of an
    /// idempotency key used on the log; subscriptions receive a deletion marker
    /// ([`FeedEvent::deleted`](crate::FeedEvent::deleted)) so read models can forget it. A
    /// delete racing appends leaves the whole log or none of it. An unknown log is
    /// [`Error::LogNotFound`](crate::Error::LogNotFound).
    ///
    /// Reductions of the log by other aggregates (other managers) are never trusted again,
    /// since the events that would confirm them are gone; delete through each manager, or
    /// purge them (`eventlogs cache purge`), to remove their bytes too.
    pub async fn delete(&self, log_id: &LogId) -> Result<u64> {
        let span = tracing::info_span!("eventlogs.delete", log_id = %log_id);
        async {
            let removed = self.inner.store.delete(log_id).await?;
            self.purge_cached(*log_id).await;
            tracing::info!(events = removed, "log deleted");
            Ok(removed)
        }
        .instrument(span)
        .await
    }

    /// [`delete`](Self::delete) for each log in turn (each one atomic on its own); returns how
    /// many events were removed in all. Stops at the first error, with the logs before it
    /// deleted: call again with the same ids (a deleted log counts 0).
    pub async fn delete_many(&self, log_ids: &[LogId]) -> Result<u64> {
        let mut removed = 0;
        for log_id in log_ids {
            removed += self.delete(log_id).await?;
        }
        Ok(removed)
    }

    /// Removes the idempotency keys stored more than `older_than` ago; returns how many. A
    /// retry with a removed key is not recognised any more and writes again, so keep keys at
    /// least as long as any client may retry (see the README's "Deleting a log").
    pub async fn remove_idempotency_keys(&self, older_than: Duration) -> Result<u64> {
        let span =
            tracing::info_span!("eventlogs.remove_idempotency_keys", older_than = ?older_than);
        async {
            let mut removed = 0;
            loop {
                let batch = self
                    .inner
                    .store
                    .remove_idempotency_keys(older_than, KEYS_PER_CALL)
                    .await?;
                removed += batch;
                if batch < u64::from(KEYS_PER_CALL) {
                    break;
                }
            }
            tracing::info!(removed, "idempotency keys removed");
            Ok(removed)
        }
        .instrument(span)
        .await
    }

    /// Removes this manager's cached reduction of `log_id`, after the writes already queued
    /// (one of them could hold it). A cache that fails is only reported: an entry left behind
    /// is never trusted, since the events that would confirm it are gone.
    async fn purge_cached(&self, log_id: LogId) {
        let Some(link) = &self.inner.cache else {
            return;
        };
        link.writer.flush().await;
        let key = self.cache_key(log_id);
        match tokio::time::timeout(link.timeout, link.cache.delete(&key)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(key = %key, error = %error, "could not purge the deleted log's cache entry");
            }
            Err(_) => {
                tracing::warn!(key = %key, timeout = ?link.timeout, "purging the deleted log's cache entry timed out");
            }
        }
    }
}
