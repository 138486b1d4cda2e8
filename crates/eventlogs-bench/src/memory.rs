//! Peak memory of reducing a very long log, measured in a fresh process.

use std::process::Command;
use std::time::{Duration, Instant};

use eventlogs::LogManager;

use crate::harness::Sample;
use crate::report::{Measure, Row};
use crate::setup::{seed_log, Balance, Env};

/// Peak resident set size of this process (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In the child process: seed a log server-side, reduce it, print the figures.
pub(crate) async fn child(env: &Env, events: i64) -> Result<(), String> {
    let pool = env.raw_pool(1)?;
    let log = seed_log(&pool, env.schema, events).await?;
    let logs: LogManager<Balance> = LogManager::new(env.store(1).await?);
    let before = peak_rss_kib();
    let started = Instant::now();
    let r = logs.reduce(&log).await.map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    if r.aggregate.count != events as u64 {
        return Err(format!("folded {} of {events} events", r.aggregate.count));
    }
    println!(
        "peak_rss_kib={} before_kib={before} events={} secs={secs}",
        peak_rss_kib(),
        r.events_read
    );
    Ok(())
}

/// Runs [`child`] in a fresh process so its peak memory is the reduce's alone.
pub(crate) fn measure(events: i64, rows: &mut Vec<Row>) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .args(["--child-reduce", &events.to_string()])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "reduce child failed: {text} {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (peak_mib, secs) = (field("peak_rss_kib=") / 1024.0, field("secs="));
    let library = Sample {
        ops: 1,
        events: field("events=") as u64,
        errors: 0,
        elapsed: Duration::from_secs_f64(secs.max(1e-9)),
        latencies: vec![Duration::from_secs_f64(secs)],
    };
    rows.push(Row {
        scenario: format!("reduce of a {events}-event log"),
        concurrency: 1,
        library,
        raw: None,
        measure: Measure::Events,
        target: Some(("peak RSS < 64 MiB".into(), 64.0)),
        note: format!("peak RSS {peak_mib:.1} MiB"),
        verdict: Some(peak_mib > 0.0 && peak_mib < 64.0),
    });
    Ok(())
}
