//! Commit-to-handler latency of subscriptions under paced writers: (a) beside 30-s write
//! transactions in another database and on another table of the same one, (b) a transactional
//! and an at-least-once subscriber side by side under 16 writers. Both keep p99 under 100 ms,
//! and each event arrives once (transactional) or at least once (at-least-once), in feed order.
//!
//! These tests run alone (see `.config/nextest.toml`): they measure time.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::received::{columns, received_table, record_sql, scalar, DUPLICATES, OUT_OF_ORDER};
use eventlogs_core::{
    backend::{async_trait, AppendRequest, NewEvent},
    BoxError, EventStore, FeedEvent, FeedPosition, LogId, LogState, Subscription,
    SubscriptionHandle, SubscriptionOptions,
};
use eventlogs_postgres::tokio_postgres::{self, NoTls, Transaction};
use eventlogs_postgres::{PostgresEventStore, Transactional, TransactionalHandler};

/// When each append was acknowledged, by log and index.
type Acks = Arc<Mutex<HashMap<(LogId, u32), Instant>>>;

/// What a subscriber saw, in the order it saw it.
type Seen = Arc<Mutex<Vec<(LogId, u32, FeedPosition, Instant)>>>;

fn record(seen: &Seen, events: &[FeedEvent]) {
    let now = Instant::now();
    let mut seen = seen.lock().unwrap();
    seen.extend(
        events
            .iter()
            .map(|e| (e.log_id, e.event.index, e.position, now)),
    );
}

