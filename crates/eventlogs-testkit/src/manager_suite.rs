//! `LogManager` behaviour over a real store and cache: every cache state of invariant 4,
//! races, idempotent retries, atomic batches and the index edges.

use std::sync::Arc;

use eventlogs_core::{
    backend::{CacheEntry, CacheKey},
    Aggregate, AppendOptions, CacheOutcome, CacheReads, Error, EventStore, InvalidInput, LogId,
    LogLengthPolicy, LogManager, LogState, Never, Reduction, ReductionCache, Timestamp,
};
use futures::TryStreamExt;

use crate::aggregates::{Entry, Summary, Tally, TallyV2};
use crate::support::{assert_dense, fold_from_store, unique_key};

/// The store and cache under test.
pub type Pair = (Arc<dyn EventStore>, Arc<dyn ReductionCache>);

/// The suite asserts what the cache did, not how fast: a generous cache timeout keeps a loaded
/// machine from turning a slow hit into a miss.
pub(crate) const CACHE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub use crate::cache_cost_suite::*;
pub use crate::command_suite::*;

/// A manager over the pair that writes every reduction that folded anything new and reads the
/// cache on every reduce: the suite's logs are short, and it tests what the cache holds, not
/// when writing or reading it pays off (see [`default_writes_pay_for_themselves`] and
/// [`default_reads_stop_when_they_do_not_pay`] for that).
pub(crate) fn builder<A: Aggregate>(pair: &Pair) -> eventlogs_core::LogManagerBuilder<A> {
    LogManager::builder(Arc::clone(&pair.0))
        .cache(Arc::clone(&pair.1))
        .cache_timeout(CACHE_TIMEOUT)
        .min_events_per_write(1)
        .cache_reads(CacheReads::Always)
}

fn manager<A: Aggregate>(pair: &Pair) -> LogManager<A> {
    builder(pair).build()
}

pub(crate) fn none() -> AppendOptions {
    AppendOptions::default()
}

/// A log of `amounts` written one append at a time; returns its id and state.
pub(crate) async fn log_of<A: Aggregate<Event = Entry>>(
    logs: &LogManager<A>,
    amounts: &[i64],
) -> (LogId, LogState) {
    let log = LogId::new();
    let mut state = logs.create(&log, &Entry::of(amounts[0])).await.unwrap();
    for a in &amounts[1..] {
        state = logs.append(&state, &Entry::of(*a)).await.unwrap();
    }
    (log, state)
}

/// Asserts a reduction equals the fold of every event from index 0.
pub(crate) async fn assert_true<A: Aggregate + PartialEq + std::fmt::Debug>(
    pair: &Pair,
    r: &Reduction<A>,
) {
    let reference: A = fold_from_store(&pair.0, &r.log_id).await;
    assert_eq!(
        r.aggregate, reference,
        "reduction differs from a fold from index 0"
    );
    let len = assert_dense(&pair.0, &r.log_id).await.len() as u64;
    assert_eq!(r.len(), len, "reduction is not through the last event");
}

/// Replaces whatever is cached under `key` with `bytes`, as a raw client would.
pub async fn poison(cache: &Arc<dyn ReductionCache>, key: &CacheKey, bytes: &[u8]) {
    cache.delete(key).await.unwrap();
    assert!(cache.put(key, 0, bytes).await.unwrap());
}

pub async fn reduce_of_an_empty_log_is_not_found(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let log = LogId::new();
    assert!(matches!(logs.reduce(&log).await, Err(Error::LogNotFound { log_id }) if log_id == log));
    // A cached entry for a log with no events must not conjure one up.
    let key = CacheKey::of::<Tally>(log);
    let entry = CacheEntry {
        through_index: 3,
        fingerprint: 1,
        reduced_at: Timestamp::now(),
        created_at: Timestamp::now(),
        aggregate: Tally::default(),
    };
    poison(&pair.1, &key, &entry.encode(&key).unwrap()).await;
    assert!(matches!(
        logs.reduce(&log).await,
        Err(Error::LogNotFound { .. })
    ));
}

pub async fn reduce_folds_every_event(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, state) = log_of(&logs, &[3, -1, 4]).await;
    let state = logs
        .append_with(
            &state,
            &[Entry::of(1), Entry::of(5), Entry::of(-9)],
            &none(),
        )
        .await
        .unwrap();
    let r = logs.reduce(&log).await.unwrap();
    assert_eq!(
        (r.through_index, r.events_read, r.cache),
        (5, 6, CacheOutcome::Miss)
    );
    assert_eq!(
        (r.aggregate.count, r.aggregate.sum, r.aggregate.out_of_order),
        (6, 3, 0)
    );
    assert_eq!(r.state(), state);
    assert_true(&pair, &r).await;
}

