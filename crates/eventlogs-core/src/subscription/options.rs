//! `SubscriptionOptions`: batch size, polling, retry pacing and the filter of a subscription.

use std::time::Duration;

use crate::{FeedFilter, InvalidInput, Result};

/// Largest accepted batch.
pub const MAX_BATCH_SIZE: u32 = 10_000;

/// How a [`Subscription`](crate::Subscription) reads and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SubscriptionOptions {
    pub(crate) batch_size: u32,
    pub(crate) poll_interval: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) filter: FeedFilter,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            claim_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(500),
            filter: FeedFilter::all(),
        }
    }
}

impl SubscriptionOptions {
    /// Events read (and handed to the handler) at a time, 1 to 10,000 (default 500). One
    /// checkpoint is written per batch; in at-least-once mode a crash repeats at most one batch.
    pub fn batch_size(mut self, size: u32) -> Self {
        self.batch_size = size;
        self
    }

    /// How long a caught-up subscription waits for a wake-up before reading again anyway
    /// (default 1 s). Wake-ups arrive sooner when the store can send them (PostgreSQL
    /// `LISTEN`/`NOTIFY`); polling catches events no wake-up announced.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How often a consumer that does not hold the subscription tries to take it over
    /// (default 1 s).
    pub fn claim_interval(mut self, interval: Duration) -> Self {
        self.claim_interval = interval;
        self
    }

    /// How long to wait after a retryable store error before claiming again (default 500 ms).
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// Which events reach the handler (default all).
    pub fn filter(mut self, filter: FeedFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Checks the values.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.batch_size == 0 || self.batch_size > MAX_BATCH_SIZE {
            return Err(InvalidInput::Config(format!(
                "subscription batch_size must be 1 to {MAX_BATCH_SIZE}, not {}",
                self.batch_size
            ))
            .into());
        }
        for (what, value) in [
            ("poll_interval", self.poll_interval),
            ("claim_interval", self.claim_interval),
        ] {
            if value.is_zero() {
                return Err(
                    InvalidInput::Config(format!("subscription {what} must not be zero")).into(),
                );
            }
        }
        Ok(())
    }
}
