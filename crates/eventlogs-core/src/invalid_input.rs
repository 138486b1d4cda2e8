//! `InvalidInput`: why a request was refused before anything was written.

use crate::ParseLogIdError;

/// Why a request was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// A string that should be a log id is not one.
    #[error("malformed log id: {0}")]
    LogId(#[from] ParseLogIdError),
    /// An event serialized to more bytes than the limit.
    #[error("event {position} of the request is {size} bytes of JSON, over the limit of {max}")]
    EventTooLarge {
        /// Position of the event within the request (0 for a single append).
        position: usize,
        /// Its size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The metadata serialized to more bytes than the limit.
    #[error("metadata is {size} bytes of JSON, over the limit of {max}")]
    MetadataTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A batch holds more events than the limit.
    #[error("a batch of {count} events is over the limit of {max}")]
    BatchTooLarge {
        /// Events in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A batch's events add up to more bytes than the limit.
    #[error("a batch of {size} bytes of JSON is over the limit of {max}")]
    BatchTooManyBytes {
        /// Total size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A batch with no events.
    #[error("a batch needs at least one event")]
    EmptyBatch,
    /// A page larger than the limit was asked for.
    #[error("a page of {requested} events is over the limit of {max}")]
    PageTooLarge {
        /// Events asked for.
        requested: u32,
        /// The limit.
        max: u32,
    },
    /// The idempotency key is empty, too long or holds a NUL character.
    #[error("idempotency key: {reason}")]
    IdempotencyKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An event or the metadata could not be serialized to JSON, or holds a NUL character.
    #[error("cannot serialize: {0}")]
    Serialize(String),
    /// A subscription name is empty, longer than 120 bytes or holds characters other than
    /// ASCII letters, digits, `_`, `-`, `.` and `:`.
    #[error("invalid subscription name {0:?}")]
    SubscriptionName(String),
    /// A configuration value (a schema name, a prefix, a size) is not acceptable.
    #[error("invalid configuration: {0}")]
    Config(String),
}
