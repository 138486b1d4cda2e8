//! Write scenarios: creates, appends, batches and contention, each beside a raw INSERT baseline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventlogs::{AppendOptions, LogId, LogManager, LogState};

use crate::harness::{alternate, run, workload, WorkerLogs, Workload};

/// Alternating slices per comparison (see [`alternate`]).
const ROUNDS: u32 = 3;
use crate::report::{Measure, Row};
use crate::setup::{Balance, Env, Payment};

/// The library's own statement for one event without a key, so the ratio shows only the
/// library's overhead (the SQL's cost is in both).
/// The event schema version the library's statements take last.
pub(crate) const VERSION: i32 = 1;

async fn append_sql(env: &Env) -> Result<String, String> {
    Ok(env.store(1).await?.single_append_sql().to_owned())
}

fn uuid(log: &LogId) -> uuid::Uuid {
    uuid::Uuid::from_u128(log.to_u128())
}

/// Raw baseline: the same statement through plain tokio-postgres, at index 0 of a new log
/// (`append` false) or at the next index of the worker's log.
pub(crate) async fn raw_inserts(
    env: &Env,
    concurrency: usize,
    append: bool,
) -> Result<Workload, String> {
    let pool = env.raw_pool(concurrency)?;
    let logs = WorkerLogs::new(concurrency, 0);
    let sql = Arc::new(append_sql(env).await?);
    Ok(workload(move |worker, i| {
        let (pool, sql, logs) = (pool.clone(), Arc::clone(&sql), Arc::clone(&logs));
        async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached(&sql)
                .await
                .map_err(|e| e.to_string())?;
            let (log, index) = if append {
                (*logs.log(worker), logs.take(worker, 1))
            } else {
                (uuid(&LogId::new()), 0)
            };
            let payload = Payment::json(i as i64);
            let metadata: Option<&str> = None;
            let rows = client
                .query(&stmt, &[&log, &index, &payload, &metadata, &VERSION])
                .await
                .map_err(|e| e.to_string())?;
            if rows.len() != 1 {
                return Err("the raw append inserted nothing".into());
            }
            Ok(1)
        }
    }))
}

/// `create` of a one-event log, each call a new log.
pub(crate) async fn library_creates(env: &Env, concurrency: usize) -> Result<Workload, String> {
    let logs: LogManager<Balance> = LogManager::new(env.store(concurrency).await?);
    Ok(workload(move |_, i| {
        let logs = logs.clone();
        async move {
            logs.create(&LogId::new(), &Payment::new(i as i64))
                .await
                .map(|_| 1)
                .map_err(|e| e.to_string())
        }
    }))
}

/// `create` of a one-event log vs a raw INSERT, at each concurrency.
pub(crate) async fn creates(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    for concurrency in [1, 16, 64] {
        let raw = raw_inserts(env, concurrency, false).await?;
        let library = library_creates(env, concurrency).await?;
        let (library, raw) = alternate(concurrency, seconds, ROUNDS, &library, &raw).await;
        rows.push(Row {
            scenario: "create a 1-event log".into(),
            concurrency,
            library,
            raw: Some(raw),
            measure: Measure::Ops,
            target: Some(("≥ 0.9× raw".into(), 0.9)),
            note: String::new(),
            verdict: None,
        });
    }
    Ok(())
}

