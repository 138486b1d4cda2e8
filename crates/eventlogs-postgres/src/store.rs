//! `PostgresEventStore`: the `EventStore` on PostgreSQL.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use eventlogs_core::{
    AppendRequest, Appended, Error, EventStore, Limits, LogId, RawEvent, RawEventStream, Result,
    StoredKey, Timestamp,
};
use futures::Stream;
use tokio::time::{Instant, Sleep};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, RowStream};
use tracing::Instrument;

use crate::config::{redact, PostgresConfig, PostgresStoreBuilder};
use crate::connect::Connector;
use crate::error::{classify, pool_error, query_error, statement_timeout, Failure};
use crate::notifier::{self, Notifier};
use crate::rows;
use crate::schema::{quote_schema, MIGRATIONS, MIGRATIONS_TABLE};
use crate::sql::Statements;
use crate::subscription_sql::SubscriptionStatements;

/// An [`EventStore`] on PostgreSQL.
///
/// Every invariant is enforced by the database in one statement per append (one round trip
/// with a prepared statement, atomic without `BEGIN`/`COMMIT`): the idempotency key is checked
/// first, the previous index must exist, the primary key `(log_id, event_index)` admits one
/// winner, and the key is inserted with the events. Reads stream rows as they arrive.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    sql: Statements,
    config: PostgresConfig,
    schema: String,
    /// Opens connections outside the pool; `None` for a store built on an existing pool.
    connector: Option<Connector>,
    notifier: Option<Arc<Notifier>>,
    subscriptions: SubscriptionStatements,
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
fn discard(client: Object, after: Duration) -> Error {
    drop(Object::take(client));
    tracing::warn!(timeout = ?after, "postgres statement timed out; connection discarded");
    statement_timeout(after)
}

