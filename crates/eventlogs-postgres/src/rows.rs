//! Decoding rows into events and key records, refusing values that break the store's invariants.

use eventlogs_core::{
    backend::{RawEvent, StoredKey},
    Error, FeedPosition, LogId, Result, Timestamp,
};
use tokio_postgres::types::{FromSql, Type};
use tokio_postgres::Row;

fn corrupt(log_id: &LogId, index: i64, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        log_id: *log_id,
        index: u64::try_from(index).unwrap_or(0),
        reason: reason.into(),
    }
}

/// A feed position from `transaction_id::text, position` at columns `at` and `at + 1`; `what`
/// names the row in the error.
pub(crate) fn feed_position(row: &Row, at: usize, what: &str) -> Result<FeedPosition> {
    let bad = |column: &str| Error::Backend {
        service: "postgres",
        source: format!("unreadable {what}: {column}").into(),
    };
    let transaction: String = row.try_get(at).map_err(|_| bad("transaction id"))?;
    let sequence: i64 = row.try_get(at + 1).map_err(|_| bad("position"))?;
    Ok(FeedPosition {
        transaction: transaction.parse().map_err(|_| bad("transaction id"))?,
        sequence: u64::try_from(sequence).map_err(|_| bad("position"))?,
    })
}

/// A feed position as statement parameters: the transaction id as text (cast to `xid8` in the
/// SQL) and the position.
pub(crate) fn position_params(at: FeedPosition) -> (String, i64) {
    (
        at.transaction.to_string(),
        i64::try_from(at.sequence).unwrap_or(i64::MAX),
    )
}

/// A row of `event_index, recorded_at, payload::text, metadata::text, idempotency_key,
/// event_version, deleted`; a row of a deleted log is [`Error::LogDeleted`].
pub(crate) fn event(log_id: &LogId, row: &Row) -> Result<RawEvent> {
    match event_at(log_id, row, 0)? {
        (_, true) => Err(Error::LogDeleted { log_id: *log_id }),
        (event, false) => Ok(event),
    }
}

/// The same seven columns starting at column `at`: the event, and whether it is a deletion
/// marker.
pub(crate) fn event_at(log_id: &LogId, row: &Row, at: usize) -> Result<(RawEvent, bool)> {
    let index: i64 = row
        .try_get(at)
        .map_err(|e| corrupt(log_id, -1, e.to_string()))?;
    let decode = |e: tokio_postgres::Error| corrupt(log_id, index, e.to_string());
    let recorded_at: PgTimestamp = row.try_get(at + 1).map_err(decode)?;
    let version: i32 = row.try_get(at + 5).map_err(decode)?;
    let event = RawEvent {
        index: u32::try_from(index)
            .map_err(|_| corrupt(log_id, index, "index outside 0..=u32::MAX"))?,
        recorded_at: recorded_at.0,
        payload: row.try_get(at + 2).map_err(decode)?,
        metadata: row.try_get(at + 3).map_err(decode)?,
        idempotency_key: row.try_get(at + 4).map_err(decode)?,
        version: u32::try_from(version)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| corrupt(log_id, index, format!("event schema version {version}")))?,
    };
    let deleted: i16 = row.try_get(at + 6).map_err(decode)?;
    Ok((event, deleted != 0))
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` read straight from its binary form (microseconds since 2000-01-01), the same
/// value `Timestamp::from_system_time` gives for tokio-postgres's `SystemTime`, without the
/// detour (saturating at the ends of the range, as it does).
struct PgTimestamp(Timestamp);

impl<'a> FromSql<'a> for PgTimestamp {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        let bytes: [u8; 8] = raw
            .try_into()
            .map_err(|_| format!("timestamp of {} bytes, not 8", raw.len()))?;
        let micros = i64::from_be_bytes(bytes).saturating_add(PG_EPOCH_UNIX_MICROS);
        Ok(Self(Timestamp::from_unix_micros(micros)))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMPTZ | Type::TIMESTAMP)
    }
}

/// The key record in columns `at..at + 4` (`log_id, first_index, event_count, request_hash`),
/// or `None` when they are null.
pub(crate) fn key_record(row: &Row, at: usize) -> Result<Option<StoredKey>> {
    let bad = |e: String| Error::Backend {
        service: "postgres",
        source: format!("unreadable idempotency key row: {e}").into(),
    };
    let log_id: Option<uuid::Uuid> = row.try_get(at).map_err(|e| bad(e.to_string()))?;
    let Some(log_id) = log_id else {
        return Ok(None);
    };
    let first: i64 = row.try_get(at + 1).map_err(|e| bad(e.to_string()))?;
    let count: i32 = row.try_get(at + 2).map_err(|e| bad(e.to_string()))?;
    let hash: i64 = row.try_get(at + 3).map_err(|e| bad(e.to_string()))?;
    Ok(Some(StoredKey {
        log_id: LogId::from_u128(log_id.as_u128()),
        first_index: u32::try_from(first).map_err(|e| bad(e.to_string()))?,
        count: u32::try_from(count).map_err(|e| bad(e.to_string()))?,
        request_hash: hash as u64,
    }))
}

/// The database form of a log id.
pub(crate) fn uuid(log_id: &LogId) -> uuid::Uuid {
    uuid::Uuid::from_u128(log_id.to_u128())
}
