//! The reduction cache without Redis: warm reduces of 1,000-event aggregates with the
//! PostgreSQL snapshot cache, beside the Redis cache and no cache, in one run; and what
//! authenticated entries (`CacheKeys`) cost on them.

use std::sync::Arc;
use std::time::Duration;

use eventlogs::postgres::PostgresSnapshotCache;
use eventlogs::{CacheKeys, LogId, LogManager, Never, ReductionCache};

use crate::harness::{alternate, Workload};
use crate::reads::checked_reduces;
use crate::report::{Measure, Row};
use crate::setup::{seed_log, Balance, Env};

/// Events per log.
const LEN: i64 = 1_000;
/// Logs reduced in turn.
const LOGS: usize = 50;
/// Alternating rounds per comparison.
const ROUNDS: u32 = 3;

/// Reduces of `ids` in turn through `cache` (or none), each checked to be a hit (or a fold
/// of the whole log).
async fn reduces(
    env: &Env,
    ids: Arc<Vec<LogId>>,
    cache: Option<Arc<dyn ReductionCache>>,
    keys: Option<CacheKeys>,
) -> Result<Workload, String> {
    let mut builder = LogManager::<Balance>::builder(env.store(1).await?).caching_policy(Never);
    if let Some(keys) = keys {
        builder = builder.cache_keys(keys);
    }
    let cached = cache.is_some();
    let logs = match cache {
        Some(cache) => builder.cache(cache).build(),
        None => builder.build(),
    };
    Ok(checked_reduces(logs, ids, LEN as u64, cached))
}

/// Warm reduces with the snapshot table, with Redis, and with no cache.
pub(crate) async fn snapshots(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let pool = env.raw_pool(2)?;
    let store = env.store(2).await?;
    let snapshots: Arc<dyn ReductionCache> = Arc::new(PostgresSnapshotCache::new(&store));
    let redis: Arc<dyn ReductionCache> = Arc::new(env.cache().await?);
    let mut ids = Vec::with_capacity(LOGS);
    for _ in 0..LOGS {
        ids.push(seed_log(&pool, env.schema, LEN).await?);
    }
    // Warm both caches with every log, the entries signed (a reader without keys reads them
    // too; one with keys needs them).
    for cache in [&snapshots, &redis] {
        let warm: LogManager<Balance> = LogManager::builder(store.clone())
            .cache(Arc::clone(cache))
            .cache_keys(keys())
            .min_events_per_write(1)
            .build();
        for log in &ids {
            warm.reduce(log).await.map_err(|e| e.to_string())?;
        }
        warm.flush().await;
    }
    let ids = Arc::new(ids);
    let on_pg = reduces(env, Arc::clone(&ids), Some(Arc::clone(&snapshots)), None).await?;
    let on_redis = reduces(env, Arc::clone(&ids), Some(Arc::clone(&redis)), None).await?;
    let signed_redis = reduces(env, Arc::clone(&ids), Some(redis), Some(keys())).await?;
    let none = reduces(env, Arc::clone(&ids), None, None).await?;
    let note = "1,000-event logs, 50 in turn, each a confirmed hit (the entry read, then the last \
                cached event re-read from the store)";
    let comparisons: [(&str, &Workload, &Workload, &str, f64); 4] = [
        (
            "PostgreSQL snapshot cache",
            &on_pg,
            &none,
            "≥ 5× no cache",
            5.0,
        ),
        ("Redis cache", &on_redis, &none, "≥ 5× no cache", 5.0),
        (
            "PostgreSQL snapshot cache against Redis",
            &on_pg,
            &on_redis,
            "report",
            0.0,
        ),
        (
            "Redis, entries authenticated (CacheKeys) against not",
            &signed_redis,
            &on_redis,
            "report",
            0.0,
        ),
    ];
    for (what, library, raw, target, bound) in comparisons {
        let (library, raw) = alternate(1, seconds, ROUNDS, library, raw).await;
        rows.push(Row {
            scenario: format!("reduce, warm cache, {what}"),
            concurrency: 1,
            library,
            raw: Some(raw),
            measure: Measure::Ops,
            target: (bound > 0.0).then(|| (target.to_string(), bound)),
            note: note.to_string(),
            verdict: None,
        });
    }
    Ok(())
}

/// The bench's cache key (a constant: these entries protect nothing).
fn keys() -> CacheKeys {
    CacheKeys::new([0x5a; 32])
}
