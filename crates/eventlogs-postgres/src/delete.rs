//! Deleting a log in one statement, and the retention of idempotency keys.
//!
//! # Why a delete racing appends leaves the whole log or none of it
//!
//! The statement reads the log's last index *n*, inserts the deletion marker (`deleted = 2`)
//! at *n + 1*, the index the next append would take, and empties every event from 0 to *n*
//! in place (`deleted = 1`: no payload, metadata or key; the index and time stay). No row is
//! removed, so every index of the log stays taken:
//!
//! - an append at *n + 1* that could commit alongside the delete collides with the marker on
//!   the primary key: if the append commits first, the delete fails with a unique violation
//!   and runs again, emptying that event too; if the delete commits first, the append fails;
//! - an append at any index up to *n* (a stale state, or a statement that started before the
//!   delete committed) collides with the emptied event there, exactly as with the event
//!   itself. Removing the rows instead would let such a statement, which checked the previous
//!   event in a snapshot from before the delete, insert into the gap once the delete commits;
//! - an append past *n + 1* needs a previous event that is not part of a deleted log, and
//!   every append statement checks `deleted = 0`.
//!
//! So no reader ever sees part of the log, and every later write is refused; the store names
//! the refusal `LogDeleted` by looking at index 0. Reads of any row of a deleted log are
//! `LogDeleted`.

use eventlogs_core::{Error, LogId, Result};
use tracing::Instrument;

use crate::append::Existence;
use crate::error::{classify, query_error, Failure};
use crate::rows;
use crate::store::PostgresEventStore;

/// How many times a delete runs again after losing to an append that committed first.
const ATTEMPTS: u32 = 100;

/// `$1` log id. Returns the last index before the delete (`NULL` for no log), whether the log
/// was already deleted, and how many events were removed.
pub(crate) fn delete_sql(schema: &str) -> String {
    format!(
        r#"WITH last AS (
    SELECT max(event_index) AS n, bool_or(deleted <> 0) AS gone
    FROM {schema}.events WHERE log_id = $1::uuid
), marker AS (
    INSERT INTO {schema}.events (log_id, event_index, payload, deleted)
    SELECT $1::uuid, l.n + 1, 'null', 2 FROM last l WHERE l.n IS NOT NULL AND NOT l.gone
    RETURNING event_index
), emptied AS (
    UPDATE {schema}.events
    SET payload = 'null', metadata = NULL, idempotency_key = NULL, deleted = 1
    WHERE log_id = $1::uuid AND event_index <= (SELECT n FROM last)
      AND EXISTS (SELECT 1 FROM marker)
    RETURNING 1
)
SELECT (SELECT n FROM last), (SELECT gone FROM last), (SELECT count(*) FROM emptied)"#
    )
}

impl PostgresEventStore {
    /// Deletes a log (see the module docs): the number of events removed, 0 when it was
    /// already deleted.
    pub(crate) async fn delete_log(&self, log_id: &LogId) -> Result<u64> {
        let span = tracing::info_span!("eventlogs.postgres.delete", log_id = %log_id);
        async {
            let uuid = rows::uuid(log_id);
            for attempt in 1..=ATTEMPTS {
                let rows = match self.rows(&self.statements().delete, &[&uuid]).await? {
                    Ok(rows) => rows,
                    Err(error) => match classify(error) {
                        // An append at the marker's index committed first: delete that too.
                        Failure::IndexTaken => {
                            tracing::debug!(attempt, "delete lost to an append; running again");
                            continue;
                        }
                        Failure::Other(error) => return Err(error),
                        Failure::KeyTaken | Failure::PreviousMissing => {
                            return Err(unreadable("an unexpected constraint failed"))
                        }
                    },
                };
                let row = rows.first().ok_or_else(|| unreadable("no row"))?;
                let last: Option<i64> = row.try_get(0).map_err(|_| unreadable("last index"))?;
                let gone: Option<bool> = row.try_get(1).map_err(|_| unreadable("deleted"))?;
                let removed: i64 = row.try_get(2).map_err(|_| unreadable("count"))?;
                return match (last, gone) {
                    (None, _) => Err(Error::LogNotFound { log_id: *log_id }),
                    (Some(_), Some(true)) => Ok(0),
                    (Some(_), _) => {
                        self.announce();
                        Ok(u64::try_from(removed).unwrap_or(0))
                    }
                };
            }
            Err(Error::Contended {
                log_id: *log_id,
                attempts: ATTEMPTS,
            })
        }
        .instrument(span)
        .await
    }

    /// `error` from an append, with `LogDeleted` where the log it names turns out to be
    /// deleted: a lost race, a gap (the group statement counts a deleted log's first slot as
    /// the log) or an idempotent replay may be against a deleted log. Asked only on those
    /// (rare) outcomes.
    pub(crate) async fn name_deleted(&self, error: Error) -> Error {
        let log_id = match &error {
            Error::ConcurrentAppend { log_id, .. }
            | Error::IndexGap { log_id, .. }
            | Error::IdempotentReplay { log_id, .. } => *log_id,
            _ => return error,
        };
        match self.log_existence(&log_id).await {
            Ok(Existence::Deleted) => Error::LogDeleted { log_id },
            Ok(_) => error,
            Err(lookup) => {
                tracing::warn!(error = %lookup, "could not tell whether the log was deleted");
                error
            }
        }
    }

    /// Removes at most `max_keys` idempotency keys stored more than `older_than` ago.
    pub(crate) async fn remove_keys(
        &self,
        older_than: std::time::Duration,
        max_keys: u32,
    ) -> Result<u64> {
        let seconds = older_than.as_secs_f64();
        let limit = i64::from(max_keys);
        let rows = self
            .rows(&self.statements().remove_keys, &[&seconds, &limit])
            .await?
            .map_err(query_error)?;
        let removed: i64 = rows
            .first()
            .and_then(|row| row.try_get(0).ok())
            .unwrap_or(0);
        let removed = u64::try_from(removed).unwrap_or(0);
        tracing::debug!(removed, "idempotency keys removed");
        Ok(removed)
    }
}

fn unreadable(what: &str) -> Error {
    Error::Backend {
        service: "postgres",
        source: format!("unreadable delete row: {what}").into(),
    }
}
