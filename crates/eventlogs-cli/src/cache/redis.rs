//! `cache stats` and `cache purge` on Redis: key scans on every primary.

use std::time::Duration;

use eventlogs::redis::fred::interfaces::ClientLike;
use eventlogs::redis::fred::prelude::{Client, KeysInterface};
use eventlogs::redis::fred::types::scan::Scanner;
use eventlogs::redis::RedisReductionCache;
use futures::StreamExt;

use crate::failure::Failure;
use crate::output::Output;

use super::{key_group, Counts};

/// Keys asked for per `SCAN` step.
const SCAN_COUNT: u32 = 1_000;

/// The Redis cache of `url` with keys under `prefix`.
pub(super) async fn connect(
    url: Option<&str>,
    prefix: &str,
) -> Result<RedisReductionCache, Failure> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Err(Failure::Usage(
            "no cache: pass --redis-url or set EVENTLOGS_REDIS_URL (or --snapshots for the \
             snapshot table)"
                .into(),
        ));
    };
    Ok(RedisReductionCache::builder(url)
        .key_prefix(prefix)
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .await?)
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

pub(super) async fn stats(cache: &RedisReductionCache, out: &Output) -> Result<Counts, Failure> {
    let prefix = &cache.options().key_prefix;
    let client = cache.pool().next();
    let bar = out.progress(0, "scanning keys");
    let start = format!("{prefix}:");
    let mut counts = Counts::new();
    scan(client, format!("{}:*", glob_escape(prefix)), async |keys| {
        bar.inc(keys.len() as u64);
        for key in keys {
            let rest = key.strip_prefix(&start).unwrap_or(&key);
            *counts.entry(key_group(rest)).or_default() += 1;
        }
        Ok(())
    })
    .await?;
    bar.finish_and_clear();
    Ok(counts)
}

pub(super) async fn purge(
    cache: &RedisReductionCache,
    name: &str,
    version: Option<u32>,
    out: &Output,
) -> Result<u64, Failure> {
    let prefix = &cache.options().key_prefix;
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
    Ok(deleted)
}
