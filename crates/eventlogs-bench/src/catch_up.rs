//! A subscription catching up on the whole feed, against paging through it with the same query.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs::postgres::PostgresEventStore;
use eventlogs::{
    backend::{AppendRequest, NewEvent},
    EventFeed, EventStore, FeedEvent, FeedPosition, LogId, LogState, Subscription,
    SubscriptionOptions,
};
use tokio::sync::oneshot;

use crate::harness::Sample;
use crate::report::{Measure, Row};
use crate::setup::{Env, Payment};

/// Events per read, on both sides.
const BATCH: u32 = 1_000;

/// Pages through the feed up to `end` with plain tokio-postgres.
async fn raw(env: &Env, sql: &str, watermark: &str, end: FeedPosition) -> Result<Sample, String> {
    let pool = env.raw_pool(1)?;
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let stmt = client.prepare(sql).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    // One watermark for the whole range, as the library keeps the one it knows.
    let below: String = client
        .query_one(watermark, &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    let (mut at, mut sample) = (FeedPosition::START, Sample::default());
    while at < end {
        let rows = client
            .query(
                &stmt,
                &[
                    &at.transaction.to_string(),
                    &(at.sequence as i64),
                    &i64::from(BATCH),
                    &below,
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        // Touch what a reader needs from every row, as the library does.
        for row in &rows {
            let _: uuid::Uuid = row.get(2);
            let _: &str = row.get(5);
        }
        let Some(last) = rows.last() else { break };
        let transaction: String = last.get(0);
        let sequence: i64 = last.get(1);
        at = FeedPosition {
            transaction: transaction.parse().map_err(|_| "bad transaction id")?,
            sequence: sequence as u64,
        };
        sample.ops += 1;
        sample.events += rows.len() as u64;
    }
    sample.elapsed = started.elapsed();
    Ok(sample)
}

/// Replays the feed from the start through a subscription until it has checkpointed `end`.
async fn library(
    subscription: &Arc<Subscription<PostgresEventStore>>,
    end: FeedPosition,
) -> Result<Sample, String> {
    subscription
        .reset(FeedPosition::START)
        .await
        .map_err(|e| e.to_string())?;
    let (events, batches) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (stop, stopped) = oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn({
        let (subscription, events, batches) = (
            Arc::clone(subscription),
            Arc::clone(&events),
            Arc::clone(&batches),
        );
        async move {
            let handler = move |delivered: Vec<FeedEvent>| {
                events.fetch_add(delivered.len() as u64, Ordering::Relaxed);
                batches.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            };
            let shutdown = async move {
                let _ = stopped.await;
            };
            subscription.run(handler, shutdown).await
        }
    });
    while subscription.checkpoint().await.map_err(|e| e.to_string())? < end {
        if started.elapsed() > Duration::from_secs(600) {
            return Err("catching up took over 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    task.await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok(Sample {
        ops: batches.load(Ordering::Relaxed),
        events: events.load(Ordering::Relaxed),
        elapsed,
        ..Sample::default()
    })
}

/// Makes sure there is something to catch up on when this scenario runs alone: `count` events
/// unless the feed already has its first `count`.
async fn seed(store: &PostgresEventStore, count: usize) -> Result<(), String> {
    let mut at = FeedPosition::START;
    let mut seen = 0;
    while seen < count {
        let page = store
            .read_feed(at, 10_000)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        at = last.position;
        seen += page.len();
    }
    for _ in seen / 1_000..count / 1_000 {
        let events = (0..1_000)
            .map(|i| NewEvent::from_json(Payment::json(i)))
            .collect::<eventlogs::Result<Vec<_>>>()
            .map_err(|e| e.to_string())?;
        let request = AppendRequest::new(LogState::empty(LogId::new()), events, None, None);
        store.append(&request).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A subscription reading the whole feed (everything the earlier scenarios wrote), twice,
/// each time beside a plain paging loop over the same range.
pub(crate) async fn catch_up(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let store = Arc::new(env.store(2).await?);
    let smoke = crate::harness::smoke(seconds);
    seed(&store, if smoke { 10_000 } else { 100_000 }).await?;
    let mut end = store.head().await.map_err(|e| e.to_string())?;
    if smoke {
        // Only the first 10,000 events, whatever the earlier scenarios wrote.
        let first = store
            .read_feed(FeedPosition::START, 10_000)
            .await
            .map_err(|e| e.to_string())?;
        end = first.last().map_or(end, |e| e.position);
    }
    let sql = store.feed_sql().to_owned();
    let watermark = store.feed_watermark_sql().to_owned();
    let options = SubscriptionOptions::default().with_batch_size(BATCH);
    let subscription = Arc::new(
        Subscription::new(store.as_ref().clone(), "bench-catch-up", options)
            .map_err(|e| e.to_string())?,
    );
    let (mut lib, mut base) = (Sample::default(), Sample::default());
    for _ in 0..2 {
        base.merge(raw(env, &sql, &watermark, end).await?);
        lib.merge(library(&subscription, end).await?);
    }
    let behind = base.events / 2;
    rows.push(Row {
        scenario: format!(
            "subscription catching up on {} events, batch {BATCH} (raw: paging with the same query)",
            base.events / 2
        ),
        concurrency: 1,
        library: lib,
        raw: Some(base),
        measure: Measure::Events,
        target: Some(("≥ 0.8× raw".into(), 0.8)),
        note: "one checkpoint per batch".into(),
        verdict: None,
    });
    lag_cost(&subscription, behind, rows).await
}

/// Times `lag()` 200 times.
async fn time_lag(subscription: &Subscription<PostgresEventStore>) -> Result<Sample, String> {
    let mut sample = Sample::default();
    let started = Instant::now();
    for _ in 0..200 {
        let one = Instant::now();
        subscription.lag().await.map_err(|e| e.to_string())?;
        sample.latencies.push(one.elapsed());
        sample.ops += 1;
    }
    sample.elapsed = started.elapsed();
    sample.latencies.sort_unstable();
    Ok(sample)
}

/// `lag()` of a subscription the whole feed behind against the same call caught up: its cost
/// must not grow with the backlog.
async fn lag_cost(
    subscription: &Subscription<PostgresEventStore>,
    behind: u64,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let caught_up = time_lag(subscription).await?;
    subscription
        .reset(FeedPosition::START)
        .await
        .map_err(|e| e.to_string())?;
    let far_behind = time_lag(subscription).await?;
    let estimate = subscription.lag().await.map_err(|e| e.to_string())?.events;
    rows.push(Row {
        scenario: format!("lag() of a subscription {behind} events behind"),
        concurrency: 1,
        library: far_behind,
        raw: Some(caught_up),
        measure: Measure::Median,
        target: Some(("≤ 2× caught up".into(), 2.0)),
        note: format!("baseline: the same call caught up; estimated {estimate} events behind"),
        verdict: None,
    });
    Ok(())
}
