//! The global feed on PostgreSQL: ordered by writing transaction and position, read only below
//! the oldest running transaction, so a late commit is never skipped.

use async_trait::async_trait;
use eventlogs_core::{Error, EventFeed, FeedEvent, FeedPosition, LogId, Result};

use crate::error::query_error;
use crate::rows;
use crate::store::PostgresEventStore;

/// Why the order is safe: transaction ids are assigned in increasing order when a transaction
/// first writes, and every transaction still running has an id at least
/// `pg_snapshot_xmin(pg_current_snapshot())`. Rows below that watermark are all committed (or
/// gone with an abort), and any row committed later has a larger id than every row already
/// read. Writers take no lock and send no `NOTIFY` for this.
///
/// On a schema distributed over a Citus cluster, transaction ids and positions exist per
/// worker only, so this order does not exist there: the feed is refused with
/// [`Error::Unsupported`] rather than skipping events.
#[async_trait]
impl EventFeed for PostgresEventStore {
    async fn read_feed(&self, after: FeedPosition, max: u32) -> Result<Vec<FeedEvent>> {
        self.refuse_on_distributed("the global feed").await?;
        let (transaction, sequence) = rows::position_params(after);
        let limit = i64::from(max);
        let found = self
            .rows(&self.statements().feed, &[&transaction, &sequence, &limit])
            .await?;
        found
            .map_err(query_error)?
            .iter()
            .map(|row| {
                let log_id: uuid::Uuid = row.try_get(2).map_err(|_| Error::Backend {
                    service: "postgres",
                    source: "unreadable feed row: log id".into(),
                })?;
                let log_id = LogId::from_u128(log_id.as_u128());
                Ok(FeedEvent {
                    position: rows::feed_position(row, 0, "feed row")?,
                    log_id,
                    event: rows::event_at(&log_id, row, 3)?,
                })
            })
            .collect()
    }

    async fn head(&self) -> Result<FeedPosition> {
        self.refuse_on_distributed("the global feed").await?;
        let found = self.rows(&self.statements().feed_head, &[]).await?;
        match found.map_err(query_error)?.first() {
            Some(row) => rows::feed_position(row, 0, "feed head"),
            None => Ok(FeedPosition::START),
        }
    }
}