impl PostgresEventStore {
    /// Starts building a store that connects to `url`.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder::from_url(url.into())
    }

    /// Starts building a store on an existing deadpool-postgres pool.
    pub fn from_pool(pool: Pool) -> PostgresStoreBuilder {
        PostgresStoreBuilder::from_pool(pool)
    }

    pub(crate) fn new(pool: Pool, config: PostgresConfig, connector: Option<Connector>) -> Self {
        let schema = quote_schema(&config.schema).unwrap_or_default();
        let notifier = config
            .notify_interval
            .map(|interval| Notifier::new(notifier::channel(&config.schema), interval));
        let subscriptions = SubscriptionStatements::new(&schema);
        Self {
            inner: Arc::new(Inner {
                sql: Statements::new(&schema),
                pool,
                config,
                schema,
                connector,
                notifier,
                subscriptions,
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
    /// log id, index, payload JSON, metadata JSON). Benchmarks run it through plain
    /// tokio-postgres to measure the library's own overhead against the same SQL.
    #[must_use]
    pub fn single_append_sql(&self) -> &str {
        &self.inner.sql.append_one
    }

    /// The statement a batch without an idempotency key runs (parameters: log id, first
    /// index, payloads as `text[]`, metadata JSON), for the same kind of comparison.
    #[must_use]
    pub fn batch_append_sql(&self) -> &str {
        &self.inner.sql.append_many
    }

    /// The feed read (parameters: transaction id as text, position, limit), for benchmarks that
    /// compare the library's feed readers with the same query through plain tokio-postgres.
    #[must_use]
    pub fn feed_sql(&self) -> &str {
        &self.inner.sql.feed
    }

    /// The prepared statements.
    pub(crate) fn statements(&self) -> &Statements {
        &self.inner.sql
    }

    /// The configuration the store was built with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
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

    /// Creates or upgrades the schema: applies every pending [`MIGRATIONS`] entry in one
    /// transaction under an advisory lock, so concurrent calls from several processes are safe
    /// and a second call does nothing.
    pub async fn migrate(&self) -> Result<()> {
        let span =
            tracing::info_span!("eventlogs.postgres.migrate", schema = %self.inner.config.schema);
        self.try_migrate().instrument(span).await
    }

    async fn try_migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let schema = &self.inner.schema;
        let tx = client.transaction().await.map_err(query_error)?;
        let lock = format!("eventlogs.migrate.{}", self.inner.config.schema);
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock])
            .await
            .map_err(query_error)?;
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(query_error)?;
        tx.batch_execute(&MIGRATIONS_TABLE.replace("{schema}", schema))
            .await
            .map_err(query_error)?;
        let current: Option<i32> = tx
            .query_one(
                &format!("SELECT max(version) FROM {schema}.schema_migrations"),
                &[],
            )
            .await
            .map_err(query_error)?
            .get(0);
        for migration in MIGRATIONS.iter().filter(|m| Some(m.version) > current) {
            tx.batch_execute(&migration.sql.replace("{schema}", schema))
                .await
                .map_err(query_error)?;
            tx.execute(
                &format!(
                    "INSERT INTO {schema}.schema_migrations (version, description) VALUES ($1, $2)"
                ),
                &[&migration.version, &migration.description],
            )
            .await
            .map_err(query_error)?;
            tracing::info!(version = migration.version, "applied migration");
        }
        tx.commit().await.map_err(query_error)
    }

    async fn key_record(&self, key: &str) -> Result<Option<StoredKey>> {
        let rows = self
            .rows(&self.inner.sql.key, &[&key])
            .await?
            .map_err(query_error)?;
        rows.first()
            .map(|r| rows::key_record(r, 0))
            .transpose()
            .map(Option::flatten)
    }

    async fn log_exists(&self, log_id: &LogId) -> Result<bool> {
        let rows = self
            .rows(&self.inner.sql.log_exists, &[&rows::uuid(log_id)])
            .await?
            .map_err(query_error)?;
        Ok(rows.first().is_some_and(|r| r.get(0)))
    }

    /// Runs the append statement that fits the request: without a key, a plain conditional
    /// INSERT (one event, or `unnest` for a batch); with a key, the statement that also checks
    /// and stores the key.
    async fn insert(
        &self,
        request: &AppendRequest,
    ) -> Result<Result<Inserted, tokio_postgres::Error>> {
        let uuid = rows::uuid(&request.log_id());
        let expected = i64::try_from(request.expected_index()).unwrap_or(i64::MAX);
        let metadata = request.metadata();
        let sql = &self.inner.sql;
        let events = request.events();
        let Some(key) = request.idempotency_key() else {
            let rows = if events.len() == 1 {
                self.rows(
                    &sql.append_one,
                    &[&uuid, &expected, &events[0].json(), &metadata],
                )
                .await?
            } else {
                let payloads: Vec<&str> = events.iter().map(|e| e.json()).collect();
                self.rows(&sql.append_many, &[&uuid, &expected, &payloads, &metadata])
                    .await?
            };
            return Ok(rows.map(|rows| match rows.first() {
                Some(row) => Inserted::Events {
                    count: rows.len() as u32,
                    recorded_at: row.get(0),
                },
                None => Inserted::PreviousMissing,
            }));
        };
        let payloads: Vec<&str> = events.iter().map(|e| e.json()).collect();
        let hash = request.request_hash() as i64;
        let rows = self
            .rows(
                &sql.append,
                &[&uuid, &expected, &payloads, &metadata, &key, &hash],
            )
            .await?;
        Ok(rows.and_then(|rows| {
            let Some(row) = rows.first() else {
                return Ok(Inserted::PreviousMissing);
            };
            let count: i64 = row.try_get(0)?;
            Ok(if count > 0 {
                Inserted::Events {
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    recorded_at: row.try_get(1)?,
                }
            } else {
                match rows::key_record(row, 2) {
                    Ok(Some(used)) => Inserted::KeyUsed(used),
                    Ok(None) => Inserted::PreviousMissing,
                    Err(error) => Inserted::Unreadable(error),
                }
            })
        }))
    }
}

