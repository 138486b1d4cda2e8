//! `load` (one page) and `stream` (every event, bounded memory) of typed event records.

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use tracing::Instrument;

use super::LogManager;
use crate::{Aggregate, EventRecord, LogId, Result};

impl<A: Aggregate> LogManager<A> {
    /// Reads at most `max_events` events from `from_index` on. An unknown log, or a start past
    /// the end, gives an empty page; `max_events` over the store's page limit
    /// ([`Limits::max_page_events`](crate::Limits::max_page_events), 10,000 by default) is
    /// [`InvalidInput::PageTooLarge`](crate::InvalidInput::PageTooLarge), refused by the store.
    pub async fn load(
        &self,
        log_id: &LogId,
        from_index: u64,
        max_events: u32,
    ) -> Result<Vec<EventRecord<A::Event>>> {
        let span = tracing::info_span!("eventlogs.load", log_id = %log_id, from_index, max_events);
        async {
            // No log holds an index past `u32::MAX`.
            let Ok(from_index) = u32::try_from(from_index) else {
                self.inner.store.limits().check_page(max_events)?;
                return Ok(Vec::new());
            };
            if max_events == 0 {
                return Ok(Vec::new());
            }
            let raw = self
                .inner
                .store
                .load(log_id, from_index, max_events)
                .await?;
            let page = raw
                .iter()
                .map(|r| self.inner.upcasters.decode(log_id, r))
                .collect::<Result<Vec<_>>>()?;
            tracing::debug!(events = page.len(), "loaded");
            Ok(page)
        }
        .instrument(span)
        .await
    }

    /// Streams every event from `from_index` on, in order, holding a bounded number of events
    /// in memory whatever the log's length. An unknown log gives an empty stream.
    pub fn stream(
        &self,
        log_id: &LogId,
        from_index: u64,
    ) -> BoxStream<'static, Result<EventRecord<A::Event>>> {
        let store = std::sync::Arc::clone(&self.inner.store);
        let upcasters = self.inner.upcasters.clone();
        let log_id = *log_id;
        let span = tracing::info_span!("eventlogs.stream", log_id = %log_id, from_index);
        // No log holds an index past `u32::MAX`.
        let Ok(from_index) = u32::try_from(from_index) else {
            return futures::stream::empty().boxed();
        };
        futures::stream::once(
            async move { store.stream(&log_id, from_index).await }.instrument(span),
        )
        .try_flatten()
        .map(move |raw| raw.and_then(|raw| upcasters.decode(&log_id, &raw)))
        .boxed()
    }
}
