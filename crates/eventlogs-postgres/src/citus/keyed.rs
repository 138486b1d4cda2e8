//! Keyed writes on a distributed schema: claim the key on its shard, then write the events and
//! the log's record of the key on the log's worker. Two single-shard statements, no two-phase
//! commit, and every idempotency guarantee of a single server.
//!
//! A key lives on the key's shard (`idempotency_keys`, distributed by key): one row per key,
//! which admits one claim. A log's record of a key lives with the log (`log_keys`, co-located
//! with `events`) and is written in the same worker transaction as the events, so for every
//! attempt `A` of a key on log `L` exactly one of these holds, forever:
//!
//! - `log_keys(L, key)` is `done` by `A`, and `A`'s events are committed;
//! - it is `void` for `A`, and `A`'s events can never be committed (the function that writes
//!   them finds the record and stops; a concurrent insert of the record conflicts);
//! - it is neither: `A` is in flight or died before writing.
//!
//! Claiming is one statement that either takes the key or returns the claim holding it. A
//! request that finds the key claimed reads the claim's log record (unless the claim already
//! says its write is done: the first request that sees a `done` record notes it on the
//! claim, so later retries of the key cost one statement). `done`: the claim's
//! write committed, so the request is a replay of it (or a conflict), decided by the same rule
//! as everywhere. `void`: the claim is dead; it is dropped and the request claims again.
//! Neither: the request waits a little and looks again; once the claim is older than the
//! grace period (`key_claim_grace`), it voids the attempt. Voiding is always safe, since the
//! voided attempt can no longer commit; the grace only spares a slow writer a retry. A claim is
//! dropped by its own writer when the write was refused (the index was taken, the log is
//! missing), so only committed writes consume a key; after an error that leaves the outcome
//! unknown (a lost connection, a deadline), the claim stays and the retry resolves it.

use std::time::{Duration, SystemTime};

use eventlogs_core::{
    backend::{AppendRequest, Appended, StoredKey},
    Error, LogId, Result,
};
use tokio::time::Instant;
use tokio_postgres::Row;

use crate::append::appended;
use crate::error::{classify, query_error, Failure};
use crate::rows;
use crate::store::PostgresEventStore;

/// What claiming a key found.
enum Claimed {
    /// This attempt holds the key now.
    Taken,
    /// Another claim holds it.
    Held(Claim),
}

/// A key's claim, as read on its shard.
struct Claim {
    stored: StoredKey,
    /// `None` for a key written by a single-server append before the schema was distributed:
    /// such a key was stored with its events, so it is committed.
    attempt: Option<uuid::Uuid>,
    /// Its write is known to have committed.
    done: bool,
}

/// A log's record of a key.
enum Record {
    Done,
    Void { attempt: uuid::Uuid },
}

/// The longest pause between two looks at a claim in flight.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

fn unreadable(what: &str, error: impl std::fmt::Display) -> Error {
    Error::Backend {
        service: "postgres",
        source: format!("unreadable {what}: {error}").into(),
    }
}

fn stored_key(row: &Row, at: usize, what: &str) -> Result<StoredKey> {
    rows::key_record(row, at)?.ok_or_else(|| unreadable(what, "null log id"))
}

