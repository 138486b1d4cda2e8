//! `feed tail`.

use std::time::Duration;

use eventlogs::{EventFeed, FeedEvent, FeedFilter};
use serde_json::json;

use crate::args::{Cli, FeedCommand};
use crate::connect;
use crate::failure::Failure;
use crate::output::{json_value, Output};
use crate::position;

/// Events per read.
const PAGE: u32 = 500;
/// How often `--follow` reads again at the head.
const POLL: Duration = Duration::from_millis(250);

/// A filter from `type=NAME` and `log=ID` terms.
fn filter(terms: &[String]) -> Result<FeedFilter, Failure> {
    let (mut types, mut logs) = (Vec::new(), Vec::new());
    for term in terms {
        match term.split_once('=') {
            Some(("type", name)) if !name.is_empty() => types.push(name.to_owned()),
            Some(("log", id)) => logs.push(position::log_id(id)?),
            _ => {
                return Err(Failure::Usage(format!(
                    "--filter {:?}: expected `type=NAME` or `log=ID`",
                    position::shorten(term)
                )))
            }
        }
    }
    let mut filter = FeedFilter::all();
    if !types.is_empty() {
        filter = filter.with_event_types(types);
    }
    if !logs.is_empty() {
        filter = filter.with_logs(logs);
    }
    Ok(filter)
}

fn line(event: &FeedEvent, out: &Output) -> String {
    let e = &event.event;
    if out.json() {
        json!({
            "position": event.position.to_string(),
            "log_id": event.log_id.to_string(),
            "index": e.index,
            "recorded_at": e.recorded_at.to_string(),
            "type": event.event_type(),
            "idempotency_key": e.idempotency_key,
            "metadata": e.metadata.as_deref().map(json_value),
            "payload": json_value(&e.payload),
            "version": e.version,
            "deleted": event.deleted,
        })
        .to_string()
    } else if event.deleted {
        format!(
            "{} {} #{} {} (log deleted)",
            event.position, event.log_id, e.index, e.recorded_at
        )
    } else {
        format!(
            "{} {} #{} {} {}",
            event.position, event.log_id, e.index, e.recorded_at, e.payload
        )
    }
}

pub(crate) async fn run(cli: &Cli, command: &FeedCommand, out: &Output) -> Result<(), Failure> {
    let FeedCommand::Tail {
        from,
        follow,
        filter: terms,
        limit,
    } = command;
    let filter = filter(terms)?;
    let store = connect::store(cli)?;
    let mut after = position::feed_position(from, &store).await?;
    let mut printed = 0u64;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        let page = tokio::select! {
            _ = &mut stop => return Ok(()),
            page = store.read_page(after, PAGE, &filter) => page?,
        };
        for event in &page.events {
            if !follow && printed >= *limit {
                return Ok(());
            }
            out.line(&line(event, out));
            printed += 1;
        }
        if let Some(through) = page.scanned_through {
            after = through;
        }
        if page.more {
            continue;
        }
        if !follow {
            return Ok(());
        }
        tokio::select! {
            _ = &mut stop => return Ok(()),
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
