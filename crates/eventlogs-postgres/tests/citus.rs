//! The store on a Citus cluster (coordinator and two workers): the store suite on the
//! distributed schema, the feed refused, and the invariants under distribution. Every test
//! name holds `citus`, so `cargo xtask test -E 'test(/citus/)'` runs them alone.
#![allow(clippy::unwrap_used)]

mod citus_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use citus_support::{logs_on_each_worker, shared_store};
use eventlogs_core::{
    backend::{AppendRequest, NewEvent, SubscriptionStore},
    AppendOptions, Error, EventFeed, EventStore, FeedPosition, LogId, LogManager, LogState,
    RetryPolicy, Subscription, SubscriptionName, SubscriptionOptions,
};
use eventlogs_fake::FakeReductionCache;
use eventlogs_testkit::aggregates::{Entry, Tally};
use eventlogs_testkit::{assert_dense, unique_key};

async fn dyn_store() -> Option<Arc<dyn EventStore>> {
    Some(Arc::new(shared_store().await?))
}

mod citus_store_suite {
    eventlogs_testkit::event_store_suite!(super::dyn_store());
}

fn is_unsupported<T: std::fmt::Debug>(result: eventlogs_core::Result<T>) -> bool {
    matches!(result, Err(Error::Unsupported { .. }))
}

/// Deleting a log, removing idempotency keys and event schema versions above 1 are not built
/// for a distributed schema yet: each is refused with `Unsupported`, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citus_refuses_delete_key_removal_and_upcast_versions_without_writing() {
    let Some(store) = shared_store().await else {
        return;
    };
    let log = LogId::new();
    let event = || vec![NewEvent::new(&Entry::of(1)).unwrap()];
    store
        .append(&AppendRequest::new(
            LogState::empty(log),
            event(),
            None,
            None,
        ))
        .await
        .unwrap();
    assert!(is_unsupported(store.delete(&log).await));
    assert!(is_unsupported(
        store.remove_idempotency_keys(Duration::ZERO, 10).await
    ));
    let versioned =
        AppendRequest::new(LogState::new(log, 1), event(), None, None).with_event_version(2);
    assert!(is_unsupported(store.append(&versioned).await));
    let stored = store.load(&log, 0, 10).await.unwrap();
    assert_eq!(stored.len(), 1, "the log is untouched");
    assert_eq!(stored[0].version, 1);
}

/// The feed's order exists per worker only on a distributed schema: every feed and
/// subscription call is refused with `Unsupported`, none reads (and skips) anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citus_feed_and_subscriptions_are_refused_not_skipped() {
    let Some(store) = shared_store().await else {
        return;
    };
    let store = Arc::new(store);
    let log = LogId::new();
    let event = NewEvent::new(&Entry::of(1)).unwrap();
    store
        .append(&AppendRequest::new(
            LogState::empty(log),
            vec![event],
            None,
            None,
        ))
        .await
        .unwrap();
    assert!(is_unsupported(
        store.read_feed(FeedPosition::START, 10).await
    ));
    assert!(is_unsupported(store.head().await));
    let name = SubscriptionName::new("citus-refused").unwrap();
    assert!(is_unsupported(
        store.claim(&name).await.map(|c| c.is_some())
    ));
    assert!(is_unsupported(store.checkpoint(&name).await));
    assert!(is_unsupported(store.lag(&name).await));
    let subscription = Subscription::new(
        Arc::clone(&store),
        "citus-refused",
        SubscriptionOptions::default(),
    )
    .unwrap();
    let run = subscription
        .run(
            |_events: Vec<eventlogs_core::FeedEvent>| async { Ok(()) },
            std::future::pending(),
        )
        .await;
    assert!(is_unsupported(run), "a subscription does not run");
    // In the background: it never goes live, and its handle says why.
    let mut running =
        subscription.spawn(|_events: Vec<eventlogs_core::FeedEvent>| async { Ok(()) });
    assert!(
        !running.live().await,
        "a refused subscription never goes live"
    );
    assert!(is_unsupported(running.join().await));
    let err = store.head().await.unwrap_err();
    assert!(
        !err.is_retryable() && err.to_string().contains("Citus"),
        "{err}"
    );
}

