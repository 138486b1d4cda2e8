//! The library against what a user would write by hand: a plain `(log_id uuid, event_index
//! bigint, payload jsonb, PRIMARY KEY (log_id, event_index))` table holding 300,000 events under
//! random UUIDs, written with plain tokio-postgres.

use std::sync::Arc;
use std::time::Duration;

use eventlogs::postgres::AppendGrouping;

use crate::harness::{alternate, workload, WorkerLogs, Workload};
use crate::report::{Measure, Row};
use crate::setup::{Env, Payment};
use crate::writes::{library_appends, library_creates};

/// Events the hand-written table holds before it is measured.
const SEEDED: i64 = 300_000;

/// Creates and fills the hand-written table up to [`SEEDED`] events (once per server).
pub(crate) async fn seed(env: &Env) -> Result<(), String> {
    let pool = env.raw_pool(1)?;
    let client = pool.get().await.map_err(|e| e.to_string())?;
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS bench_by_hand; \
             CREATE TABLE IF NOT EXISTS bench_by_hand.events ( \
                log_id uuid NOT NULL, event_index bigint NOT NULL, payload jsonb NOT NULL, \
                PRIMARY KEY (log_id, event_index))",
        )
        .await
        .map_err(|e| e.to_string())?;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM bench_by_hand.events", &[])
        .await
        .map_err(|e| e.to_string())?
        .get(0);
    if stored < SEEDED {
        client
            .execute(
                "INSERT INTO bench_by_hand.events \
                 SELECT gen_random_uuid(), 0, $2::text::jsonb FROM generate_series(1, $1::bigint)",
                &[&(SEEDED - stored), &Payment::json(1)],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One event written by hand: a new log under a random UUID (`append` false) or the next
/// index of the worker's log.
pub(crate) fn by_hand(env: &Env, concurrency: usize, append: bool) -> Result<Workload, String> {
    let pool = env.raw_pool(concurrency)?;
    let logs = WorkerLogs::new(concurrency, 0);
    Ok(workload(move |worker, i| {
        let (pool, logs) = (pool.clone(), Arc::clone(&logs));
        async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO bench_by_hand.events (log_id, event_index, payload) \
                     VALUES ($1, $2, $3::text::jsonb)",
                )
                .await
                .map_err(|e| e.to_string())?;
            let (log, index) = if append {
                (*logs.log(worker), logs.take(worker, 1))
            } else {
                (uuid::Uuid::new_v4(), 0)
            };
            client
                .execute(&stmt, &[&log, &index, &Payment::json(i as i64)])
                .await
                .map_err(|e| e.to_string())?;
            Ok(1)
        }
    }))
}

/// Creates and appends of one event, through the library and by hand, at 1, 16 and 64 tasks.
pub(crate) async fn by_hand_rows(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    seed(env).await?;
    let single = env.grouping(AppendGrouping::off());
    let grouped = env.grouping(AppendGrouping::new());
    for append in [false, true] {
        for concurrency in [1, 16, 64] {
            for (env, grouping) in [(&single, false), (&grouped, true)] {
                let library = if append {
                    library_appends(env, concurrency, 1, false).await?
                } else {
                    library_creates(env, concurrency).await?
                };
                let hand = by_hand(env, concurrency, append)?;
                let (library, hand) = alternate(concurrency, seconds, 3, &library, &hand).await;
                let what = if append {
                    "append"
                } else {
                    "create a 1-event log"
                };
                rows.push(Row {
                    scenario: format!(
                        "{what}, {}, against a hand-written service",
                        if grouping {
                            "grouped"
                        } else {
                            "one statement each"
                        }
                    ),
                    concurrency,
                    library,
                    raw: Some(hand),
                    measure: Measure::Ops,
                    target: Some(if grouping {
                        ("> 1× by hand".into(), 1.0)
                    } else {
                        ("≥ 0.85× by hand".into(), 0.85)
                    }),
                    note: format!(
                        "baseline: plain INSERTs into a (log_id uuid, event_index, payload \
                         jsonb) table with a primary key, seeded to {SEEDED} events{}",
                        if append { "" } else { " under random UUIDs" }
                    ),
                    verdict: None,
                });
            }
        }
    }
    Ok(())
}
