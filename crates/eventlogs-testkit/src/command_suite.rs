//! `LogManager::execute` over a real store and cache: create or append in one call, conflicts
//! retried with fresh state, repeated keys replayed without deciding again, domain errors
//! passed through typed. Part of the manager suite.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventlogs_core::{
    AppendOptions, Error, ErrorKind, EventsOnly, Executed, LogId, LogManager, RetryPolicy,
};

use crate::aggregates::{Entry, Tally, Trail};
use crate::manager_suite::{builder, Pair};
use crate::support::{assert_dense, fold_from_store, unique_key};

/// A service's own error: a refusal of the domain, or the store's.
#[derive(Debug)]
enum BankError {
    Insufficient { balance: i64 },
    Store(Error),
}

impl From<Error> for BankError {
    fn from(error: Error) -> Self {
        Self::Store(error)
    }
}

/// Withdraws `amount` unless the balance would go negative; opens the log with a deposit of
/// `amount` when it does not exist.
fn withdraw(amount: i64) -> impl FnMut(Option<&Trail>) -> Result<Vec<Entry>, BankError> {
    move |trail| match trail {
        None => Ok(vec![Entry::of(amount)]),
        Some(t) if t.sum() < amount => Err(BankError::Insufficient { balance: t.sum() }),
        Some(_) => Ok(vec![Entry::of(-amount)]),
    }
}

fn patient() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(1_000)
        .with_backoff(Duration::from_micros(200), Duration::from_millis(20))
}

pub async fn execute_creates_then_appends_and_returns_what_reduce_returns(pair: Pair) {
    let logs = builder::<Trail>(&pair).build();
    let log = LogId::new();
    let opts = AppendOptions::new().with_metadata(serde_json::json!({"by": "suite", "n": 1}));
    let created: Executed<Trail> = logs
        .execute(&log, &opts, |t: Option<&Trail>| {
            assert!(t.is_none(), "a new log has no state");
            Ok::<_, Error>(vec![Entry::of(100), Entry::of(5)])
        })
        .await
        .unwrap();
    assert_eq!((created.first_index, created.count), (0, 2));
    assert!(!created.replayed);
    let keyed = opts.clone().with_idempotency_key(unique_key("execute"));
    let appended = logs
        .execute(&log, &keyed, |t: Option<&Trail>| {
            assert_eq!(t.map(Trail::sum), Some(105));
            Ok::<_, Error>(vec![Entry::of(-30)])
        })
        .await
        .unwrap();
    assert_eq!((appended.first_index, appended.count), (2, 1));
    // The result is folded locally; it equals a fold of the store's records, commit times,
    // keys and metadata included, and a fresh reduce.
    let reference: Trail = fold_from_store(&pair.0, &log).await;
    assert_eq!(appended.reduction.aggregate, reference);
    assert_eq!(appended.reduction.through_index, 2);
    assert_eq!(appended.reduction, logs.reduce(&log).await.unwrap());
    assert_eq!(
        appended.reduction.created_at, created.reduction.created_at,
        "the log's age is its first event's"
    );
    // No events: the current state, nothing written; on a missing log, LogNotFound.
    let unchanged = logs
        .execute(&log, &AppendOptions::new(), |_: Option<&Trail>| {
            Ok::<_, Error>(vec![])
        })
        .await
        .unwrap();
    assert_eq!((unchanged.first_index, unchanged.count), (3, 0));
    assert_eq!(unchanged.reduction, appended.reduction);
    let missing = LogId::new();
    let err = logs
        .execute(&missing, &AppendOptions::new(), |_: Option<&Trail>| {
            Ok::<_, Error>(vec![])
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LogNotFound);
    assert_eq!(assert_dense(&pair.0, &missing).await.len(), 0);
}

pub async fn execute_passes_domain_errors_through_typed_and_writes_nothing(pair: Pair) {
    let logs = builder::<Trail>(&pair).build();
    let log = LogId::new();
    logs.execute(&log, &AppendOptions::new(), withdraw(50))
        .await
        .unwrap();
    let refused = logs
        .execute(&log, &AppendOptions::new(), withdraw(80))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, BankError::Insufficient { balance: 50 }),
        "{refused:?}"
    );
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 1);
    // The store's errors arrive through `From<Error>`.
    let too_many = logs
        .execute(&log, &AppendOptions::new(), |_: Option<&Trail>| {
            Ok::<_, BankError>(vec![Entry::of(1); 100_000])
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&too_many, BankError::Store(e) if e.kind() == ErrorKind::InvalidInput),
        "{too_many:?}"
    );
}