pub async fn reduce_reads_only_newer_events_after_a_cached_one(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let amounts: Vec<i64> = (1..=20).collect();
    let (log, state) = log_of(&logs, &amounts).await;
    let first = logs.reduce(&log).await.unwrap();
    assert_eq!(first.events_read, 20);
    logs.flush().await;
    let hit = logs.reduce(&log).await.unwrap();
    assert_eq!(
        (hit.cache, hit.events_read, hit.through_index),
        (CacheOutcome::Hit, 1, 19)
    );
    assert_eq!(hit.aggregate, first.aggregate);
    let state = logs
        .append_with(
            &state,
            &[Entry::of(100), Entry::of(200), Entry::of(300)],
            &none(),
        )
        .await
        .unwrap();
    let newer = logs.reduce(&log).await.unwrap();
    assert_eq!(
        (newer.cache, newer.events_read, newer.through_index),
        (CacheOutcome::Hit, 4, 22)
    );
    assert_eq!(newer.state(), state);
    assert_true(&pair, &newer).await;
    logs.flush().await;
    let again = logs.reduce(&log).await.unwrap();
    assert_eq!(
        (again.cache, again.events_read, again.through_index),
        (CacheOutcome::Hit, 1, 22)
    );
    assert_eq!(again.aggregate, newer.aggregate);
    assert!(logs.cache_stats().hits >= 3);
}

pub async fn cached_reduction_without_new_events_keeps_its_index(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, state) = log_of(&logs, &[1, 2, 3, 4]).await;
    let first = logs.reduce(&log).await.unwrap();
    logs.flush().await;
    for _ in 0..3 {
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!(r.cache, CacheOutcome::Hit);
        assert_eq!(
            r.through_index, 3,
            "a hit with no new events keeps through_index"
        );
        assert_eq!(r.state(), state);
        assert_eq!(r.reduced_at, first.reduced_at);
    }
    let r = logs.reduce(&log).await.unwrap();
    logs.append(&r.state(), &Entry::of(5)).await.unwrap();
    assert_eq!(logs.reduce(&log).await.unwrap().aggregate.sum, 15);
}

pub async fn entry_ahead_of_the_log_is_refolded(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, _) = log_of(&logs, &[1, 2, 3]).await;
    let key = CacheKey::of::<Tally>(log);
    let bogus = Tally {
        count: 11,
        sum: 1_000_000,
        out_of_order: 0,
        digest: 7,
    };
    let entry = CacheEntry {
        through_index: 10,
        fingerprint: 42,
        reduced_at: Timestamp::now(),
        created_at: Timestamp::now(),
        aggregate: bogus,
    };
    poison(&pair.1, &key, &entry.encode(&key).unwrap()).await;
    let r = logs.reduce(&log).await.unwrap();
    assert_eq!(
        (r.cache, r.through_index, r.aggregate.sum),
        (CacheOutcome::Stale, 2, 6)
    );
    assert_true(&pair, &r).await;
    logs.flush().await;
    let r = logs.reduce(&log).await.unwrap();
    assert_eq!(
        (r.cache, r.events_read, r.through_index),
        (CacheOutcome::Hit, 1, 2),
        "the stale entry was replaced"
    );
    assert!(logs.cache_stats().stale >= 1);
}

pub async fn entry_with_a_rewritten_last_event_is_refolded(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, _) = log_of(&logs, &[1, 2, 3, 4, 5]).await;
    let raw = pair.0.load(&log, 2, 1).await.unwrap().remove(0);
    let key = CacheKey::of::<Tally>(log);
    let bogus = Tally {
        count: 3,
        sum: -500,
        out_of_order: 0,
        digest: 1,
    };
    for fingerprint in [raw.fingerprint() ^ 1, 0] {
        let entry = CacheEntry {
            through_index: 2,
            fingerprint,
            reduced_at: Timestamp::now(),
            created_at: Timestamp::now(),
            aggregate: bogus.clone(),
        };
        poison(&pair.1, &key, &entry.encode(&key).unwrap()).await;
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!((r.cache, r.aggregate.sum), (CacheOutcome::Stale, 15));
        assert_true(&pair, &r).await;
        logs.flush().await; // the replacement lands before the next poisoning
    }
    // With the right fingerprint the (bogus) cached value is trusted: the fingerprint is the
    // only thing that ties an entry to the log, which is why it covers the index, time and payload.
    let entry = CacheEntry {
        through_index: 2,
        fingerprint: raw.fingerprint(),
        reduced_at: Timestamp::now(),
        created_at: Timestamp::now(),
        aggregate: bogus,
    };
    poison(&pair.1, &key, &entry.encode(&key).unwrap()).await;
    let r = logs.reduce(&log).await.unwrap();
    assert_eq!(
        (r.cache, r.events_read, r.aggregate.sum),
        (CacheOutcome::Hit, 3, -500 + 9)
    );
}

