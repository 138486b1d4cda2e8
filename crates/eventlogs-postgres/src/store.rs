//! `PostgresEventStore`: the `EventStore` on PostgreSQL.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicU8};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use eventlogs_core::{
    backend::{
        check_idempotency_key, AppendRequest, Appended, RawEvent, RawEventStream, StoredKey,
    },
    Error, EventStore, Limits, LogId, Result,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::citus::{self, CitusStatements, Layout};

use crate::config::{redact, PostgresConfig, PostgresEventStoreBuilder};
use crate::connect::Connector;
use crate::error::{pool_error, query_error, statement_timeout};
use crate::feed_sql::FeedStatements;
use crate::group::{AppendGroupStats, Groups};
use crate::notifier::Notifier;
use crate::rows;
use crate::schema::quote_schema;
use crate::sql::Statements;
use crate::stream::Rows;
use crate::subscription_sql::SubscriptionStatements;

/// An [`EventStore`] on PostgreSQL.
///
/// Every invariant is enforced by the database in one statement per append (one round trip
/// with a prepared statement, atomic without `BEGIN`/`COMMIT`): the idempotency key is checked
/// first, the previous index must exist, the primary key `(log_id, event_index)` admits one
/// winner, and the key is inserted with the events. Concurrent appends to different logs share
/// one such statement and one commit ([`AppendGrouping`](crate::AppendGrouping), on by
/// default), each with its own outcome. Reads stream rows as they arrive.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    sql: Statements,
    /// The statements of a schema distributed over a Citus cluster.
    citus: CitusStatements,
    /// Whether the schema is distributed (`Layout` as a number, 0 while unknown), found out by
    /// the first call that needs it and again after `migrate`.
    layout: AtomicU8,
    config: PostgresConfig,
    schema: String,
    /// Opens connections outside the pool; `None` for a store built on an existing pool.
    connector: Option<Connector>,
    notifier: Option<Arc<Notifier>>,
    subscriptions: SubscriptionStatements,
    feed: FeedStatements,
    /// The highest feed watermark computed so far (0 before the first): every read after it
    /// may use it.
    watermark: AtomicU64,
    /// The queue of grouped appends.
    groups: Groups,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(notifier) = &self.notifier {
            notifier.stop();
        }
    }
}

impl fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresEventStore")
            .field("url", &redact(&self.inner.config.url))
            .field("schema", &self.inner.config.schema)
            .field("pool", &self.inner.pool.status())
            .finish()
    }
}

/// Drops a connection that may still be busy with a statement that passed its deadline, so it
/// is never reused.
pub(crate) fn discard(client: Object, after: Duration) -> Error {
    drop(Object::take(client));
    tracing::warn!(timeout = ?after, "postgres statement timed out; connection discarded");
    statement_timeout(after)
}

impl PostgresEventStore {
    /// Starts building a store that connects to `url`.
    pub fn builder(url: impl Into<String>) -> PostgresEventStoreBuilder {
        PostgresEventStoreBuilder::from_url(url.into())
    }

    /// Starts building a store on an existing deadpool-postgres pool.
    pub fn from_pool(pool: Pool) -> PostgresEventStoreBuilder {
        PostgresEventStoreBuilder::from_pool(pool)
    }

    pub(crate) fn new(pool: Pool, config: PostgresConfig, connector: Option<Connector>) -> Self {
        let schema = quote_schema(&config.schema).unwrap_or_default();
        let notifier = config
            .notify_interval
            .map(|interval| Notifier::new(&config.schema, interval));
        let subscriptions = SubscriptionStatements::new(&schema);
        let feed = FeedStatements::new(&schema, config.feed_watermark);
        let groups = Groups::new(config.append_grouping);
        Self {
            inner: Arc::new(Inner {
                sql: Statements::new(&schema),
                citus: CitusStatements::new(&schema),
                layout: AtomicU8::new(0),
                pool,
                config,
                schema,
                connector,
                notifier,
                subscriptions,
                feed,
                watermark: AtomicU64::new(0),
                groups,
            }),
        }
    }

