//! Where the time of one append goes at 16 writers: the same append taken apart into steps,
//! each step measured on its own under the same load, in one run.
//!
//! - the library's append (one statement each), end to end;
//! - the same statement through plain tokio-postgres, with the pool checkout timed apart;
//! - that statement again with `synchronous_commit = off`, which leaves out the wait for the
//!   commit to reach the disk;
//! - a prepared `SELECT 1`: the round trip and the server's per-statement work alone;
//! - the client's encoding (serialize the event, build and validate the request), timed in a
//!   loop on one core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs::backend::{AppendRequest, NewEvent};
use eventlogs::postgres::AppendGrouping;
use eventlogs::{Limits, LogId, LogState};

use crate::by_hand::{by_hand, seed};
use crate::cpu;
use crate::harness::{run_workload, workload, Sample, WorkerLogs, Workload};
use crate::report::{Measure, Row};
use crate::setup::{Env, Payment};
use crate::writes::library_appends;

/// Writers.
const TASKS: usize = 16;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A run with the CPU time this process and the server spent per operation.
struct Measured {
    sample: Sample,
    client: Duration,
    server: Option<Duration>,
}

async fn measured(postmaster: Option<u64>, seconds: Duration, op: &Workload) -> Measured {
    let (client, server) = (cpu::this_process(), postmaster.and_then(cpu::server));
    let sample = run_workload(TASKS, seconds, op).await;
    let ops = u32::try_from(sample.ops.max(1)).unwrap_or(u32::MAX);
    let client = cpu::this_process().saturating_sub(client) / ops;
    let server = server
        .zip(postmaster.and_then(cpu::server))
        .map(|(before, after)| after.saturating_sub(before) / ops);
    Measured {
        sample,
        client,
        server,
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The append statement through plain tokio-postgres, with `synchronous_commit` as given;
/// returns the run and the mean pool checkout time.
async fn raw(
    env: &Env,
    seconds: Duration,
    synchronous_commit: bool,
    postmaster: Option<u64>,
) -> Result<(Measured, Duration), String> {
    let pool = env.raw_pool(TASKS)?;
    let sql = Arc::new(env.store(1).await?.single_append_sql().to_owned());
    let logs = WorkerLogs::new(TASKS, 0);
    let setting = if synchronous_commit { "on" } else { "off" };
    // Every connection of the pool gets the setting before the run.
    let mut held = Vec::new();
    for _ in 0..TASKS {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client
            .batch_execute(&format!("SET synchronous_commit = {setting}"))
            .await
            .map_err(|e| e.to_string())?;
        held.push(client);
    }
    drop(held);
    let checkout_nanos = Arc::new(AtomicU64::new(0));
    let checkouts = Arc::new(AtomicU64::new(0));
    let (c_nanos, c_count) = (Arc::clone(&checkout_nanos), Arc::clone(&checkouts));
    let op = workload(move |worker, i| {
        let (pool, sql, logs) = (pool.clone(), Arc::clone(&sql), Arc::clone(&logs));
        let (c_nanos, c_count) = (Arc::clone(&c_nanos), Arc::clone(&c_count));
        async move {
            let t = Instant::now();
            let client = pool.get().await.map_err(|e| e.to_string())?;
            c_nanos.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            c_count.fetch_add(1, Ordering::Relaxed);
            let stmt = client
                .prepare_cached(&sql)
                .await
                .map_err(|e| e.to_string())?;
            let index = logs.take(worker, 1);
            let metadata: Option<&str> = None;
            client
                .query(
                    &stmt,
                    &[
                        logs.log(worker),
                        &index,
                        &Payment::json(i as i64),
                        &metadata,
                        &crate::writes::VERSION,
                    ],
                )
                .await
                .map_err(|e| e.to_string())?;
            Ok(1)
        }
    });
    let run = measured(postmaster, seconds, &op).await;
    let n = checkouts.load(Ordering::Relaxed).max(1);
    let mean = Duration::from_nanos(checkout_nanos.load(Ordering::Relaxed) / n);
    Ok((run, mean))
}

/// Client-side encoding of one append, per call, on one core.
fn encode_cost() -> Duration {
    let limits = Limits::default();
    let log = LogId::new();
    let n = 50_000u32;
    let t = Instant::now();
    for i in 0..n {
        let event = NewEvent::new(&Payment::new(i64::from(i))).unwrap_or_else(|_| unreachable!());
        let request = AppendRequest::new(LogState::new(log, u64::from(i)), vec![event], None, None);
        std::hint::black_box(request.validate(&limits).is_ok());
    }
    t.elapsed() / n
}

/// The breakdown rows (report only: what limits an append, not a target).
pub(crate) async fn breakdown(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let postmaster = cpu::postmaster(&env.raw_pool(1)?).await;
    seed(env).await?;
    let single = env.grouping(AppendGrouping::off());
    let library = library_appends(&single, TASKS, 1, false).await?;
    let library = measured(postmaster, seconds, &library).await;
    let grouped = library_appends(&env.grouping(AppendGrouping::new()), TASKS, 1, false).await?;
    let grouped = measured(postmaster, seconds, &grouped).await;
    let (durable, checkout) = raw(env, seconds, true, postmaster).await?;
    let (no_wait, _) = raw(env, seconds, false, postmaster).await?;
    let hand = measured(postmaster, seconds, &by_hand(env, TASKS, true)?).await;
    let pool = env.raw_pool(TASKS)?;
    let ping = workload(move |_, _| {
        let pool = pool.clone();
        async move {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = client
                .prepare_cached("SELECT 1")
                .await
                .map_err(|e| e.to_string())?;
            client.query(&stmt, &[]).await.map_err(|e| e.to_string())?;
            Ok(1)
        }
    });
    let ping = measured(postmaster, seconds, &ping).await;
    let encode = encode_cost();
    let median = |m: &Measured| m.sample.percentile(0.5);
    let (l, d, a, p) = (
        median(&library),
        median(&durable),
        median(&no_wait),
        median(&ping),
    );
    let summary = format!(
        "median {:.2} ms = library {:.2} ms (encoding {:.3} ms of it) + pool checkout {:.2} ms + \
         round trip and per-statement work {:.2} ms + executing the insert {:.2} ms + waiting for \
         the commit to be durable {:.2} ms",
        ms(l),
        ms(l.saturating_sub(d)),
        ms(encode),
        ms(checkout),
        ms(p.saturating_sub(checkout)),
        ms(a.saturating_sub(p)),
        ms(d.saturating_sub(a)),
    );
    for (scenario, run, note) in [
        (
            "breakdown: library append, one statement each",
            library,
            summary,
        ),
        ("breakdown: library append, grouped", grouped, String::new()),
        (
            "breakdown: the same statement, plain tokio-postgres",
            durable,
            String::new(),
        ),
        (
            "breakdown: the same statement, synchronous_commit = off",
            no_wait,
            String::new(),
        ),
        (
            "breakdown: a hand-written append (plain table with a primary key)",
            hand,
            String::new(),
        ),
        ("breakdown: prepared SELECT 1", ping, String::new()),
    ] {
        // Cores kept busy: below the machine's count, the run waits on latency, not on CPU.
        let busy = run.server.map_or(String::new(), |server| {
            let per_op = (run.client + server).as_secs_f64();
            format!(", {:.2} cores busy", per_op * run.sample.ops_per_sec())
        });
        let cpu = format!(
            "CPU per operation: client {}, server {}{busy}",
            us(run.client),
            run.server.map_or("not readable here".into(), us)
        );
        rows.push(Row {
            scenario: scenario.into(),
            concurrency: TASKS,
            library: run.sample,
            raw: None,
            measure: Measure::Median,
            target: None,
            note: if note.is_empty() {
                cpu
            } else {
                format!("{note}; {cpu}")
            },
            verdict: None,
        });
    }
    Ok(())
}
