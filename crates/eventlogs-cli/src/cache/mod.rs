//! `cache stats`, `cache purge` and `cache check`, on Redis or on the snapshot table.

mod check;
mod redis;
mod table;

use std::collections::BTreeMap;

use eventlogs::postgres::PostgresSnapshotCache;
use eventlogs::redis::RedisReductionCache;
use eventlogs::ReductionCache;
use serde_json::json;

use crate::args::{CacheCommand, Cli};
use crate::failure::Failure;
use crate::output::Output;
use crate::position;

/// Which cache the command looks at.
pub(crate) enum Source<'a> {
    /// A Redis cache: `--redis-url` (or `EVENTLOGS_REDIS_URL`) and its key prefix.
    Redis {
        url: Option<&'a str>,
        prefix: &'a str,
    },
    /// The `snapshots` table of `--schema`.
    Snapshots,
}

/// The cache a command looks at.
pub(crate) enum Cache {
    Redis(RedisReductionCache),
    Snapshots(PostgresSnapshotCache),
}

impl Cache {
    fn get_cache(&self) -> &dyn ReductionCache {
        match self {
            Self::Redis(cache) => cache,
            Self::Snapshots(cache) => cache,
        }
    }

    fn max_entry_bytes(&self) -> usize {
        match self {
            Self::Redis(cache) => cache.options().max_entry_bytes,
            Self::Snapshots(cache) => cache.max_entry_bytes(),
        }
    }

    /// What the JSON of `stats` says the cache is.
    fn describe(&self) -> (&'static str, String) {
        match self {
            Self::Redis(cache) => ("key_prefix", cache.options().key_prefix.clone()),
            Self::Snapshots(_) => ("table", "snapshots".to_owned()),
        }
    }
}

/// Entries counted by aggregate name and version (with any upcaster suffix).
type Counts = BTreeMap<(String, String), u64>;

pub(crate) async fn run(
    cli: &Cli,
    source: Source<'_>,
    command: &CacheCommand,
    out: &Output,
) -> Result<(), Failure> {
    let cache = match source {
        Source::Redis { url, prefix } => Cache::Redis(redis::connect(url, prefix).await?),
        Source::Snapshots => Cache::Snapshots(table::open(cli).await?),
    };
    match command {
        CacheCommand::Stats => {
            let counts = match &cache {
                Cache::Redis(redis) => redis::stats(redis, out).await?,
                Cache::Snapshots(table) => table::stats(table, out).await?,
            };
            print_stats(&cache.describe(), &counts, out);
            Ok(())
        }
        CacheCommand::Purge {
            aggregate: None,
            older_than: Some(age),
            ..
        } => {
            let Cache::Snapshots(table) = &cache else {
                return Err(Failure::Usage(
                    "--older-than is for the snapshot table (--snapshots): Redis entries expire \
                     by their TTL (RedisCacheOptions::ttl)"
                        .into(),
                ));
            };
            let bar = out.progress(0, "removing old entries");
            let removed = table.remove_older_than(*age).await?;
            bar.finish_and_clear();
            if out.json() {
                out.document(&json!({ "older_than_seconds": age.as_secs(), "deleted": removed }));
            } else {
                let age = humantime::format_duration(*age);
                println!("deleted {removed} entries last written more than {age} ago");
            }
            Ok(())
        }
        CacheCommand::Purge {
            aggregate: Some(aggregate),
            version,
            older_than: None,
        } => {
            let name = aggregate_name(aggregate)?;
            let deleted = match &cache {
                Cache::Redis(redis) => redis::purge(redis, name, *version, out).await?,
                Cache::Snapshots(table) => {
                    let bar = out.progress(0, "deleting entries");
                    let deleted = table.remove_aggregate(name, *version).await?;
                    bar.finish_and_clear();
                    deleted
                }
            };
            let version = version.map_or_else(|| "every".to_owned(), |v| v.to_string());
            if out.json() {
                out.document(&json!({ "aggregate": name, "version": version, "deleted": deleted }));
            } else {
                println!("deleted {deleted} entries of {name} (version {version})");
            }
            Ok(())
        }
        CacheCommand::Purge { .. } => Err(Failure::Usage(
            "pass --aggregate NAME (with an optional --version) or --older-than AGE, not both"
                .into(),
        )),
        CacheCommand::Check {
            id,
            aggregate,
            version,
        } => check::check(cli, &cache, id, aggregate_name(aggregate)?, version, out).await,
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

/// The aggregate name and version of a key without its backend prefix
/// (`{name}:v{version}:{log id}`, the version possibly with an upcaster suffix).
fn key_group(key: &str) -> (String, String) {
    match key.rsplitn(3, ':').collect::<Vec<_>>().as_slice() {
        [_, version, name] if version.starts_with('v') => {
            ((*name).to_owned(), version[1..].to_owned())
        }
        _ => ("(not an entry key)".to_owned(), String::new()),
    }
}

fn print_stats(about: &(&'static str, String), counts: &Counts, out: &Output) {
    if out.json() {
        let all: Vec<_> = counts
            .iter()
            .map(|((name, version), n)| {
                json!({ "aggregate": name, "version": version, "entries": n })
            })
            .collect();
        let mut document = json!({ "aggregates": all });
        document[about.0] = json!(about.1);
        out.document(&document);
        return;
    }
    let mut table = out.table(&["aggregate", "version", "entries"]);
    for ((name, version), n) in counts {
        table.add_row(vec![name.clone(), version.clone(), n.to_string()]);
    }
    println!("{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_group_by_name_and_version() {
        let group = |k: &str| key_group(k);
        assert_eq!(group("acct:v2:log_1"), ("acct".into(), "2".into()));
        assert_eq!(
            group("acct:v2.u00ff:log_1"),
            ("acct".into(), "2.u00ff".into())
        );
        assert_eq!(group("a:b:v3:log_1"), ("a:b".into(), "3".into()));
        assert_eq!(group("stray"), ("(not an entry key)".into(), String::new()));
        assert_eq!(
            group("acct:x2:log_1"),
            ("(not an entry key)".into(), String::new())
        );
    }
}
