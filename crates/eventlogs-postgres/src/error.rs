//! Maps tokio-postgres and pool errors into the core error kinds, once, by SQLSTATE constants.

use std::time::Duration;

use deadpool_postgres::{PoolError, TimeoutType};
use eventlogs_core::{BoxError, Error, InvalidInput};
use tokio_postgres::error::SqlState;

const SERVICE: &str = "postgres";

/// The outcome of a failed statement, before it is turned into an [`Error`].
#[derive(Debug)]
pub(crate) enum Failure {
    /// A unique constraint of `events` (the index is taken).
    IndexTaken,
    /// The idempotency key's unique constraint (another transaction stored it meanwhile).
    KeyTaken,
    /// The foreign key of an event to the log's previous one (on a distributed schema): the
    /// previous index does not exist.
    PreviousMissing,
    /// Anything else, already classified.
    Other(Error),
}

/// Classifies a statement error.
pub(crate) fn classify(error: tokio_postgres::Error) -> Failure {
    let Some(db) = error.as_db_error() else {
        // No SQLSTATE: the connection broke, the server closed it, or it could not be opened.
        return Failure::Other(connection_error(error));
    };
    let code = db.code().clone();
    let message = db.message().to_owned();
    if let Some(constraint) = unique_violation(&code, db.constraint(), &message) {
        return match constraint.as_str() {
            "idempotency_keys_pkey" | "log_keys_pkey" => Failure::KeyTaken,
            "events_pkey" => Failure::IndexTaken,
            _ => Failure::Other(Error::Backend {
                service: SERVICE,
                source: Box::new(error),
            }),
        };
    }
    if code == SqlState::FOREIGN_KEY_VIOLATION
        && constraint_name(db.constraint(), &message, FOREIGN_KEY).as_deref()
            == Some("events_previous")
    {
        return Failure::PreviousMissing;
    }
    if code == SqlState::INTERNAL_ERROR && is_worker_failure(&message) {
        return Failure::Other(Error::Unavailable {
            service: SERVICE,
            source: Box::new(error),
        });
    }
    Failure::Other(map_code(&code, &message, Box::new(error)))
}

/// The message Citus passes on for a unique violation on a worker, sometimes as `XX000`.
const DUPLICATE_KEY: &str = "duplicate key value violates unique constraint \"";

/// The name of the unique constraint a statement violated, without a Citus shard suffix
/// (`events_pkey_102021` is `events_pkey`), or `None` when it is not a unique violation.
///
/// PostgreSQL reports `23505` with the constraint's name in its own field. Through a Citus
/// coordinator the field is empty, the name (of the shard's constraint) is only in the
/// message, and a violation inside a multi-shard statement arrives as `XX000`.
fn unique_violation(code: &SqlState, field: Option<&str>, message: &str) -> Option<String> {
    let in_message = quoted_after(message, DUPLICATE_KEY);
    if *code != SqlState::UNIQUE_VIOLATION
        && !(*code == SqlState::INTERNAL_ERROR && in_message.is_some())
    {
        return None;
    }
    constraint_name(field, message, DUPLICATE_KEY)
}

/// Where Citus names the foreign key a statement violated.
const FOREIGN_KEY: &str = "violates foreign key constraint \"";

/// The quoted name that follows `marker` in `message`.
fn quoted_after<'a>(message: &'a str, marker: &str) -> Option<&'a str> {
    let at = message.find(marker)? + marker.len();
    message[at..].split_once('"').map(|(name, _)| name)
}

