//! Subscriptions on PostgreSQL: checkpoints in a table, one consumer per name through a
//! session advisory lock on a connection of its own, wake-ups by `LISTEN`, and lag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Object};
use eventlogs_core::{
    backend::{SubscriptionClaim, SubscriptionStore},
    Error, FeedPosition, Lag, Result, SubscriptionName,
};
use tokio::sync::Notify;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};
use tracing::Instrument;

use crate::connect::KEEPALIVE_IDLE;
use crate::error::{query_error, statement_timeout};
use crate::notifier;
use crate::rows;
use crate::store::PostgresEventStore;
use crate::subscription_sql::lock_name;

/// How long past [`notifier::PRESENCE_CHECK`] a new listener keeps polling briskly.
const UNNOTICED_MARGIN: Duration = Duration::from_millis(200);

/// The longest wait of a new listener whose presence writers may not have noticed yet.
const UNNOTICED_POLL: Duration = Duration::from_millis(25);

impl PostgresEventStore {
    async fn try_claim(&self, name: &SubscriptionName) -> Result<Option<PostgresClaim>> {
        let wake = Arc::new(Notify::new());
        let closed = Arc::new(AtomicBool::new(false));
        let (connection, listening) = match self.connector() {
            Some(connector) => {
                let connect = connector.connect(Arc::clone(&wake), Arc::clone(&closed));
                let timeout = self.config().connect_timeout;
                let client = tokio::time::timeout(timeout, connect).await.map_err(|_| {
                    Error::Timeout {
                        operation: "postgres connect",
                        after: timeout,
                    }
                })??;
                (Connection::Dedicated(client), true)
            }
            // A store on someone else's pool has no URL to open a connection with: the claim
            // takes a pool connection out of the pool for good and polls.
            None => (
                Connection::Detached(Object::take(self.client().await?)),
                false,
            ),
        };
        let mut claim = PostgresClaim {
            store: self.clone(),
            name: name.clone(),
            connection,
            wake,
            closed,
            listening_since: None,
        };
        // The server probes the claim's connection too, so a consumer whose machine vanished
        // without closing it loses the lock in about half a minute, not the OS default hours.
        let idle = KEEPALIVE_IDLE.as_secs().to_string();
        let interval = (KEEPALIVE_IDLE.as_secs() / 2).to_string();
        claim
            .execute(
                "SELECT set_config('tcp_keepalives_idle', $1, false), \
                 set_config('tcp_keepalives_interval', $2, false), \
                 set_config('tcp_keepalives_count', '3', false)",
                &[&idle, &interval],
            )
            .await?;
        let lock = lock_name(&self.config().schema, name.as_str());
        let sql = self.subscription_statements();
        let (client, store, _) = claim.parts();
        let held: bool = one(client, store, &sql.try_lock, &[&lock]).await?.get(0);
        if !held {
            tracing::debug!("subscription held elsewhere");
            return Ok(None);
        }
        query(client, store, &sql.ensure, &[&name.as_str()]).await?;
        if listening {
            let channel = notifier::channel(&self.config().schema);
            claim.execute(&format!("LISTEN {channel}"), &[]).await?;
            // Writers notify only while someone holds this lock; it goes with the connection.
            let listeners = notifier::listeners_lock(&self.config().schema);
            claim
                .execute(notifier::LISTENING_SQL, &[&listeners])
                .await?;
            claim.listening_since = Some(Instant::now());
        }
        Ok(Some(claim))
    }
}

#[async_trait]
impl SubscriptionStore for PostgresEventStore {
    type Claim = PostgresClaim;

    async fn claim(&self, name: &SubscriptionName) -> Result<Option<PostgresClaim>> {
        self.refuse_on_distributed("subscriptions").await?;
        let span = tracing::debug_span!("eventlogs.postgres.claim", subscription = %name);
        self.try_claim(name).instrument(span).await
    }

    async fn checkpoint(&self, name: &SubscriptionName) -> Result<FeedPosition> {
        self.refuse_on_distributed("subscriptions").await?;
        let sql = &self.subscription_statements().checkpoint;
        let rows = self
            .rows(sql, &[&name.as_str()])
            .await?
            .map_err(query_error)?;
        rows.first().map_or(Ok(FeedPosition::START), |row| {
            rows::feed_position(row, 0, "checkpoint")
        })
    }

