//! `cache stats`, `cache purge` and `cache check`.

use std::collections::BTreeMap;
use std::time::Duration;

use eventlogs::backend::{CacheKey, EntryHeader};
use eventlogs::redis::fred::interfaces::ClientLike;
use eventlogs::redis::fred::prelude::{Client, KeysInterface};
use eventlogs::redis::fred::types::scan::Scanner;
use eventlogs::redis::RedisReductionCache;
use eventlogs::{EventStore, LogId, ReductionCache};
use futures::StreamExt;
use serde_json::json;

use crate::args::{CacheCommand, Cli};
use crate::connect;
use crate::failure::Failure;
use crate::output::Output;
use crate::position;

/// Keys asked for per `SCAN` step.
const SCAN_COUNT: u32 = 1_000;
/// Events read per page when counting how far an entry is behind.
const PAGE: u32 = 1_000;

pub(crate) async fn run(
    cli: &Cli,
    url: Option<&str>,
    prefix: &str,
    command: &CacheCommand,
    out: &Output,
) -> Result<(), Failure> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Err(Failure::Usage(
            "no cache: pass --redis-url or set EVENTLOGS_REDIS_URL".into(),
        ));
    };
    let cache = RedisReductionCache::builder(url)
        .key_prefix(prefix)
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .await?;
    match command {
        CacheCommand::Stats => stats(&cache, prefix, out).await,
        CacheCommand::Purge { aggregate, version } => {
            purge(&cache, prefix, aggregate, *version, out).await
        }
        CacheCommand::Check {
            id,
            aggregate,
            version,
        } => check(cli, &cache, id, aggregate, *version, out).await,
    }
}

/// An aggregate name as it appears in keys: printable, without `:` (which separates the
/// key's parts).
fn aggregate_name(name: &str) -> Result<&str, Failure> {
    if name.is_empty() || name.len() > 200 || name.chars().any(|c| c == ':' || c.is_control()) {
        return Err(Failure::Usage(format!(
            "--aggregate {:?}: expected the aggregate's NAME (printable, no `:`)",
            position::shorten(name)
        )));
    }
    Ok(name)
}

/// `text` with the `SCAN MATCH` glob characters escaped.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Runs `each` on every page of keys matching `pattern`, on every primary of a cluster.
async fn scan(
    client: &Client,
    pattern: String,
    mut each: impl AsyncFnMut(Vec<String>) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut pages = if client.is_clustered() {
        client.scan_cluster(pattern, Some(SCAN_COUNT), None).boxed()
    } else {
        client.scan(pattern, Some(SCAN_COUNT), None).boxed()
    };
    while let Some(page) = pages.next().await {
        let mut page = page.map_err(|e| Failure::Query(format!("Redis refused the scan: {e}")))?;
        let keys: Vec<String> = page
            .take_results()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| k.into_string())
            .collect();
        each(keys).await?;
        page.next();
    }
    Ok(())
}

async fn stats(cache: &RedisReductionCache, prefix: &str, out: &Output) -> Result<(), Failure> {
    let client = cache.pool().next();
    let bar = out.progress(0, "scanning keys");
    let start = format!("{prefix}:");
    let mut counts = BTreeMap::<(String, String), u64>::new();
    scan(client, format!("{}:*", glob_escape(prefix)), async |keys| {
        bar.inc(keys.len() as u64);
        for key in keys {
            // `{prefix}:{name}:v{version}:{log id}`
            let rest = key.strip_prefix(&start).unwrap_or(&key);
            let parts = rest.rsplitn(3, ':').collect::<Vec<_>>();
            let group = match parts.as_slice() {
                [_, version, name] if version.starts_with('v') => {
                    ((*name).to_owned(), version[1..].to_owned())
                }
                _ => ("(not an entry key)".to_owned(), String::new()),
            };
            *counts.entry(group).or_default() += 1;
        }
        Ok(())
    })
    .await?;
    bar.finish_and_clear();
    if out.json() {
        let all: Vec<_> = counts
            .iter()
            .map(|((name, version), n)| {
                json!({ "aggregate": name, "version": version, "entries": n })
            })
            .collect();
        out.document(&json!({ "key_prefix": prefix, "aggregates": all }));
        return Ok(());
    }
    let mut table = out.table(&["aggregate", "version", "entries"]);
    for ((name, version), n) in &counts {
        table.add_row(vec![name.clone(), version.clone(), n.to_string()]);
    }
    println!("{table}");
    Ok(())
}