/// 64 tasks × 100 commands (reduce, decide, append, retried when a race is lost) on 8 logs, 4 on
/// each worker: exactly 6,400 events, every log dense, each index won once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn citus_racing_appends_over_both_workers_lose_and_duplicate_nothing() {
    const TASKS: i64 = 64;
    const EACH: i64 = 100;
    let Some(store) = shared_store().await else {
        return;
    };
    let per_worker = logs_on_each_worker(&store, 4).await;
    let logs_ids: Vec<LogId> = per_worker.concat();
    assert_eq!(logs_ids.len(), 8);
    let store: Arc<dyn EventStore> = Arc::new(store);
    // As a service would run: commands through `execute` (reduce, decide, append, decide again
    // after a lost race), with a cache so each reduce reads only the newer events.
    let decisions = Arc::new(AtomicU64::new(0));
    let logs: LogManager<Tally> = LogManager::builder(Arc::clone(&store))
        .cache(FakeReductionCache::new())
        .retry_policy(
            RetryPolicy::default()
                .with_max_attempts(10_000)
                .with_backoff(Duration::from_micros(500), Duration::from_millis(20)),
        )
        .build();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (logs, log) = (logs.clone(), logs_ids[(t % 8) as usize]);
            let decisions = Arc::clone(&decisions);
            tokio::spawn(async move {
                for i in 0..EACH {
                    let entry = Entry::of(t * 1_000 + i);
                    logs.execute(&log, &AppendOptions::new(), |_: Option<&Tally>| {
                        decisions.fetch_add(1, Ordering::Relaxed);
                        Ok::<_, Error>(vec![entry.clone()])
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let conflicts = decisions.load(Ordering::Relaxed) - (TASKS * EACH) as u64;
    let mut seen = HashSet::new();
    let mut total = 0;
    for log in &logs_ids {
        for event in assert_dense(&store, log).await {
            let amount = serde_json::from_str::<Entry>(&event.payload)
                .unwrap()
                .amount;
            assert!(seen.insert(amount), "{amount} written twice");
            total += 1;
        }
    }
    assert_eq!(total, TASKS * EACH, "every append written once");
    eprintln!("6,400 appends on 8 logs over 2 workers, {conflicts} conflicts");
}

/// 200 creates racing with one key, each with a fresh log id (spread over both workers):
/// one write, 199 replays naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn citus_a_storm_of_one_key_writes_exactly_once() {
    let Some(store) = shared_store().await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(store);
    let key = unique_key("citus-storm");
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move {
                let log = LogId::new();
                let event = NewEvent::new(&Entry::of(7)).unwrap();
                let request =
                    AppendRequest::new(LogState::empty(log), vec![event], None, Some(key));
                (log, store.append(&request).await)
            })
        })
        .collect();
    let (mut written, mut replays) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            (log, Ok(_)) => written.push(log),
            (
                _,
                Err(Error::IdempotentReplay {
                    log_id,
                    first_index: 0,
                    count: 1,
                    ..
                }),
            ) => {
                replays.push(log_id);
            }
            (_, Err(other)) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(written.len(), 1, "one write");
    assert!(replays.iter().all(|l| *l == written[0]), "replays name it");
    assert_eq!(replays.len(), 199);
    assert_eq!(assert_dense(&store, &written[0]).await.len(), 1);
}

/// A create retried with a fresh log id that lives on the other worker is a replay naming the
/// first log, and writes nothing; so is the create retried as an append to its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citus_a_create_retried_with_a_fresh_id_on_the_other_worker_replays() {
    let Some(store) = shared_store().await else {
        return;
    };
    let per_worker = logs_on_each_worker(&store, 1).await;
    let (first, retry) = (per_worker[0][0], per_worker[1][0]);
    let key = unique_key("citus-fresh-id");
    let request = |state| {
        AppendRequest::new(
            state,
            vec![NewEvent::new(&Entry::of(5)).unwrap()],
            None,
            Some(key.clone()),
        )
    };
    store
        .append(&request(LogState::empty(first)))
        .await
        .unwrap();
    for state in [LogState::empty(retry), LogState::new(first, 1)] {
        let err = store.append(&request(state)).await.unwrap_err();
        assert!(
            matches!(err, Error::IdempotentReplay { log_id, first_index: 0, count: 1, .. } if log_id == first),
            "{err:?}"
        );
    }
    let store: Arc<dyn EventStore> = Arc::new(store);
    assert!(assert_dense(&store, &retry).await.is_empty());
    assert_eq!(assert_dense(&store, &first).await.len(), 1);
}