pub async fn execute_replays_a_repeated_key_without_deciding_again(pair: Pair) {
    let logs = builder::<Trail>(&pair).build();
    let log = LogId::new();
    logs.execute(&log, &AppendOptions::new(), withdraw(100))
        .await
        .unwrap();
    let key = unique_key("withdraw-all");
    let opts = AppendOptions::new().with_idempotency_key(key.clone());
    let first = logs.execute(&log, &opts, withdraw(100)).await.unwrap();
    assert_eq!((first.first_index, first.count), (1, 1));
    assert!(!first.replayed);
    // The retry would be refused by the guard (the balance is 0 now); it replays instead, and
    // the decision does not run.
    let decided = AtomicU32::new(0);
    let retry = logs
        .execute(&log, &opts, |_: Option<&Trail>| {
            decided.fetch_add(1, Ordering::SeqCst);
            Ok::<_, BankError>(vec![Entry::of(-100)])
        })
        .await
        .unwrap();
    assert!(retry.replayed);
    assert_eq!(decided.load(Ordering::SeqCst), 0, "the decision ran again");
    assert_eq!((retry.first_index, retry.count), (1, 1));
    assert_eq!(retry.reduction.aggregate.sum(), 0);
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 2);

    // A create retried under a fresh id replays the original log.
    let opened = LogId::new();
    let open = AppendOptions::new().with_idempotency_key(unique_key("open"));
    logs.execute(&opened, &open, withdraw(10)).await.unwrap();
    let fresh = LogId::new();
    let again = logs.execute(&fresh, &open, withdraw(10)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.reduction.log_id, opened);
    assert_eq!(assert_dense(&pair.0, &fresh).await.len(), 0);
    // The same key on another log that has events is a conflict.
    let err = logs.execute(&log, &open, withdraw(10)).await.unwrap_err();
    assert!(
        matches!(&err, BankError::Store(Error::IdempotencyConflict { key }) if *key == open.idempotency_key().unwrap()),
        "{err:?}"
    );
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 2);
}

pub async fn execute_retries_lost_races_with_fresh_state(pair: Pair) {
    let logs = builder::<Tally>(&pair).retry_policy(patient()).build();
    let log = LogId::new();
    let (tasks, each) = (16, 10);
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let logs = logs.clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    logs.execute(&log, &AppendOptions::new(), |t: Option<&Tally>| {
                        // Each command adds the next count, so a decision on stale state
                        // would be visible in the sum.
                        let next = t.map_or(0, |t| t.count) as i64 + 1;
                        Ok::<_, Error>(vec![Entry::of(next)])
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    let n = tasks * each;
    let tally: Tally = fold_from_store(&pair.0, &log).await;
    assert_eq!(tally.count, n);
    assert_eq!(tally.out_of_order, 0);
    assert_eq!(
        tally.sum,
        (n * (n + 1) / 2) as i64,
        "every command decided on the state it wrote after"
    );
}

pub async fn execute_gives_up_with_contended_after_its_attempts(pair: Pair) {
    for (policy, attempts) in [
        (RetryPolicy::no_retries(), 1),
        (patient().with_max_attempts(3), 3),
    ] {
        let logs = builder::<Tally>(&pair).retry_policy(policy).build();
        let rival = builder::<Tally>(&pair).build();
        let log = LogId::new();
        rival.create(&log, &Entry::of(1)).await.unwrap();
        let decided = AtomicU32::new(0);
        let err = logs
            .execute(&log, &AppendOptions::new(), |t: Option<&Tally>| {
                decided.fetch_add(1, Ordering::SeqCst);
                let seen = t.map_or(0, |t| t.count);
                // A rival takes the index this decision is for, every time.
                let rival = rival.clone();
                let state = eventlogs_core::LogState::new(log, seen);
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(rival.append(&state, &Entry::of(1)))
                })
                .join()
                .unwrap()
                .unwrap();
                Ok::<_, Error>(vec![Entry::of(1)])
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Contended { log_id, attempts: a } if log_id == log && a == attempts),
            "{err:?}"
        );
        assert!(err.is_retryable() && err.is_conflict());
        assert_eq!(decided.load(Ordering::SeqCst), attempts);
        // Only the rival's events were written.
        assert_eq!(assert_dense(&pair.0, &log).await.len() as u32, 1 + attempts);
    }
}

pub async fn execute_with_one_key_from_many_tasks_writes_once(pair: Pair) {
    let logs = builder::<Tally>(&pair).retry_policy(patient()).build();
    let log = LogId::new();
    logs.create(&log, &Entry::of(0)).await.unwrap();
    let opts = AppendOptions::new().with_idempotency_key(unique_key("storm"));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (logs, opts) = (logs.clone(), opts.clone());
            tokio::spawn(async move {
                logs.execute(&log, &opts, |_: Option<&Tally>| {
                    Ok::<_, Error>(vec![Entry::of(7)])
                })
                .await
                .unwrap()
            })
        })
        .collect();
    let mut written = 0;
    for handle in handles {
        let done = handle.await.unwrap();
        assert_eq!((done.first_index, done.count), (1, 1));
        written += u32::from(!done.replayed);
    }
    assert_eq!(written, 1, "exactly one call wrote");
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 2);
}

pub async fn execute_serves_services_without_an_aggregate(pair: Pair) {
    let audit = LogManager::<EventsOnly<Entry>>::new(Arc::clone(&pair.0));
    let log = LogId::new();
    let done = audit
        .execute(
            &log,
            &AppendOptions::new(),
            |_: Option<&EventsOnly<Entry>>| Ok::<_, Error>(vec![Entry::of(1), Entry::of(2)]),
        )
        .await
        .unwrap();
    assert_eq!(done.reduction.aggregate.count, 2);
    let state = done.reduction.state();
    audit.append(&state, &Entry::of(3)).await.unwrap();
    let page = audit.load(&log, 0, 10).await.unwrap();
    let amounts: Vec<i64> = page.iter().map(|r| r.event.amount).collect();
    assert_eq!(amounts, [1, 2, 3]);
    assert_eq!(audit.reduce(&log).await.unwrap().aggregate.count, 3);
}