/// What an append statement did.
enum Inserted {
    /// Wrote `count` events committed at `recorded_at`.
    Events { count: u32, recorded_at: SystemTime },
    /// Wrote nothing: the key was already stored.
    KeyUsed(StoredKey),
    /// Wrote nothing: the index before the expected one does not exist.
    PreviousMissing,
    /// The statement's answer could not be decoded.
    Unreadable(Error),
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, request: &AppendRequest) -> Result<Appended> {
        request.validate(&self.inner.config.limits)?;
        let log_id = request.log_id();
        let inserted = match self.insert(request).await? {
            Ok(inserted) => inserted,
            Err(error) => {
                return Err(match classify(error) {
                    Failure::IndexTaken => Error::ConcurrentAppend {
                        log_id,
                        index: request.expected_index(),
                    },
                    Failure::KeyTaken => {
                        // Another transaction stored the key and committed first.
                        let key = request.idempotency_key().unwrap_or_default();
                        match self.key_record(key).await? {
                            Some(used) => request.key_already_used(&used),
                            None => Error::unavailable("postgres", "idempotency key race; retry"),
                        }
                    }
                    Failure::Other(error) => error,
                });
            }
        };
        match inserted {
            Inserted::Events { count, recorded_at } => {
                if let Some(notifier) = &self.inner.notifier {
                    notifier.touch(&self.inner.pool);
                }
                Ok(Appended {
                    log_id,
                    first_index: request.first_index(),
                    count,
                    recorded_at: Timestamp::from_system_time(recorded_at),
                })
            }
            Inserted::KeyUsed(used) => Err(request.key_already_used(&used)),
            Inserted::Unreadable(error) => Err(error),
            Inserted::PreviousMissing => Err(if self.log_exists(&log_id).await? {
                Error::IndexGap {
                    log_id,
                    index: request.expected_index(),
                }
            } else {
                Error::LogNotFound { log_id }
            }),
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
        Ok(Box::pin(Rows {
            log_id: *log_id,
            client: Some(client),
            rows: Box::pin(rows),
            timeout,
            idle: None,
            waiting: false,
            done: false,
        }))
    }

    fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }
}

/// The deadline of a wait whose timeout does not fit the clock (as Tokio uses: 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The rows of a `stream` query as events, each awaited within the statement timeout.
///
/// The deadline counts from the moment the consumer waits for a row that has not arrived; a
/// row already received is returned without reading the clock or touching a timer. One timer
/// per stream is re-armed when a wait begins (later deadlines only update it in place).
struct Rows {
    log_id: LogId,
    /// The pooled connection; `None` once discarded after a timeout.
    client: Option<Object>,
    rows: Pin<Box<RowStream>>,
    timeout: Duration,
    /// The idle deadline, created at the first wait.
    idle: Option<Pin<Box<Sleep>>>,
    /// Whether `idle` is armed for the current wait.
    waiting: bool,
    done: bool,
}

impl Stream for Rows {
    type Item = Result<RawEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.rows.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(row))) => {
                this.waiting = false;
                Poll::Ready(Some(rows::event(&this.log_id, &row)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(query_error(e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                // Back to the pool as soon as the last row is read.
                this.client = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let now = Instant::now();
                    // As `tokio::time::timeout` does for a deadline past the clock's range.
                    let deadline = now
                        .checked_add(this.timeout)
                        .or_else(|| now.checked_add(FAR_FUTURE))
                        .unwrap_or(now);
                    match &mut this.idle {
                        Some(idle) => idle.as_mut().reset(deadline),
                        None => this.idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let Some(idle) = &mut this.idle else {
                    return Poll::Pending;
                };
                match idle.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.done = true;
                        let error = match this.client.take() {
                            Some(object) => discard(object, this.timeout),
                            None => statement_timeout(this.timeout),
                        };
                        Poll::Ready(Some(Err(error)))
                    }
                }
            }
        }
    }
}
