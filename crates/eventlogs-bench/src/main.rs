//! `eventlogs-bench`: every scenario of `cargo xtask bench`, printed as one markdown table.

mod breakdown;
mod by_hand;
mod cache_commands;
mod catch_up;
mod citus;
mod commands;
mod cpu;
mod group;
mod harness;
mod live;
mod memory;
mod metrics_cost;
mod reads;
mod report;
mod setup;
mod snapshots;
mod stalls;
mod writes;

use std::process::ExitCode;
use std::time::Duration;

use setup::Env;

struct Args {
    seconds: f64,
    out: Option<String>,
    child_reduce: Option<i64>,
    big_log: i64,
    only: Option<String>,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        seconds: 5.0,
        out: None,
        child_reduce: None,
        big_log: 1_000_000,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => {
                parsed.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--out" => parsed.out = Some(value()?),
            "--big-log" => {
                parsed.big_log = value()?.parse().map_err(|e| format!("--big-log: {e}"))?
            }
            "--only" => parsed.only = Some(value()?),
            "--child-reduce" => {
                parsed.child_reduce = Some(value()?.parse().map_err(|e| format!("{e}"))?)
            }
            other => {
                return Err(format!(
                    "unknown argument {other} (--seconds N, --out FILE, --big-log N, \
                     --only creates|appends|group|breakdown|by-hand|metrics|subscriber|stalls|catch-up|warm|cold|long-log|contention|commands|cache|snapshots|citus)"
                ))
            }
        }
    }
    Ok(parsed)
}

fn env() -> Result<Env, String> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| format!("{name} is not set (run `cargo xtask bench`)"))
    };
    Ok(Env {
        database_url: var("EVENTLOGS_DATABASE_URL")?,
        redis_url: var("EVENTLOGS_REDIS_URL")?,
        // `cargo xtask test` says `skip` where it could start no cluster.
        citus_url: std::env::var("EVENTLOGS_CITUS_URL")
            .ok()
            .filter(|url| !url.is_empty() && url != "skip"),
        schema: setup::SCHEMA,
        distributed: false,
        grouping: eventlogs::postgres::AppendGrouping::default(),
    })
}

async fn all(env: &Env, args: &Args) -> Result<String, String> {
    let seconds = Duration::from_secs_f64(args.seconds);
    let mut rows = Vec::new();
    env.store(1).await?; // creates the schema before the raw baselines use it
    let wanted = |name: &str| {
        let run = args.only.as_deref().is_none_or(|only| only == name);
        if run {
            eprintln!("bench: {name}");
        }
        run
    };
    if wanted("creates") {
        writes::creates(env, seconds, &mut rows).await?;
    }
    if wanted("appends") {
        writes::appends(env, seconds, &mut rows).await?;
    }
    if wanted("group") {
        group::group(env, seconds, &mut rows).await?;
    }
    if wanted("breakdown") {
        breakdown::breakdown(env, seconds, &mut rows).await?;
    }
    if wanted("metrics") {
        metrics_cost::metrics_cost(env, seconds, &mut rows).await?;
    }
    if wanted("by-hand") {
        by_hand::by_hand_rows(env, seconds, &mut rows).await?;
    }
    if wanted("subscriber") {
        live::with_subscriber(env, seconds, &mut rows).await?;
    }
    if wanted("stalls") {
        stalls::stalls(env, seconds, &mut rows).await?;
    }
    if wanted("catch-up") {
        catch_up::catch_up(env, seconds, &mut rows).await?;
    }
    if wanted("warm") {
        reads::warm(env, seconds, &mut rows).await?;
    }
    if wanted("cold") {
        reads::cold(env, seconds, &mut rows).await?;
    }
    if wanted("long-log") {
        memory::measure(args.big_log, &mut rows)?;
    }
    if wanted("contention") {
        writes::contention(env, seconds, &mut rows).await?;
    }
    if wanted("commands") {
        commands::commands(env, seconds, &mut rows).await?;
    }
    if wanted("cache") {
        cache_commands::cache_commands(env, seconds, &mut rows).await?;
    }
    if wanted("snapshots") {
        snapshots::snapshots(env, seconds, &mut rows).await?;
    }
    if wanted("citus") {
        citus::citus(env, seconds, &mut rows).await?;
    }
    Ok(report::table(&rows))
}

fn main() -> ExitCode {
    let result = (|| {
        let args = args()?;
        let env = env()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        if let Some(events) = args.child_reduce {
            return runtime.block_on(memory::child(&env, events));
        }
        let table = runtime.block_on(all(&env, &args))?;
        println!("{table}");
        if let Some(out) = &args.out {
            std::fs::write(out, &table).map_err(|e| format!("cannot write {out}: {e}"))?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
