//! What went wrong, as one line for a human and an exit code for a script.

use std::fmt;

use eventlogs::{Error, ErrorKind};

/// Exit code: the command failed (server unreachable, query failed).
pub(crate) const ERROR: u8 = 1;
/// Exit code: bad input (arguments, ids, positions, schema names).
pub(crate) const USAGE: u8 = 2;
/// Exit code: refused (the state does not allow it now).
pub(crate) const REFUSED: u8 = 3;
/// Exit code: what was asked for does not exist.
pub(crate) const NOT_FOUND: u8 = 4;

/// A failed command.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad input, with what to do instead.
    Usage(String),
    /// Refused, with the reason.
    Refused(String),
    /// Not found.
    NotFound(String),
    /// The store failed.
    Store(Error),
    /// A query of the tool's own failed.
    Query(String),
}

impl Failure {
    pub(crate) const fn code(&self) -> u8 {
        match self {
            Self::Usage(_) => USAGE,
            Self::Refused(_) => REFUSED,
            Self::NotFound(_) => NOT_FOUND,
            Self::Store(_) | Self::Query(_) => ERROR,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidInput => Self::Usage(error.to_string()),
            ErrorKind::LogNotFound | ErrorKind::LogDeleted => Self::NotFound(error.to_string()),
            ErrorKind::SubscriptionRunning => Self::Refused(error.to_string()),
            _ => Self::Store(error),
        }
    }
}

impl From<eventlogs::postgres::tokio_postgres::Error> for Failure {
    fn from(error: eventlogs::postgres::tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => Self::Query(format!("PostgreSQL refused a query: {}", db.message())),
            None if error.is_closed() => Self::Query(format!(
                "lost the PostgreSQL connection: {error} (is the server running and reachable?)"
            )),
            None => Self::Query(format!("a PostgreSQL query failed: {error}")),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(why) | Self::Refused(why) | Self::NotFound(why) | Self::Query(why) => {
                f.write_str(why)
            }
            Self::Store(error) if error.is_retryable() => write!(
                f,
                "{error} (is the server running and reachable? check --database-url)"
            ),
            Self::Store(error) => write!(f, "{error}"),
        }
    }
}
