//! Deleting a log in one statement, and the retention of idempotency keys.
//!
//! # Why a delete racing appends leaves the whole log or none of it
//!
//! The statement reads the log's last index *n* and inserts a marker row (`deleted`) at
//! *n + 1*, the index the next append would take; then it removes the events from 1 to *n*
//! and blanks index 0 into a second marker. An append that could commit alongside the delete
//! is an append at *n + 1* (any later index needs *n + 1* to exist first), and it collides
//! with the marker on the primary key: if the append commits first, the delete fails with a
//! unique violation and runs again, deleting that event too; if the delete commits first,
//! the append fails and is told `LogDeleted`. So no reader ever sees a log with a gap or an
//! event after the marker.
//!
//! Afterwards the marker at index 0 refuses every create of the id (primary key), and every
//! append statement requires a previous event that is not a marker, so nothing can be written
//! after index 0 or after the end marker either. Reads of a marker row are `LogDeleted`.

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
    SELECT max(event_index) AS n, bool_or(deleted) AS gone
    FROM {schema}.events WHERE log_id = $1::uuid
), marker AS (
    INSERT INTO {schema}.events (log_id, event_index, payload, deleted)
    SELECT $1::uuid, l.n + 1, 'null', true FROM last l WHERE l.n IS NOT NULL AND NOT l.gone
    RETURNING event_index
), removed AS (
    DELETE FROM {schema}.events
    WHERE log_id = $1::uuid AND event_index BETWEEN 1 AND (SELECT n FROM last)
      AND EXISTS (SELECT 1 FROM marker)
    RETURNING 1
), blanked AS (
    UPDATE {schema}.events
    SET payload = 'null', metadata = NULL, idempotency_key = NULL, deleted = true
    WHERE log_id = $1::uuid AND event_index = 0 AND EXISTS (SELECT 1 FROM marker)
    RETURNING 1
)
SELECT (SELECT n FROM last), (SELECT gone FROM last),
       (SELECT count(*) FROM removed) + (SELECT count(*) FROM blanked)"#
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
    /// deleted: a lost race or an idempotent replay may be against a deletion marker. Asked
    /// only on those (rare) outcomes.
    pub(crate) async fn name_deleted(&self, error: Error) -> Error {
        let log_id = match &error {
            Error::ConcurrentAppend { log_id, .. } | Error::IdempotentReplay { log_id, .. } => {
                *log_id
            }
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
