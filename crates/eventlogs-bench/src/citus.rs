//! Citus scenarios: the library on a schema distributed over a Citus cluster, beside the same
//! operation on single-node PostgreSQL and beside plain statements through the coordinator.
//!
//! They run only when `EVENTLOGS_CITUS_URL` names a coordinator (`cargo xtask bench` starts a
//! cluster where Citus is installed). Every row is measured in alternating slices against its
//! baseline (see [`alternate`]); the library's figures are those of `Env::citus`.

use std::sync::Arc;
use std::time::Duration;

use eventlogs::LogId;
use tokio_postgres::types::Type;

use crate::harness::{alternate, run_workload, workload, Sample, WorkerLogs, Workload};
use crate::reads::{cold_reduces, warm_logs, warm_reduces};
use crate::report::{Measure, Row};
use crate::setup::{seed_log, Env, Payment};
use crate::writes::{library_appends, library_creates};

/// Alternating slices per comparison (see [`alternate`]).
const ROUNDS: u32 = 3;

/// Tasks of the write rows.
const TASKS: usize = 16;

/// The baseline of the rows that compare with single-node PostgreSQL.
const SINGLE: &str = "baseline: the same call on single-node PostgreSQL";

/// Runs each side briefly first (new connections through the coordinator open their own to
/// the workers, and statements get prepared), then both in alternating slices.
async fn measure(
    concurrency: usize,
    seconds: Duration,
    library: &Workload,
    baseline: &Workload,
) -> (Sample, Sample) {
    let warm_up = (seconds / 6).min(Duration::from_millis(500));
    for side in [library, baseline] {
        run_workload(concurrency, warm_up, side).await;
    }
    alternate(concurrency, seconds, ROUNDS, library, baseline).await
}

/// One row of a Citus comparison, `(library, baseline)` as [`alternate`] returns them.
fn row(
    scenario: &str,
    concurrency: usize,
    (library, baseline): (Sample, Sample),
    measure: Measure,
    target: Option<(&str, f64)>,
    note: &str,
) -> Row {
    Row {
        scenario: format!("Citus: {scenario}"),
        concurrency,
        library,
        raw: Some(baseline),
        measure,
        target: target.map(|(text, bound)| (text.to_owned(), bound)),
        note: note.to_owned(),
        verdict: None,
    }
}

/// The statement of [`raw_values`]: index 0 of a new log, or `$2` of an existing one.
fn values_sql(schema: &str, append: bool) -> String {
    if append {
        format!(
            "INSERT INTO {schema}.events (log_id, event_index, payload) VALUES ($1, $2, $3::jsonb)"
        )
    } else {
        format!(
            "INSERT INTO {schema}.events (log_id, event_index, payload) VALUES ($1, 0, $2::jsonb)"
        )
    }
}

/// Raw baseline: what a user would write with plain tokio-postgres, a plain `INSERT … VALUES`
/// through the coordinator: index 0 of a new log, or (`append`) the next index of the worker's
/// own log, with no check that the previous event exists.
fn raw_values(citus: &Env, concurrency: usize, append: bool) -> Result<Workload, String> {
    let pool = citus.raw_pool(concurrency)?;
    let sql: Arc<str> = values_sql(citus.schema, append).into();
    // The payload goes as text, cast by the statement's `::jsonb`.
    let types: &'static [Type] = if append {
        &[Type::UUID, Type::INT8, Type::TEXT]
    } else {
        &[Type::UUID, Type::TEXT]
    };
    let logs = WorkerLogs::new(concurrency, 0);
    Ok(workload(move |worker, i| {
        let (pool, sql, logs) = (pool.clone(), Arc::clone(&sql), Arc::clone(&logs));
        async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_typed_cached(&sql, types)
                .await
                .map_err(|e| e.to_string())?;
            let payload = Payment::json(i as i64);
            let inserted = if append {
                let index = logs.take(worker, 1);
                client
                    .execute(&stmt, &[logs.log(worker), &index, &payload])
                    .await
            } else {
                let log = uuid::Uuid::from_u128(LogId::new().to_u128());
                client.execute(&stmt, &[&log, &payload]).await
            }
            .map_err(|e| e.to_string())?;
            if inserted != 1 {
                return Err("the raw INSERT inserted nothing".into());
            }
            Ok(1)
        }
    }))
}

/// The library's own statement for an append without a key on a distributed schema.
async fn library_append_sql(citus: &Env) -> Result<String, String> {
    Ok(citus.store(1).await?.distributed_append_sql().to_owned())
}

