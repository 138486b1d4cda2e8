//! `UpcastFeed`: the global feed read through upcasters, for readers of the raw feed.

use async_trait::async_trait;

use crate::{EventFeed, FeedEvent, FeedFilter, FeedPage, FeedPosition, Result, Upcasters};

/// An [`EventFeed`] whose events come upcast to the chain's current version: what
/// subscriptions with [`SubscriptionOptions::with_upcasters`](crate::SubscriptionOptions::with_upcasters)
/// see, for code that reads the feed itself.
///
/// ```
/// # async fn demo(store: impl eventlogs_core::EventFeed) -> eventlogs_core::Result<()> {
/// use eventlogs_core::{EventFeed, FeedPosition, UpcastFeed, Upcast, Upcasters};
/// let chain = Upcasters::new().then(Upcast::new("credited").rename("Deposited", "Credited"));
/// let feed = UpcastFeed::new(store, chain);
/// let events = feed.read_feed(FeedPosition::START, 100).await?;
/// # let _ = events; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct UpcastFeed<F> {
    feed: F,
    upcasters: Upcasters,
}

impl<F: EventFeed> UpcastFeed<F> {
    /// `feed` read through `upcasters`.
    pub fn new(feed: F, upcasters: Upcasters) -> Self {
        Self { feed, upcasters }
    }

    fn upcast(&self, events: &mut [FeedEvent]) -> Result<()> {
        for event in events {
            self.upcasters.upcast_feed_event(event)?;
        }
        Ok(())
    }
}

#[async_trait]
impl<F: EventFeed> EventFeed for UpcastFeed<F> {
    async fn read_feed(&self, after: FeedPosition, max: u32) -> Result<Vec<FeedEvent>> {
        let mut events = self.feed.read_feed(after, max).await?;
        self.upcast(&mut events)?;
        Ok(events)
    }

    /// Reads with [`Upcasters::stored_filter`] (the stored names of the wanted types), upcasts,
    /// then keeps what `filter` itself lets through.
    async fn read_page(
        &self,
        after: FeedPosition,
        max: u32,
        filter: &FeedFilter,
    ) -> Result<FeedPage> {
        let page = self
            .feed
            .read_page(after, max, &self.upcasters.stored_filter(filter))
            .await?;
        self.upcasters.upcast_page(filter, page)
    }

    async fn head(&self) -> Result<FeedPosition> {
        self.feed.head().await
    }
}
