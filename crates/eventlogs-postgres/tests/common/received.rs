//! Recording subscribers for the subscription tests: a `received` table, handlers for both
//! delivery modes that write to it, and the queries that check it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{BoxError, FeedEvent, Subscription, SubscriptionOptions};
use eventlogs_postgres::tokio_postgres::Transaction;
use eventlogs_postgres::{PostgresEventStore, Transactional, TransactionalHandler};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Creates the table subscribers record what they receive in, one row per delivery.
pub(crate) async fn received_table(store: &PostgresEventStore) {
    let schema = &store.config().schema;
    store
        .pool()
        .get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE TABLE {schema}.received (seq bigserial PRIMARY KEY, tx xid8 NOT NULL, \
             pos bigint NOT NULL, log_id uuid NOT NULL, event_index bigint NOT NULL, run int NOT NULL)"
        ))
        .await
        .unwrap();
}

/// The insert of one batch into `received`, and its parameters.
pub(crate) fn record_sql(schema: &str) -> String {
    format!(
        "INSERT INTO {schema}.received (tx, pos, log_id, event_index, run) \
         SELECT t::xid8, p, l, i, $5 FROM unnest($1::text[], $2::bigint[], $3::uuid[], $4::bigint[]) AS u(t, p, l, i)"
    )
}

pub(crate) type Columns = (Vec<String>, Vec<i64>, Vec<uuid::Uuid>, Vec<i64>);

pub(crate) fn columns(events: &[FeedEvent]) -> Columns {
    (
        events
            .iter()
            .map(|e| e.position.transaction.to_string())
            .collect(),
        events.iter().map(|e| e.position.sequence as i64).collect(),
        events
            .iter()
            .map(|e| uuid::Uuid::from_u128(e.log_id.to_u128()))
            .collect(),
        events.iter().map(|e| i64::from(e.event.index)).collect(),
    )
}

/// Records batches inside the checkpoint's transaction.
pub(crate) struct Recorder {
    pub(crate) sql: String,
    pub(crate) run: i32,
    pub(crate) pause: Duration,
}

#[eventlogs_core::backend::async_trait]
impl TransactionalHandler for Recorder {
    async fn handle(
        &mut self,
        tx: &Transaction<'_>,
        events: Vec<FeedEvent>,
    ) -> Result<(), BoxError> {
        let (t, p, l, i) = columns(&events);
        tx.execute(&self.sql, &[&t, &p, &l, &i, &self.run]).await?;
        tokio::time::sleep(self.pause).await;
        Ok(())
    }
}

/// How a test subscriber delivers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    AtLeastOnce,
    Transactional,
}

/// Starts a recording subscriber; `run` tags its rows. Returns its stop signal and task.
pub(crate) fn subscriber(
    store: &Arc<PostgresEventStore>,
    name: &str,
    mode: Mode,
    run: i32,
    options: SubscriptionOptions,
) -> (oneshot::Sender<()>, JoinHandle<eventlogs_core::Result<()>>) {
    let subscription = Subscription::new(Arc::clone(store), name, options).unwrap();
    let sql = record_sql(&store.config().schema);
    let pool = store.pool().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let pause = Duration::from_millis(20);
    let task = tokio::spawn(async move {
        match mode {
            Mode::Transactional => {
                let recorder = Recorder { sql, run, pause };
                subscription
                    .run_with(Transactional(recorder), shutdown)
                    .await
            }
            Mode::AtLeastOnce => {
                let handler = move |events: Vec<FeedEvent>| {
                    let (pool, sql) = (pool.clone(), sql.clone());
                    async move {
                        let (t, p, l, i) = columns(&events);
                        let client = pool.get().await?;
                        client.execute(&sql, &[&t, &p, &l, &i, &run]).await?;
                        // Handled but not yet checkpointed: where a kill makes duplicates.
                        tokio::time::sleep(pause).await;
                        Ok::<(), BoxError>(())
                    }
                };
                subscription.run(handler, shutdown).await
            }
        }
    });
    (stop, task)
}

pub(crate) fn options(batch: u32) -> SubscriptionOptions {
    SubscriptionOptions::default()
        .with_batch_size(batch)
        .with_poll_interval(Duration::from_millis(200))
        .with_claim_interval(Duration::from_millis(50))
        .with_retry_backoff(Duration::from_millis(50))
}

pub(crate) async fn scalar(store: &PostgresEventStore, sql: &str) -> i64 {
    let sql = sql.replace("{schema}", &store.config().schema);
    let client = store.pool().get().await.unwrap();
    client.query_one(&sql, &[]).await.unwrap().get(0)
}

/// Waits until every event in the table was received at least once.
pub(crate) async fn all_received(store: &PostgresEventStore, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let missing = scalar(
            store,
            "SELECT count(*) FROM {schema}.events e WHERE NOT EXISTS \
             (SELECT 1 FROM {schema}.received r WHERE r.log_id = e.log_id AND r.event_index = e.event_index)",
        )
        .await;
        let total = scalar(store, "SELECT count(*) FROM {schema}.events").await;
        if missing == 0 && total == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {total} events not received"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Rows received out of feed order (each compared with the row received before it).
pub(crate) const OUT_OF_ORDER: &str = "SELECT count(*) FROM (SELECT tx, pos, \
     lag(tx) OVER (ORDER BY seq) AS ptx, lag(pos) OVER (ORDER BY seq) AS ppos \
     FROM {schema}.received) AS r WHERE (ptx, ppos) >= (tx, pos)";

pub(crate) const DUPLICATES: &str =
    "SELECT count(*) - count(DISTINCT (log_id, event_index)) FROM {schema}.received";
