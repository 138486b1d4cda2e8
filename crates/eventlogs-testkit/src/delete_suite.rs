//! `delete` conformance over a store and cache: a deleted log refuses every later write and
//! read, its keys replay as `LogDeleted`, its cached reduction is purged, other logs are
//! untouched, and idempotency keys are removed by age.
//!
//! `remove_idempotency_keys(Duration::ZERO)` removes every key of the store, so the factory
//! must give a store no other test is using at the same time (a fresh schema, a new
//! in-memory store). The feed and subscription checks are in `delete_suite/feed.rs`.

mod feed;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{
    backend::{AppendRequest, CacheKey, NewEvent},
    AppendOptions, CacheOutcome, Error, ErrorKind, LogId, LogManager, LogState, Result,
};
use futures::StreamExt;
use tokio::sync::Barrier;

use crate::aggregates::{Entry, Summary, Tally};
pub use crate::manager_suite::Pair;
use crate::manager_suite::{assert_true, builder, log_of};
use crate::support::{assert_dense, unique_key};
pub use feed::*;

fn manager<A: eventlogs_core::Aggregate>(pair: &Pair) -> LogManager<A> {
    builder(pair).build()
}

/// Asserts `result` is `Error::LogDeleted` for `log`.
pub fn assert_deleted<T: Debug>(result: Result<T>, log: LogId, what: &str) {
    match result {
        Err(Error::LogDeleted { log_id }) if log_id == log => {}
        other => panic!("{what}: expected LogDeleted for {log}, got {other:?}"),
    }
}

fn keyed(label: &str) -> AppendOptions {
    AppendOptions::new().with_idempotency_key(unique_key(label))
}

pub async fn delete_removes_the_log_and_refuses_every_later_write(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, _) = log_of(&logs, &[1, 2, 3, 4, 5]).await;
    logs.reduce(&log).await.unwrap();
    logs.flush().await;
    let key = CacheKey::of::<Tally>(log);
    assert!(pair.1.get(&key).await.unwrap().is_some(), "cached before");
    assert_eq!(logs.delete(&log).await.unwrap(), 5);
    assert_eq!(pair.1.get(&key).await.unwrap(), None, "entry purged");

    let err = logs.reduce(&log).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogDeleted);
    assert_deleted(logs.load(&log, 0, 10).await, log, "load");
    assert_deleted(logs.load(&log, 3, 10).await, log, "load from 3");
    let first = logs.stream(&log, 0).next().await;
    assert_deleted(first.expect("the stream yields the error"), log, "stream");
    assert_deleted(pair.0.load(&log, 0, 10).await, log, "store load");
    for next in [0, 1, 4, 5, 6, 100, u64::from(u32::MAX)] {
        let state = LogState::new(log, next);
        let what = format!("append at {next}");
        assert_deleted(logs.append(&state, &Entry::of(9)).await, log, &what);
        if next < u64::from(u32::MAX) {
            let batch = [Entry::of(1), Entry::of(2)];
            let written = logs.append_with(&state, &batch, &keyed("delete")).await;
            assert_deleted(written, log, &what);
        }
        let event = NewEvent::new(&Entry::of(1)).unwrap();
        let request = AppendRequest::new(state, vec![event], None, None);
        assert_deleted(pair.0.append(&request).await, log, &what);
    }
    assert_deleted(logs.create(&log, &Entry::of(1)).await, log, "create");
    let executed = logs
        .execute(&log, &keyed("delete-execute"), |_: Option<&Tally>| {
            Ok::<_, Error>(vec![Entry::of(1)])
        })
        .await;
    assert_deleted(executed, log, "execute");
    logs.flush().await;
    assert_eq!(
        pair.1.get(&key).await.unwrap(),
        None,
        "nothing cached again"
    );
    assert_eq!(logs.delete(&log).await.unwrap(), 0, "already deleted");
    let unknown = LogId::new();
    let err = logs.delete(&unknown).await.unwrap_err();
    assert!(
        matches!(err, Error::LogNotFound { log_id } if log_id == unknown),
        "{err:?}"
    );
    logs.create(&unknown, &Entry::of(1)).await.unwrap();
}

