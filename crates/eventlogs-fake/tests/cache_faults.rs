//! A cache that fails, hangs, lies or overflows never makes `reduce` wrong or failing.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use eventlogs_core::{AppendOptions, CacheOutcome, LogId, LogManager, LogState};
use eventlogs_fake::{CacheFault, CacheOperation, FakeEventStore, FakeReductionCache};
use eventlogs_testkit::aggregates::{Entry, Tally};

fn setup(timeout: Duration) -> (Arc<FakeReductionCache>, LogManager<Tally>) {
    let cache = Arc::new(FakeReductionCache::new());
    let logs = LogManager::builder(FakeEventStore::new())
        .cache(Arc::clone(&cache))
        .cache_timeout(timeout)
        .min_events_per_write(1)
        .cache_reads(eventlogs_core::CacheReads::Always)
        .build();
    (cache, logs)
}

async fn log_of(logs: &LogManager<Tally>, n: i64) -> (LogId, LogState) {
    let log = LogId::new();
    let events: Vec<Entry> = (1..=n).map(Entry::of).collect();
    let state = logs
        .create_with(&log, &events, &AppendOptions::default())
        .await
        .unwrap();
    (log, state)
}

#[tokio::test]
async fn failing_cache_is_a_miss_and_writes_are_counted() {
    let (cache, logs) = setup(Duration::from_millis(50));
    let (log, _) = log_of(&logs, 10).await;
    cache.set_fault(Some(CacheFault::Fail));
    for _ in 0..3 {
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!((r.cache, r.aggregate.sum), (CacheOutcome::Failed, 55));
    }
    logs.flush().await;
    let stats = logs.cache_stats();
    assert_eq!(stats.errors, 3);
    assert!(
        stats.write_errors >= 1,
        "failed writes are counted (coalesced per key): {stats:?}"
    );
    assert_eq!(stats.writes, 0);
    cache.set_fault(None);
    logs.reduce(&log).await.unwrap();
    logs.flush().await;
    assert_eq!(
        logs.reduce(&log).await.unwrap().cache,
        CacheOutcome::Hit,
        "the cache fills again"
    );
}

// Tokio's paused clock: only the timers decide how long a call takes, not the machine.
#[tokio::test(start_paused = true)]
async fn hanging_cache_delays_reduce_by_at_most_the_timeout() {
    let timeout = Duration::from_millis(40);
    let (cache, logs) = setup(timeout);
    let (log, _) = log_of(&logs, 5).await;
    cache.set_fault(Some(CacheFault::Hang));
    let started = Instant::now();
    let r = logs.reduce(&log).await.unwrap();
    let took = started.elapsed();
    assert_eq!((r.cache, r.aggregate.sum), (CacheOutcome::Failed, 15));
    assert_eq!(took, timeout, "waited for the cache exactly its timeout");
    logs.flush().await;
    assert_eq!(logs.cache_stats().timeouts, 1);
    assert_eq!(
        logs.cache_stats().write_errors,
        1,
        "the write timed out too"
    );
}

#[tokio::test]
async fn slow_cache_within_the_timeout_still_hits() {
    let (cache, logs) = setup(Duration::from_millis(500));
    let (log, _) = log_of(&logs, 5).await;
    logs.reduce(&log).await.unwrap();
    logs.flush().await;
    cache.set_fault(Some(CacheFault::Delay(Duration::from_millis(20))));
    assert_eq!(logs.reduce(&log).await.unwrap().cache, CacheOutcome::Hit);
}