/// Raw baseline: the library's own append statement through plain tokio-postgres, at the next
/// index of the worker's own log (each log starts with a plain insert of index 0).
async fn raw_library_statement(citus: &Env, concurrency: usize) -> Result<Workload, String> {
    let sql: Arc<str> = library_append_sql(citus).await?.into();
    let pool = citus.raw_pool(concurrency)?;
    // Each log starts with a plain insert of index 0; the library's statement writes from 1.
    let logs = WorkerLogs::new(concurrency, 1);
    {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let first = client
            .prepare_typed(&values_sql(citus.schema, false), &[Type::UUID, Type::TEXT])
            .await
            .map_err(|e| e.to_string())?;
        for log in logs.logs() {
            client
                .execute(&first, &[log, &Payment::json(0)])
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(workload(move |worker, i| {
        let (pool, sql, logs) = (pool.clone(), Arc::clone(&sql), Arc::clone(&logs));
        async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached(&sql)
                .await
                .map_err(|e| e.to_string())?;
            let index = logs.take(worker, 1);
            let payload = Payment::json(i as i64);
            let metadata: Option<&str> = None;
            let rows = client
                .query(&stmt, &[logs.log(worker), &index, &payload, &metadata])
                .await
                .map_err(|e| e.to_string())?;
            if rows.len() != 1 {
                return Err("the library's statement inserted nothing".into());
            }
            Ok(1)
        }
    }))
}

/// Creates of a 1-event log: vs single node, and vs a plain `INSERT … VALUES` of index 0.
async fn creates(
    env: &Env,
    citus: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let library = library_creates(citus, TASKS).await?;
    let single = library_creates(env, TASKS).await?;
    let measured = measure(TASKS, seconds, &library, &single).await;
    rows.push(row(
        "create a 1-event log",
        TASKS,
        measured,
        Measure::Ops,
        None,
        SINGLE,
    ));
    drop(single);
    let raw = raw_values(citus, TASKS, false)?;
    let measured = measure(TASKS, seconds, &library, &raw).await;
    rows.push(row(
        "create a 1-event log",
        TASKS,
        measured,
        Measure::Ops,
        Some(("≥ 0.8× raw", 0.8)),
        "baseline: plain `INSERT … VALUES ($1, 0, $2::jsonb)` through the coordinator",
    ));
    Ok(())
}

/// Appends of one event without a key: vs a plain `INSERT … VALUES` of the next index, and vs
/// single node; then with a fresh key per append: vs the keyless append, and vs single node.
async fn appends(
    env: &Env,
    citus: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let keyless = library_appends(citus, TASKS, 1, false).await?;
    let raw = raw_values(citus, TASKS, true)?;
    let measured = measure(TASKS, seconds, &keyless, &raw).await;
    rows.push(row(
        "append to existing logs",
        TASKS,
        measured,
        Measure::Ops,
        Some(("≥ 0.8× raw", 0.8)),
        "baseline: plain `INSERT … VALUES ($1, $2, $3::jsonb)` of the next index through the coordinator",
    ));
    drop(raw);
    // Splits the gap above: the statement's own cost on Citus vs what the library adds.
    let raw = raw_library_statement(citus, TASKS).await?;
    let measured = measure(TASKS, seconds, &keyless, &raw).await;
    rows.push(row(
        "append to existing logs",
        TASKS,
        measured,
        Measure::Ops,
        None,
        "baseline: the library's own statement (`INSERT … VALUES`, gaps refused by a foreign key to the previous event), through plain tokio-postgres",
    ));
    drop(raw);
    let single = library_appends(env, TASKS, 1, false).await?;
    let measured = measure(TASKS, seconds, &keyless, &single).await;
    rows.push(row(
        "append to existing logs",
        TASKS,
        measured,
        Measure::Ops,
        None,
        SINGLE,
    ));
    drop(single);

    let keyed = library_appends(citus, TASKS, 1, true).await?;
    let measured = measure(TASKS, seconds, &keyed, &keyless).await;
    rows.push(row(
        "append with a fresh idempotency key",
        TASKS,
        measured,
        Measure::Ops,
        None,
        "baseline: the Citus append without a key (the ratio is the key claim's cost)",
    ));
    drop(keyless);
    let single = library_appends(env, TASKS, 1, true).await?;
    let measured = measure(TASKS, seconds, &keyed, &single).await;
    rows.push(row(
        "append with a fresh idempotency key",
        TASKS,
        measured,
        Measure::Ops,
        None,
        "baseline: the keyed append on single-node PostgreSQL",
    ));
    Ok(())
}

/// A batch of 100 events (`append_with`), vs single node.
async fn batches(
    env: &Env,
    citus: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let library = library_appends(citus, TASKS, 100, false).await?;
    let single = library_appends(env, TASKS, 100, false).await?;
    let measured = measure(TASKS, seconds, &library, &single).await;
    rows.push(row(
        "append_batch of 100 events",
        TASKS,
        measured,
        Measure::Events,
        None,
        SINGLE,
    ));
    Ok(())
}

/// Cold reduce of a 10,000-event log, and reduce with a warm cache and no new events: one
/// task each, vs single node.
async fn reads(
    env: &Env,
    citus: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let mut logs = Vec::with_capacity(2);
    for side in [citus, env] {
        logs.push(seed_log(&side.raw_pool(1)?, side.schema, 10_000).await?);
    }
    let library = cold_reduces(citus, logs[0]).await?;
    let single = cold_reduces(env, logs[1]).await?;
    let measured = measure(1, seconds, &library, &single).await;
    rows.push(row(
        "cold reduce of a 10,000-event log",
        1,
        measured,
        Measure::Events,
        None,
        SINGLE,
    ));

    let library = warm_reduces(citus, Arc::new(warm_logs(citus, 200, 100, 0).await?), 100).await?;
    let single = warm_reduces(env, Arc::new(warm_logs(env, 200, 100, 0).await?), 100).await?;
    let measured = measure(1, seconds, &library, &single).await;
    rows.push(row(
        "reduce, warm cache, no new events",
        1,
        measured,
        Measure::Median,
        None,
        "baseline: the same call on single-node PostgreSQL, Redis cache on both",
    ));
    Ok(())
}

/// Every Citus row, when `env` has a Citus coordinator; nothing otherwise.
pub(crate) async fn citus(env: &Env, seconds: Duration, rows: &mut Vec<Row>) -> Result<(), String> {
    let Some(citus) = env.citus() else {
        eprintln!("bench: citus: skipped (no coordinator in EVENTLOGS_CITUS_URL)");
        return Ok(());
    };
    // Distributes the schema before the raw baselines use it.
    citus.store(1).await?;
    creates(env, &citus, seconds, rows).await?;
    appends(env, &citus, seconds, rows).await?;
    batches(env, &citus, seconds, rows).await?;
    reads(env, &citus, seconds, rows).await
}
