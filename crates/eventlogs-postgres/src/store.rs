//! `PostgresEventStore`: the `EventStore` on PostgreSQL.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use eventlogs_core::{
    AppendRequest, Appended, Error, EventStore, Limits, LogId, RawEvent, RawEventStream, Result,
    Timestamp,
};
use futures::StreamExt;
use tokio_postgres::types::ToSql;

use crate::config::{redact, PostgresConfig, PostgresStoreBuilder};
use crate::error::{classify, pool_error, query_error, statement_timeout, Failure};
use crate::rows::{self, KeyRecord};
use crate::schema::{quote_schema, MIGRATIONS, MIGRATIONS_TABLE};
use crate::sql::Statements;

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

    pub(crate) fn new(pool: Pool, config: PostgresConfig) -> Self {
        let schema = quote_schema(&config.schema).unwrap_or_default();
        Self {
            inner: Arc::new(Inner {
                sql: Statements::new(&schema),
                pool,
                config,
                schema,
            }),
        }
    }

    /// The connection pool.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The configuration the store was built with.
    #[must_use]
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    async fn client(&self) -> Result<Object> {
        let c = &self.inner.config;
        self.inner.pool.get().await.map_err(|e| {
            let error = pool_error(e, c.checkout_timeout, c.connect_timeout);
            tracing::warn!(%error, "postgres connection unavailable");
            error
        })
    }

    /// Creates or upgrades the schema: applies every pending [`MIGRATIONS`] entry in one
    /// transaction under an advisory lock, so concurrent calls from several processes are safe
    /// and a second call does nothing.
    pub async fn migrate(&self) -> Result<()> {
        let span =
            tracing::info_span!("eventlogs.postgres.migrate", schema = %self.inner.config.schema);
        let _guard = span.enter();
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

    async fn key_record(&self, key: &str) -> Result<Option<KeyRecord>> {
        let client = self.client().await?;
        let after = self.inner.config.statement_timeout;
        let work = async {
            let stmt = client.prepare_cached(&self.inner.sql.key).await?;
            client.query_opt(&stmt, &[&key]).await
        };
        let row = match tokio::time::timeout(after, work).await {
            Ok(row) => row.map_err(query_error)?,
            Err(_) => return Err(discard(client, after)),
        };
        row.map(|r| rows::key_record(&r, 0))
            .transpose()
            .map(Option::flatten)
    }

    async fn log_exists(&self, log_id: &LogId) -> Result<bool> {
        let client = self.client().await?;
        let after = self.inner.config.statement_timeout;
        let uuid = rows::uuid(log_id);
        let work = async {
            let stmt = client.prepare_cached(&self.inner.sql.log_exists).await?;
            client.query_one(&stmt, &[&uuid]).await
        };
        match tokio::time::timeout(after, work).await {
            Ok(row) => Ok(row.map_err(query_error)?.get(0)),
            Err(_) => Err(discard(client, after)),
        }
    }

    /// The error for a key that is already stored.
    fn used_key(request: &AppendRequest, key: &str, used: KeyRecord) -> Error {
        if used.request_hash == request.request_hash() {
            Error::IdempotentReplay {
                key: key.to_owned(),
                log_id: used.log_id,
                first_index: used.first_index,
                count: used.count,
            }
        } else {
            Error::IdempotencyConflict {
                key: key.to_owned(),
            }
        }
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, request: &AppendRequest) -> Result<Appended> {
        request.validate(&self.inner.config.limits)?;
        let log_id = request.log_id();
        let expected = i64::try_from(request.expected_index()).unwrap_or(i64::MAX);
        let payloads: Vec<&str> = request.events().iter().map(|e| e.json()).collect();
        let hash = request.request_hash() as i64;
        let uuid = rows::uuid(&log_id);
        let params: [&(dyn ToSql + Sync); 6] = [
            &uuid,
            &expected,
            &payloads,
            &request.metadata(),
            &request.idempotency_key(),
            &hash,
        ];
        let client = self.client().await?;
        let after = self.inner.config.statement_timeout;
        let work = async {
            let stmt = client.prepare_cached(&self.inner.sql.append).await?;
            client.query_one(&stmt, &params).await
        };
        let outcome = match tokio::time::timeout(after, work).await {
            Ok(outcome) => outcome,
            Err(_) => return Err(discard(client, after)),
        };
        drop(client);
        let row = match outcome {
            Ok(row) => row,
            Err(error) => {
                return Err(match classify(error) {
                    Failure::IndexTaken => Error::ConcurrentAppend {
                        log_id,
                        index: request.expected_index(),
                    },
                    Failure::KeyTaken => {
                        let key = request.idempotency_key().unwrap_or_default();
                        match self.key_record(key).await? {
                            Some(used) => Self::used_key(request, key, used),
                            None => Error::unavailable("postgres", "idempotency key race; retry"),
                        }
                    }
                    Failure::Other(error) => error,
                });
            }
        };
        let inserted: i64 = row.get(0);
        if inserted > 0 {
            let recorded_at: Option<SystemTime> = row.get(1);
            return Ok(Appended {
                log_id,
                first_index: request.first_index(),
                count: u32::try_from(inserted).unwrap_or(u32::MAX),
                recorded_at: recorded_at.map_or_else(Timestamp::now, Timestamp::from_system_time),
            });
        }
        if let (Some(key), Some(used)) = (request.idempotency_key(), rows::key_record(&row, 3)?) {
            return Err(Self::used_key(request, key, used));
        }
        let previous_exists: bool = row.get(2);
        if !previous_exists {
            return Err(if self.log_exists(&log_id).await? {
                Error::IndexGap {
                    log_id,
                    index: request.expected_index(),
                }
            } else {
                Error::LogNotFound { log_id }
            });
        }
        Err(Error::Backend {
            service: "postgres",
            source: "the append statement inserted nothing and reported no reason".into(),
        })
    }

    async fn load(
        &self,
        log_id: &LogId,
        from_index: u32,
        max_events: u32,
    ) -> Result<Vec<RawEvent>> {
        let uuid = rows::uuid(log_id);
        let (from, limit) = (i64::from(from_index), i64::from(max_events));
        let client = self.client().await?;
        let after = self.inner.config.statement_timeout;
        let work = async {
            let stmt = client.prepare_cached(&self.inner.sql.load).await?;
            client.query(&stmt, &[&uuid, &from, &limit]).await
        };
        let result = match tokio::time::timeout(after, work).await {
            Ok(result) => result,
            Err(_) => return Err(discard(client, after)),
        };
        result
            .map_err(query_error)?
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
        let log_id = *log_id;
        // The pooled connection travels with the stream and returns to the pool when it ends.
        let state = (Some(client), Box::pin(rows), false);
        let stream =
            futures::stream::unfold(state, move |(mut client, mut rows, done)| async move {
                if done {
                    return None;
                }
                match tokio::time::timeout(timeout, rows.next()).await {
                    Ok(Some(Ok(row))) => Some((rows::event(&log_id, &row), (client, rows, false))),
                    Ok(Some(Err(e))) => Some((Err(query_error(e)), (client, rows, true))),
                    Ok(None) => None,
                    Err(_) => {
                        let error = match client.take() {
                            Some(object) => discard(object, timeout),
                            None => statement_timeout(timeout),
                        };
                        Some((Err(error), (client, rows, true)))
                    }
                }
            });
        Ok(stream.boxed())
    }

    fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }
}
