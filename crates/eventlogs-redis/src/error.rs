//! The one place fred errors become eventlogs errors, decided by fred's error kind and the
//! code of an error reply.

use std::time::Duration;

use eventlogs_core::{Error, InvalidInput};
use fred::error::{Error as FredError, ErrorKind};

/// The service name in [`Error::Unavailable`].
pub(crate) const SERVICE: &str = "redis";

/// Maps a fred error from `operation` (for example `"redis get"`), whose deadline was `after`.
///
/// - A timeout is [`Error::Timeout`].
/// - What retrying cannot fix is [`InvalidInput::Config`], wherever it happens, with a
///   message saying what to change: refused credentials (fred's `Auth` kind, or a `WRONGPASS`
///   or `NOAUTH` reply), a missing ACL permission (a `NOPERM` reply), a client configuration
///   or URL error, a TLS setup error and a server certificate that is not trusted.
/// - Everything else (I/O, a closed or reconnecting connection, cluster redirection trouble,
///   backpressure, another error reply) is a retryable [`Error::Unavailable`] carrying the
///   fred error as its source.
pub(crate) fn from_fred(operation: &'static str, after: Duration, error: FredError) -> Error {
    match reply_code(&error) {
        "WRONGPASS" | "NOAUTH" => return refused_credentials(&error),
        "NOPERM" => return missing_permission(&error),
        _ => {}
    }
    match error.kind() {
        ErrorKind::Timeout => Error::Timeout { operation, after },
        ErrorKind::Auth => refused_credentials(&error),
        ErrorKind::Config => config_error(format!(
            "redis client configuration error ({error}): fix the URL or the `RedisCacheConfig` \
             setting it names"
        )),
        ErrorKind::Url => config_error(format!(
            "invalid redis URL ({error}): expected redis://[[user]:password@]host[:port][/db], \
             with `@ / ? #` in the password percent-encoded"
        )),
        #[cfg(feature = "tls")]
        ErrorKind::Tls => config_error(format!(
            "redis TLS setup failed ({error}): check the host name and the trusted CAs (the \
             system trust store, or the PEM file SSL_CERT_FILE points at)"
        )),
        ErrorKind::IO if untrusted_certificate(&error) => config_error(format!(
            "the Redis server's TLS certificate is not trusted ({error}): trust the CA that signed \
             it by adding it to the system trust store, or point SSL_CERT_FILE at a PEM file \
             holding it"
        )),
        ErrorKind::IO
        | ErrorKind::Canceled
        | ErrorKind::Routing
        | ErrorKind::Cluster
        | ErrorKind::Backpressure
        | ErrorKind::Protocol
        | ErrorKind::Parse
        | ErrorKind::Unknown
        | ErrorKind::InvalidCommand
        | ErrorKind::InvalidArgument
        | ErrorKind::NotFound
        | ErrorKind::Sentinel => Error::unavailable(SERVICE, error),
        // Kinds that exist only with some fred features (replicas).
        #[allow(unreachable_patterns)]
        _ => Error::unavailable(SERVICE, error),
    }
}

fn config_error(message: String) -> Error {
    Error::InvalidInput(InvalidInput::Config(message))
}

fn refused_credentials(error: &FredError) -> Error {
    config_error(format!(
        "redis refused the credentials ({error}): check the password / ACL user (in the URL's \
         user:password, or `RedisReductionCacheBuilder::username` and `password`)"
    ))
}

fn missing_permission(error: &FredError) -> Error {
    config_error(format!(
        "the redis ACL user lacks a permission ({error}): grant it the commands the cache runs \
         (GETRANGE, EVALSHA, EVAL, SET, EXISTS, DEL, PING) on the keys of its key prefix"
    ))
}

/// The code of a Redis error reply: its first word (`WRONGPASS`, `NOPERM`), which fred keeps
/// at the start of the error's details.
fn reply_code(error: &FredError) -> &str {
    error
        .details()
        .split_whitespace()
        .next()
        .unwrap_or_default()
}

/// Whether an I/O error is rustls refusing the server's certificate. fred keeps only the
/// `Debug` text of the `std::io::Error` wrapping rustls's error, so its variant name is
/// looked for there: `Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }`.
fn untrusted_certificate(error: &FredError) -> bool {
    error.details().contains("InvalidCertificate(")
}

/// The operation name of connecting.
pub(crate) const CONNECT: &str = "redis connect";

/// An [`Error::Timeout`] for an operation that passed its deadline.
pub(crate) fn timeout(operation: &'static str, after: Duration) -> Error {
    Error::Timeout { operation, after }
}