pub async fn delete_leaves_other_logs_and_their_cache_entries_alone(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (gone, _) = log_of(&logs, &[1, 2]).await;
    let (kept, kept_state) = log_of(&logs, &[10, 20, 30]).await;
    let before = logs.reduce(&kept).await.unwrap();
    logs.reduce(&gone).await.unwrap();
    logs.flush().await;
    let summaries = manager::<Summary>(&pair);
    summaries.reduce(&gone).await.unwrap();
    summaries.flush().await;
    assert_eq!(logs.delete(&gone).await.unwrap(), 2);
    let r = logs.reduce(&kept).await.unwrap();
    assert_eq!((r.cache, r.events_read), (CacheOutcome::Hit, 1));
    assert_eq!(r, before);
    assert_true(&pair, &r).await;
    let next = logs.append(&kept_state, &Entry::of(40)).await.unwrap();
    assert_eq!(next.next_index(), 4);
    // Another aggregate's entry of the deleted log is left behind, and never trusted.
    let other_key = CacheKey::of::<Summary>(gone);
    assert!(pair.1.get(&other_key).await.unwrap().is_some());
    assert_deleted(summaries.reduce(&gone).await, gone, "another aggregate");
    assert_eq!(summaries.delete(&gone).await.unwrap(), 0);
    assert_eq!(
        pair.1.get(&other_key).await.unwrap(),
        None,
        "deleting again through the other manager purges its entry"
    );
}

pub async fn delete_turns_replays_of_its_keys_into_log_deleted(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let log = LogId::new();
    let (create_key, append_key) = (keyed("delete-create"), keyed("delete-append"));
    let state = logs
        .create_with(&log, &[Entry::of(1)], &create_key)
        .await
        .unwrap();
    let batch = [Entry::of(2), Entry::of(3)];
    logs.append_with(&state, &batch, &append_key).await.unwrap();
    let replay = logs.append_with(&state, &batch, &append_key).await;
    assert!(
        matches!(replay, Err(Error::IdempotentReplay { .. })),
        "{replay:?}"
    );
    assert_eq!(logs.delete(&log).await.unwrap(), 3);

    let created = logs
        .create_with(&LogId::new(), &[Entry::of(1)], &create_key)
        .await;
    assert_deleted(created, log, "create retried under a fresh id");
    let created = logs.create_with(&log, &[Entry::of(1)], &create_key).await;
    assert_deleted(created, log, "create retried");
    for at in [1, 3] {
        let state = LogState::new(log, at);
        let appended = logs.append_with(&state, &batch, &append_key).await;
        assert_deleted(appended, log, &format!("append retried at {at}"));
    }
    for (target, options) in [(log, &append_key), (LogId::new(), &create_key)] {
        let executed = logs
            .execute(&target, options, |_: Option<&Tally>| {
                Ok::<_, Error>(vec![Entry::of(1)])
            })
            .await;
        assert_deleted(executed, log, "execute retried");
    }
    // A key reused for other events is a conflict still.
    let err = logs
        .create_with(&LogId::new(), &[Entry::of(99)], &create_key)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IdempotencyConflict, "{err:?}");
    let (other, other_state) = log_of(&logs, &[5]).await;
    let err = logs
        .append_with(&other_state, &[Entry::of(99)], &append_key)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IdempotencyConflict, "{err:?}");
    assert_eq!(assert_dense(&pair.0, &other).await.len(), 1);
}

pub async fn delete_many_deletes_each_log_and_counts_every_event(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (a, _) = log_of(&logs, &[1, 2]).await;
    let (b, _) = log_of(&logs, &[1, 2, 3]).await;
    let (c, _) = log_of(&logs, &[1, 2, 3, 4]).await;
    assert_eq!(logs.delete(&c).await.unwrap(), 4);
    assert_eq!(logs.delete_many(&[a, b, c]).await.unwrap(), 5);
    for log in [a, b, c] {
        assert_deleted(logs.reduce(&log).await, log, "deleted by delete_many");
    }
    assert_eq!(logs.delete_many(&[a, b]).await.unwrap(), 0);
    assert_eq!(logs.delete_many(&[]).await.unwrap(), 0);
    // It stops at an unknown log, the logs before it deleted and those after it not.
    let (d, _) = log_of(&logs, &[5]).await;
    let (e, _) = log_of(&logs, &[6, 7]).await;
    let unknown = LogId::new();
    let err = logs.delete_many(&[d, unknown, e]).await.unwrap_err();
    assert!(
        matches!(err, Error::LogNotFound { log_id } if log_id == unknown),
        "{err:?}"
    );
    assert_deleted(logs.reduce(&d).await, d, "before the unknown log");
    assert_eq!(logs.reduce(&e).await.unwrap().aggregate.sum, 13);
    assert_eq!(logs.delete_many(&[d, e]).await.unwrap(), 2);
}

