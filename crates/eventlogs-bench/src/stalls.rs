//! What can hold a feed back: subscribers beside an unrelated open write transaction, and a
//! transactional subscriber beside an at-least-once one, each with the feed's watermark
//! ([`FeedWatermark::EventWriters`]) and, in the same run, the oldest-transaction watermark of
//! earlier versions; and appends with no subscriber against the same appends announced.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventlogs::postgres::tokio_postgres::Transaction;
use eventlogs::postgres::{FeedWatermark, PostgresEventStore, Transactional, TransactionalHandler};
use eventlogs::{
    backend::async_trait, BoxError, EventFeed, FeedEvent, LogId, Subscription, SubscriptionHandle,
    SubscriptionOptions, Timestamp,
};

use crate::harness::{run_workload, Sample, Workload};
use crate::report::{Measure, Row};
use crate::setup::Env;
use crate::writes::library_appends;

/// Commit-to-handler delays seen by a subscriber.
pub(crate) type Delays = Arc<Mutex<Vec<Duration>>>;

/// Adds how long ago each event committed.
pub(crate) fn record(delays: &Delays, events: &[FeedEvent]) {
    let now = Timestamp::now();
    if let Ok(mut delays) = delays.lock() {
        delays.extend(
            events
                .iter()
                .map(|e| e.event.recorded_at.elapsed_until(now)),
        );
    }
}