/// `writers` tasks, each appending one event `per_second` times a second to a log of its own
/// for `duration`. Returns how many events were written.
async fn write_paced(
    store: &Arc<PostgresEventStore>,
    writers: usize,
    per_second: u32,
    duration: Duration,
    acks: &Acks,
) -> usize {
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (store, acks) = (Arc::clone(store), Arc::clone(acks));
            tokio::spawn(async move {
                let mut state = LogState::empty(LogId::new());
                let mut pace = tokio::time::interval(Duration::from_secs(1) / per_second);
                pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let started = Instant::now();
                let mut written = 0;
                while started.elapsed() < duration {
                    pace.tick().await;
                    let event = NewEvent::from_json(r#"{"type":"Added","qty":1}"#).unwrap();
                    let request = AppendRequest::new(state, vec![event], None, None);
                    let appended = store.append(&request).await.unwrap();
                    acks.lock()
                        .unwrap()
                        .insert((appended.log_id, appended.first_index), Instant::now());
                    state = appended.state();
                    written += 1;
                }
                written
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    total
}

/// Records each batch in `received` inside the checkpoint's transaction, and when it saw it.
struct Recording {
    sql: String,
    seen: Seen,
}

#[async_trait]
impl TransactionalHandler for Recording {
    async fn handle(
        &mut self,
        tx: &Transaction<'_>,
        events: Vec<FeedEvent>,
    ) -> Result<(), BoxError> {
        record(&self.seen, &events);
        let (t, p, l, i) = columns(&events);
        tx.execute(&self.sql, &[&t, &p, &l, &i, &1i32]).await?;
        Ok(())
    }
}

/// A running subscriber and what it saw.
struct Probe {
    name: &'static str,
    handle: SubscriptionHandle,
    seen: Seen,
}

fn options() -> SubscriptionOptions {
    SubscriptionOptions::default().with_batch_size(500)
}

async fn at_least_once(store: &Arc<PostgresEventStore>) -> Probe {
    let seen = Seen::default();
    let subscription = Subscription::new(Arc::clone(store), "at-least-once", options()).unwrap();
    let mut handle = subscription.spawn({
        let seen = Arc::clone(&seen);
        move |events: Vec<FeedEvent>| {
            record(&seen, &events);
            async { Ok(()) }
        }
    });
    assert!(handle.live().await);
    Probe {
        name: "at-least-once",
        handle,
        seen,
    }
}

async fn transactional(store: &Arc<PostgresEventStore>) -> Probe {
    received_table(store).await;
    let seen = Seen::default();
    let recording = Recording {
        sql: record_sql(&store.config().schema),
        seen: Arc::clone(&seen),
    };
    let subscription = Subscription::new(Arc::clone(store), "transactional", options()).unwrap();
    let mut handle = subscription.spawn_with(Transactional(recording));
    assert!(handle.live().await);
    Probe {
        name: "transactional",
        handle,
        seen,
    }
}

/// Waits until the probe saw `count` distinct events.
async fn seen_all(probe: &Probe, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let distinct = {
            let seen = probe.seen.lock().unwrap();
            let mut keys: Vec<_> = seen.iter().map(|(l, i, _, _)| (*l, *i)).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.len()
        };
        if distinct == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: saw {distinct} of {count}",
            probe.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks first deliveries come in feed order and returns the p50, p99 and worst
/// commit-to-handler latencies.
fn latencies(probe: &Probe, acks: &Acks) -> (Duration, Duration, Duration) {
    let seen = probe.seen.lock().unwrap();
    let acks = acks.lock().unwrap();
    let mut first: HashMap<(LogId, u32), Instant> = HashMap::new();
    let mut order = Vec::new();
    for (log, index, position, at) in seen.iter() {
        if first.insert((*log, *index), *at).is_none() {
            order.push(*position);
        }
    }
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{}: first deliveries in feed order",
        probe.name
    );
    let mut all: Vec<Duration> = first
        .iter()
        .map(|(key, at)| at.saturating_duration_since(acks[key]))
        .collect();
    all.sort_unstable();
    let at = |q: f64| all[((all.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), at(1.0))
}

/// Stops the probe and checks and reports its latencies.
async fn finish(probe: Probe, acks: &Acks, label: &str) {
    let (p50, p99, worst) = latencies(&probe, acks);
    println!(
        "{label}, {}: commit to handler p50 {p50:?}, p99 {p99:?}, worst {worst:?}",
        probe.name
    );
    probe.handle.stop().await.unwrap();
    assert!(
        p99 < Duration::from_millis(100),
        "{label}, {}: p99 {p99:?}",
        probe.name
    );
}

/// The transactional subscriber recorded every event exactly once, in feed order.
async fn exactly_once(store: &PostgresEventStore, written: usize) {
    assert_eq!(scalar(store, DUPLICATES).await, 0, "no event twice");
    assert_eq!(
        scalar(store, "SELECT count(*) FROM {schema}.received").await,
        i64::try_from(written).unwrap()
    );
    assert_eq!(scalar(store, OUT_OF_ORDER).await, 0, "in feed order");
}

/// Opens a transaction on `config`'s database that writes to a table of its own and stays
/// open; returns its client (the transaction ends when it is dropped) and its id.
async fn open_write_transaction(
    config: tokio_postgres::Config,
    table: &str,
) -> (tokio_postgres::Client, u64) {
    let (client, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE TABLE IF NOT EXISTS {table} (x int)"))
        .await
        .unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute(&format!("INSERT INTO {table} VALUES (1)"))
        .await
        .unwrap();
    let id: String = client
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .await
        .unwrap()
        .get(0);
    (client, id.parse().unwrap())
}

/// Creates the database `name` unless it exists (other runs may be creating it too).
async fn ensure_database(store: &PostgresEventStore, name: &str) {
    let client = store.pool().get().await.unwrap();
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    if !exists {
        if let Err(error) = client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
        {
            let raced = [
                tokio_postgres::error::SqlState::DUPLICATE_DATABASE,
                tokio_postgres::error::SqlState::UNIQUE_VIOLATION,
            ];
            assert!(error.code().is_some_and(|c| raced.contains(c)), "{error:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_latency_stays_low_beside_unrelated_30s_write_transactions() {
    let Some(store) = common::fresh("lat_a").await else {
        return;
    };
    let store = Arc::new(store);
    let schema = store.config().schema.clone();
    let url: tokio_postgres::Config = store.config().url.parse().unwrap();
    ensure_database(&store, "eventlogs_unrelated").await;
    let mut elsewhere = url.clone();
    elsewhere.dbname("eventlogs_unrelated");
    let opened = Instant::now();
    let (other_database, other_id) = open_write_transaction(elsewhere, "unrelated").await;
    let (same_database, same_id) =
        open_write_transaction(url, &format!("{schema}.unrelated")).await;
    // Both would hold back a feed that waits for the oldest transaction.
    let xmin: String = same_database
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
        .await
        .unwrap()
        .get(0);
    assert!(xmin.parse::<u64>().unwrap() <= other_id.min(same_id));

    let probes = [at_least_once(&store).await, transactional(&store).await];
    let acks = Acks::default();
    let left = Duration::from_secs(30).saturating_sub(opened.elapsed());
    let written = write_paced(&store, 8, 50, left, &acks).await;
    assert!(
        opened.elapsed() >= Duration::from_secs(30),
        "the transactions were open all along"
    );
    for probe in &probes {
        seen_all(probe, written).await;
    }
    // Still open: they held nothing back.
    for client in [&other_database, &same_database] {
        client.batch_execute("COMMIT").await.unwrap();
    }
    exactly_once(&store, written).await;
    let label = format!("{written} events from 8 writers beside two 30-s write transactions");
    for probe in probes {
        finish(probe, &acks, &label).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_latency_of_transactional_and_at_least_once_side_by_side_under_16_writers() {
    let Some(store) = common::fresh("lat_b").await else {
        return;
    };
    let store = Arc::new(store);
    let probes = [transactional(&store).await, at_least_once(&store).await];
    let acks = Acks::default();
    let written = write_paced(&store, 16, 50, Duration::from_secs(10), &acks).await;
    for probe in &probes {
        seen_all(probe, written).await;
    }
    exactly_once(&store, written).await;
    let label = format!("{written} events from 16 writers");
    for probe in probes {
        finish(probe, &acks, &label).await;
    }
}