pub async fn remove_idempotency_keys_deletes_keys_by_age(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let opts = keyed("delete-keys");
    let key = opts.idempotency_key().unwrap().to_owned();
    let log = LogId::new();
    logs.create_with(&log, &[Entry::of(1)], &opts)
        .await
        .unwrap();
    logs.remove_idempotency_keys(Duration::from_secs(3_600))
        .await
        .unwrap();
    let retried = logs
        .create_with(&LogId::new(), &[Entry::of(1)], &opts)
        .await;
    assert!(
        matches!(retried, Err(Error::IdempotentReplay { log_id, .. }) if log_id == log),
        "a young key stays: {retried:?}"
    );
    assert_eq!(logs.delete(&log).await.unwrap(), 1);
    let retried = logs
        .create_with(&LogId::new(), &[Entry::of(1)], &opts)
        .await;
    assert_deleted(retried, log, "a key of the deleted log");
    // Every key goes, once the store's clock has moved past the write.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut removed = 0;
    while pair.0.find_idempotency_key(&key).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the key was never removed");
        removed += logs.remove_idempotency_keys(Duration::ZERO).await.unwrap();
        tokio::task::yield_now().await;
    }
    assert!(removed >= 1);
    // The retry is not recognised any more: it writes again.
    let again = LogId::new();
    let state = logs
        .create_with(&again, &[Entry::of(1)], &opts)
        .await
        .unwrap();
    assert_eq!(state.next_index(), 1);
    assert_eq!(assert_dense(&pair.0, &again).await.len(), 1);
    // The store removes at most `max_keys` a call.
    let keys: Vec<String> = (0..3).map(|_| unique_key("delete-batch")).collect();
    for key in &keys {
        let opts = AppendOptions::new().with_idempotency_key(key.clone());
        logs.create_with(&LogId::new(), &[Entry::of(1)], &opts)
            .await
            .unwrap();
    }
    let (mut calls, mut left) = (0, keys.len());
    while left > 0 {
        assert!(Instant::now() < deadline, "{left} keys were never removed");
        let n = pair
            .0
            .remove_idempotency_keys(Duration::ZERO, 1)
            .await
            .unwrap();
        assert!(n <= 1, "removed {n} keys in a call of at most 1");
        calls += n;
        left = 0;
        for key in &keys {
            left += usize::from(pair.0.find_idempotency_key(key).await.unwrap().is_some());
        }
        tokio::task::yield_now().await;
    }
    assert!(calls >= 3, "one key a call: {calls}");
}

/// Writers reduce (through the cache) and append while the log is deleted: afterwards the log
/// is gone for every manager on the cache, and each acknowledged event was among those deleted.
pub async fn delete_racing_cached_writers_leaves_nothing_readable(pair: Pair) {
    const WRITERS: usize = 8;
    let logs = manager::<Tally>(&pair);
    let (log, _) = log_of(&logs, &[1]).await;
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (logs, barrier) = (logs.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let mut acknowledged = 0u64;
                loop {
                    let state = match logs.reduce(&log).await {
                        Ok(r) => r.state(),
                        Err(Error::LogDeleted { .. }) => return acknowledged,
                        Err(e) => panic!("reduce: {e:?}"),
                    };
                    match logs.append(&state, &Entry::of(1)).await {
                        Ok(_) => acknowledged += 1,
                        Err(e) if e.is_conflict() => {}
                        Err(Error::LogDeleted { .. }) => return acknowledged,
                        Err(e) => panic!("append: {e:?}"),
                    }
                }
            })
        })
        .collect();
    barrier.wait().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while pair.0.load(&log, 20, 1).await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the writers never wrote 20 events"
        );
        tokio::task::yield_now().await;
    }
    let removed = logs.delete(&log).await.unwrap();
    let mut acknowledged = 1;
    for writer in writers {
        acknowledged += writer.await.unwrap();
    }
    assert_eq!(
        removed, acknowledged,
        "every acknowledged event was deleted"
    );
    logs.flush().await;
    assert_deleted(logs.reduce(&log).await, log, "the deleting manager");
    let fresh = manager::<Tally>(&pair);
    assert_deleted(
        fresh.reduce(&log).await,
        log,
        "another manager on the cache",
    );
    assert_deleted(
        logs.append(&LogState::new(log, removed), &Entry::of(1))
            .await,
        log,
        "a later append",
    );
}