pub async fn entries_of_other_versions_and_aggregates_are_never_used(pair: Pair) {
    let v1 = manager::<Tally>(&pair);
    let (log, _) = log_of(&v1, &[1, 2, 3]).await;
    v1.reduce(&log).await.unwrap();
    v1.flush().await;
    let v1_bytes = pair
        .1
        .get(&CacheKey::of::<Tally>(log))
        .await
        .unwrap()
        .expect("v1 cached");

    let v2 = manager::<TallyV2>(&pair);
    let r = v2.reduce(&log).await.unwrap();
    assert_eq!(
        r.cache,
        CacheOutcome::Miss,
        "another version has another key"
    );
    assert_true(&pair, &r).await;
    let summary = manager::<Summary>(&pair);
    let r = summary.reduce(&log).await.unwrap();
    assert_eq!(
        r.cache,
        CacheOutcome::Miss,
        "another aggregate has another key"
    );
    assert_eq!(r.aggregate.0.sum, 6 + 3_000);
    assert_true(&pair, &r).await;
    v2.flush().await;
    summary.flush().await;

    // The v1 entry copied under the other keys decodes as their types but is refused.
    poison(&pair.1, &CacheKey::of::<TallyV2>(log), &v1_bytes).await;
    poison(&pair.1, &CacheKey::of::<Summary>(log), &v1_bytes).await;
    let r = v2.reduce(&log).await.unwrap();
    assert_eq!(r.cache, CacheOutcome::Corrupt);
    assert_true(&pair, &r).await;
    let r = summary.reduce(&log).await.unwrap();
    assert_eq!(r.cache, CacheOutcome::Corrupt);
    assert_eq!(r.aggregate.0.sum, 6 + 3_000);
}

pub async fn damaged_entries_are_refolded_and_replaced(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, _) = log_of(&logs, &[5, 6, 7, 8]).await;
    let key = CacheKey::of::<Tally>(log);
    logs.reduce(&log).await.unwrap();
    logs.flush().await;
    let good = pair.1.get(&key).await.unwrap().expect("cached");
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let mut huge = good.clone();
    huge[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut header_only = good[..eventlogs_core::backend::CACHE_HEADER_LEN].to_vec();
    header_only[32..36].copy_from_slice(&[0, 0, 0, 0]);
    let damages: [(&str, Vec<u8>); 7] = [
        ("garbage", b"\x00\xffnot an entry at all".to_vec()),
        ("empty", Vec::new()),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("bit flip", flipped),
        ("huge length", huge),
        ("header only", header_only),
        ("oversized", vec![b'x'; 2 * 1024 * 1024]),
    ];
    for (what, bytes) in damages {
        poison(&pair.1, &key, &bytes).await;
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!(r.cache, CacheOutcome::Corrupt, "{what}");
        assert_eq!(r.aggregate.sum, 26, "{what}");
        assert_true(&pair, &r).await;
        logs.flush().await;
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!(
            (r.cache, r.events_read),
            (CacheOutcome::Hit, 1),
            "{what}: entry replaced"
        );
    }
    assert!(logs.cache_stats().corrupt >= 7);
}

pub async fn caching_policy_decides_what_is_written(pair: Pair) {
    let never: LogManager<Tally> = builder(&pair).caching_policy(Never).build();
    let (log, _) = log_of(&never, &[1, 2]).await;
    never.reduce(&log).await.unwrap();
    never.flush().await;
    assert_eq!(pair.1.get(&CacheKey::of::<Tally>(log)).await.unwrap(), None);

    let long_only: LogManager<Tally> = builder(&pair)
        .caching_policy(LogLengthPolicy::at_least(5))
        .build();
    let (log, state) = log_of(&long_only, &[1, 2, 3]).await;
    long_only.reduce(&log).await.unwrap();
    long_only.flush().await;
    assert_eq!(pair.1.get(&CacheKey::of::<Tally>(log)).await.unwrap(), None);
    long_only
        .append_with(&state, &[Entry::of(4), Entry::of(5)], &none())
        .await
        .unwrap();
    long_only.reduce(&log).await.unwrap();
    long_only.flush().await;
    assert!(pair
        .1
        .get(&CacheKey::of::<Tally>(log))
        .await
        .unwrap()
        .is_some());

    let positive_only: LogManager<Tally> = builder(&pair)
        .caching_policy(|r: &Reduction<Tally>| r.aggregate.sum > 0)
        .build();
    let (log, _) = log_of(&positive_only, &[-1]).await;
    positive_only.reduce(&log).await.unwrap();
    positive_only.flush().await;
    assert_eq!(pair.1.get(&CacheKey::of::<Tally>(log)).await.unwrap(), None);
}

