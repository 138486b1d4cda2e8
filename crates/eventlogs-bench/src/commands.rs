//! Command scenarios: `execute` beside the reduce-decide-append loop a service would write by
//! hand with the same manager, on many small logs and on one contended log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eventlogs::{AppendOptions, Error, LogId, LogManager, LogState};

use crate::harness::{alternate, workload, Workload};
use crate::report::{Measure, Row};
use crate::setup::{Balance, Env, Payment};

/// Alternating slices per comparison.
const ROUNDS: u32 = 3;

/// How many 10-event logs the commands spread over.
const LOGS: usize = 1_024;

/// The decision of every command: pay `amount` while the balance stays under a bound (it
/// always does here, so every command writes).
fn decide(balance: Option<&Balance>, amount: i64) -> Result<Vec<Payment>, Error> {
    let total = balance.map_or(0, |b| b.total);
    if total > i64::MAX / 2 {
        return Err(Error::Unsupported {
            operation: "a payment",
            reason: "the balance bound is reached".into(),
        });
    }
    Ok(vec![Payment::new(amount)])
}

/// The loop a service writes without `execute`: reduce, decide, append, and on a lost race
/// reduce and decide again at once.
async fn by_hand(
    logs: &LogManager<Balance>,
    log: &LogId,
    amount: i64,
    conflicts: &AtomicU64,
) -> Result<u64, Error> {
    loop {
        let current = match logs.reduce(log).await {
            Ok(reduction) => Some(reduction),
            Err(Error::LogNotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let events = decide(current.as_ref().map(|r| &r.aggregate), amount)?;
        let state = current.map_or(LogState::empty(*log), |r| r.state());
        match logs
            .append_with(&state, &events, &AppendOptions::new())
            .await
        {
            Ok(_) => return Ok(1),
            Err(e) if e.is_conflict() => {
                conflicts.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
}

fn via_execute(
    logs: LogManager<Balance>,
    pick: impl Fn(usize, u64) -> LogId + Send + Sync + 'static,
) -> Workload {
    workload(move |worker, i| {
        let (logs, log) = (logs.clone(), pick(worker, i));
        async move {
            logs.execute(&log, &AppendOptions::new(), |b: Option<&Balance>| {
                decide(b, i as i64)
            })
            .await
            .map(|_| 1)
            .map_err(|e| e.to_string())
        }
    })
}

fn via_loop(
    logs: LogManager<Balance>,
    conflicts: Arc<AtomicU64>,
    pick: impl Fn(usize, u64) -> LogId + Send + Sync + 'static,
) -> Workload {
    workload(move |worker, i| {
        let (logs, log, conflicts) = (logs.clone(), pick(worker, i), Arc::clone(&conflicts));
        async move {
            by_hand(&logs, &log, i as i64, &conflicts)
                .await
                .map_err(|e| e.to_string())
        }
    })
}

/// Commands on 10-event logs spread over many logs (little contention), then 16 writers on
/// one log, `execute` beside the hand-written loop, both with the Redis cache.
pub(crate) async fn commands(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let logs: LogManager<Balance> = LogManager::builder(env.store(16).await?)
        .cache(env.cache().await?)
        .build();
    let ids: Arc<Vec<LogId>> = Arc::new((0..LOGS).map(|_| LogId::new()).collect());
    let seed: Vec<Payment> = (0..10).map(Payment::new).collect();
    for id in ids.iter() {
        logs.create_with(id, &seed, &AppendOptions::new())
            .await
            .map_err(|e| e.to_string())?;
    }
    // A spread of logs per worker and iteration, the same for both sides.
    let spread = |ids: &Arc<Vec<LogId>>| {
        let ids = Arc::clone(ids);
        move |worker: usize, i: u64| ids[(worker * 7_919 + i as usize * 104_729) % ids.len()]
    };
    let conflicts = Arc::new(AtomicU64::new(0));
    let library = via_execute(logs.clone(), spread(&ids));
    let hand = via_loop(logs.clone(), Arc::clone(&conflicts), spread(&ids));
    let (library, hand) = alternate(16, seconds, ROUNDS, &library, &hand).await;
    rows.push(Row {
        scenario: format!("command (reduce, decide, append) on {LOGS} logs of 10+ events"),
        concurrency: 16,
        library,
        raw: Some(hand),
        measure: Measure::Ops,
        target: Some(("≥ 0.95× by hand".into(), 0.95)),
        note: "baseline: the same reduce, decide and append written by hand with the same manager"
            .into(),
        verdict: None,
    });

    let one = LogId::new();
    logs.create(&one, &Payment::new(0))
        .await
        .map_err(|e| e.to_string())?;
    let contended = Arc::new(AtomicU64::new(0));
    let library = via_execute(logs.clone(), move |_, _| one);
    let hand = via_loop(logs.clone(), Arc::clone(&contended), move |_, _| one);
    let (library, hand) = alternate(16, seconds, ROUNDS, &library, &hand).await;
    let per_sec = contended.load(Ordering::Relaxed) as f64 / hand.elapsed.as_secs_f64();
    let (gave_up, done) = (library.errors, library.ops);
    rows.push(Row {
        scenario: "16 commands at once on one log".into(),
        concurrency: 16,
        library,
        raw: Some(hand),
        measure: Measure::Ops,
        target: None,
        note: format!(
            "baseline: the hand-written loop, which retries at once until it wins ({per_sec:.0} conflicts/s); \
             execute pauses with jitter and gave up with `Contended` after 10 attempts {gave_up} times in {} commands",
            done + gave_up
        ),
        verdict: None,
    });
    Ok(())
}
