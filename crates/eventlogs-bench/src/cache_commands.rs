//! Commands with the Redis cache beside the same commands without one: small logs over a cold
//! working set (where the cache can only cost), and 1,000-event logs (where it must win).

use std::sync::Arc;
use std::time::Duration;

use eventlogs::{AppendOptions, CacheStats, EventStore, LogId, LogManager};

use crate::harness::{alternate_rounds, median, workload, Workload};
use crate::report::{Measure, Row};
use crate::setup::{seed_log, Balance, Env, Payment};

/// Alternating slices per comparison, each side running `2 × --seconds` in all: the ratios
/// are small differences on a shared machine, so they get more and longer slices.
const ROUNDS: u32 = 10;

/// Small logs: how many, and how many events each starts with.
const SMALL_LOGS: usize = 16_384;
const SMALL_EVENTS: usize = 10;

/// Long logs: how many, and how many events each starts with.
const LONG_LOGS: usize = 256;
const LONG_EVENTS: i64 = 1_000;

/// How many tasks run commands back to back.
const CONCURRENCY: [usize; 2] = [1, 16];

/// A command on a log chosen at random from `ids`: reduce, decide, append.
fn commands(logs: LogManager<Balance>, ids: Arc<Vec<LogId>>) -> Workload {
    workload(move |_, i| {
        let (logs, log) = (logs.clone(), ids[fastrand::usize(..ids.len())]);
        async move {
            logs.execute(&log, &AppendOptions::new(), |_: Option<&Balance>| {
                Ok::<_, eventlogs::Error>(vec![Payment::new(i as i64)])
            })
            .await
            .map(|_| 1)
            .map_err(|e| e.to_string())
        }
    })
}

/// What the cache did between two snapshots, for the row's note.
fn cache_note(before: &CacheStats, after: &CacheStats) -> String {
    format!(
        "cache: {} hits, {} misses, {} reduces without a read, {} writes",
        after.hits - before.hits,
        after.misses - before.misses,
        after.skipped_reads - before.skipped_reads,
        after.writes - before.writes,
    )
}

/// Runs commands on `ids` with the cache (default settings) and without, alternating, at each
/// concurrency, and pushes one row per concurrency.
async fn compare(
    store: &Arc<dyn EventStore>,
    cached: &LogManager<Balance>,
    ids: &Arc<Vec<LogId>>,
    seconds: Duration,
    what: &str,
    target: (&str, f64),
    rows: &mut Vec<Row>,
) {
    let plain: LogManager<Balance> = LogManager::new(Arc::clone(store));
    let with_cache = commands(cached.clone(), Arc::clone(ids));
    let without = commands(plain, Arc::clone(ids));
    for concurrency in CONCURRENCY {
        let before = cached.cache_stats();
        let (library, raw, ratios) =
            alternate_rounds(concurrency, seconds * 2, ROUNDS, &with_cache, &without).await;
        cached.flush().await;
        let note = cache_note(&before, &cached.cache_stats());
        let paired = median(&ratios);
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        rows.push(Row {
            scenario: format!("{what}, Redis cache (default settings)"),
            concurrency,
            library,
            raw: Some(raw),
            measure: Measure::Ops,
            target: Some((
                format!("{} (median of {ROUNDS} paired slices)", target.0),
                target.1,
            )),
            note: format!(
                "baseline: the same commands without a cache; median of the paired slices' \
                 ratios {paired:.2}× ({low:.2}–{high:.2}×); {note}"
            ),
            verdict: Some(paired >= target.1),
        });
    }
}

/// Small logs on a cold working set, then long logs, each with and without the cache.
pub(crate) async fn cache_commands(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let store: Arc<dyn EventStore> = Arc::new(env.store(16).await?);
    let cached: LogManager<Balance> = LogManager::builder(Arc::clone(&store))
        .cache(env.cache().await?)
        .build();

    // Seeded without the cache, so the working set starts cold.
    let seed: Vec<Payment> = (0..SMALL_EVENTS as i64).map(Payment::new).collect();
    let small_logs = if crate::harness::smoke(seconds) {
        SMALL_LOGS / 16
    } else {
        SMALL_LOGS
    };
    let ids: Arc<Vec<LogId>> = Arc::new((0..small_logs).map(|_| LogId::new()).collect());
    let seeding = futures::future::join_all((0..16).map(|part| {
        let (store, ids, seed) = (Arc::clone(&store), Arc::clone(&ids), seed.clone());
        async move {
            let logs: LogManager<Balance> = LogManager::new(store);
            for id in ids.iter().skip(part).step_by(16) {
                logs.create_with(id, &seed, &AppendOptions::new())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        }
    }))
    .await;
    seeding.into_iter().collect::<Result<Vec<_>, _>>()?;
    compare(
        &store,
        &cached,
        &ids,
        seconds,
        &format!(
            "command on {SMALL_EVENTS}-event logs (growing by one per command) chosen at random from {SMALL_LOGS}"
        ),
        ("≥ 0.95× without a cache", 0.95),
        rows,
    )
    .await;

    // Long logs, seeded server-side; one reduce each fills the cache as a first command would.
    let pool = env.raw_pool(4)?;
    let mut long = Vec::with_capacity(LONG_LOGS);
    for _ in 0..LONG_LOGS {
        let log = seed_log(&pool, env.schema, LONG_EVENTS).await?;
        cached.reduce(&log).await.map_err(|e| e.to_string())?;
        long.push(log);
    }
    cached.flush().await;
    compare(
        &store,
        &cached,
        &Arc::new(long),
        seconds,
        &format!("command on {LONG_EVENTS}-event logs chosen at random from {LONG_LOGS}"),
        ("≥ 5× without a cache", 5.0),
        rows,
    )
    .await;
    Ok(())
}
