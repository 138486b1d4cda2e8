//! The one place fred errors become eventlogs errors, decided by fred's error kind.

use std::time::Duration;

use eventlogs_core::{Error, InvalidInput};
use fred::error::{Error as FredError, ErrorKind};

/// The service name in [`Error::Unavailable`].
pub(crate) const SERVICE: &str = "redis";

/// Maps a fred error from `operation` (for example `"redis get"`), whose deadline was `after`.
///
/// A timeout is [`Error::Timeout`]; a configuration or URL error found while connecting is
/// [`InvalidInput::Config`]; everything else (I/O, a closed or reconnecting connection, cluster
/// redirection trouble, backpressure, authentication, an error reply) is a retryable
/// [`Error::Unavailable`] carrying the fred error as its source.
pub(crate) fn from_fred(operation: &'static str, after: Duration, error: FredError) -> Error {
    match error.kind() {
        ErrorKind::Timeout => Error::Timeout { operation, after },
        ErrorKind::Config | ErrorKind::Url if operation == CONNECT => {
            Error::InvalidInput(InvalidInput::Config(format!("redis: {error}")))
        }
        ErrorKind::IO
        | ErrorKind::Canceled
        | ErrorKind::Routing
        | ErrorKind::Cluster
        | ErrorKind::Backpressure
        | ErrorKind::Auth
        | ErrorKind::Protocol
        | ErrorKind::Parse
        | ErrorKind::Unknown
        | ErrorKind::InvalidCommand
        | ErrorKind::InvalidArgument
        | ErrorKind::NotFound
        | ErrorKind::Sentinel
        | ErrorKind::Config
        | ErrorKind::Url => Error::unavailable(SERVICE, error),
        // Kinds that exist only with some fred features (TLS, replicas).
        #[allow(unreachable_patterns)]
        _ => Error::unavailable(SERVICE, error),
    }
}

/// The operation name of connecting, whose configuration errors are the caller's.
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

    #[test]
    fn kinds_map_to_typed_errors() {
        let after = Duration::from_millis(50);
        let map = |kind, op| from_fred(op, after, FredError::new(kind, "x"));
        assert!(matches!(
            map(ErrorKind::Timeout, "redis get"),
            Error::Timeout { operation: "redis get", after: a } if a == after
        ));
        for kind in [
            ErrorKind::IO,
            ErrorKind::Canceled,
            ErrorKind::Cluster,
            ErrorKind::Unknown,
        ] {
            let e = map(kind, "redis put");
            assert!(
                matches!(
                    e,
                    Error::Unavailable {
                        service: "redis",
                        ..
                    }
                ),
                "{e:?}"
            );
            assert!(e.is_retryable());
        }
        assert!(matches!(
            map(ErrorKind::Config, CONNECT),
            Error::InvalidInput(InvalidInput::Config(_))
        ));
        assert!(matches!(
            map(ErrorKind::Config, "redis get"),
            Error::Unavailable { .. }
        ));
    }
}
