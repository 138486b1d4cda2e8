//! The library's one error type, classified so a caller knows what happened and whether a retry helps.

use std::time::Duration;

pub use crate::invalid_input::InvalidInput;
use crate::LogId;

/// A boxed error from a driver or the operating system, kept as the source of [`Error::Unavailable`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every fallible eventlogs call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in eventlogs.
///
/// Match on the variant, never on the message. [`Error::is_retryable`] says whether calling
/// again with the same arguments may succeed; [`Error::is_conflict`] says whether the caller
/// should reduce again and retry with the fresh state.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another append took the expected index first. Nothing was written; reduce and retry.
    #[error("concurrent append to {log_id}: index {index} is already taken")]
    ConcurrentAppend {
        /// The log that was appended to.
        log_id: LogId,
        /// The index this call expected to write.
        index: u64,
    },

    /// The idempotency key was already used by the same request, which committed. Nothing was
    /// written by this call; the fields name what the original call wrote.
    #[error(
        "idempotent replay of key {key:?}: {count} event(s) in {log_id} from index {first_index}"
    )]
    IdempotentReplay {
        /// The idempotency key.
        key: String,
        /// The log the original call wrote to.
        log_id: LogId,
        /// The index of the first event the original call wrote.
        first_index: u64,
        /// How many events the original call wrote.
        count: u64,
    },

    /// The idempotency key was already used by a different request. Nothing was written.
    #[error("idempotency key {key:?} was already used for a different request")]
    IdempotencyConflict {
        /// The idempotency key.
        key: String,
    },

    /// The log has no events.
    #[error("log {log_id} not found")]
    LogNotFound {
        /// The log asked for.
        log_id: LogId,
    },

    /// The log was deleted ([`LogManager::delete`](crate::LogManager::delete)). Nothing was
    /// written or read: its id cannot be written to again, and an idempotency key of one of its
    /// writes replays as this error.
    #[error("log {log_id} was deleted")]
    LogDeleted {
        /// The log asked for.
        log_id: LogId,
    },

    /// The events would pass the last index a log can hold (`u32::MAX`). Nothing was written.
    #[error(
        "log {log_id} is full: {count} event(s) at index {next_index} would pass index {}",
        u32::MAX
    )]
    LogFull {
        /// The log appended to.
        log_id: LogId,
        /// The index the first new event would have taken.
        next_index: u64,
        /// How many events were to be appended.
        count: u64,
    },

    /// The expected index is past the end of the log: appending would leave a gap. Nothing was
    /// written. The state did not come from this log's history (or the log was restored to an
    /// earlier point); reduce and retry.
    #[error("appending at index {index} of {log_id} would leave a gap after its last event")]
    IndexGap {
        /// The log appended to.
        log_id: LogId,
        /// The index this call expected to write.
        index: u64,
    },

    /// A command ([`LogManager::execute`](crate::LogManager::execute)) lost the race for the
    /// log's next index on every attempt its [`RetryPolicy`](crate::RetryPolicy) allows.
    /// Nothing was written by the last attempt. Retryable: the log is busy, not broken.
    #[error("command on {log_id} lost to concurrent writers {attempts} time(s)")]
    Contended {
        /// The log the command was for.
        log_id: LogId,
        /// How many attempts were made.
        attempts: u32,
    },

    /// The request was refused before anything was written.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),

    /// A server could not be reached or failed in a way that may pass. Retryable.
    #[error("{service} unavailable")]
    Unavailable {
        /// Which service failed, for example `"postgres"`.
        service: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },

    /// An operation did not finish within its deadline. Retryable; a write that timed out may
    /// or may not have committed, so retry it with the same idempotency key.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// What timed out, for example `"pool checkout"`.
        operation: &'static str,
        /// The deadline that passed.
        after: Duration,
    },

    /// The server cancelled the statement before it finished: a deadline of its own passed
    /// (PostgreSQL's `statement_timeout`) or an operator cancelled it (`pg_cancel_backend`).
    /// The server is up. Retryable; retry a write with the same idempotency key.
    #[error("{service} cancelled the statement: {reason}")]
    Cancelled {
        /// Which service cancelled it, for example `"postgres"`.
        service: &'static str,
        /// Why, as the server said it, for example `canceling statement due to statement timeout`.
        reason: String,
    },

    /// A server reported an error that retrying will not fix (a permissions problem, a
    /// broken schema). Not retryable.
    #[error("{service} failed")]
    Backend {
        /// Which service failed, for example `"postgres"`.
        service: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },

    /// A subscription's handler failed. The batch it was given is not checkpointed, so it is
    /// delivered again when the subscription runs next.
    #[error("subscription {subscription:?}: handler failed at {position}")]
    Handler {
        /// The subscription's name.
        subscription: String,
        /// The feed position of the last event in the failed batch.
        position: crate::FeedPosition,
        /// The handler's error.
        #[source]
        source: BoxError,
    },

    /// The subscription is being run by a consumer (in this or another process), so its
    /// checkpoint was not changed. Stop the consumer first, then reset.
    #[error("subscription {subscription:?} is being run by a consumer; stop it before resetting its checkpoint")]
    SubscriptionRunning {
        /// The subscription's name.
        subscription: String,
    },

    /// The store cannot do this in its configuration, for example the global feed on a schema
    /// distributed over a Citus cluster. Nothing was done; not retryable.
    #[error("{operation} is not supported here: {reason}")]
    Unsupported {
        /// What was asked, for example `"the global feed"`.
        operation: &'static str,
        /// Why not, and what to do instead.
        reason: String,
    },

    /// Stored data could not be read back: an event that no longer deserializes into the
    /// event type, or a row that breaks the store's invariants.
    #[error("corrupt data in {log_id} at index {index}: {reason}")]
    Corrupt {
        /// The log read.
        log_id: LogId,
        /// The index of the offending event.
        index: u64,
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// Whether calling again with the same arguments may succeed (the server was unavailable
    /// or slow, or cancelled the statement). Writes should be retried with the same
    /// idempotency key.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Timeout { .. }
                | Self::Cancelled { .. }
                | Self::Contended { .. }
        )
    }

    /// Whether the state used was stale: reduce again and retry with the fresh state.
    #[must_use]
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::ConcurrentAppend { .. } | Self::IndexGap { .. } | Self::Contended { .. }
        )
    }

    /// Which kind of error this is: comparable, for tests and for matching without the
    /// variant's fields. Its [`Display`](std::fmt::Display) is a short, stable name for metrics
    /// and logs.
    ///
    /// ```
    /// use eventlogs_core::{Error, ErrorKind, LogId};
    /// let error = Error::LogNotFound { log_id: LogId::new() };
    /// assert_eq!(error.kind(), ErrorKind::LogNotFound);
    /// assert_eq!(error.kind().to_string(), "log_not_found");
    /// ```
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ConcurrentAppend { .. } => ErrorKind::ConcurrentAppend,
            Self::IdempotentReplay { .. } => ErrorKind::IdempotentReplay,
            Self::IdempotencyConflict { .. } => ErrorKind::IdempotencyConflict,
            Self::LogNotFound { .. } => ErrorKind::LogNotFound,
            Self::LogDeleted { .. } => ErrorKind::LogDeleted,
            Self::LogFull { .. } => ErrorKind::LogFull,
            Self::IndexGap { .. } => ErrorKind::IndexGap,
            Self::Contended { .. } => ErrorKind::Contended,
            Self::InvalidInput(_) => ErrorKind::InvalidInput,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::Cancelled { .. } => ErrorKind::Cancelled,
            Self::Backend { .. } => ErrorKind::Backend,
            Self::Handler { .. } => ErrorKind::Handler,
            Self::SubscriptionRunning { .. } => ErrorKind::SubscriptionRunning,
            Self::Unsupported { .. } => ErrorKind::Unsupported,
            Self::Corrupt { .. } => ErrorKind::Corrupt,
        }
    }

    /// Wraps a driver error as [`Error::Unavailable`].
    pub fn unavailable(service: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            service,
            source: source.into(),
        }
    }
}

