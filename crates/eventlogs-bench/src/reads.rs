//! Read scenarios: reduce with a warm cache, with new events, and cold, beside raw GET/SELECT.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use eventlogs::{backend::CacheKey, LogId, LogManager, Never};
use futures::StreamExt;
use tokio_postgres::types::ToSql;

use crate::harness::{alternate, workload, Workload};

/// Alternating slices per comparison (see [`alternate`]).
const ROUNDS: u32 = 3;
use crate::report::{Measure, Row};
use crate::setup::{seed_log, Balance, Env, SCHEMA};

fn select_sql() -> String {
    format!(
        "SELECT event_index, recorded_at, payload::text, metadata::text, idempotency_key FROM {SCHEMA}.events \
         WHERE log_id = $1 AND event_index >= $2 ORDER BY event_index"
    )
}

/// Streams the rows of `log` from `from` with plain tokio-postgres; returns how many.
async fn raw_stream(pool: &Pool, sql: &str, log: &LogId, from: i64) -> Result<u64, String> {
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let stmt = client
        .prepare_cached(sql)
        .await
        .map_err(|e| e.to_string())?;
    let id = uuid::Uuid::from_u128(log.to_u128());
    let params: [&(dyn ToSql + Sync); 2] = [&id, &from];
    let rows = client
        .query_raw(&stmt, params)
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = Box::pin(rows);
    let mut n = 0;
    while let Some(row) = rows.next().await {
        let row = row.map_err(|e| e.to_string())?;
        let payload: &str = row.get(2);
        n += u64::from(!payload.is_empty());
    }
    Ok(n)
}

/// Raw warm read: a Redis GET of the cached entry and the indexed SELECT from its last index.
async fn raw_warm(env: &Env, logs: Arc<Vec<LogId>>, through: i64) -> Result<Workload, String> {
    use fred::interfaces::KeysInterface;
    let redis = env.raw_redis().await?;
    let pool = env.raw_pool(1)?;
    let sql = Arc::new(select_sql());
    Ok(workload(move |_, i| {
        let (redis, pool, sql, logs) = (
            redis.clone(),
            pool.clone(),
            Arc::clone(&sql),
            Arc::clone(&logs),
        );
        async move {
            let log = logs[i as usize % logs.len()];
            let key = format!("eventlogs_bench:{}", CacheKey::of::<Balance>(log));
            let bytes: Option<Vec<u8>> = redis.get(&key).await.map_err(|e| e.to_string())?;
            if bytes.is_none() {
                return Err("raw GET found no cached entry".into());
            }
            raw_stream(&pool, &sql, &log, through).await
        }
    }))
}

/// Logs of `len` events with a reduction through `len - 1` cached, then `new` more events.
pub(crate) async fn warm_logs(
    env: &Env,
    count: usize,
    len: i64,
    new: i64,
) -> Result<Vec<LogId>, String> {
    let pool = env.raw_pool(4)?;
    let warm: LogManager<Balance> = LogManager::builder(env.store(4).await?)
        .cache(env.cache().await?)
        .build();
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let log = seed_log(&pool, env.schema, len).await?;
        warm.reduce(&log).await.map_err(|e| e.to_string())?;
        ids.push(log);
    }
    warm.flush().await;
    if new > 0 {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let sql = format!(
            "INSERT INTO {}.events (log_id, event_index, payload) \
             SELECT $1, g, jsonb_build_object('amount', g, 'reference', repeat('x', 178)) FROM generate_series($2::bigint, $3::bigint) g",
            env.schema
        );
        for log in &ids {
            let id = uuid::Uuid::from_u128(log.to_u128());
            client
                .execute(&sql, &[&id, &len, &(len + new - 1)])
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(ids)
}

/// Reduces of `ids` in turn, each a cache hit that folds `expected` events in all.
pub(crate) async fn warm_reduces(
    env: &Env,
    ids: Arc<Vec<LogId>>,
    expected: u64,
) -> Result<Workload, String> {
    // The policy `Never` keeps the warm entries as they are, so every call does the same work.
    let logs: LogManager<Balance> = LogManager::builder(env.store(1).await?)
        .cache(env.cache().await?)
        .caching_policy(Never)
        .build();
    Ok(checked_reduces(logs, ids, expected, true))
}

/// Reduces of `ids` in turn with `logs`, each checked to fold `expected` events in all and to
/// be a cache hit (`hit`) or not.
pub(crate) fn checked_reduces(
    logs: LogManager<Balance>,
    ids: Arc<Vec<LogId>>,
    expected: u64,
    hit: bool,
) -> Workload {
    workload(move |_, i| {
        let (logs, ids) = (logs.clone(), Arc::clone(&ids));
        async move {
            let r = logs
                .reduce(&ids[i as usize % ids.len()])
                .await
                .map_err(|e| e.to_string())?;
            if r.aggregate.count != expected || (r.cache == eventlogs::CacheOutcome::Hit) != hit {
                return Err(format!(
                    "unexpected reduction: {} events, {:?}",
                    r.aggregate.count, r.cache
                ));
            }
            Ok(r.events_read)
        }
    })
}

/// Reduce with a warm cache, with no new events and with 10 new events.
pub(crate) async fn warm(env: &Env, seconds: Duration, rows: &mut Vec<Row>) -> Result<(), String> {
    for (new, bound) in [(0i64, 1.3), (10, 1.5)] {
        let ids = Arc::new(warm_logs(env, 200, 100, new).await?);
        let raw = raw_warm(env, Arc::clone(&ids), 99).await?;
        let library = warm_reduces(env, ids, 100 + new as u64).await?;
        let (library, raw) = alternate(1, seconds, ROUNDS, &library, &raw).await;
        rows.push(Row {
            scenario: if new == 0 {
                "reduce, warm cache, no new events".into()
            } else {
                "reduce, warm cache, 10 new events".into()
            },
            concurrency: 1,
            library,
            raw: Some(raw),
            measure: Measure::Median,
            target: Some((format!("p50 ≤ {bound}× raw"), bound)),
            note: "raw: Redis GET + indexed SELECT".into(),
            verdict: None,
        });
    }
    Ok(())
}

/// Reduces of `log` without a cache: every call folds the whole log.
pub(crate) async fn cold_reduces(env: &Env, log: LogId) -> Result<Workload, String> {
    let logs: LogManager<Balance> = LogManager::new(env.store(1).await?);
    Ok(workload(move |_, _| {
        let logs = logs.clone();
        async move {
            let r = logs.reduce(&log).await.map_err(|e| e.to_string())?;
            Ok(r.events_read)
        }
    }))
}

/// Cold reduce of a 10,000-event log vs streaming the same rows.
pub(crate) async fn cold(env: &Env, seconds: Duration, rows: &mut Vec<Row>) -> Result<(), String> {
    let pool = env.raw_pool(1)?;
    let log = seed_log(&pool, env.schema, 10_000).await?;
    let sql = Arc::new(select_sql());
    let raw = workload(move |_, _| {
        let (pool, sql) = (pool.clone(), Arc::clone(&sql));
        async move { raw_stream(&pool, &sql, &log, 0).await }
    });
    let library = cold_reduces(env, log).await?;
    let (library, raw) = alternate(1, seconds, ROUNDS, &library, &raw).await;
    rows.push(Row {
        scenario: "cold reduce of a 10,000-event log".into(),
        concurrency: 1,
        library,
        raw: Some(raw),
        measure: Measure::Events,
        target: Some(("≥ 0.8× raw row streaming".into(), 0.8)),
        note: String::new(),
        verdict: None,
    });
    Ok(())
}