#[tokio::test]
async fn corrupt_and_foreign_answers_are_refolded() {
    let (cache, logs) = setup(Duration::from_millis(50));
    let (a, _) = log_of(&logs, 5).await;
    let (b, _) = log_of(&logs, 7).await;
    logs.reduce(&a).await.unwrap();
    logs.reduce(&b).await.unwrap();
    logs.flush().await;
    cache.set_fault(Some(CacheFault::Corrupt));
    let r = logs.reduce(&a).await.unwrap();
    assert_eq!((r.cache, r.aggregate.sum), (CacheOutcome::Corrupt, 15));
    cache.set_fault(Some(CacheFault::Foreign));
    for _ in 0..4 {
        let r = logs.reduce(&a).await.unwrap();
        assert_eq!(r.aggregate.sum, 15);
        assert_ne!(
            r.cache,
            CacheOutcome::Hit,
            "another log's entry is never used"
        );
        let r = logs.reduce(&b).await.unwrap();
        assert_eq!(r.aggregate.sum, 28);
    }
}

#[tokio::test(start_paused = true)]
async fn writes_are_asynchronous_coalesced_and_bounded() {
    let (cache, mut ops) = FakeReductionCache::with_operations(1024);
    let cache = Arc::new(cache);
    let logs: LogManager<Tally> = LogManager::builder(FakeEventStore::new())
        .cache(Arc::clone(&cache))
        .write_queue_capacity(2)
        .write_concurrency(1)
        .min_events_per_write(1)
        .cache_reads(eventlogs_core::CacheReads::Always)
        .build();
    // A slow cache: reduce must not wait for writes.
    let (log, mut state) = log_of(&logs, 3).await;
    cache.set_fault(Some(CacheFault::Delay(Duration::from_millis(200))));
    let started = Instant::now();
    for i in 0..5 {
        // A slow cache is a miss, never a failed or wrong reduce.
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!((r.aggregate.count, r.cache), (3 + i, CacheOutcome::Failed));
        state = logs.append(&state, &Entry::of(1)).await.unwrap();
    }
    // Five reads of 200 ms time out at 50 ms each (paused clock: exactly); the 200 ms writes
    // queued meanwhile never held a reduce up.
    assert_eq!(started.elapsed(), 5 * Duration::from_millis(50));
    // Many logs at once overflow a queue of 2: the overflow is dropped and counted.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (other, _) = log_of(&logs, 1).await;
        let logs = logs.clone();
        tasks.push(tokio::spawn(
            async move { logs.reduce(&other).await.unwrap() },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().aggregate.sum, 1);
    }
    cache.set_fault(None);
    logs.flush().await;
    let stats = logs.cache_stats();
    assert!(stats.dropped_writes >= 3, "{stats:?}");
    let mut puts_for_log = 0;
    while let Ok(op) = ops.try_recv() {
        if let CacheOperation::Put { key, .. } = op {
            if key.ends_with(&log.to_string()) {
                puts_for_log += 1;
            }
        }
    }
    assert!(
        puts_for_log < 5,
        "pending writes for one log were coalesced ({puts_for_log} puts)"
    );
}

#[tokio::test]
async fn reduce_without_a_cache_reports_it_disabled() {
    let logs: LogManager<Tally> = LogManager::new(FakeEventStore::new());
    let (log, _) = log_of(&logs, 2).await;
    let r = logs.reduce(&log).await.unwrap();
    assert_eq!((r.cache, r.events_read), (CacheOutcome::Disabled, 2));
    logs.flush().await;
    assert_eq!(logs.cache_stats(), Default::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_based_sequences_with_random_cache_faults() {
    let cache = Arc::new(FakeReductionCache::new());
    let faults = Arc::clone(&cache);
    let inject: eventlogs_testkit::model::FaultInjector = Arc::new(move |kind| {
        faults.set_fault(match kind {
            1 => Some(CacheFault::Fail),
            2 => Some(CacheFault::Delay(Duration::from_millis(60))),
            3 => Some(CacheFault::Corrupt),
            4 => Some(CacheFault::Foreign),
            _ => None,
        })
    });
    let pair: eventlogs_testkit::manager_suite::Pair = (Arc::new(FakeEventStore::new()), cache);
    eventlogs_testkit::model::check_with_faults(pair, inject).await;
}
