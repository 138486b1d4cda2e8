//! The group append statement: appends to different logs in one statement and one commit,
//! with each request's outcome in a row of its own.
//!
//! # Why each request gets exactly the outcome it would get alone
//!
//! The statement is one transaction, and every part of it reads one snapshot. For each
//! request it checks, in that snapshot, the three things an append alone checks: the
//! idempotency key is unused, the expected index is free, the index before it exists. Only
//! the requests that pass are inserted (their events, then their keys); the others write
//! nothing and their row says why. So a used key, a lost race already committed or a missing
//! log is that request's outcome, not an error of the statement.
//!
//! What the snapshot cannot see is a transaction still running: another process appending to
//! the same log, or storing the same key. Then the primary key of `events` (or of
//! `idempotency_keys`) decides: the insert waits for that transaction and fails if it
//! committed. The statement then fails as a whole and wrote nothing, since it is one
//! transaction, and the store splits the group and runs the halves again (a half of one
//! request runs the single-request statement, which turns the violation into
//! `ConcurrentAppend`). A payload the server refuses fails the statement the same way and is
//! isolated the same way. Nothing is half-written and nothing is acknowledged before the
//! commit, since the outcome rows reach the client only after it.
//!
//! Within a group no two requests name the same log or the same key (the queue keeps them
//! apart), so no request's check depends on another's insert. Rows are inserted in log order
//! and keys in key order, so two groups that wait for each other's rows cannot deadlock on
//! them. The events are inserted before the keys (the key insert reads the event insert), so
//! the statement's first write is to `events`, as the feed's watermark requires.

use std::time::SystemTime;

use eventlogs_core::{
    backend::{AppendRequest, Appended},
    Error, Result,
};
use tokio_postgres::Row;

use crate::append::appended;
use crate::rows;

/// The statement, with the schema spliced in (validated as a plain identifier).
///
/// Per request: `$1` log ids, `$2` expected indexes, `$3` metadata JSON, `$4` keys, `$5`
/// request hashes, `$6` event counts, `$10` event schema versions. Per event: `$7` the request's
/// ordinal (from 1), `$8` the event's place in its request (from 0), `$9` its JSON. One row per request, in order:
/// ordinal, the used key's record (four columns, null when unused), whether the index was
/// taken, whether the previous index exists, whether the log exists (only when the previous
/// index does not), the commit time of what was inserted.
pub(crate) fn group_append_sql(schema: &str) -> String {
    format!(
        r#"WITH req AS (
    SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::integer[],
                         $10::integer[])
        WITH ORDINALITY AS r(log_id, expected, metadata, key, hash, n, version, ord)
), checked AS (
    SELECT r.*, u.log_id AS used_log, u.first_index AS used_first, u.event_count AS used_count,
           u.request_hash AS used_hash,
           EXISTS (SELECT 1 FROM {schema}.events e
                   WHERE e.log_id = r.log_id AND e.event_index = r.expected) AS taken,
           (r.expected = 0 OR EXISTS (SELECT 1 FROM {schema}.events e
                   WHERE e.log_id = r.log_id AND e.event_index = r.expected - 1
                   AND e.deleted = 0)) AS previous
    FROM req r LEFT JOIN {schema}.idempotency_keys u ON u.key = r.key
), accepted AS (
    SELECT * FROM checked WHERE used_log IS NULL AND NOT taken AND previous
), inserted AS (
    INSERT INTO {schema}.events (log_id, event_index, payload, metadata, idempotency_key, event_version)
    SELECT a.log_id, a.expected + p.step, p.payload::jsonb, a.metadata::jsonb, a.key, a.version
    FROM unnest($7::integer[], $8::bigint[], $9::text[]) AS p(req, step, payload)
    JOIN accepted a ON a.ord = p.req
    ORDER BY a.log_id, p.step
    RETURNING recorded_at
), keys AS (
    INSERT INTO {schema}.idempotency_keys (key, log_id, first_index, event_count, request_hash)
    SELECT a.key, a.log_id, a.expected, a.n, a.hash FROM accepted a
    WHERE a.key IS NOT NULL AND EXISTS (SELECT 1 FROM inserted)
    ORDER BY a.key
)
SELECT c.ord, c.used_log, c.used_first, c.used_count, c.used_hash, c.taken, c.previous,
       CASE WHEN NOT c.previous THEN EXISTS (SELECT 1 FROM {schema}.events e
            WHERE e.log_id = c.log_id AND e.event_index = 0) END,
       (SELECT min(recorded_at) FROM inserted)
