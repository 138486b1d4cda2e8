//! PostgreSQL `EventStore` for eventlogs: dense logs, one winner per index and idempotency
//! keys enforced by the database, one round trip per append, streamed reads; the global feed,
//! which only transactions writing events can hold back ([`FeedWatermark`] explains why it
//! never skips an event), filtered in SQL; and subscriptions (one consumer per name by advisory
//! lock, `LISTEN`/`NOTIFY` wake-ups sent only while someone listens, exactly-once delivery with
//! [`Transactional`]).
//!
//! ```no_run
//! # async fn demo() -> eventlogs_core::Result<()> {
//! use eventlogs_postgres::PostgresEventStore;
//! let store = PostgresEventStore::builder("postgres://app@127.0.0.1/app")
//!     .schema("eventlogs")
//!     .pool_size(16)
//!     .build()?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```

mod append;
mod citus;
mod config;
mod connect;
mod delete;
mod error;
mod feed;
mod feed_sql;
mod group;
mod group_config;
mod group_send;
mod group_sql;
mod migrate;
mod notifier;
mod rows;
mod schema;
mod snapshot;
mod sql;
mod store;
mod stream;
mod subscription;
mod subscription_sql;
#[cfg(feature = "tls")]
mod tls;
mod transactional;
mod watermark;

pub use config::{PostgresConfig, PostgresEventStoreBuilder};
pub use group::AppendGroupStats;
pub use group_config::AppendGrouping;
pub use schema::{migration_sql, Migration, MIGRATIONS};
pub use snapshot::PostgresSnapshotCache;
pub use store::PostgresEventStore;
pub use subscription::PostgresClaim;
pub use transactional::{Transactional, TransactionalHandler};
pub use watermark::FeedWatermark;

/// Re-exported so users can build a pool themselves for [`PostgresEventStore::from_pool`].
pub use deadpool_postgres;
/// Re-exported for the same reason.
pub use tokio_postgres;
