//! `Lag`: how far a subscription is behind the feed.

use std::time::Duration;

use crate::FeedPosition;

/// How far a subscription's checkpoint is behind the feed, readable at any time from any
/// process with [`SubscriptionStore::lag`](crate::backend::SubscriptionStore::lag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// The stored checkpoint ([`FeedPosition::START`] before the first batch).
    pub checkpoint: FeedPosition,
    /// Committed events after the checkpoint (filters are not applied). Zero exactly when
    /// nothing is waiting; otherwise exact where [`estimated`](Self::estimated) is false, and an
    /// estimate from feed positions where it is true (PostgreSQL: positions drawn since the
    /// checkpoint's, which also counts appends that rolled back), so that asking costs the
    /// same however far behind the subscription is.
    pub events: u64,
    /// Whether [`events`](Self::events) is an estimate.
    pub estimated: bool,
    /// How long ago the oldest of those events was recorded; zero when there are none.
    pub behind: Duration,
}

impl Lag {
    /// Whether nothing committed is waiting.
    #[must_use]
    pub fn is_caught_up(&self) -> bool {
        self.events == 0
    }
}
