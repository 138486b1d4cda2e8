//! The global feed: every event of every log in one order all readers share, for read models.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{EventRecord, FeedFilter, LogId, RawEvent, Result};

/// A place in the global feed, ordered. `FeedPosition::START` is before every event.
///
/// Store it as a checkpoint and read on from it: a reader that resumes from the position of
/// the last event it handled never skips and never repeats an event.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct FeedPosition {
    /// The writing transaction (or commit) order.
    pub transaction: u64,
    /// The order within it.
    pub sequence: u64,
}

impl FeedPosition {
    /// Before the first event.
    pub const START: Self = Self {
        transaction: 0,
        sequence: 0,
    };
}

impl fmt::Display for FeedPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.transaction, self.sequence)
    }
}

/// One event in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    /// Where it is in the feed.
    pub position: FeedPosition,
    /// The log it belongs to.
    pub log_id: LogId,
    /// The event. For a deletion marker, an empty event (`null`) at the index the log
    /// would have written next.
    pub event: RawEvent,
    /// Whether this is the marker of the log's deletion
    /// ([`LogManager::delete`](crate::LogManager::delete)) rather than an event: every event
    /// of the log before it is gone, and a read model should forget the log.
    pub deleted: bool,
}

impl FeedEvent {
    /// The event as a typed record of its log (deserializes the payload and metadata); a
    /// payload that no longer fits `E` is [`Error::Corrupt`](crate::Error::Corrupt).
    pub fn decode<E: serde::de::DeserializeOwned>(&self) -> Result<EventRecord<E>> {
        if self.deleted {
            return Err(crate::Error::LogDeleted {
                log_id: self.log_id,
            });
        }
        self.event.decode(&self.log_id)
    }

    /// The event's type name as serde wrote it (the `"type"` field, or an enum variant's
    /// name), read without deserializing the payload. See
    /// [`RawEvent::event_type`](crate::backend::RawEvent::event_type).
    #[must_use]
    pub fn event_type(&self) -> Option<String> {
        self.event.event_type()
    }
}

/// What one filtered read of the feed found: the matching events and how far it looked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeedPage {
    /// The events that passed the filter, in feed order.
    pub events: Vec<FeedEvent>,
    /// The position of the last event the read looked at, matching or not; `None` when it
    /// found nothing after the position it started from. Reading on from here skips nothing
    /// the filter would let through.
    pub scanned_through: Option<FeedPosition>,
    /// Whether the read stopped at its limits rather than at the readable end of the feed,
    /// so reading on at once can find more.
    pub more: bool,
}

impl FeedPage {
    /// The page of a read of up to `max` events in feed order, filtered here: it looked
    /// through the last event read, and a full read means more may follow.
    #[must_use]
    pub fn filtering(events: Vec<FeedEvent>, max: u32, filter: &FeedFilter) -> Self {
        let more = events.len() >= max as usize;
        let scanned_through = events.last().map(|e| e.position);
        let events = if filter.is_all() {
            events
        } else {
            events.into_iter().filter(|e| filter.matches(e)).collect()
        };
        Self {
            events,
            scanned_through,
            more,
        }
    }
}

/// Reads the global feed.
///
/// Implementations return only events that no later commit can precede: a transaction that
/// commits late (after others that started after it) is delivered at its place, never skipped.
#[async_trait]
pub trait EventFeed: Send + Sync + fmt::Debug + 'static {
    /// At most `max` events after `after`, in feed order.
    async fn read_feed(&self, after: FeedPosition, max: u32) -> Result<Vec<FeedEvent>>;

    /// At most `max` events after `after` that pass `filter`, in feed order, and how far the
    /// read looked ([`FeedPage::scanned_through`]), so a narrow filter moves through the feed
    /// without receiving what it does not want.
    ///
    /// The default reads `max` events with [`read_feed`](Self::read_feed) and filters them
    /// here; a store that can filter where the events are (PostgreSQL does, in SQL) overrides
    /// it.
    async fn read_page(
        &self,
        after: FeedPosition,
        max: u32,
        filter: &FeedFilter,
    ) -> Result<FeedPage> {
        let events = self.read_feed(after, max).await?;
        Ok(FeedPage::filtering(events, max, filter))
    }

    /// The position of the last event a reader can read now ([`FeedPosition::START`] for an
    /// empty feed). Reading after it returns only events committed from now on: a new read
    /// model that needs no history starts there.
    async fn head(&self) -> Result<FeedPosition>;
}

#[async_trait]
impl<T: EventFeed + ?Sized> EventFeed for std::sync::Arc<T> {
    async fn read_feed(&self, after: FeedPosition, max: u32) -> Result<Vec<FeedEvent>> {
        (**self).read_feed(after, max).await
    }

    async fn read_page(
        &self,
        after: FeedPosition,
        max: u32,
        filter: &FeedFilter,
    ) -> Result<FeedPage> {
        (**self).read_page(after, max, filter).await
    }

    async fn head(&self) -> Result<FeedPosition> {
        (**self).head().await
    }
}