pub async fn racing_appenders_have_one_winner(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, state) = log_of(&logs, &[0]).await;
    let tasks: Vec<_> = (1..=64)
        .map(|i| {
            let logs = logs.clone();
            tokio::spawn(async move { logs.append(&state, &Entry::of(i)).await })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(next) => {
                wins += 1;
                assert_eq!(next.next_index(), 2);
            }
            Err(Error::ConcurrentAppend { log_id, index: 1 }) => assert_eq!(log_id, log),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 2);
}

pub async fn idempotent_retries_write_once(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let key = unique_key("retry");
    let opts = AppendOptions::default().with_idempotency_key(key.clone());
    let log = LogId::new();
    let created = logs
        .create_with(&log, &[Entry::of(10)], &opts)
        .await
        .unwrap();
    assert_eq!(created.next_index(), 1);
    for _ in 0..10_000 {
        match logs
            .create_with(&LogId::new(), &[Entry::of(10)], &opts)
            .await
        {
            Err(Error::IdempotentReplay {
                log_id,
                first_index: 0,
                count: 1,
                ..
            }) => assert_eq!(log_id, log),
            other => panic!("unexpected {other:?}"),
        }
    }
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (logs, opts) = (logs.clone(), opts.clone());
            tokio::spawn(async move {
                logs.create_with(&LogId::new(), &[Entry::of(10)], &opts)
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(
            matches!(t.await.unwrap(), Err(Error::IdempotentReplay { log_id, .. }) if log_id == log)
        );
    }
    // The same key with another event is a conflict.
    let err = logs
        .create_with(&LogId::new(), &[Entry::of(11)], &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IdempotencyConflict { .. }), "{err:?}");
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 1);
    // Append retries after the log moved on.
    let key = unique_key("append-retry");
    let opts = AppendOptions::default().with_idempotency_key(key);
    let next = logs
        .append_with(&created, &[Entry::of(1)], &opts)
        .await
        .unwrap();
    logs.append(&next, &Entry::of(2)).await.unwrap();
    for state in [created, next, LogState::new(log, 3)] {
        let err = logs
            .append_with(&state, &[Entry::of(1)], &opts)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::IdempotentReplay {
                    first_index: 1,
                    count: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    assert_eq!(logs.reduce(&log).await.unwrap().aggregate.sum, 13);
}

pub async fn batches_are_atomic(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, state) = log_of(&logs, &[1]).await;
    let stale = LogState::empty(log);
    let batch = [Entry::of(2), Entry::of(3)];
    assert!(matches!(
        logs.append_with(&stale, &batch, &none()).await,
        Err(Error::ConcurrentAppend { .. })
    ));
    let too_big = Entry {
        amount: 9,
        note: "x".repeat(pair.0.limits().max_event_bytes()),
    };
    let err = logs
        .append_with(&state, &[Entry::of(2), too_big], &none())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput(InvalidInput::EventTooLarge { position: 1, .. })
        ),
        "{err:?}"
    );
    assert!(matches!(
        logs.append_with(&state, &[], &none()).await,
        Err(Error::InvalidInput(InvalidInput::EmptyBatch))
    ));
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 1);
    let key = unique_key("batch");
    let opts = AppendOptions::default()
        .with_idempotency_key(key)
        .with_metadata(serde_json::json!({"source": "suite"}));
    let next = logs.append_with(&state, &batch, &opts).await.unwrap();
    assert_eq!(next.next_index(), 3);
    let err = logs.append_with(&state, &batch, &opts).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdempotentReplay {
                first_index: 1,
                count: 2,
                ..
            }
        ),
        "{err:?}"
    );
    let page = logs.load(&log, 1, 10).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(page
        .iter()
        .all(|e| e.metadata == Some(serde_json::json!({"source": "suite"}))));
    let created = logs
        .create_with(&LogId::new(), &batch, &none())
        .await
        .unwrap();
    assert_eq!(created.next_index(), 2);
}

