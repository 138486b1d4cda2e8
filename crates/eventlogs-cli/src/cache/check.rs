//! `cache check`: is a log's cached entry the one the store confirms, authenticated when keys
//! are configured, and how many events behind?

use eventlogs::backend::{CacheKey, EntryError, EntryHeader};
use eventlogs::postgres::PostgresEventStore;
use eventlogs::{CacheKeys, EventStore, LogId};
use serde_json::json;

use crate::args::Cli;
use crate::connect;
use crate::failure::Failure;
use crate::output::Output;
use crate::position;

use super::Cache;

/// The current cache key, 64 hexadecimal digits.
const KEY_VAR: &str = "EVENTLOGS_CACHE_KEY";
/// Keys still accepted during a rotation, separated by commas.
const PREVIOUS_KEYS_VAR: &str = "EVENTLOGS_CACHE_PREVIOUS_KEYS";
/// Events read per page when counting how far an entry is behind.
const PAGE: u32 = 1_000;

/// The keys of `EVENTLOGS_CACHE_KEY` and `EVENTLOGS_CACHE_PREVIOUS_KEYS`, if any.
fn keys_from_env() -> Result<Option<CacheKeys>, Failure> {
    let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let parse = |name: &str, text: &str| {
        CacheKeys::parse_hex_key(text).map_err(|e| Failure::Usage(format!("{name}: {e}")))
    };
    let Some(current) = read(KEY_VAR) else {
        if read(PREVIOUS_KEYS_VAR).is_some() {
            return Err(Failure::Usage(format!(
                "{PREVIOUS_KEYS_VAR} is set without {KEY_VAR}: set the current key too"
            )));
        }
        return Ok(None);
    };
    let mut keys = CacheKeys::new(parse(KEY_VAR, &current)?);
    for previous in read(PREVIOUS_KEYS_VAR).iter().flat_map(|v| v.split(',')) {
        keys = keys.with_previous(parse(PREVIOUS_KEYS_VAR, previous)?);
    }
    Ok(Some(keys))
}

/// `2` or `2.u0123456789abcdef` (a version with its upcaster chain's fingerprint) as the key
/// of `aggregate`'s entry for `log_id`.
fn key(aggregate: &str, version: &str, log_id: LogId) -> Result<CacheKey, Failure> {
    let wrong = || {
        Failure::Usage(format!(
            "--version {:?}: expected a VERSION (`2`), or one with its upcaster fingerprint as \
             `cache stats` shows it (`2.u0123456789abcdef`)",
            position::shorten(version)
        ))
    };
    let (number, fingerprint) = match version.split_once(".u") {
        None => (version, 0),
        Some((number, hex)) if hex.len() == 16 => {
            (number, u64::from_str_radix(hex, 16).map_err(|_| wrong())?)
        }
        Some(_) => return Err(wrong()),
    };
    let number = number.parse::<u32>().map_err(|_| wrong())?;
    Ok(CacheKey::new(aggregate, number, log_id).upcast_with(fingerprint))
}

pub(crate) async fn check(
    cli: &Cli,
    cache: &Cache,
    id: &str,
    aggregate: &str,
    version: &str,
    out: &Output,
) -> Result<(), Failure> {
    let log_id: LogId = position::log_id(id)?;
    let key = key(aggregate, version, log_id)?;
    let keys = keys_from_env()?;
    let store = connect::store(cli)?;
    let Some(bytes) = cache.get_cache().get(&key).await? else {
        return Err(Failure::NotFound(format!(
            "no cache entry for {key} (a manager with upcasters keys its entries by \
             VERSION.uFINGERPRINT: `cache stats` lists the versions in use)"
        )));
    };
    let max = cache.max_entry_bytes();
    let header = match &keys {
        Some(keys) => EntryHeader::authenticate(&key, &bytes, max, keys),
        None => EntryHeader::inspect(&key, &bytes, max),
    };
    let (status, header, reason) = match header {
        Err(EntryError::Unauthenticated) => (
            "unauthenticated",
            EntryHeader::inspect(&key, &bytes, max).ok(),
            Some(format!(
                "no key of {KEY_VAR} or {PREVIOUS_KEYS_VAR} verifies its MAC: it was not \
                 written with these keys (a reduce refolds and replaces it)"
            )),
        ),
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
    // Whether the MAC was verified: `null` without keys to verify it with.
    let authenticated = keys
        .as_ref()
        .map(|_| status != "unauthenticated" && header.is_some());
    if out.json() {
        out.document(&json!({
            "key": key.as_str(),
            "status": status,
            "through_index": header.map(|h| h.through_index),
            "reduced_at": header.map(|h| h.reduced_at.to_string()),
            "bytes": bytes.len(),
            "signed": header.map(|h| h.signed),
            "authenticated": authenticated,
            "events_behind": behind,
            "reason": reason,
        }));
        return Ok(());
    }
    let mut table = out.table(&[]);
    let mut row = |name: &str, value: String| {
        table.add_row(vec![name.to_owned(), value]);
    };
    row("key", key.as_str().to_owned());
    row("status", status.to_owned());
    if let Some(h) = header {
        row("through index", h.through_index.to_string());
        row("reduced at", h.reduced_at.to_string());
        row(
            "MAC",
            match authenticated {
                Some(true) => "verified",
                Some(false) => "not verified",
                None if h.signed => "present (set EVENTLOGS_CACHE_KEY to verify it)",
                None => "none",
            }
            .to_owned(),
        );
    }
    row("bytes", bytes.len().to_string());
    if let Some(n) = behind {
        row("events behind the log", n.to_string());
    }
    if let Some(reason) = reason {
        row("why", reason);
    }
    println!("{table}");
    Ok(())
}

/// Events of the log after `index`, counted page by page.
async fn events_after(
    store: &PostgresEventStore,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_name_plain_and_upcast_keys() {
        let log = LogId::new();
        let plain = key("acct", "2", log).unwrap();
        assert_eq!(plain, CacheKey::new("acct", 2, log));
        let upcast = key("acct", "2.u00000000000000ff", log).unwrap();
        assert_eq!(upcast, CacheKey::new("acct", 2, log).upcast_with(0xff));
        for bad in [
            "",
            "two",
            "2.u",
            "2.uff",
            "2.u00000000000000zz",
            "-1",
            "2.x1",
        ] {
            assert!(key("acct", bad, log).is_err(), "{bad:?}");
        }
    }
}
