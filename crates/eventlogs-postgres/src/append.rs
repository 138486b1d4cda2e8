//! Appends on a single PostgreSQL server: one prepared statement per append, which checks the
//! idempotency key and the previous index and writes the events and the key atomically.

use std::time::SystemTime;

use eventlogs_core::{
    backend::{AppendRequest, Appended, StoredKey},
    Error, LogId, Result, Timestamp,
};

use crate::error::{classify, query_error, Failure};
use crate::rows;
use crate::store::PostgresEventStore;

impl PostgresEventStore {
    pub(crate) async fn key_record(&self, key: &str) -> Result<Option<StoredKey>> {
        let rows = self
            .rows(&self.statements().key, &[&key])
            .await?
            .map_err(query_error)?;
        rows.first()
            .map(|r| rows::key_record(r, 0))
            .transpose()
            .map(Option::flatten)
    }

    /// Whether the log exists, and if so whether it was deleted.
    pub(crate) async fn log_existence(&self, log_id: &LogId) -> Result<Existence> {
        let rows = self
            .rows(&self.statements().log_exists, &[&rows::uuid(log_id)])
            .await?
            .map_err(query_error)?;
        Ok(match rows.first() {
            None => Existence::Missing,
            Some(row) if row.get::<_, bool>(0) => Existence::Deleted,
            Some(_) => Existence::Live,
        })
    }

    /// Runs the append statement that fits the request: without a key, a plain conditional
    /// INSERT (one event, or `unnest` for a batch); with a key, the statement that also checks
    /// and stores the key.
    async fn insert(
        &self,
        request: &AppendRequest,
    ) -> Result<Result<Inserted, tokio_postgres::Error>> {
        let uuid = rows::uuid(&request.log_id());
        let expected = i64::try_from(request.expected_index()).unwrap_or(i64::MAX);
        let metadata = request.metadata();
        let version = crate::group_sql::version(request);
        let sql = self.statements();
        let events = request.events();
        let Some(key) = request.idempotency_key() else {
            let rows = if events.len() == 1 {
                self.rows(
                    &sql.append_one,
                    &[&uuid, &expected, &events[0].json(), &metadata, &version],
                )
                .await?
            } else {
                let payloads: Vec<&str> = events.iter().map(|e| e.json()).collect();
                self.rows(
                    &sql.append_many,
                    &[&uuid, &expected, &payloads, &metadata, &version],
                )
                .await?
            };
            return Ok(rows.map(|rows| match rows.first() {
                Some(row) => Inserted::Events {
                    count: rows.len() as u32,
                    recorded_at: row.get(0),
                },
                None => Inserted::PreviousMissing,
            }));
        };
        let payloads: Vec<&str> = events.iter().map(|e| e.json()).collect();
        let hash = request.request_hash() as i64;
        let rows = self
            .rows(
                &sql.append,
                &[
                    &uuid, &expected, &payloads, &metadata, &key, &hash, &version,
                ],
            )
            .await?;
        Ok(rows.and_then(|rows| {
            let Some(row) = rows.first() else {
                return Ok(Inserted::PreviousMissing);
            };
            let count: i64 = row.try_get(0)?;
            Ok(if count > 0 {
                Inserted::Events {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    recorded_at: row.try_get(1)?,
                }
            } else {
                match rows::key_record(row, 2) {
                    Ok(Some(used)) => Inserted::KeyUsed(used),
                    Ok(None) => Inserted::PreviousMissing,
                    Err(error) => Inserted::Unreadable(error),
                }
            })
        }))
    }

    /// Appends on a single server (or a schema that is not distributed): one statement, which
    /// checks and stores the key itself. The request is validated.
    pub(crate) async fn append_single(&self, request: &AppendRequest) -> Result<Appended> {
        let log_id = request.log_id();
        let inserted = match self.insert(request).await? {
            Ok(inserted) => inserted,
            Err(error) => {
                return Err(match classify(error) {
                    Failure::IndexTaken => Error::ConcurrentAppend {
                        log_id,
                        index: request.expected_index(),
                    },
                    Failure::KeyTaken => {
                        // Another transaction stored the key and committed first.
                        let key = request.idempotency_key().unwrap_or_default();
                        match self.key_record(key).await? {
                            Some(used) => request.key_already_used(&used),
                            None => Error::unavailable("postgres", "idempotency key race; retry"),
                        }
                    }
                    Failure::PreviousMissing => self.previous_missing(request).await,
                    Failure::Other(error) => error,
                });
            }
        };
        match inserted {
            Inserted::Events { count, recorded_at } => {
                self.announce();
                Ok(appended(request, count, recorded_at))
            }
            Inserted::KeyUsed(used) => Err(request.key_already_used(&used)),
            Inserted::Unreadable(error) => Err(error),
            Inserted::PreviousMissing => Err(self.previous_missing(request).await),
        }
    }

    /// The error of an append whose previous index does not exist: a gap in an existing log,
    /// or a log that does not exist.
    pub(crate) async fn previous_missing(&self, request: &AppendRequest) -> Error {
        let log_id = request.log_id();
        match self.log_existence(&log_id).await {
            Ok(Existence::Live) => Error::IndexGap {
                log_id,
                index: request.expected_index(),
            },
            Ok(Existence::Missing) => Error::LogNotFound { log_id },
            Ok(Existence::Deleted) => Error::LogDeleted { log_id },
            Err(error) => error,
        }
    }
}

/// What a successful append of `request` wrote: `count` events committed at `recorded_at`.
pub(crate) fn appended(request: &AppendRequest, count: u32, recorded_at: SystemTime) -> Appended {
    Appended {
        log_id: request.log_id(),
        first_index: request.first_index(),
        count,
        recorded_at: Timestamp::from_system_time(recorded_at),
    }
}

/// What an append statement did.
enum Inserted {
    /// Wrote `count` events committed at `recorded_at`.
    Events { count: u32, recorded_at: SystemTime },
    /// Wrote nothing: the key was already stored.
    KeyUsed(StoredKey),
    /// Wrote nothing: the index before the expected one does not exist.
    PreviousMissing,
    /// The statement's answer could not be decoded.
    Unreadable(Error),
}

/// What is at index 0 of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existence {
    /// Nothing: the log was never written.
    Missing,
    /// Its first event.
    Live,
    /// The marker of its deletion.
    Deleted,
}
