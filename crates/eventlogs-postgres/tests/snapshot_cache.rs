//! `PostgresSnapshotCache` runs the cache conformance suite and the manager suite, and stays an
//! optimisation under damaged rows and a paused server.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::backend::CacheKey;
use eventlogs_core::{CacheOutcome, CacheReads, EventStore, LogId, LogManager, ReductionCache};
use eventlogs_postgres::{PostgresEventStore, PostgresSnapshotCache};
use eventlogs_testkit::aggregates::{Entry, Tally};
use eventlogs_testkit::damage::assert_refolded_and_replaced;
use eventlogs_testkit::reduce_checked;
use eventlogs_testkit::servers::{own_servers, PostgresServer};

async fn snapshot_cache() -> Option<Arc<dyn ReductionCache>> {
    Some(Arc::new(PostgresSnapshotCache::new(
        &common::store().await?,
    )))
}

async fn store_and_snapshots() -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
    let store = common::store().await?;
    let cache = PostgresSnapshotCache::new(&store);
    Some((Arc::new(store), Arc::new(cache)))
}

mod cache_conformance {
    eventlogs_testkit::reduction_cache_suite!(super::snapshot_cache());
}

mod cache_keys_on_snapshots {
    eventlogs_testkit::cache_keys_suite!(super::store_and_snapshots());
}

mod cache_with_manager {
    eventlogs_testkit::log_manager_suite!(super::store_and_snapshots());
}

fn manager(store: &PostgresEventStore, cache: &PostgresSnapshotCache) -> LogManager<Tally> {
    LogManager::builder(store.clone())
        .cache(cache.clone())
        .cache_timeout(Duration::from_millis(200))
        .min_events_per_write(1)
        .cache_reads(CacheReads::Always)
        .build()
}

/// A log of two events whose reduction the cache holds.
async fn cached_log(logs: &LogManager<Tally>) -> LogId {
    let log = LogId::new();
    logs.create_with(&log, &[Entry::of(1), Entry::of(2)], &Default::default())
        .await
        .unwrap();
    reduce_checked(logs, &log).await;
    logs.flush().await;
    log
}

async fn write_row(store: &PostgresEventStore, key: &str, bytes: &[u8]) {
    let client = store.pool().get().await.unwrap();
    let sql = format!(
        "INSERT INTO {}.snapshots (key, entry) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET entry = EXCLUDED.entry",
        store.config().schema
    );
    client.execute(&sql, &[&key, &bytes]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_cache_rows_damaged_by_hand_are_refolded_and_replaced() {
    let Some(store) = common::store().await else {
        return;
    };
    let cache = PostgresSnapshotCache::new(&store);
    let logs = manager(&store, &cache);
    let log = LogId::new();
    let entries: Vec<Entry> = [5, 6, 7, 8].into_iter().map(Entry::of).collect();
    logs.create_with(&log, &entries, &Default::default())
        .await
        .unwrap();
    reduce_checked(&logs, &log).await;
    logs.flush().await;
    let key = CacheKey::of::<Tally>(log);
    assert_eq!(reduce_checked(&logs, &log).await.cache, CacheOutcome::Hit);
    let good = cache.get(&key).await.unwrap().unwrap();
    // A readable header claiming a later index than the log has, with a damaged body.
    let mut ahead = good.clone();
    ahead[4..8].copy_from_slice(&1_000u32.to_be_bytes());
    let mut damages = eventlogs_testkit::damage::damaged_entries(&good, log);
    damages.push(("a header ahead of the log", ahead));
    for (what, bytes) in damages {
        write_row(&store, key.as_str(), &bytes).await;
        assert_refolded_and_replaced(&logs, &log, what).await;
    }
    assert!(logs.cache_stats().corrupt >= 11);
}

/// The snapshots on a server of their own that is paused: every reduce still answers, within
/// the cache timeout, with the right result; after the resume the cache is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_cache_on_a_paused_server_costs_only_its_timeout() {
    if !own_servers() {
        return;
    }
    let Some(store) = common::store().await else {
        return;
    };
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let snapshots_store = PostgresEventStore::builder(server.url())
        .statement_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    snapshots_store.migrate().await.unwrap();
    let cache = PostgresSnapshotCache::new(&snapshots_store);
    let timeout = Duration::from_millis(200);
    let logs: LogManager<Tally> = LogManager::builder(store.clone())
        .cache(cache.clone())
        .cache_timeout(timeout)
        .min_events_per_write(1)
        .cache_reads(CacheReads::Always)
        .build();
    let log = cached_log(&logs).await;
    assert_eq!(reduce_checked(&logs, &log).await.cache, CacheOutcome::Hit);

    server.pause();
    for _ in 0..5 {
        let started = Instant::now();
        let r = reduce_checked(&logs, &log).await;
        // The deadline plus a margin for a loaded machine.
        assert!(
            started.elapsed() < timeout + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_ne!(r.cache, CacheOutcome::Hit);
    }
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        logs.flush().await;
        if reduce_checked(&logs, &log).await.cache == CacheOutcome::Hit {
            break;
        }
        assert!(Instant::now() < deadline, "the cache was not used again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logs.cache_stats().timeouts >= 5, "{:?}", logs.cache_stats());
}

/// `remove_older_than` removes exactly the rows last written before the age, over many pages
/// of the primary key, and keeps the entries in use; an entry removed while in use misses once
/// and is written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_cache_removes_entries_older_than_an_age() {
    // A schema of its own: the shared one holds other tests' rows, which this removes.
    let Some(store) = common::fresh("snapshots_age").await else {
        return;
    };
    let cache = PostgresSnapshotCache::new(&store);
    let logs = manager(&store, &cache);
    let log = cached_log(&logs).await;

    // 12,000 rows, every other one (in key order) last written two days ago.
    let client = store.pool().get().await.unwrap();
    let schema = &store.config().schema;
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.snapshots (key, entry, updated_at) \
                 SELECT 'old-or-not:v1:' || lpad(n::text, 6, '0'), '\\x00'::bytea, \
                        CASE WHEN n % 2 = 0 THEN now() - interval '2 days' ELSE now() END \
                 FROM generate_series(1, 12000) AS n"
            ),
            &[],
        )
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let client = &client;
        async move {
            let n: i64 = client
                .query_one(&sql.replace("{schema}", schema), &[])
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    assert_eq!(
        cache
            .remove_older_than(Duration::from_secs(86_400))
            .await
            .unwrap(),
        6_000
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM {schema}.snapshots WHERE updated_at < now() - interval '1 day'"
        )
        .await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM {schema}.snapshots").await,
        6_001
    );
    assert_eq!(reduce_checked(&logs, &log).await.cache, CacheOutcome::Hit);

    // Age zero removes everything written before the call, the entry in use included: it
    // misses once, and is written again.
    let removed = cache.remove_older_than(Duration::ZERO).await.unwrap();
    assert_eq!(removed, 6_001);
    assert_eq!(reduce_checked(&logs, &log).await.cache, CacheOutcome::Miss);
    logs.flush().await;
    assert_eq!(reduce_checked(&logs, &log).await.cache, CacheOutcome::Hit);
    drop(client);
    common::drop_schema(&store).await;
}
