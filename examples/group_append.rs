//! Group append: 64 tasks open accounts at once, first with one statement per append, then
//! grouped (the default), and the store says how the appends were grouped.
//!
//! Run with `EVENTLOGS_DATABASE_URL=postgres://… cargo run --example group_append`. It uses
//! the schema `group_append_example`.

use std::time::{Duration, Instant};

use eventlogs::postgres::{AppendGrouping, PostgresEventStore};
use eventlogs::{Aggregate, EventRecord, LogId, LogManager};
use serde::{Deserialize, Serialize};

/// What happened to an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum AccountEvent {
    Opened { owner: String },
}

/// Nothing to fold for this example; the appends are what it shows.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account;

impl Aggregate for Account {
    type Event = AccountEvent;
    const NAME: &'static str = "account";
    const VERSION: u32 = 1;
    fn apply(&mut self, _: &EventRecord<AccountEvent>) {}
}

const TASKS: usize = 64;
const EACH: usize = 50;

/// Opens `TASKS × EACH` accounts from `TASKS` tasks; returns how long it took.
async fn open_accounts(store: &PostgresEventStore) -> eventlogs::Result<Duration> {
    let logs: LogManager<Account> = LogManager::new(store.clone());
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let logs = logs.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    let owner = format!("owner {task}-{n}");
                    logs.create(&LogId::new(), &AccountEvent::Opened { owner })
                        .await?;
                }
                Ok::<_, eventlogs::Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task panicked")?;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> eventlogs::Result<()> {
    let Some(url) = std::env::var("EVENTLOGS_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("set EVENTLOGS_DATABASE_URL to a PostgreSQL database, for example");
        eprintln!("  EVENTLOGS_DATABASE_URL=postgres://postgres@127.0.0.1/postgres cargo run --example group_append");
        std::process::exit(2);
    };
    let build = |grouping| {
        PostgresEventStore::builder(url.clone())
            .schema("group_append_example")
            .append_grouping(grouping)
            .build()
    };
    let one_each = build(AppendGrouping::off())?;
    one_each.migrate().await?;
    let grouped = build(AppendGrouping::new())?;

    let alone = open_accounts(&one_each).await?;
    let together = open_accounts(&grouped).await?;
    let total = TASKS * EACH;
    println!(
        "{total} accounts opened by {TASKS} tasks: {:.0}/s one statement each, {:.0}/s grouped",
        total as f64 / alone.as_secs_f64(),
        total as f64 / together.as_secs_f64()
    );
    let stats = grouped.append_group_stats();
    println!(
        "grouped: {} requests in {} shared statements (largest {}), {} split, the rest alone",
        stats.grouped_requests, stats.group_statements, stats.largest_group, stats.splits
    );
    Ok(())
}