    /// The connector for connections outside the pool, when the store was built from a URL.
    pub(crate) fn connector(&self) -> Option<&Connector> {
        self.inner.connector.as_ref()
    }

    /// The subscription statements.
    pub(crate) fn subscription_statements(&self) -> &SubscriptionStatements {
        &self.inner.subscriptions
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The statement an append of one event without an idempotency key runs (parameters:
    /// log id, index, payload JSON, metadata JSON, event schema version as `integer`). Benchmarks run it through plain
    /// tokio-postgres to measure the library's own overhead against the same SQL.
    #[must_use]
    pub fn single_append_sql(&self) -> &str {
        &self.inner.sql.append_one
    }

    /// The statement a batch without an idempotency key runs (parameters: log id, first
    /// index, payloads as `text[]`, metadata JSON, event schema version), for the same kind of
    /// comparison.
    #[must_use]
    pub fn batch_append_sql(&self) -> &str {
        &self.inner.sql.append_many
    }

    /// The statement an append of one event without a key runs on a schema distributed over
    /// a Citus cluster (parameters: log id, index, payload JSON, metadata JSON), for the
    /// same kind of comparison.
    #[must_use]
    pub fn distributed_append_sql(&self) -> &str {
        &self.inner.citus.append_one
    }

    /// The feed read (parameters: transaction id as text, position, limit, watermark as text),
    /// for benchmarks that compare the library's feed readers with the same query through
    /// plain tokio-postgres.
    #[must_use]
    pub fn feed_sql(&self) -> &str {
        &self.inner.feed.read
    }

    /// The statement that computes the feed's watermark (no parameters; one row, the
    /// transaction id as text), for the same kind of comparison. Reads with
    /// [`feed_sql`](Self::feed_sql) may use it once it returned.
    #[must_use]
    pub fn feed_watermark_sql(&self) -> &str {
        &self.inner.feed.watermark
    }

    /// The feed statements.
    pub(crate) fn feed_statements(&self) -> &FeedStatements {
        &self.inner.feed
    }

    /// The group append queue.
    pub(crate) fn groups(&self) -> &Groups {
        &self.inner.groups
    }

    /// How grouped appends went since the store was built: how many statements carried more
    /// than one request, how many requests they carried, and how often one was split. All
    /// zero with [`AppendGrouping::off`](crate::AppendGrouping::off).
    #[must_use]
    pub fn append_group_stats(&self) -> AppendGroupStats {
        self.inner.groups.stats()
    }

    /// The highest watermark computed so far.
    pub(crate) fn watermark_cell(&self) -> &AtomicU64 {
        &self.inner.watermark
    }

    /// The prepared statements.
    pub(crate) fn statements(&self) -> &Statements {
        &self.inner.sql
    }

    /// The statements of a distributed schema.
    pub(crate) fn citus_statements(&self) -> &CitusStatements {
        &self.inner.citus
    }

    /// The schema name, quoted, as spliced into statements.
    pub(crate) fn quoted_schema(&self) -> &str {
        &self.inner.schema
    }

    /// Where the layout is kept.
    pub(crate) fn layout_cell(&self) -> &AtomicU8 {
        &self.inner.layout
    }

    /// Tells live subscriptions that appends committed (at most one `NOTIFY` per interval,
    /// sent by a background task, never in the append's transaction).
    pub(crate) fn announce(&self) {
        if let Some(notifier) = &self.inner.notifier {
            notifier.touch(&self.inner.pool);
        }
    }

    /// The configuration the store was built with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// What the names of this schema's subscription locks start with. A consumer holds the
    /// session-level advisory lock `hashtextextended(prefix || name, 0)` while it runs the
    /// subscription `name`, so tools can tell from `pg_locks` who runs it.
    #[must_use]
    pub fn subscription_lock_prefix(&self) -> String {
        crate::subscription_sql::lock_prefix(&self.inner.config.schema)
    }

    pub(crate) async fn client(&self) -> Result<Object> {
        let c = &self.inner.config;
        self.inner.pool.get().await.map_err(|e| {
            let error = pool_error(e, c.checkout_timeout, c.connect_timeout);
            tracing::warn!(%error, "postgres connection unavailable");
            error
        })
    }

    /// Runs one prepared statement within the statement timeout. The outer error is the pool's
    /// or the deadline's; the inner one is the statement's, left to the caller to classify.
    pub(crate) async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Result<Vec<Row>, tokio_postgres::Error>> {
        let client = self.client().await?;
        let after = self.inner.config.statement_timeout;
        let work = async {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, params).await
        };
        match tokio::time::timeout(after, work).await {
            Ok(rows) => Ok(rows),
            Err(_) => Err(discard(client, after)),
        }
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, request: &AppendRequest) -> Result<Appended> {
        request.validate(&self.inner.config.limits)?;
        match self.layout().await? {
            Layout::Single => {
                let written = if self.inner.groups.enabled() {
                    self.append_grouped(request).await
                } else {
                    self.append_single(request).await
                };
                match written {
                    Err(
                        error @ (Error::ConcurrentAppend { .. }
                        | Error::IndexGap { .. }
                        | Error::IdempotentReplay { .. }),
                    ) => Err(self.name_deleted(error).await),
                    other => other,
                }
            }
            Layout::Distributed if request.event_version() != 1 => Err(citus::unsupported_here(
                "event schema versions above 1",
                "the worker-side append functions of a distributed schema store every event at \
                 version 1",
            )),
            Layout::Distributed => self.append_distributed(request).await,
        }
    }

    async fn delete(&self, log_id: &LogId) -> Result<u64> {
        match self.layout().await? {
            Layout::Single => self.delete_log(log_id).await,
            Layout::Distributed => Err(citus::unsupported_here(
                "delete",
                "on a distributed schema an append checks its previous event with a foreign key, \
                 which a deletion marker would satisfy",
            )),
        }
    }

    async fn remove_idempotency_keys(
        &self,
        older_than: std::time::Duration,
        max_keys: u32,
    ) -> Result<u64> {
        match self.layout().await? {
            Layout::Single => self.remove_keys(older_than, max_keys).await,
            Layout::Distributed => Err(citus::unsupported_here(
                "removing idempotency keys",
                "a distributed schema keeps each key twice (a claim and the log's record), and \
                 their removal is not built yet",
            )),
        }
    }

    async fn find_idempotency_key(&self, key: &str) -> Result<Option<StoredKey>> {
        check_idempotency_key(key, &self.inner.config.limits)?;
        match self.layout().await? {
            Layout::Single => self.key_record(key).await,
            Layout::Distributed => self.find_key_distributed(key).await,
        }
    }

    async fn load(
        &self,
        log_id: &LogId,
        from_index: u32,
        max_events: u32,
    ) -> Result<Vec<RawEvent>> {
        self.inner.config.limits.check_page(max_events)?;
        if max_events == 0 {
            return Ok(Vec::new());
        }
        let (from, limit) = (i64::from(from_index), i64::from(max_events));
        let rows = self
            .rows(&self.inner.sql.load, &[&rows::uuid(log_id), &from, &limit])
            .await?;
        rows.map_err(query_error)?
            .iter()
            .map(|row| rows::event(log_id, row))
            .collect()
    }

    async fn stream(&self, log_id: &LogId, from_index: u32) -> Result<RawEventStream> {
        let uuid = rows::uuid(log_id);
        let from = i64::from(from_index);
        let timeout = self.inner.config.statement_timeout;
        let client = self.client().await?;
        let work = async {
            let stmt = client.prepare_cached(&self.inner.sql.stream).await?;
            let params: [&(dyn ToSql + Sync); 2] = [&uuid, &from];
            client.query_raw(&stmt, params).await
        };
        let rows = match tokio::time::timeout(timeout, work).await {
            Ok(rows) => rows.map_err(query_error)?,
            Err(_) => return Err(discard(client, timeout)),
        };
        // The pooled connection travels with the stream and returns to the pool when it ends.
        Ok(Box::pin(Rows::new(*log_id, client, rows, timeout)))
    }

    fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }
}