/// A store of its own (as another process would have) reading with `watermark`.
async fn reader(env: &Env, watermark: FeedWatermark) -> Result<PostgresEventStore, String> {
    let store = PostgresEventStore::builder(env.database_url.clone())
        .schema(env.schema)
        .pool_size(4)
        .feed_watermark(watermark)
        .build()
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// A new subscription that starts at the head of the feed.
async fn from_head(
    store: &PostgresEventStore,
    what: &str,
) -> Result<Subscription<PostgresEventStore>, String> {
    let name = format!("bench-{what}-{}", LogId::new().ulid());
    let options = SubscriptionOptions::default().with_batch_size(1_000);
    let subscription =
        Subscription::new(store.clone(), &name, options).map_err(|e| e.to_string())?;
    let head = store.head().await.map_err(|e| e.to_string())?;
    subscription.reset(head).await.map_err(|e| e.to_string())?;
    Ok(subscription)
}

/// An at-least-once subscriber that times deliveries.
async fn timing(
    store: &PostgresEventStore,
) -> Result<(Subscription<PostgresEventStore>, SubscriptionHandle, Delays), String> {
    let subscription = from_head(store, "timing").await?;
    let delays = Delays::default();
    let mut handle = subscription.spawn({
        let delays = Arc::clone(&delays);
        move |events: Vec<FeedEvent>| {
            record(&delays, &events);
            async { Ok(()) }
        }
    });
    if !handle.live().await {
        return Err("the timing subscriber did not start".into());
    }
    Ok((subscription, handle, delays))
}

/// How long the transactional handler holds its transaction per batch, as a read model with a
/// few indexed tables to update would.
const READ_MODEL_WORK: Duration = Duration::from_millis(20);

/// A transactional subscriber that keeps a count in a read model and times deliveries.
struct Counting {
    sql: String,
    delays: Delays,
}

#[async_trait]
impl TransactionalHandler for Counting {
    async fn handle(
        &mut self,
        tx: &Transaction<'_>,
        events: Vec<FeedEvent>,
    ) -> Result<(), BoxError> {
        record(&self.delays, &events);
        let n = i64::try_from(events.len())?;
        tx.execute(&self.sql, &[&n]).await?;
        tokio::time::sleep(READ_MODEL_WORK).await;
        Ok(())
    }
}

async fn counting(
    store: &PostgresEventStore,
) -> Result<(Subscription<PostgresEventStore>, SubscriptionHandle, Delays), String> {
    let client = store.pool().get().await.map_err(|e| e.to_string())?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_read_model (id int PRIMARY KEY, n bigint NOT NULL); \
             INSERT INTO bench_read_model VALUES (1, 0) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(|e| e.to_string())?;
    let subscription = from_head(store, "transactional").await?;
    let delays = Delays::default();
    let handler = Counting {
        sql: "UPDATE bench_read_model SET n = n + $1 WHERE id = 1".into(),
        delays: Arc::clone(&delays),
    };
    let mut handle = subscription.spawn_with(Transactional(handler));
    if !handle.live().await {
        return Err("the transactional subscriber did not start".into());
    }
    Ok((subscription, handle, delays))
}

/// Waits until `subscription` has read everything committed.
async fn caught_up(subscription: &Subscription<PostgresEventStore>) -> Result<(), String> {
    let started = Instant::now();
    while !subscription
        .lag()
        .await
        .map_err(|e| e.to_string())?
        .is_caught_up()
    {
        if started.elapsed() > Duration::from_secs(120) {
            return Err("a subscriber did not catch up within two minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Delays as a sample whose latencies are the delays (for the median ratio and p99).
fn sample(delays: &Delays, events: u64, elapsed: Duration) -> Sample {
    let mut latencies = delays.lock().map(|d| d.clone()).unwrap_or_default();
    latencies.sort_unstable();
    Sample {
        ops: latencies.len() as u64,
        events,
        errors: 0,
        elapsed,
        latencies,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A row comparing commit-to-handler delays with each watermark: p99 must stay under 100 ms.
fn delay_row(scenario: String, concurrency: usize, new: Sample, old: Sample) -> Row {
    let p99 = new.percentile(0.99);
    Row {
        note: format!(
            "commit to handler p50/p99 {:.1}/{:.1} ms; oldest-transaction watermark (baseline) {:.1}/{:.1} ms",
            ms(new.percentile(0.5)),
            ms(p99),
            ms(old.percentile(0.5)),
            ms(old.percentile(0.99)),
        ),
        scenario,
        concurrency,
        library: new,
        raw: Some(old),
        measure: Measure::Median,
        target: Some(("p99 < 100 ms".into(), f64::INFINITY)),
        verdict: Some(p99 < Duration::from_millis(100)),
    }
}

/// Runs `writers` for `slice` while a write transaction on an unrelated table stays open, with
/// a timing subscriber reading through `watermark`.
async fn beside_unrelated(
    env: &Env,
    writers: &Workload,
    slice: Duration,
    watermark: FeedWatermark,
) -> Result<Sample, String> {
    let store = reader(env, watermark).await?;
    let (subscription, handle, delays) = timing(&store).await?;
    let pool = env.raw_pool(1)?;
    let client = pool.get().await.map_err(|e| e.to_string())?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS bench_unrelated (x int); \
             BEGIN; INSERT INTO bench_unrelated VALUES (1)",
        )
        .await
        .map_err(|e| e.to_string())?;
    let written = run_workload(8, slice, writers).await;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| e.to_string())?;
    caught_up(&subscription).await?;
    handle.stop().await.map_err(|e| e.to_string())?;
    Ok(sample(&delays, written.events, written.elapsed))
}

/// Runs 16 `writers` for `slice` with a transactional and a timing subscriber reading through
/// `watermark`; returns the timing subscriber's and the transactional one's delays.
async fn side_by_side(
    env: &Env,
    writers: &Workload,
    slice: Duration,
    watermark: FeedWatermark,
) -> Result<(Sample, Sample), String> {
    let store = reader(env, watermark).await?;
    let (tx_subscription, tx_handle, tx_delays) = counting(&store).await?;
    let (subscription, handle, delays) = timing(&store).await?;
    let written = run_workload(16, slice, writers).await;
    caught_up(&subscription).await?;
    caught_up(&tx_subscription).await?;
    handle.stop().await.map_err(|e| e.to_string())?;
    tx_handle.stop().await.map_err(|e| e.to_string())?;
    Ok((
        sample(&delays, written.events, written.elapsed),
        sample(&tx_delays, written.events, written.elapsed),
    ))
}

/// Every row of this module.
pub(crate) async fn stalls(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let eight = library_appends(env, 8, 1, false).await?;
    let (mut new, mut old) = (Sample::default(), Sample::default());
    // Each slice holds one unrelated transaction open for its whole length.
    let slice = if crate::harness::smoke(seconds) {
        seconds * 10
    } else {
        (seconds / 2).max(Duration::from_secs(5))
    };
    for round in 0..2 {
        if round % 2 == 0 {
            new.merge(beside_unrelated(env, &eight, slice, FeedWatermark::EventWriters).await?);
            old.merge(
                beside_unrelated(env, &eight, slice, FeedWatermark::OldestTransaction).await?,
            );
        } else {
            old.merge(
                beside_unrelated(env, &eight, slice, FeedWatermark::OldestTransaction).await?,
            );
            new.merge(beside_unrelated(env, &eight, slice, FeedWatermark::EventWriters).await?);
        }
    }
    rows.push(delay_row(
        format!(
            "subscriber while 8 writers append beside a {:.0}-s unrelated write transaction",
            slice.as_secs_f64()
        ),
        8,
        new,
        old,
    ));

    let sixteen = library_appends(env, 16, 1, false).await?;
    let (new, new_tx) = side_by_side(env, &sixteen, seconds, FeedWatermark::EventWriters).await?;
    let (old, old_tx) =
        side_by_side(env, &sixteen, seconds, FeedWatermark::OldestTransaction).await?;
    rows.push(delay_row(
        "at-least-once subscriber beside a transactional one (20 ms of read-model work per batch in its transaction), 16 writers".into(),
        16,
        new,
        old,
    ));
    rows.push(delay_row(
        "transactional subscriber (20 ms of read-model work per batch in its transaction) beside an at-least-once one, 16 writers".into(),
        16,
        new_tx,
        old_tx,
    ));
    quiet_appends(env, seconds, rows).await
}

/// Appends with nobody listening (no wake-ups sent) against the same appends while a listener
/// is present (a wake-up every 20 ms, as every append scheduled before), in alternating slices.
async fn quiet_appends(env: &Env, seconds: Duration, rows: &mut Vec<Row>) -> Result<(), String> {
    let appends = library_appends(env, 16, 1, false).await?;
    let pool = env.raw_pool(1)?;
    let listener = pool.get().await.map_err(|e| e.to_string())?;
    let lock = format!("eventlogs.listeners.{}", env.schema);
    let (mut quiet, mut loud) = (Sample::default(), Sample::default());
    let slice = seconds / 3;
    for round in 0..3 {
        for announced in [round % 2 == 0, round % 2 != 0] {
            if announced {
                listener
                    .query(
                        "SELECT pg_advisory_lock_shared(hashtextextended($1, 0))",
                        &[&lock],
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            } else {
                listener
                    .batch_execute("SELECT pg_advisory_unlock_all()")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            // The store looks for listeners at most once a second: let it notice.
            tokio::time::sleep(Duration::from_millis(1_100)).await;
            let sample = run_workload(16, slice, &appends).await;
            if announced {
                loud.merge(sample);
            } else {
                quiet.merge(sample);
            }
        }
    }
    listener
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .map_err(|e| e.to_string())?;
    rows.push(Row {
        scenario: "append with no subscriber: no wake-ups".into(),
        concurrency: 16,
        library: quiet,
        raw: Some(loud),
        measure: Measure::Ops,
        target: None,
        note: "baseline: the same appends while a listener is present (a NOTIFY every 20 ms, as \
               every append scheduled before)"
            .into(),
        verdict: None,
    });
    Ok(())
}