/// Fresh logs, one per worker, each with one event; returns the ids.
async fn worker_logs(logs: &LogManager<Balance>, n: usize) -> Result<Vec<LogState>, String> {
    let mut states = Vec::with_capacity(n);
    for _ in 0..n {
        let log = LogId::new();
        states.push(
            logs.create(&log, &Payment::new(0))
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(states)
}

/// Appends of `batch` events by `concurrency` workers, each to its own log; with a fresh
/// idempotency key per append when `keyed`.
pub(crate) async fn library_appends(
    env: &Env,
    concurrency: usize,
    batch: usize,
    keyed: bool,
) -> Result<Workload, String> {
    let logs: LogManager<Balance> = LogManager::new(env.store(concurrency).await?);
    let states = Arc::new(Mutex::new(worker_logs(&logs, concurrency).await?));
    let events: Arc<Vec<Payment>> = Arc::new((0..batch as i64).map(Payment::new).collect());
    Ok(workload(move |worker, _| {
        let (logs, states, events) = (logs.clone(), Arc::clone(&states), Arc::clone(&events));
        async move {
            let state = states.lock().map_err(|e| e.to_string())?[worker];
            let _log = state.log_id();
            let options = if keyed {
                // Unique across slices and runs (iterations start again at 0 in each slice).
                AppendOptions::new().with_idempotency_key(format!("bench-{}", LogId::new()))
            } else {
                AppendOptions::default()
            };
            let next = if events.len() == 1 {
                logs.append_with(&state, std::slice::from_ref(&events[0]), &options)
                    .await
            } else {
                logs.append_with(&state, &events, &options).await
            }
            .map_err(|e| e.to_string())?;
            states.lock().map_err(|e| e.to_string())?[worker] = next;
            Ok(events.len() as u64)
        }
    }))
}

/// Raw baseline for batches: the library's batch statement through plain tokio-postgres.
async fn raw_batches(env: &Env, concurrency: usize, batch: usize) -> Result<Workload, String> {
    let pool = env.raw_pool(concurrency)?;
    let sql = Arc::new(env.store(1).await?.batch_append_sql().to_owned());
    let logs = WorkerLogs::new(concurrency, 0);
    Ok(workload(move |worker, _| {
        let (pool, sql, logs) = (pool.clone(), Arc::clone(&sql), Arc::clone(&logs));
        async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached(&sql)
                .await
                .map_err(|e| e.to_string())?;
            let first = logs.take(worker, batch as i64);
            let payloads: Vec<String> = (0..batch as i64).map(Payment::json).collect();
            let metadata: Option<&str> = None;
            let rows = client
                .query(
                    &stmt,
                    &[logs.log(worker), &first, &payloads, &metadata, &VERSION],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(rows.len() as u64)
        }
    }))
}

/// Sequential appends to many logs in parallel vs raw INSERTs; then batches of 100.
pub(crate) async fn appends(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let mut single_at_16 = None;
    for concurrency in [1, 16, 64] {
        let library = library_appends(env, concurrency, 1, false).await?;
        let raw = raw_inserts(env, concurrency, true).await?;
        let (library, raw) = alternate(concurrency, seconds, ROUNDS, &library, &raw).await;
        if concurrency == 16 {
            single_at_16 = Some(library.clone());
        }
        rows.push(Row {
            scenario: "append to existing logs".into(),
            concurrency,
            library,
            raw: Some(raw),
            measure: Measure::Ops,
            target: Some(("≥ 0.9× raw".into(), 0.9)),
            note: String::new(),
            verdict: None,
        });
    }
    let raw_batches = raw_batches(env, 16, 100).await?;
    let batches = library_appends(env, 16, 100, false).await?;
    let (batches, raw_batches) = alternate(16, seconds, ROUNDS, &batches, &raw_batches).await;
    rows.push(Row {
        scenario: "append_batch of 100 events".into(),
        concurrency: 16,
        library: batches.clone(),
        raw: Some(raw_batches),
        measure: Measure::Events,
        target: None,
        note: "baseline: the same batch statement through plain tokio-postgres".into(),
        verdict: None,
    });
    rows.push(Row {
        scenario: "append_batch of 100 events".into(),
        concurrency: 16,
        library: batches,
        raw: single_at_16,
        measure: Measure::Events,
        target: Some(("≥ 20× single-event appends".into(), 20.0)),
        note: "baseline: single-event appends at 16".into(),
        verdict: None,
    });
    Ok(())
}

/// 16 writers on one log with reduce-and-retry (Redis cache): successes and conflicts per second.
pub(crate) async fn contention(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let logs: LogManager<Balance> = LogManager::builder(env.store(16).await?)
        .cache(env.cache().await?)
        .build();
    let log = LogId::new();
    logs.create(&log, &Payment::new(0))
        .await
        .map_err(|e| e.to_string())?;
    let conflicts = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&conflicts);
    let library = run(16, seconds, move |_, i| {
        let (logs, conflicts) = (logs.clone(), Arc::clone(&counter));
        async move {
            loop {
                let state = logs.reduce(&log).await.map_err(|e| e.to_string())?.state();
                match logs.append(&state, &Payment::new(i as i64)).await {
                    Ok(_) => return Ok(1),
                    Err(e) if e.is_conflict() => {
                        conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    })
    .await;
    let per_sec = conflicts.load(Ordering::Relaxed) as f64 / library.elapsed.as_secs_f64();
    rows.push(Row {
        scenario: "16 writers on one log, reduce-and-retry".into(),
        concurrency: 16,
        note: format!("{per_sec:.0} conflicts/s"),
        library,
        raw: None,
        measure: Measure::Ops,
        target: None,
        verdict: None,
    });
    Ok(())
}
