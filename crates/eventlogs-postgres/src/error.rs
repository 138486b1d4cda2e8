//! Maps tokio-postgres and pool errors into the core error kinds, once, by SQLSTATE constants.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use eventlogs_core::{Error, InvalidInput};
use tokio_postgres::error::SqlState;

const SERVICE: &str = "postgres";

/// The outcome of a failed statement, before it is turned into an [`Error`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// A unique constraint of `events` (the index is taken).
    IndexTaken,
    /// The idempotency key's unique constraint (another transaction stored it meanwhile).
    KeyTaken,
    /// Anything else, already classified.
    Other(Error),
}

/// Classifies a statement error.
pub(crate) fn classify(error: tokio_postgres::Error) -> Failure {
    let Some(db) = error.as_db_error() else {
        // No SQLSTATE: the connection broke or the server closed it. Retryable.
        return Failure::Other(Error::unavailable(SERVICE, error));
    };
    let code = db.code().clone();
    if code == SqlState::UNIQUE_VIOLATION {
        return match db.constraint() {
            Some(c) if c.starts_with("idempotency_keys") => Failure::KeyTaken,
            _ => Failure::IndexTaken,
        };
    }
    Failure::Other(map_code(&code, error))
}

fn map_code(code: &SqlState, error: tokio_postgres::Error) -> Error {
    let retryable = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_DOES_NOT_EXIST,
        SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::OUT_OF_MEMORY,
        SqlState::DISK_FULL,
        SqlState::IDLE_SESSION_TIMEOUT,
    ];
    if *code == SqlState::QUERY_CANCELED {
        return Error::Timeout {
            operation: "postgres statement",
            after: Duration::ZERO,
        };
    }
    if retryable.contains(code) {
        return Error::unavailable(SERVICE, error);
    }
    if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME {
        return InvalidInput::Config(format!(
            "the eventlogs tables are missing (call PostgresEventStore::migrate): {error}"
        ))
        .into();
    }
    if [
        SqlState::UNTRANSLATABLE_CHARACTER,
        SqlState::INVALID_TEXT_REPRESENTATION,
        SqlState::CHARACTER_NOT_IN_REPERTOIRE,
        SqlState::PROGRAM_LIMIT_EXCEEDED,
    ]
    .contains(code)
    {
        return InvalidInput::Serialize(error.to_string()).into();
    }
    Error::Backend {
        service: SERVICE,
        source: Box::new(error),
    }
}

/// Maps a statement error where unique violations cannot happen.
pub(crate) fn query_error(error: tokio_postgres::Error) -> Error {
    match classify(error) {
        Failure::Other(e) => e,
        Failure::IndexTaken | Failure::KeyTaken => Error::Backend {
            service: SERVICE,
            source: "unexpected unique violation".into(),
        },
    }
}

/// Maps a pool checkout error; exhaustion and slow connects are retryable timeouts.
pub(crate) fn pool_error(error: PoolError, checkout: Duration, connect: Duration) -> Error {
    match error {
        PoolError::Timeout(TimeoutType::Wait) => Error::Timeout {
            operation: "postgres pool checkout",
            after: checkout,
        },
        PoolError::Timeout(TimeoutType::Create | TimeoutType::Recycle) => Error::Timeout {
            operation: "postgres connect",
            after: connect,
        },
        PoolError::Backend(e) => query_error(e),
        other => Error::unavailable(SERVICE, other),
    }
}

/// A deadline on a statement passed.
pub(crate) fn statement_timeout(after: Duration) -> Error {
    Error::Timeout {
        operation: "postgres statement",
        after,
    }
}
