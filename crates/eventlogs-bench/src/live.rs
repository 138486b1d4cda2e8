//! Appends with a live subscription following the feed, against the same appends without one.

use std::sync::Arc;
use std::time::Duration;

use eventlogs::{FeedEvent, Subscription, SubscriptionOptions};
use tokio::sync::oneshot;

use crate::harness::{run_workload, Sample};
use crate::report::{Measure, Row};
use crate::setup::Env;
use crate::stalls::{record, Delays};
use crate::writes::library_appends;

/// Alternating slices per comparison.
const ROUNDS: u32 = 3;

/// A subscriber that counts and times deliveries; stopped by the returned sender.
fn subscribe(
    subscription: &Arc<Subscription<eventlogs::postgres::PostgresEventStore>>,
    delays: &Delays,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<eventlogs::Result<()>>,
) {
    let (stop, stopped) = oneshot::channel::<()>();
    let (subscription, delays) = (Arc::clone(subscription), Arc::clone(delays));
    let task = tokio::spawn(async move {
        let handler = move |events: Vec<FeedEvent>| {
            let delays = Arc::clone(&delays);
            async move {
                record(&delays, &events);
                Ok(())
            }
        };
        let shutdown = async move {
            let _ = stopped.await;
        };
        subscription.run(handler, shutdown).await
    });
    (stop, task)
}

/// Waits until the subscription has read everything committed.
async fn caught_up(
    subscription: &Subscription<eventlogs::postgres::PostgresEventStore>,
) -> Result<(), String> {
    for _ in 0..6_000 {
        if subscription
            .lag()
            .await
            .map_err(|e| e.to_string())?
            .is_caught_up()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("the subscriber did not catch up within a minute".into())
}

/// 16 single-event appenders with and without a subscriber that follows the feed live.
pub(crate) async fn with_subscriber(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let appends = library_appends(env, 16, 1, false).await?;
    // The subscriber reads through a store (and pool) of its own, as another process would.
    let store = env.store(2).await?;
    let options = SubscriptionOptions::default().with_batch_size(1_000);
    let subscription =
        Arc::new(Subscription::new(store, "bench-live", options).map_err(|e| e.to_string())?);
    let delays: Delays = Arc::default();
    let slice = seconds / ROUNDS;
    let (mut with, mut without) = (Sample::default(), Sample::default());
    let mut measured = Vec::new();
    for round in 0..ROUNDS {
        // Alternate which side goes first.
        if round % 2 == 1 {
            without.merge(run_workload(16, slice, &appends).await);
        }
        // Catch up on what the other slices wrote before measuring, so the subscriber is live.
        let (stop, task) = subscribe(&subscription, &delays);
        caught_up(&subscription).await?;
        delays.lock().map_err(|e| e.to_string())?.clear();
        with.merge(run_workload(16, slice, &appends).await);
        caught_up(&subscription).await?;
        measured.append(&mut *delays.lock().map_err(|e| e.to_string())?);
        let _ = stop.send(());
        task.await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if round % 2 == 0 {
            without.merge(run_workload(16, slice, &appends).await);
        }
    }
    let mut delays = measured;
    delays.sort_unstable();
    let at = |p: f64| {
        delays
            .get(((delays.len() as f64 * p) as usize).min(delays.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    rows.push(Row {
        scenario: "append with a live subscriber".into(),
        concurrency: 16,
        library: with,
        raw: Some(without),
        measure: Measure::Ops,
        target: Some(("≥ 0.9× without one".into(), 0.9)),
        note: format!(
            "baseline: the same appends, no subscriber; commit to handler p50 {:.1} ms, p99 {:.1} ms",
            at(0.5),
            at(0.99)
        ),
        verdict: None,
    });
    Ok(())
}
