//! `LogState`: which log and which index the next append expects.

use serde::{Deserialize, Serialize};

use crate::LogId;

/// The position a writer believes a log is at: its id and the index the next event will take.
///
/// `create` and `append` return the state after their write and [`Reduction::state`](crate::Reduction::state)
/// returns the state a reduction saw. Appending with a state is optimistic: if another writer
/// got there first the append fails with [`Error::ConcurrentAppend`](crate::Error::ConcurrentAppend)
/// and writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogState {
    log_id: LogId,
    next_index: u64,
}

impl LogState {
    /// The state of `log_id` when its next event takes `next_index` (0 for a new log).
    ///
    /// `next_index` may be `u32::MAX + 1` for a full log.
    #[must_use]
    pub const fn new(log_id: LogId, next_index: u64) -> Self {
        Self { log_id, next_index }
    }

    /// The state of a log that does not exist yet.
    #[must_use]
    pub const fn empty(log_id: LogId) -> Self {
        Self::new(log_id, 0)
    }

    /// The log this state belongs to.
    #[must_use]
    pub const fn log_id(&self) -> LogId {
        self.log_id
    }

    /// The index the next event will take, which is also the log's length.
    #[must_use]
    pub const fn next_index(&self) -> u64 {
        self.next_index
    }
}
