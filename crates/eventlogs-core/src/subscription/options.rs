//! `SubscriptionOptions`: batch size, polling, retry pacing and the filter of a subscription.

use std::time::Duration;

use crate::{FeedFilter, InvalidInput, Result, Upcasters};

/// Largest accepted batch.
pub const MAX_BATCH_SIZE: u32 = 10_000;

/// How a [`Subscription`](crate::Subscription) reads and waits. Set with `with_*`, read with
/// the bare name.
///
/// ```
/// use std::time::Duration;
/// use eventlogs_core::{FeedFilter, SubscriptionOptions};
/// let options = SubscriptionOptions::default()
///     .with_batch_size(200)
///     .with_poll_interval(Duration::from_millis(250))
///     .with_filter(FeedFilter::all().with_event_types(["Deposited"]));
/// assert_eq!(options.batch_size(), 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct SubscriptionOptions {
    pub(crate) batch_size: u32,
    pub(crate) poll_interval: Duration,
    pub(crate) claim_interval: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) held_back_retry: Duration,
    pub(crate) head_pause: Duration,
    pub(crate) filter: FeedFilter,
    pub(crate) upcasters: Upcasters,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            claim_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(500),
            held_back_retry: Duration::from_millis(10),
            head_pause: Duration::from_millis(40),
            filter: FeedFilter::all(),
            upcasters: Upcasters::new(),
        }
    }
}

impl SubscriptionOptions {
    /// Events read (and handed to the handler) at a time, 1 to 10,000 (default 500). One
    /// checkpoint is written per batch; in at-least-once mode a crash repeats at most one batch.
    pub fn with_batch_size(mut self, size: u32) -> Self {
        self.batch_size = size;
        self
    }

    /// How long a caught-up subscription waits for a wake-up before reading again anyway
    /// (default 1 s). Wake-ups arrive sooner when the store can send them (PostgreSQL
    /// `LISTEN`/`NOTIFY`); polling catches events no wake-up announced.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How often a consumer that does not hold the subscription tries to take it over
    /// (default 1 s).
    pub fn with_claim_interval(mut self, interval: Duration) -> Self {
        self.claim_interval = interval;
        self
    }

    /// How long to wait after a retryable store error before claiming again (default 500 ms).
    pub fn with_retry_backoff(mut self, backoff: Duration) -> Self {
        self.retry_backoff = backoff;
        self
    }

    /// How soon an empty read is retried after a wake-up found the feed held back by a
    /// transaction still open (default 10 ms, doubling up to the poll interval). No second
    /// wake-up comes when that transaction ends, so this bounds how late its events arrive.
    pub fn with_held_back_retry(mut self, delay: Duration) -> Self {
        self.held_back_retry = delay;
        self
    }

    /// How long a subscription that just reached the head of the feed waits for the next
    /// wake-up before reading again anyway (default 40 ms, at most the poll interval).
    /// Longer pauses deliver (and checkpoint) bigger batches under a steady write load, at the
    /// cost of latency.
    pub fn with_head_pause(mut self, pause: Duration) -> Self {
        self.head_pause = pause;
        self
    }

    /// Which events reach the handler (default all).
    pub fn with_filter(mut self, filter: FeedFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Upcasts every event before the handler sees it (default: none), with the chain the
    /// log managers use ([`LogManagerBuilder::upcasters`](crate::LogManagerBuilder::upcasters)),
    /// so `FeedEvent::decode` gives the current event type. An event-type filter also finds
    /// events stored under a name the chain renames (see [`Upcasters::stored_filter`]).
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = upcasters;
        self
    }

    /// Events read per batch.
    #[must_use]
    pub fn batch_size(&self) -> u32 {
        self.batch_size
    }

    /// The longest wait for a wake-up when caught up.
    #[must_use]
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// How often a standby consumer tries to take the subscription over.
    #[must_use]
    pub fn claim_interval(&self) -> Duration {
        self.claim_interval
    }

    /// The pause after a retryable store error.
    #[must_use]
    pub fn retry_backoff(&self) -> Duration {
        self.retry_backoff
    }

    /// The first re-read delay when the feed is held back.
    #[must_use]
    pub fn held_back_retry(&self) -> Duration {
        self.held_back_retry
    }

    /// The pause at the head of the feed.
    #[must_use]
    pub fn head_pause(&self) -> Duration {
        self.head_pause
    }

    /// Which events reach the handler.
    #[must_use]
    pub fn filter(&self) -> &FeedFilter {
        &self.filter
    }

    /// The upcasters events are read through.
    #[must_use]
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
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
            ("held_back_retry", self.held_back_retry),
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