/// A reply the scripts never give: the server is not the Redis this crate expects.
pub(crate) fn unexpected_reply(operation: &'static str, reply: &impl std::fmt::Debug) -> Error {
    let shown: String = format!("{reply:?}").chars().take(100).collect();
    Error::unavailable(SERVICE, format!("unexpected reply to {operation}: {shown}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fred error kind: (kind, what the cache reports, retryable).
    fn table() -> Vec<(ErrorKind, &'static str, bool)> {
        vec![
            (ErrorKind::Timeout, "timeout", true),
            (ErrorKind::Auth, "invalid_input", false),
            (ErrorKind::Config, "invalid_input", false),
            (ErrorKind::Url, "invalid_input", false),
            #[cfg(feature = "tls")]
            (ErrorKind::Tls, "invalid_input", false),
            (ErrorKind::IO, "unavailable", true),
            (ErrorKind::Canceled, "unavailable", true),
            (ErrorKind::Routing, "unavailable", true),
            (ErrorKind::Cluster, "unavailable", true),
            (ErrorKind::Backpressure, "unavailable", true),
            (ErrorKind::Protocol, "unavailable", true),
            (ErrorKind::Parse, "unavailable", true),
            (ErrorKind::Unknown, "unavailable", true),
            (ErrorKind::InvalidCommand, "unavailable", true),
            (ErrorKind::InvalidArgument, "unavailable", true),
            (ErrorKind::NotFound, "unavailable", true),
            (ErrorKind::Sentinel, "unavailable", true),
        ]
    }

    /// Fails to compile when fred gains a kind, so the table above gets a row for it.
    fn _every_kind_is_in_the_table(kind: &ErrorKind) {
        match kind {
            ErrorKind::Timeout
            | ErrorKind::Auth
            | ErrorKind::Config
            | ErrorKind::Url
            | ErrorKind::IO
            | ErrorKind::Canceled
            | ErrorKind::Routing
            | ErrorKind::Cluster
            | ErrorKind::Backpressure
            | ErrorKind::Protocol
            | ErrorKind::Parse
            | ErrorKind::Unknown
            | ErrorKind::InvalidCommand
            | ErrorKind::InvalidArgument
            | ErrorKind::NotFound
            | ErrorKind::Sentinel => {}
            #[cfg(feature = "tls")]
            ErrorKind::Tls => {}
        }
    }

    #[test]
    fn every_kind_maps_to_its_error_everywhere() {
        let after = Duration::from_millis(50);
        for operation in [CONNECT, "redis get", "redis put"] {
            for (kind, expected, retryable) in table() {
                let error = from_fred(operation, after, FredError::new(kind.clone(), "x"));
                assert_eq!(
                    error.kind().as_str(),
                    expected,
                    "{operation} {kind:?}: {error:?}"
                );
                assert_eq!(
                    error.is_retryable(),
                    retryable,
                    "{operation} {kind:?}: {error:?}"
                );
            }
        }
        assert!(matches!(
            from_fred("redis get", after, FredError::new(ErrorKind::Timeout, "x")),
            Error::Timeout { operation: "redis get", after: a } if a == after
        ));
    }

    /// Error replies and I/O details that decide the mapping: (kind, details, expected
    /// kind, retryable, words the message must hold).
    #[test]
    fn replies_and_details_that_retrying_cannot_fix_say_what_to_do() {
        let cases: [(ErrorKind, &str, &str, bool, &[&str]); 8] = [
            (
                ErrorKind::Auth,
                "WRONGPASS invalid username-password pair or user is disabled.",
                "invalid_input",
                false,
                &["check the password / ACL user"],
            ),
            (
                ErrorKind::Auth,
                "NOAUTH Authentication required.",
                "invalid_input",
                false,
                &["check the password / ACL user"],
            ),
            // Whatever kind fred gives a reply, its code decides.
            (
                ErrorKind::Unknown,
                "WRONGPASS invalid username-password pair",
                "invalid_input",
                false,
                &["check the password / ACL user"],
            ),
            (
                ErrorKind::Unknown,
                "NOPERM User app has no permissions to run the 'evalsha' command",
                "invalid_input",
                false,
                &["ACL user lacks a permission", "EVALSHA"],
            ),
            (
                ErrorKind::IO,
                "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
                "invalid_input",
                false,
                &["not trusted", "SSL_CERT_FILE"],
            ),
            (
                ErrorKind::Url,
                "InvalidPort",
                "invalid_input",
                false,
                &["invalid redis URL", "percent-encoded"],
            ),
            (
                ErrorKind::IO,
                "Os { code: 111, kind: ConnectionRefused }",
                "unavailable",
                true,
                &[],
            ),
            (
                ErrorKind::Unknown,
                "ERR something else",
                "unavailable",
                true,
                &[],
            ),
        ];
        for (kind, details, expected, retryable, words) in cases {
            for operation in [CONNECT, "redis get"] {
                let error = from_fred(
                    operation,
                    Duration::ZERO,
                    FredError::new(kind.clone(), details),
                );
                assert_eq!(error.kind().as_str(), expected, "{details}: {error:?}");
                assert_eq!(error.is_retryable(), retryable, "{details}: {error:?}");
                let shown = error.to_string();
                for word in words {
                    assert!(shown.contains(word), "{details}: {shown}");
                }
            }
        }
    }
}