async fn purge(
    cache: &RedisReductionCache,
    prefix: &str,
    aggregate: &str,
    version: Option<u32>,
    out: &Output,
) -> Result<(), Failure> {
    let name = aggregate_name(aggregate)?;
    // A version's keys, with or without an upcaster chain's suffix (`v2:…` and `v2.u…:…`).
    let version = version.map_or_else(|| "*".to_owned(), |v| format!("{v}[:.]"));
    let pattern = format!("{}:{}:v{version}*", glob_escape(prefix), glob_escape(name));
    let client = cache.pool().next();
    let bar = out.progress(0, "deleting entries");
    let mut deleted = 0u64;
    scan(client, pattern, async |keys| {
        // One key per call: on a cluster the keys of a page live in different slots.
        for key in keys {
            let n: u64 = client
                .unlink(key)
                .await
                .map_err(|e| Failure::Query(format!("Redis refused a delete: {e}")))?;
            deleted += n;
            bar.inc(n);
        }
        Ok(())
    })
    .await?;
    bar.finish_and_clear();
    if out.json() {
        out.document(&json!({ "aggregate": name, "version": version, "deleted": deleted }));
    } else {
        println!("deleted {deleted} entries of {name} (version {version})");
    }
    Ok(())
}

async fn check(
    cli: &Cli,
    cache: &RedisReductionCache,
    id: &str,
    aggregate: &str,
    version: u32,
    out: &Output,
) -> Result<(), Failure> {
    let log_id: LogId = position::log_id(id)?;
    let key = CacheKey::new(aggregate_name(aggregate)?, version, log_id);
    let store = connect::store(cli)?;
    let Some(bytes) = cache.get(&key).await? else {
        return Err(Failure::NotFound(format!("no cache entry for {key}")));
    };
    let max = cache.options().max_entry_bytes;
    let (status, header, reason) = match EntryHeader::inspect(&key, &bytes, max) {
        Err(e) => ("unusable", None, Some(e.to_string())),
        Ok(header) => {
            let event = store.load(&log_id, header.through_index, 1).await?;
            match event.first() {
                Some(e) if e.fingerprint() == header.fingerprint => {
                    ("confirmed", Some(header), None)
                }
                Some(_) => (
                    "stale",
                    Some(header),
                    Some("the store's event at its index differs".to_owned()),
                ),
                None => (
                    "stale",
                    Some(header),
                    Some("the store has no event at its index".to_owned()),
                ),
            }
        }
    };
    let behind = match (status, header) {
        ("confirmed", Some(h)) => Some(events_after(&store, &log_id, h.through_index).await?),
        _ => None,
    };
    if out.json() {
        out.document(&json!({
            "key": key.as_str(),
            "status": status,
            "through_index": header.map(|h| h.through_index),
            "reduced_at": header.map(|h| h.reduced_at.to_string()),
            "bytes": bytes.len(),
            "events_behind": behind,
            "reason": reason,
        }));
        return Ok(());
    }
    let mut table = out.table(&[]);
    table.add_row(vec!["key".to_owned(), key.as_str().to_owned()]);
    table.add_row(vec!["status".to_owned(), status.to_owned()]);
    if let Some(h) = header {
        table.add_row(vec![
            "through index".to_owned(),
            h.through_index.to_string(),
        ]);
        table.add_row(vec!["reduced at".to_owned(), h.reduced_at.to_string()]);
    }
    table.add_row(vec!["bytes".to_owned(), bytes.len().to_string()]);
    if let Some(n) = behind {
        table.add_row(vec!["events behind the log".to_owned(), n.to_string()]);
    }
    if let Some(reason) = reason {
        table.add_row(vec!["why".to_owned(), reason]);
    }
    println!("{table}");
    Ok(())
}

/// Events of the log after `index`, counted page by page.
async fn events_after(
    store: &eventlogs::postgres::PostgresEventStore,
    log_id: &LogId,
    index: u32,
) -> Result<u64, Failure> {
    let (mut next, mut count) = (index.saturating_add(1), 0u64);
    loop {
        let page = store.load(log_id, next, PAGE).await?;
        count += page.len() as u64;
        match page.last() {
            Some(e) if page.len() as u32 == PAGE => next = e.index + 1,
            _ => return Ok(count),
        }
    }
}