/// A constraint's name, from the error's field or else from its message, without a Citus
/// shard suffix (`events_pkey_102021` is `events_pkey`).
fn constraint_name(field: Option<&str>, message: &str, marker: &str) -> Option<String> {
    let name = field.or_else(|| quoted_after(message, marker))?;
    let unsuffixed = match name.rsplit_once('_') {
        Some((base, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    };
    Some(unsuffixed.to_owned())
}

/// Whether an `XX000` from a Citus coordinator says a worker failed or could not be reached:
/// the statement may pass once the worker is back (a write may also have committed: retry it
/// with its idempotency key).
fn is_worker_failure(message: &str) -> bool {
    [
        "unexpected postmaster exit",
        "failure on connection marked as essential",
        "connection to the remote node",
        "could not establish any connections to the node",
        "terminating connection",
        "server closed the connection unexpectedly",
        "the database system is starting up",
        "the database system is shutting down",
    ]
    .iter()
    .any(|fragment| message.contains(fragment))
}

/// SQLSTATEs that may pass: the server is restarting, overloaded or busy with a conflicting
/// transaction, or the connection broke.
const RETRYABLE: [SqlState; 14] = [
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

/// SQLSTATEs of the schema not being there: `migrate` was not called.
const NOT_MIGRATED: [SqlState; 2] = [SqlState::UNDEFINED_TABLE, SqlState::INVALID_SCHEMA_NAME];

/// SQLSTATEs of a value PostgreSQL cannot store (a NUL character, text it cannot encode, a
/// number beyond `numeric`'s range).
const UNSTORABLE: [SqlState; 5] = [
    SqlState::UNTRANSLATABLE_CHARACTER,
    SqlState::NUMERIC_VALUE_OUT_OF_RANGE,
    SqlState::INVALID_TEXT_REPRESENTATION,
    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
    SqlState::PROGRAM_LIMIT_EXCEEDED,
];

/// Maps a server error by its SQLSTATE; `message` is the server's primary message and
/// `source` the driver's error.
fn map_code(code: &SqlState, message: &str, source: BoxError) -> Error {
    if *code == SqlState::QUERY_CANCELED {
        // `statement_timeout` on the server, or `pg_cancel_backend`: not a deadline of ours,
        // so no duration to report.
        return Error::Cancelled {
            service: SERVICE,
            reason: message.to_owned(),
        };
    }
    if RETRYABLE.contains(code) {
        return Error::Unavailable {
            service: SERVICE,
            source,
        };
    }
    if NOT_MIGRATED.contains(code) {
        // The server names the missing relation or schema (`relation "s.events" does not
        // exist`), and with it the store's schema.
        return InvalidInput::Config(format!(
            "schema not migrated ({message}): call `PostgresEventStore::migrate()` first"
        ))
        .into();
    }
    if UNSTORABLE.contains(code) {
        return InvalidInput::Serialize(message.to_owned()).into();
    }
    Error::Backend {
        service: SERVICE,
        source,
    }
}

/// Maps an error without SQLSTATE, of opening a connection or of one that broke: a server
/// certificate rustls refused is the caller's to fix; anything else (refused, reset, DNS, a
/// closed connection) may pass.
pub(crate) fn connection_error(error: tokio_postgres::Error) -> Error {
    #[cfg(feature = "tls")]
    if let Some(certificate) = certificate_error(&error) {
        return untrusted_certificate(certificate);
    }
    Error::unavailable(SERVICE, error)
}

/// The rustls certificate error somewhere in `error`'s chain of sources.
///
/// `std::io::Error::source` skips the error it wraps (tokio-rustls wraps rustls's error in
/// one), so a wrapped error is looked into as well.
#[cfg(feature = "tls")]
fn certificate_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(rustls_error @ rustls::Error::InvalidCertificate(_)) = error.downcast_ref() {
            return Some(rustls_error);
        }
        let wrapped = error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if let Some(found) = wrapped.and_then(|inner| certificate_error(inner)) {
            return Some(found);
        }
        next = error.source();
    }
    None
}

/// The configuration error of a server certificate rustls refused.
#[cfg(feature = "tls")]
fn untrusted_certificate(certificate: &rustls::Error) -> Error {
    InvalidInput::Config(format!(
        "the PostgreSQL server's TLS certificate is not trusted ({certificate}): trust the CA \
         that signed it with `PostgresEventStoreBuilder::tls_root_certificates_pem` \
         (`PostgresConfig::tls_root_certificates`), and connect to a host name the \
         certificate lists"
    ))
    .into()
}

/// Maps a statement error where unique violations cannot happen.
pub(crate) fn query_error(error: tokio_postgres::Error) -> Error {
    match classify(error) {
        Failure::Other(e) => e,
        Failure::IndexTaken | Failure::KeyTaken | Failure::PreviousMissing => Error::Backend {
            service: SERVICE,
            source: "unexpected violation of an eventlogs constraint".into(),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// What a Citus coordinator passes on: shard-suffixed names in the message only, `XX000`
    /// for a violation in a multi-shard statement, worker failures as `XX000` text.
    #[test]
    fn citus_unique_violations_and_worker_failures_are_recognised() {
        let unique = SqlState::UNIQUE_VIOLATION;
        let internal = SqlState::INTERNAL_ERROR;
        let message =
            |name: &str| format!("duplicate key value violates unique constraint \"{name}\"");
        for (code, field, msg, expected) in [
            (
                &unique,
                Some("events_pkey"),
                message("events_pkey"),
                Some("events_pkey"),
            ),
            (
                &unique,
                None,
                message("events_pkey_102021"),
                Some("events_pkey"),
            ),
            (
                &unique,
                None,
                message("idempotency_keys_pkey_102064"),
                Some("idempotency_keys_pkey"),
            ),
            (
                &internal,
                None,
                message("idempotency_keys_pkey_102061"),
                Some("idempotency_keys_pkey"),
            ),
            (
                &internal,
                None,
                message("log_keys_pkey_102200"),
                Some("log_keys_pkey"),
            ),
            (
                &unique,
                None,
                message("events_pkey_x1"),
                Some("events_pkey_x1"),
            ),
            (&internal, None, "something else".to_owned(), None),
            (
                &SqlState::CHECK_VIOLATION,
                None,
                message("events_pkey"),
                None,
            ),
        ] {
            assert_eq!(
                unique_violation(code, field, &msg).as_deref(),
                expected,
                "{code:?} {field:?} {msg}"
            );
        }
        for worker_down in [
            "terminating connection due to unexpected postmaster exit",
            "failure on connection marked as essential: 127.0.0.1:5703",
            "connection to the remote node postgres@127.0.0.1:5703 failed with the following error: Connection refused",
        ] {
            assert!(is_worker_failure(worker_down), "{worker_down}");
        }
        assert!(!is_worker_failure("could not create distributed plan"));
        let gap = "insert or update on table \"events_102599\" violates foreign key constraint \"events_previous_102599\"";
        assert_eq!(
            constraint_name(None, gap, FOREIGN_KEY).as_deref(),
            Some("events_previous")
        );
    }

    /// Every SQLSTATE `map_code` names: (code, kind, retryable).
    fn table() -> Vec<(SqlState, &'static str, bool)> {
        vec![
            (SqlState::QUERY_CANCELED, "cancelled", true),
            (SqlState::T_R_SERIALIZATION_FAILURE, "unavailable", true),
            (SqlState::T_R_DEADLOCK_DETECTED, "unavailable", true),
            (SqlState::ADMIN_SHUTDOWN, "unavailable", true),
            (SqlState::CRASH_SHUTDOWN, "unavailable", true),
            (SqlState::CANNOT_CONNECT_NOW, "unavailable", true),
            (SqlState::TOO_MANY_CONNECTIONS, "unavailable", true),
            (SqlState::CONNECTION_EXCEPTION, "unavailable", true),
            (SqlState::CONNECTION_FAILURE, "unavailable", true),
            (SqlState::CONNECTION_DOES_NOT_EXIST, "unavailable", true),
            (
                SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
                "unavailable",
                true,
            ),
            (SqlState::LOCK_NOT_AVAILABLE, "unavailable", true),
            (SqlState::OUT_OF_MEMORY, "unavailable", true),
            (SqlState::DISK_FULL, "unavailable", true),
            (SqlState::IDLE_SESSION_TIMEOUT, "unavailable", true),
            (SqlState::UNDEFINED_TABLE, "invalid_input", false),
            (SqlState::INVALID_SCHEMA_NAME, "invalid_input", false),
            (SqlState::UNTRANSLATABLE_CHARACTER, "invalid_input", false),
            (SqlState::NUMERIC_VALUE_OUT_OF_RANGE, "invalid_input", false),
            (
                SqlState::INVALID_TEXT_REPRESENTATION,
                "invalid_input",
                false,
            ),
            (
                SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                "invalid_input",
                false,
            ),
            (SqlState::PROGRAM_LIMIT_EXCEEDED, "invalid_input", false),
            // Anything else: the server refused for a reason retrying will not change.
            (SqlState::INSUFFICIENT_PRIVILEGE, "backend", false),
            (SqlState::INVALID_PASSWORD, "backend", false),
            (SqlState::UNDEFINED_COLUMN, "backend", false),
            (SqlState::from_code("XX999"), "backend", false),
        ]
    }

    #[test]
    fn every_sqlstate_maps_to_its_kind() {
        for (code, kind, retryable) in table() {
            let error = map_code(&code, "server message", "driver error".into());
            assert_eq!(error.kind().as_str(), kind, "{code:?}: {error:?}");
            assert_eq!(error.is_retryable(), retryable, "{code:?}: {error:?}");
        }
        // No code of the lists above is missing from the table.
        let listed: Vec<SqlState> = table().into_iter().map(|(code, ..)| code).collect();
        for code in RETRYABLE.iter().chain(&NOT_MIGRATED).chain(&UNSTORABLE) {
            assert!(listed.contains(code), "{code:?} is not in the table");
        }
    }

    #[test]
    fn messages_say_what_happened_and_what_to_do() {
        let cancelled = map_code(
            &SqlState::QUERY_CANCELED,
            "canceling statement due to statement timeout",
            "driver error".into(),
        );
        assert!(
            matches!(
                cancelled,
                Error::Cancelled {
                    service: "postgres",
                    ..
                }
            ),
            "{cancelled:?}"
        );
        assert_eq!(
            cancelled.to_string(),
            "postgres cancelled the statement: canceling statement due to statement timeout"
        );
        let missing = map_code(
            &SqlState::UNDEFINED_TABLE,
            r#"relation "billing.events" does not exist"#,
            "driver error".into(),
        );
        assert!(
            matches!(&missing, Error::InvalidInput(InvalidInput::Config(_))),
            "{missing:?}"
        );
        assert_eq!(
            missing.to_string(),
            "invalid input: invalid configuration: schema not migrated (relation \
             \"billing.events\" does not exist): call `PostgresEventStore::migrate()` first"
        );
        let unstorable = map_code(
            &SqlState::UNTRANSLATABLE_CHARACTER,
            "unsupported Unicode escape sequence",
            "driver error".into(),
        );
        assert!(
            matches!(&unstorable, Error::InvalidInput(InvalidInput::Serialize(m))
                if m == "unsupported Unicode escape sequence"),
            "{unstorable:?}"
        );
    }

    /// Real server errors, classified as the store classifies them.
    #[tokio::test]
    async fn server_errors_are_classified_end_to_end() {
        let Some(url) = eventlogs_testkit::servers::database_url() else {
            return;
        };
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let failure = |sql: &'static str| {
            let client = &client;
            async move { query_error(client.batch_execute(sql).await.unwrap_err()) }
        };

        let error = failure("SELECT * FROM eventlogs_never_migrated.events").await;
        assert!(
            matches!(&error, Error::InvalidInput(InvalidInput::Config(m))
                if m.contains("eventlogs_never_migrated") && m.contains("migrate()")),
            "{error}"
        );
        let error = failure("CREATE TABLE eventlogs_never_migrated.t ()").await;
        assert!(
            matches!(&error, Error::InvalidInput(InvalidInput::Config(m))
                if m.contains("eventlogs_never_migrated") && m.contains("migrate()")),
            "{error}"
        );
        let error = failure("SET statement_timeout = 1; SELECT pg_sleep(5)").await;
        assert!(
            matches!(&error, Error::Cancelled { reason, .. }
                if reason.contains("statement timeout")),
            "{error:?}"
        );
        assert!(
            error.is_retryable() && !error.to_string().contains("after"),
            "{error}"
        );
        client
            .batch_execute("RESET statement_timeout")
            .await
            .unwrap();
        // An operator's pg_cancel_backend.
        let error = failure("SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(5)").await;
        assert!(
            matches!(&error, Error::Cancelled { reason, .. } if reason.contains("user request")),
            "{error:?}"
        );
        assert!(error.is_retryable(), "{error}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn an_untrusted_certificate_is_found_behind_io_errors() {
        use rustls::CertificateError;

        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error performing TLS handshake")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let untrusted = Outer(io(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )));
        let found = certificate_error(&untrusted).unwrap();
        let error = untrusted_certificate(found);
        assert!(!error.is_retryable(), "{error:?}");
        let shown = error.to_string();
        assert!(
            shown.contains("not trusted") && shown.contains("tls_root_certificates_pem"),
            "{shown}"
        );
        // Other TLS and I/O failures are not certificate errors.
        let other = Outer(io(rustls::Error::HandshakeNotComplete));
        assert!(certificate_error(&other).is_none());
        let refused = Outer(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(certificate_error(&refused).is_none());
    }
}
