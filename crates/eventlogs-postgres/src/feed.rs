//! The global feed on PostgreSQL: ordered by writing transaction and position, read below a
//! watermark that only event writers hold back (see [`FeedWatermark`](crate::FeedWatermark)),
//! so a late commit is never skipped and unrelated work never stalls a reader.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use eventlogs_core::{
    Error, EventFeed, FeedEvent, FeedFilter, FeedPage, FeedPosition, LogId, Result,
};
use tokio_postgres::Row;
use tracing::Instrument;

use crate::error::query_error;
use crate::rows;
use crate::store::PostgresEventStore;

/// The most rows a filtered read looks at per round trip: a narrow filter moves through this
/// many events per statement and receives only the ones it wants.
const FILTER_SCAN: u32 = 10_000;

impl PostgresEventStore {
    /// The highest watermark known, 0 before the first.
    fn known_watermark(&self) -> u64 {
        self.watermark_cell().load(Ordering::Acquire)
    }

    /// Computes the watermark in a statement of its own, so that every read after it (with a
    /// later snapshot) may use it; keeps the highest seen.
    async fn refresh_watermark(&self) -> Result<u64> {
        let found = self.rows(&self.feed_statements().watermark, &[]).await?;
        let rows = found.map_err(query_error)?;
        let text: Option<String> = rows.first().and_then(|row| row.try_get(0).ok()).flatten();
        let value = text
            .and_then(|t| t.parse::<u64>().ok())
            .ok_or_else(|| unreadable("watermark"))?;
        let before = self.watermark_cell().fetch_max(value, Ordering::AcqRel);
        Ok(before.max(value))
    }

    /// Reads up to `max` events after `after` below the watermark `below`, through `filter`.
    async fn read_below(
        &self,
        after: FeedPosition,
        max: u32,
        filter: &FeedFilter,
        below: u64,
    ) -> Result<FeedPage> {
        if below <= after.transaction || max == 0 {
            return Ok(FeedPage::default());
        }
        let (transaction, sequence) = rows::position_params(after);
        let below = below.to_string();
        let sql = self.feed_statements();
        if filter.is_all() {
            let limit = i64::from(max);
            let found = self
                .rows(&sql.read, &[&transaction, &sequence, &limit, &below])
                .await?;
            let events = found
                .map_err(query_error)?
                .iter()
                .map(feed_event)
                .collect::<Result<Vec<_>>>()?;
            return Ok(FeedPage::filtering(events, max, filter));
        }
        let scan = i64::from(FILTER_SCAN.max(max));
        let limit = i64::from(max);
        let logs: Option<Vec<uuid::Uuid>> = filter
            .logs()
            .map(|logs| logs.iter().map(rows::uuid).collect());
        let types: Option<Vec<&str>> = filter
            .event_types()
            .map(|types| types.iter().map(String::as_str).collect());
        let found = self
            .rows(
                &sql.read_filtered,
                &[
                    &transaction,
                    &sequence,
                    &scan,
                    &below,
                    &limit,
                    &logs,
                    &types,
                ],
            )
            .await?;
        let mut events = Vec::new();
        let mut page = FeedPage::default();
        for row in found.map_err(query_error)? {
            let kind: i32 = row.try_get(10).map_err(|_| unreadable("row kind"))?;
            if kind == 0 {
                events.push(feed_event(&row)?);
                continue;
            }
            let scanned: i64 = row.try_get(3).map_err(|_| unreadable("rows looked at"))?;
            let last = rows::feed_position(&row, 0, "feed page")?;
            let full = events.len() >= max as usize;
            page.scanned_through = Some(if full {
                events.last().map_or(last, |e: &FeedEvent| e.position)
            } else {
                last
            });
            page.more = full || scanned >= scan;
        }
        page.events = events;
        Ok(page)
    }

    /// A page: first below the watermark already known (no extra round trip while catching
    /// up), then, when that runs short, below a fresh one.
    async fn page(&self, after: FeedPosition, max: u32, filter: &FeedFilter) -> Result<FeedPage> {
        self.refuse_on_distributed("the global feed").await?;
        let known = self.known_watermark();
        let mut page = self.read_below(after, max, filter, known).await?;
        if page.more {
            return Ok(page);
        }
        let fresh = self.refresh_watermark().await?;
        if fresh <= known {
            return Ok(page);
        }
        let from = page.scanned_through.unwrap_or(after);
        let left = max.saturating_sub(u32::try_from(page.events.len()).unwrap_or(max));
        let next = self.read_below(from, left, filter, fresh).await?;
        page.events.extend(next.events);
        page.scanned_through = next.scanned_through.or(page.scanned_through);
        page.more = next.more;
        Ok(page)
    }
}

/// A feed row: `transaction_id::text, position, log_id`, then the seven columns of an event.
fn feed_event(row: &Row) -> Result<FeedEvent> {
    let log_id: uuid::Uuid = row.try_get(2).map_err(|_| unreadable("log id"))?;
    let log_id = LogId::from_u128(log_id.as_u128());
    let (event, deleted) = rows::event_at(&log_id, row, 3)?;
    Ok(FeedEvent {
        position: rows::feed_position(row, 0, "feed row")?,
        log_id,
        event,
        deleted,
    })
}

fn unreadable(what: &str) -> Error {
    Error::Backend {
        service: "postgres",
        source: format!("unreadable feed row: {what}").into(),
    }
}

/// On a schema distributed over a Citus cluster, transaction ids and positions exist per
/// worker only, so this order does not exist there: the feed is refused with
/// [`Error::Unsupported`] rather than skipping events.
#[async_trait]
impl EventFeed for PostgresEventStore {
    async fn read_feed(&self, after: FeedPosition, max: u32) -> Result<Vec<FeedEvent>> {
        let span = tracing::debug_span!("eventlogs.postgres.read_feed", %after, max);
        let page = self
            .page(after, max, &FeedFilter::all())
            .instrument(span)
            .await?;
        Ok(page.events)
    }

    async fn read_page(
        &self,
        after: FeedPosition,
        max: u32,
        filter: &FeedFilter,
    ) -> Result<FeedPage> {
        let span = tracing::debug_span!("eventlogs.postgres.read_page", %after, max);
        self.page(after, max, filter).instrument(span).await
    }

    async fn head(&self) -> Result<FeedPosition> {
        self.refuse_on_distributed("the global feed").await?;
        let below = self.refresh_watermark().await?.to_string();
        let found = self.rows(&self.feed_statements().head, &[&below]).await?;
        match found.map_err(query_error)?.first() {
            Some(row) => rows::feed_position(row, 0, "feed head"),
            None => Ok(FeedPosition::START),
        }
    }
}
