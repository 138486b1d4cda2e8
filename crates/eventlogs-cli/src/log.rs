//! `log show` and `log tail`.

use std::collections::VecDeque;
use std::time::Duration;

use eventlogs::backend::RawEvent;
use eventlogs::{EventStore, LogId};
use serde_json::{json, Value};

use crate::args::{Cli, KeysCommand, LogCommand};
use crate::connect;
use crate::failure::Failure;
use crate::output::{json_value, pretty, Output};
use crate::position;

/// Events read per page.
const PAGE: u32 = 500;
/// Idempotency keys removed per statement.
const KEYS_PER_CALL: u32 = 1_000;
/// How often `--follow` looks for new events.
const POLL: Duration = Duration::from_millis(250);

pub(crate) async fn run(cli: &Cli, command: &LogCommand, out: &Output) -> Result<(), Failure> {
    match command {
        LogCommand::Show { id, from, limit } => show(cli, id, *from, *limit, out).await,
        LogCommand::Tail { id, lines, follow } => tail(cli, id, *lines, *follow, out).await,
        LogCommand::Delete { id, yes } => delete(cli, id, *yes, out).await,
    }
}

async fn delete(cli: &Cli, id: &str, yes: bool, out: &Output) -> Result<(), Failure> {
    let log_id = position::log_id(id)?;
    if !yes {
        return Err(Failure::Usage(format!(
            "deleting {log_id} cannot be undone; run again with --yes to delete it"
        )));
    }
    let store = connect::store(cli)?;
    let removed = store.delete(&log_id).await?;
    if out.json() {
        out.document(&json!({ "log_id": log_id.to_string(), "events_removed": removed }));
    } else if removed == 0 {
        println!("log {log_id} was already deleted");
    } else {
        println!("deleted log {log_id}: {removed} event(s) removed");
    }
    Ok(())
}

/// `keys remove --older-than AGE`.
pub(crate) async fn keys(cli: &Cli, command: &KeysCommand, out: &Output) -> Result<(), Failure> {
    let KeysCommand::Remove { older_than } = command;
    let store = connect::store(cli)?;
    let mut removed = 0u64;
    loop {
        let batch = store
            .remove_idempotency_keys(*older_than, KEYS_PER_CALL)
            .await?;
        removed += batch;
        if batch < u64::from(KEYS_PER_CALL) {
            break;
        }
    }
    let age = humantime::format_duration(*older_than);
    if out.json() {
        out.document(&json!({ "older_than_seconds": older_than.as_secs(), "removed": removed }));
    } else {
        println!("removed {removed} idempotency key(s) older than {age}");
    }
    Ok(())
}

fn event_json(log_id: &LogId, event: &RawEvent) -> Value {
    json!({
        "log_id": log_id.to_string(),
        "index": event.index,
        "recorded_at": event.recorded_at.to_string(),
        "idempotency_key": event.idempotency_key,
        "metadata": event.metadata.as_deref().map(json_value),
        "payload": json_value(&event.payload),
        "version": event.version,
    })
}

fn print(log_id: &LogId, events: &[RawEvent], out: &Output) {
    if out.json() {
        out.document(&Value::Array(
            events.iter().map(|e| event_json(log_id, e)).collect(),
        ));
        return;
    }
    let mut table = out.table(&["index", "recorded at", "key", "metadata", "payload"]);
    for e in events {
        table.add_row(vec![
            e.index.to_string(),
            e.recorded_at.to_string(),
            e.idempotency_key.clone().unwrap_or_default(),
            e.metadata.as_deref().map(pretty).unwrap_or_default(),
            pretty(&e.payload),
        ]);
    }
    println!("{table}");
}

fn not_found(log_id: &LogId) -> Failure {
    Failure::NotFound(format!("log {log_id} has no events"))
}

async fn show(cli: &Cli, id: &str, from: u32, limit: u32, out: &Output) -> Result<(), Failure> {
    let log_id = position::log_id(id)?;
    let store = connect::store(cli)?;
    let mut events = Vec::new();
    let mut next = from;
    while (events.len() as u64) < u64::from(limit) {
        let want = PAGE.min(limit - events.len() as u32);
        let page = store.load(&log_id, next, want).await?;
        let Some(last) = page.last() else { break };
        next = last.index + 1;
        let full = page.len() as u32 == want;
        events.extend(page);
        if !full {
            break;
        }
    }
    if events.is_empty() && from == 0 {
        return Err(not_found(&log_id));
    }
    print(&log_id, &events, out);
    Ok(())
}

async fn tail(cli: &Cli, id: &str, lines: u32, follow: bool, out: &Output) -> Result<(), Failure> {
    let log_id = position::log_id(id)?;
    let store = connect::store(cli)?;
    // Pages through the log keeping only the last `lines` events: bounded memory.
    let mut last: VecDeque<RawEvent> = VecDeque::new();
    let mut next = 0;
    loop {
        let page = store.load(&log_id, next, PAGE).await?;
        let full = page.len() as u32 == PAGE;
        for event in page {
            next = event.index + 1;
            last.push_back(event);
            if last.len() > lines as usize {
                last.pop_front();
            }
        }
        if !full {
            break;
        }
    }
    if next == 0 {
        return Err(not_found(&log_id));
    }
    let stream = |events: &[RawEvent]| {
        for e in events {
            if out.json() {
                out.line(&event_json(&log_id, e).to_string());
            } else {
                let key = e
                    .idempotency_key
                    .as_deref()
                    .map(|k| format!(" key={k}"))
                    .unwrap_or_default();
                out.line(&format!(
                    "#{} {}{key} {}",
                    e.index, e.recorded_at, e.payload
                ));
            }
        }
    };
    stream(last.make_contiguous());
    if !follow {
        return Ok(());
    }
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let page = tokio::select! {
            _ = &mut stop => return Ok(()),
            page = store.load(&log_id, next, PAGE) => page?,
        };
        if let Some(e) = page.last() {
            next = e.index + 1;
        }
        stream(&page);
        if page.len() < PAGE as usize {
            tokio::select! {
                _ = &mut stop => return Ok(()),
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