pub async fn log_full_at_the_u32_edge(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let (log, _) = log_of(&logs, &[1]).await;
    let max = u64::from(u32::MAX);
    let err = logs
        .append(&LogState::new(log, max + 1), &Entry::of(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LogFull { next_index, count: 1, .. } if next_index == max + 1),
        "{err:?}"
    );
    let err = logs
        .append_with(
            &LogState::new(log, max),
            &[Entry::of(1), Entry::of(2)],
            &none(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LogFull { count: 2, .. }), "{err:?}");
    let err = logs
        .append(&LogState::new(log, max), &Entry::of(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::IndexGap { .. }),
        "u32::MAX itself is a valid index: {err:?}"
    );
    assert_eq!(assert_dense(&pair.0, &log).await.len(), 1);
}

pub async fn reduce_and_retry_writers_lose_nothing(pair: Pair) {
    const WRITERS: i64 = 16;
    const EACH: i64 = 25;
    let logs = manager::<Tally>(&pair);
    let log = LogId::new();
    logs.create(&log, &Entry::of(0)).await.unwrap();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut conflicts = 0u64;
                for i in 0..EACH {
                    loop {
                        let state = logs.reduce(&log).await.unwrap().state();
                        match logs.append(&state, &Entry::of(w * 1_000 + i)).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let expected_sum: i64 = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |i| w * 1_000 + i))
        .sum();
    let r = logs.reduce(&log).await.unwrap();
    assert_eq!(r.aggregate.count, (WRITERS * EACH + 1) as u64);
    assert_eq!(r.aggregate.sum, expected_sum);
    assert_eq!(r.aggregate.out_of_order, 0);
    assert_true(&pair, &r).await;
}

pub async fn load_pages_and_stream_agree(pair: Pair) {
    let logs = manager::<Tally>(&pair);
    let log = LogId::new();
    let all: Vec<Entry> = (0..250).map(Entry::of).collect();
    let state = logs.create_with(&log, &all[..100], &none()).await.unwrap();
    let state = logs
        .append_with(&state, &all[100..], &none())
        .await
        .unwrap();
    assert_eq!(state.next_index(), 250);
    let mut paged = Vec::new();
    let mut from = 0;
    loop {
        let page = logs.load(&log, from, 64).await.unwrap();
        let Some(last) = page.last() else { break };
        from = last.index + 1;
        paged.extend(page);
    }
    let streamed: Vec<_> = logs.stream(&log, 0).try_collect().await.unwrap();
    assert_eq!(paged, streamed);
    assert_eq!(
        streamed.iter().map(|r| r.event.clone()).collect::<Vec<_>>(),
        all
    );
    let tail: Vec<_> = logs.stream(&log, 245).try_collect().await.unwrap();
    assert_eq!(tail.len(), 5);
    let max = pair.0.limits().max_page_events();
    for over in [max + 1, u32::MAX] {
        let err = logs.load(&log, 0, over).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(InvalidInput::PageTooLarge { .. })),
            "{err:?}"
        );
    }
    assert!(logs.load(&log, 0, 0).await.unwrap().is_empty());
    let json = serde_json::to_value(&paged[0]).unwrap();
    assert_eq!(json["index"], 0);
    assert_eq!(json["event"]["amount"], 0);
    assert!(json["recorded_at"].as_str().unwrap().ends_with('Z'));
}

pub async fn model_based_operation_sequences(pair: Pair) {
    crate::model::check(pair).await;
}

pub async fn reductions_from_the_cache_equal_fresh_ones_and_keep_the_log_age(pair: Pair) {
    // An id whose time part says 1970 (as a UUID from elsewhere would): the log's age comes
    // from its first event, so a policy caching only young logs still caches it.
    let log = LogId::from_u128(LogId::new().to_u128() & ((1 << 80) - 1));
    assert_eq!(log.ulid_timestamp(), Timestamp::UNIX_EPOCH);
    let logs = builder::<Tally>(&pair)
        .caching_policy(eventlogs_core::LogAgePolicy::until(
            std::time::Duration::from_secs(3_600),
        ))
        .build();
    let mut state = logs.create(&log, &Entry::of(1)).await.unwrap();
    for n in 2..=5 {
        state = logs.append(&state, &Entry::of(n)).await.unwrap();
    }
    let fresh = logs.reduce(&log).await.unwrap();
    let age = fresh.created_at.elapsed_until(Timestamp::now());
    assert!(
        age < std::time::Duration::from_secs(600),
        "age from the first event: {age:?}"
    );
    logs.flush().await;
    let hit = logs.reduce(&log).await.unwrap();
    assert_eq!(hit.cache, CacheOutcome::Hit, "a young log is cached");
    assert_eq!(hit, fresh, "a reduction from the cache equals a fresh one");
    assert_eq!(
        hit.created_at, fresh.created_at,
        "the cache keeps the log's age"
    );
}