FROM checked c ORDER BY c.ord"#
    )
}

/// The statement of a group whose requests each write one event without a key, the most
/// common group by far: `$1` log ids, `$2` indexes, `$3` payloads, `$4` metadata, `$5` event
/// schema versions. A request is
/// one row, so `ON CONFLICT DO NOTHING` on the primary key keeps each one whole: a row whose
/// index is taken (committed, or committed by a transaction it waited for) is skipped, and so
/// is a row whose previous index is missing. Returns the log id of each row written; a request
/// without one is sent again alone, which names its error exactly.
pub(crate) fn group_append_one_sql(schema: &str) -> String {
    format!(
        r#"INSERT INTO {schema}.events (log_id, event_index, payload, metadata, event_version)
SELECT r.log_id, r.expected, r.payload::jsonb, r.metadata::jsonb, r.version
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::integer[])
     AS r(log_id, expected, payload, metadata, version)
WHERE r.expected = 0 OR EXISTS (SELECT 1 FROM {schema}.events e
      WHERE e.log_id = r.log_id AND e.event_index = r.expected - 1 AND e.deleted = 0)
ORDER BY r.log_id
ON CONFLICT (log_id, event_index) DO NOTHING
RETURNING log_id, recorded_at"#
    )
}

/// The event schema version of `request` as the `integer` column takes it.
pub(crate) fn version(request: &AppendRequest) -> i32 {
    i32::try_from(request.event_version()).unwrap_or(i32::MAX)
}

/// Whether every request of a group writes one event without a key.
pub(crate) fn all_single_unkeyed(requests: &[AppendRequest]) -> bool {
    requests
        .iter()
        .all(|r| r.events().len() == 1 && r.idempotency_key().is_none())
}

/// The bind parameters of one group, borrowed from its requests.
#[derive(Default)]
pub(crate) struct GroupParams<'a> {
    pub(crate) logs: Vec<uuid::Uuid>,
    pub(crate) expected: Vec<i64>,
    pub(crate) metadata: Vec<Option<&'a str>>,
    pub(crate) keys: Vec<Option<&'a str>>,
    pub(crate) hashes: Vec<i64>,
    pub(crate) counts: Vec<i32>,
    pub(crate) versions: Vec<i32>,
    pub(crate) event_request: Vec<i32>,
    pub(crate) event_step: Vec<i64>,
    pub(crate) payloads: Vec<&'a str>,
}

impl<'a> GroupParams<'a> {
    /// The parameters of `requests` (validated, so counts and indexes fit).
    pub(crate) fn new(requests: &'a [AppendRequest]) -> Self {
        let mut p = Self::default();
        for (ordinal, request) in (1i32..).zip(requests) {
            p.logs.push(rows::uuid(&request.log_id()));
            p.expected
                .push(i64::try_from(request.expected_index()).unwrap_or(i64::MAX));
            p.metadata.push(request.metadata());
            p.keys.push(request.idempotency_key());
            p.hashes.push(request.request_hash() as i64);
            let events = request.events();
            p.counts
                .push(i32::try_from(events.len()).unwrap_or(i32::MAX));
            p.versions.push(version(request));
            for (step, event) in (0i64..).zip(events) {
                p.event_request.push(ordinal);
                p.event_step.push(step);
                p.payloads.push(event.json());
            }
        }
        p
    }
}

/// The outcome of `request` from its row of the group statement.
pub(crate) fn outcome(request: &AppendRequest, row: &Row) -> Result<Appended> {
    let bad = |e: tokio_postgres::Error| Error::Backend {
        service: "postgres",
        source: format!("unreadable group append row: {e}").into(),
    };
    if let Some(used) = rows::key_record(row, 1)? {
        return Err(request.key_already_used(&used));
    }
    let log_id = request.log_id();
    let index = request.expected_index();
    if row.try_get::<_, bool>(5).map_err(bad)? {
        return Err(Error::ConcurrentAppend { log_id, index });
    }
    if !row.try_get::<_, bool>(6).map_err(bad)? {
        let log_exists: Option<bool> = row.try_get(7).map_err(bad)?;
        // A deleted log's marker at index 0 counts as the log here; the store names it.
        return Err(if log_exists == Some(true) {
            Error::IndexGap { log_id, index }
        } else {
            Error::LogNotFound { log_id }
        });
    }
    let recorded_at: SystemTime = row.try_get(8).map_err(bad)?;
    let count = u32::try_from(request.events().len()).unwrap_or(u32::MAX);
    Ok(appended(request, count, recorded_at))
}