impl PostgresEventStore {
    /// A keyed write on a distributed schema (see the module docs); the request is validated.
    pub(crate) async fn append_keyed_distributed(
        &self,
        request: &AppendRequest,
        key: &str,
    ) -> Result<Appended> {
        let timeout = self.config().statement_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(2);
        loop {
            let attempt = uuid::Uuid::from_u128(LogId::new().to_u128());
            let claim = match self.claim(request, key, attempt).await? {
                Claimed::Taken => return self.write_claimed(request, key, attempt).await,
                Claimed::Held(claim) => claim,
            };
            let Some(claimed_by) = claim.attempt.filter(|_| !claim.done) else {
                // Committed: a key of a single server's write, or a claim known to be done.
                return Err(request.key_already_used(&claim.stored));
            };
            match self.record(&claim.stored.log_id, key).await? {
                Some(Record::Done) => {
                    // Later replays need not ask the log's worker again (best effort).
                    let _ = self.mark_done(key, claimed_by).await;
                    return Err(request.key_already_used(&claim.stored));
                }
                Some(Record::Void { attempt }) if attempt == claimed_by => {
                    self.release(key, claimed_by).await?;
                    continue;
                }
                _ => {}
            }
            match self.claim_stale(key, claimed_by).await? {
                None => continue, // dropped meanwhile: claim again
                Some(true) => {
                    if self.void(&claim, key, claimed_by).await? {
                        tracing::info!(key, "voided a keyed write older than the claim grace");
                        self.release(key, claimed_by).await?;
                    }
                    continue;
                }
                Some(false) => {}
            }
            // In flight: look again shortly, within this request's deadline.
            if Instant::now() + backoff > deadline {
                return Err(Error::Timeout {
                    operation: "waiting for a write in flight with the same idempotency key",
                    after: timeout,
                });
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The committed write of `key` on a distributed schema: its claim, when the claim is
    /// known to be done (or predates the claims) or the log's record of the key says done.
    /// A claim in flight, or one whose attempt was voided, is not a committed write: `None`.
    pub(crate) async fn find_key_distributed(&self, key: &str) -> Result<Option<StoredKey>> {
        let found = self
            .rows(&self.citus_statements().lookup, &[&key])
            .await?
            .map_err(query_error)?;
        let Some(row) = found.first() else {
            return Ok(None);
        };
        let stored = stored_key(row, 0, "idempotency key claim")?;
        let attempt: Option<uuid::Uuid> =
            row.try_get(4).map_err(|e| unreadable("claim attempt", e))?;
        let done: bool = row.try_get(5).map_err(|e| unreadable("claim state", e))?;
        let Some(attempt) = attempt.filter(|_| !done) else {
            return Ok(Some(stored));
        };
        match self.record(&stored.log_id, key).await? {
            Some(Record::Done) => {
                // Later lookups need not ask the log's worker again (best effort).
                let _ = self.mark_done(key, attempt).await;
                Ok(Some(stored))
            }
            _ => Ok(None),
        }
    }

    /// Claims `key` for `attempt`, or finds the claim that holds it: one statement.
    async fn claim(
        &self,
        request: &AppendRequest,
        key: &str,
        attempt: uuid::Uuid,
    ) -> Result<Claimed> {
        let sql = &self.citus_statements().claim;
        let first = i64::try_from(request.expected_index()).unwrap_or(i64::MAX);
        let count = i32::try_from(request.events().len()).unwrap_or(i32::MAX);
        let hash = request.request_hash() as i64;
        let uuid = rows::uuid(&request.log_id());
        let found = self
            .rows(sql, &[&key, &uuid, &first, &count, &hash, &attempt])
            .await?
            .map_err(query_error)?;
        let row = found
            .first()
            .ok_or_else(|| unreadable("idempotency key claim", "no row"))?;
        let taken: bool = row.try_get(0).map_err(|e| unreadable("claim", e))?;
        if taken {
            return Ok(Claimed::Taken);
        }
        Ok(Claimed::Held(Claim {
            stored: stored_key(row, 1, "idempotency key claim")?,
            attempt: row.try_get(5).map_err(|e| unreadable("claim attempt", e))?,
            done: row.try_get(6).map_err(|e| unreadable("claim state", e))?,
        }))
    }

    /// Whether the claim of `key` by `attempt` is older than the grace; `None` when it is gone.
    async fn claim_stale(&self, key: &str, attempt: uuid::Uuid) -> Result<Option<bool>> {
        let grace = self.config().key_claim_grace.as_secs_f64();
        let found = self
            .rows(
                &self.citus_statements().claim_stale,
                &[&key, &grace, &attempt],
            )
            .await?
            .map_err(query_error)?;
        found
            .first()
            .map(|row| row.try_get(0).map_err(|e| unreadable("claim age", e)))
            .transpose()
    }

    /// Notes that the write of `key` by `attempt` committed.
    async fn mark_done(&self, key: &str, attempt: uuid::Uuid) -> Result<()> {
        self.rows(&self.citus_statements().mark_done, &[&key, &attempt])
            .await?
            .map_err(query_error)
            .map(drop)
    }

    /// The record of `key` on `log_id`'s shard, if any.
    async fn record(&self, log_id: &LogId, key: &str) -> Result<Option<Record>> {
        let found = self
            .rows(
                &self.citus_statements().key_state,
                &[&rows::uuid(log_id), &key],
            )
            .await?
            .map_err(query_error)?;
        let Some(row) = found.first() else {
            return Ok(None);
        };
        let state: String = row.try_get(0).map_err(|e| unreadable("key state", e))?;
        let attempt: uuid::Uuid = row.try_get(1).map_err(|e| unreadable("key attempt", e))?;
        Ok(Some(if state == "done" {
            Record::Done
        } else {
            Record::Void { attempt }
        }))
    }

    /// Voids `attempt`; whether it is void now (`false`: it was recorded as done first).
    async fn void(&self, claim: &Claim, key: &str, attempt: uuid::Uuid) -> Result<bool> {
        let stored = &claim.stored;
        let params = (
            rows::uuid(&stored.log_id),
            i64::from(stored.first_index),
            i32::try_from(stored.count).unwrap_or(i32::MAX),
            stored.request_hash as i64,
        );
        let voided = self
            .rows(
                &self.citus_statements().void,
                &[&params.0, &key, &params.1, &params.2, &params.3, &attempt],
            )
            .await?
            .map_err(query_error)?;
        Ok(!voided.is_empty())
    }

    /// Drops the claim of `key` by `attempt`.
    async fn release(&self, key: &str, attempt: uuid::Uuid) -> Result<()> {
        self.rows(&self.citus_statements().release, &[&key, &attempt])
            .await?
            .map_err(query_error)
            .map(drop)
    }

    /// Writes the events of a claimed key with the log's record of it.
    async fn write_claimed(
        &self,
        request: &AppendRequest,
        key: &str,
        attempt: uuid::Uuid,
    ) -> Result<Appended> {
        let uuid = rows::uuid(&request.log_id());
        let first = i64::try_from(request.expected_index()).unwrap_or(i64::MAX);
        let payloads: Vec<&str> = request.events().iter().map(|e| e.json()).collect();
        let metadata = request.metadata();
        let hash = request.request_hash() as i64;
        let written = self
            .rows(
                &self.citus_statements().append_keyed,
                &[&uuid, &first, &payloads, &metadata, &key, &hash, &attempt],
            )
            .await?; // A pool or deadline error leaves the outcome unknown: the claim stays.
        let rows = match written {
            Ok(rows) => rows,
            Err(error) => {
                let error = match classify(error) {
                    Failure::IndexTaken => Error::ConcurrentAppend {
                        log_id: request.log_id(),
                        index: request.expected_index(),
                    },
                    Failure::KeyTaken => {
                        Error::unavailable("postgres", "idempotency key race; retry")
                    }
                    Failure::PreviousMissing => self.previous_missing(request).await,
                    Failure::Other(error) => error,
                };
                // Refused, so nothing was written: the key is free again. (A retryable error
                // may have committed; the claim stays for the retry to resolve.)
                if !error.is_retryable() {
                    self.release(key, attempt).await?;
                }
                return Err(error);
            }
        };
        let row = rows
            .first()
            .ok_or_else(|| unreadable("keyed append", "no row"))?;
        let outcome: String = row.try_get(0).map_err(|e| unreadable("outcome", e))?;
        match outcome.as_str() {
            "written" => {
                let count: i64 = row.try_get(1).map_err(|e| unreadable("count", e))?;
                let at: SystemTime = row.try_get(2).map_err(|e| unreadable("time", e))?;
                Ok(appended(
                    request,
                    u32::try_from(count).unwrap_or(u32::MAX),
                    at,
                ))
            }
            "done" => {
                // The log already holds a committed write with this key (its claim was
                // removed): that write's record decides, and this claim is not needed.
                let first: i64 = row.try_get(3).map_err(|e| unreadable("first", e))?;
                let count: i32 = row.try_get(4).map_err(|e| unreadable("count", e))?;
                let hash: i64 = row.try_get(5).map_err(|e| unreadable("hash", e))?;
                self.release(key, attempt).await?;
                Err(request.key_already_used(&StoredKey {
                    log_id: request.log_id(),
                    first_index: u32::try_from(first).map_err(|e| unreadable("first", e))?,
                    count: u32::try_from(count).map_err(|e| unreadable("count", e))?,
                    request_hash: hash as u64,
                }))
            }
            "void" => Err(Error::unavailable(
                "postgres",
                "the keyed write took longer than the key claim grace and was voided by a \
                 request with the same key; nothing was written: retry",
            )),
            "missing" => {
                self.release(key, attempt).await?;
                Err(self.previous_missing(request).await)
            }
            other => Err(unreadable("keyed append outcome", other)),
        }
    }
}
