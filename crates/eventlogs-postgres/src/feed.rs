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
#[async_trait]
impl EventFeed for PostgresEventStore {
    async fn read_feed(&self, after: FeedPosition, max: u32) -> Result<Vec<FeedEvent>> {
        let transaction = after.transaction.to_string();
        let sequence = i64::try_from(after.sequence).unwrap_or(i64::MAX);
        let limit = i64::from(max);
        let found = self
            .rows(&self.statements().feed, &[&transaction, &sequence, &limit])
            .await?;
        found
            .map_err(query_error)?
            .iter()
            .map(|row| {
                let bad = |what: &str| Error::Backend {
                    service: "postgres",
                    source: format!("unreadable feed row: {what}").into(),
                };
                let transaction: String = row.try_get(0).map_err(|_| bad("transaction id"))?;
                let sequence: i64 = row.try_get(1).map_err(|_| bad("position"))?;
                let log_id: uuid::Uuid = row.try_get(2).map_err(|_| bad("log id"))?;
                let log_id = LogId::from_u128(log_id.as_u128());
                Ok(FeedEvent {
                    position: FeedPosition {
                        transaction: transaction.parse().map_err(|_| bad("transaction id"))?,
                        sequence: u64::try_from(sequence).map_err(|_| bad("position"))?,
                    },
                    log_id,
                    event: rows::event_at(&log_id, row, 3)?,
                })
            })
            .collect()
    }

    async fn head(&self) -> Result<FeedPosition> {
        let found = self.rows(&self.statements().feed_head, &[]).await?;
        let Some(row) = found.map_err(query_error)?.into_iter().next() else {
            return Ok(FeedPosition::START);
        };
        let bad = || Error::Backend {
            service: "postgres",
            source: "unreadable feed head".into(),
        };
        let transaction: String = row.try_get(0).map_err(|_| bad())?;
        let sequence: i64 = row.try_get(1).map_err(|_| bad())?;
        Ok(FeedPosition {
            transaction: transaction.parse().map_err(|_| bad())?,
            sequence: u64::try_from(sequence).map_err(|_| bad())?,
        })
    }
}