/// The kind of an [`Error`], without its fields: `Copy` and `PartialEq`, so tests can
/// `assert_eq!` on it and services can map it (to HTTP statuses, metrics labels) in one match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::ConcurrentAppend`].
    ConcurrentAppend,
    /// [`Error::IdempotentReplay`].
    IdempotentReplay,
    /// [`Error::IdempotencyConflict`].
    IdempotencyConflict,
    /// [`Error::LogNotFound`].
    LogNotFound,
    /// [`Error::LogDeleted`].
    LogDeleted,
    /// [`Error::LogFull`].
    LogFull,
    /// [`Error::IndexGap`].
    IndexGap,
    /// [`Error::Contended`].
    Contended,
    /// [`Error::InvalidInput`].
    InvalidInput,
    /// [`Error::Unavailable`].
    Unavailable,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::Cancelled`].
    Cancelled,
    /// [`Error::Backend`].
    Backend,
    /// [`Error::Handler`].
    Handler,
    /// [`Error::SubscriptionRunning`].
    SubscriptionRunning,
    /// [`Error::Unsupported`].
    Unsupported,
    /// [`Error::Corrupt`].
    Corrupt,
}

impl ErrorKind {
    /// A short, stable, `snake_case` name, for metrics labels and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConcurrentAppend => "concurrent_append",
            Self::IdempotentReplay => "idempotent_replay",
            Self::IdempotencyConflict => "idempotency_conflict",
            Self::LogNotFound => "log_not_found",
            Self::LogDeleted => "log_deleted",
            Self::LogFull => "log_full",
            Self::IndexGap => "index_gap",
            Self::Contended => "contended",
            Self::InvalidInput => "invalid_input",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Backend => "backend",
            Self::Handler => "handler",
            Self::SubscriptionRunning => "subscription_running",
            Self::Unsupported => "unsupported",
            Self::Corrupt => "corrupt",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FeedPosition;

    #[test]
    fn every_variant_has_a_kind_and_a_retry_class() {
        let log_id = LogId::new();
        let source = || BoxError::from("driver error");
        // (error, kind, is_retryable, is_conflict)
        let cases = [
            (
                Error::ConcurrentAppend { log_id, index: 1 },
                "concurrent_append",
                false,
                true,
            ),
            (
                Error::IdempotentReplay {
                    key: "k".into(),
                    log_id,
                    first_index: 0,
                    count: 1,
                },
                "idempotent_replay",
                false,
                false,
            ),
            (
                Error::IdempotencyConflict { key: "k".into() },
                "idempotency_conflict",
                false,
                false,
            ),
            (Error::LogNotFound { log_id }, "log_not_found", false, false),
            (Error::LogDeleted { log_id }, "log_deleted", false, false),
            (
                Error::Contended {
                    log_id,
                    attempts: 5,
                },
                "contended",
                true,
                true,
            ),
            (
                Error::LogFull {
                    log_id,
                    next_index: 1,
                    count: 1,
                },
                "log_full",
                false,
                false,
            ),
            (
                Error::IndexGap { log_id, index: 2 },
                "index_gap",
                false,
                true,
            ),
            (
                InvalidInput::EmptyBatch.into(),
                "invalid_input",
                false,
                false,
            ),
            (
                Error::unavailable("postgres", source()),
                "unavailable",
                true,
                false,
            ),
            (
                Error::Timeout {
                    operation: "op",
                    after: Duration::from_millis(5),
                },
                "timeout",
                true,
                false,
            ),
            (
                Error::Cancelled {
                    service: "postgres",
                    reason: "by request".into(),
                },
                "cancelled",
                true,
                false,
            ),
            (
                Error::Backend {
                    service: "postgres",
                    source: source(),
                },
                "backend",
                false,
                false,
            ),
            (
                Error::Handler {
                    subscription: "s".into(),
                    position: FeedPosition {
                        transaction: 1,
                        sequence: 0,
                    },
                    source: source(),
                },
                "handler",
                false,
                false,
            ),
            (
                Error::Unsupported {
                    operation: "the global feed",
                    reason: "distributed".into(),
                },
                "unsupported",
                false,
                false,
            ),
            (
                Error::SubscriptionRunning {
                    subscription: "s".into(),
                },
                "subscription_running",
                false,
                false,
            ),
            (
                Error::Corrupt {
                    log_id,
                    index: 0,
                    reason: "bad".into(),
                },
                "corrupt",
                false,
                false,
            ),
        ];
        for (error, kind, retryable, conflict) in cases {
            assert_eq!(error.kind().as_str(), kind, "{error:?}");
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
            assert_eq!(error.is_conflict(), conflict, "{error:?}");
        }
    }

    #[test]
    fn a_cancelled_statement_says_why_and_no_duration() {
        let error = Error::Cancelled {
            service: "postgres",
            reason: "canceling statement due to statement timeout".into(),
        };
        assert_eq!(
            error.to_string(),
            "postgres cancelled the statement: canceling statement due to statement timeout"
        );
    }
}