    async fn lag(&self, name: &SubscriptionName) -> Result<Lag> {
        self.refuse_on_distributed("subscriptions").await?;
        let sql = &self.subscription_statements().lag;
        let rows = self
            .rows(sql, &[&name.as_str()])
            .await?
            .map_err(query_error)?;
        let row = rows.first().ok_or_else(|| unreadable("no lag row"))?;
        let events: i64 = row.try_get(2).map_err(|_| unreadable("lag count"))?;
        let behind: Option<f64> = row.try_get(3).map_err(|_| unreadable("lag age"))?;
        Ok(Lag {
            checkpoint: rows::feed_position(row, 0, "lag row")?,
            events: u64::try_from(events).unwrap_or(0),
            estimated: true,
            behind: Duration::try_from_secs_f64(behind.unwrap_or(0.0)).unwrap_or_default(),
        })
    }
}

/// The connection a claim holds its lock on.
enum Connection {
    /// Opened for the claim; it also listens for wake-ups.
    Dedicated(Client),
    /// Taken out of a pool the store did not create.
    Detached(ClientWrapper),
}

/// The claim on one subscription: a connection holding the subscription's advisory lock.
///
/// The lock lives as long as the connection: dropping the claim, or the process dying, closes
/// it and lets another consumer take over. Checkpoints are written on the same connection, so
/// a consumer whose connection (and therefore lock) is gone cannot write one.
pub struct PostgresClaim {
    store: PostgresEventStore,
    name: SubscriptionName,
    connection: Connection,
    wake: Arc<Notify>,
    closed: Arc<AtomicBool>,
    /// When the claim said it listens: writers notice within [`notifier::PRESENCE_CHECK`], and
    /// until then the claim polls briskly instead of trusting wake-ups.
    listening_since: Option<Instant>,
}

impl std::fmt::Debug for PostgresClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresClaim")
            .field("name", &self.name)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl PostgresClaim {
    /// The connection, the store (for its statements and deadlines) and the name, borrowed
    /// apart so a statement of the store can run on the claim's connection.
    pub(crate) fn parts(&mut self) -> (&mut Client, &PostgresEventStore, &SubscriptionName) {
        let client = match &mut self.connection {
            Connection::Dedicated(client) => client,
            Connection::Detached(client) => client,
        };
        (client, &self.store, &self.name)
    }

    /// The subscription's name.
    #[must_use]
    pub fn name(&self) -> &SubscriptionName {
        &self.name
    }

    async fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<()> {
        let (client, store, _) = self.parts();
        query(client, store, sql, params).await.map(drop)
    }
}

/// Runs `sql` on the claim's connection within the store's statement timeout.
async fn query(
    client: &mut Client,
    store: &PostgresEventStore,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let after = store.config().statement_timeout;
    match tokio::time::timeout(after, client.query(sql, params)).await {
        Ok(rows) => rows.map_err(query_error),
        Err(_) => Err(statement_timeout(after)),
    }
}

/// The first row of `sql`, which always returns one.
async fn one(
    client: &mut Client,
    store: &PostgresEventStore,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row> {
    query(client, store, sql, params)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| unreadable("no row"))
}

#[async_trait]
impl SubscriptionClaim for PostgresClaim {
    async fn checkpoint(&mut self) -> Result<FeedPosition> {
        let (client, store, name) = self.parts();
        let sql = &store.subscription_statements().checkpoint;
        let row = one(client, store, sql, &[&name.as_str()]).await?;
        rows::feed_position(&row, 0, "checkpoint")
    }

    async fn save(&mut self, at: FeedPosition) -> Result<()> {
        let (client, store, name) = self.parts();
        let (transaction, sequence) = rows::position_params(at);
        let sql = &store.subscription_statements().save;
        query(
            client,
            store,
            sql,
            &[&name.as_str(), &transaction, &sequence],
        )
        .await
        .map(drop)
    }

    async fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let timeout = match self.listening_since {
            Some(since) if since.elapsed() < notifier::PRESENCE_CHECK + UNNOTICED_MARGIN => {
                timeout.min(UNNOTICED_POLL)
            }
            _ => timeout,
        };
        let mut woken = false;
        if !self.closed.load(Ordering::Acquire) {
            tokio::select! {
                () = self.wake.notified() => woken = true,
                () = tokio::time::sleep(timeout) => {
                    tracing::debug!("no wake-up arrived; polling the feed");
                }
            }
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::unavailable(
                "postgres",
                "the subscription's connection closed; its lock is gone",
            ));
        }
        Ok(woken)
    }

    async fn release(mut self) {
        // The connection is the claim's own, so every advisory lock on it is the claim's.
        if let Err(error) = self.execute("SELECT pg_advisory_unlock_all()", &[]).await {
            tracing::debug!(%error, "releasing the subscription lock failed; closing its connection");
        }
    }
}

fn unreadable(what: &str) -> Error {
    Error::Backend {
        service: "postgres",
        source: format!("unreadable subscription row: {what}").into(),
    }
}
