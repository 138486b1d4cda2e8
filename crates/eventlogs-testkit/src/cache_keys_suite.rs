//! Authenticated cache entries (`CacheKeys`): an attacker who can write to the cache cannot
//! change what `reduce` returns, and keys rotate without a stampede of misses.

use std::sync::Arc;

use eventlogs_core::{
    backend::{CacheEntry, CacheKey},
    CacheKeys, CacheOutcome, CacheReads, EventStore, LogId, LogManager, ReductionCache,
};

use crate::aggregates::{Entry, Tally};
use crate::manager_suite::poison;

type Pair = (Arc<dyn EventStore>, Arc<dyn ReductionCache>);

const OLD: [u8; 32] = [0x11; 32];
const NEW: [u8; 32] = [0x22; 32];

fn manager(pair: &Pair, keys: Option<CacheKeys>) -> LogManager<Tally> {
    let builder = LogManager::builder(Arc::clone(&pair.0))
        .cache(Arc::clone(&pair.1))
        .min_events_per_write(1)
        .cache_reads(CacheReads::Always);
    match keys {
        Some(keys) => builder.cache_keys(keys).build(),
        None => builder.build(),
    }
}

/// A log of four events, reduced and its entry written by `logs`.
async fn cached_log(logs: &LogManager<Tally>) -> LogId {
    let log = LogId::new();
    let events: Vec<Entry> = [5, 6, 7, 8].into_iter().map(Entry::of).collect();
    logs.create_with(&log, &events, &Default::default())
        .await
        .unwrap();
    logs.reduce(&log).await.unwrap();
    logs.flush().await;
    assert_eq!(logs.reduce(&log).await.unwrap().cache, CacheOutcome::Hit);
    log
}

/// Decodes the stored entry with the public API, changes the sum, and writes it back
/// unsigned, signed with a key the manager does not accept, and with the MAC cut off: every
/// forgery is `Corrupt`, the reduction stays right, and the entry is replaced.
pub async fn forged_cache_entries_are_refused_with_keys(pair: Pair) {
    let logs = manager(&pair, Some(CacheKeys::new(NEW)));
    let log = cached_log(&logs).await;
    let key = CacheKey::of::<Tally>(log);
    let stored = pair.1.get(&key).await.unwrap().unwrap();
    // The public decoder reads a signed entry (it does not check the MAC).
    let mut forged = CacheEntry::<Tally>::decode(&key, &stored, 1 << 20).unwrap();
    let truth = forged.aggregate.clone();
    forged.aggregate.sum += 1_000_000;
    let unsigned = forged.encode(&key).unwrap();
    let wrong_key = forged
        .encode_signed(&key, &CacheKeys::new([0x33; 32]))
        .unwrap();
    let cut = stored[..stored.len() - 32].to_vec();
    for (what, bytes) in [
        ("unsigned forgery", unsigned),
        ("forgery signed with another key", wrong_key),
        ("the real entry without its MAC", cut),
    ] {
        poison(&pair.1, &key, &bytes).await;
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!(r.cache, CacheOutcome::Corrupt, "{what}");
        assert_eq!(r.aggregate, truth, "{what}");
        logs.flush().await;
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!(
            (r.cache, &r.aggregate),
            (CacheOutcome::Hit, &truth),
            "{what}"
        );
    }
    // Without keys the same unsigned forgery would be trusted: that is what keys are for.
    let plain = manager(&pair, None);
    poison(&pair.1, &key, &forged.encode(&key).unwrap()).await;
    let r = plain.reduce(&log).await.unwrap();
    assert_eq!(r.aggregate.sum, truth.sum + 1_000_000);
    pair.1.delete(&key).await.unwrap();
}

/// Entries signed with the old key are read while it is still accepted, refused once it is
/// dropped, and then rewritten with the new key.
pub async fn cache_keys_rotate_without_trusting_dropped_keys(pair: Pair) {
    let before = manager(&pair, Some(CacheKeys::new(OLD)));
    let log = cached_log(&before).await;
    let during = manager(&pair, Some(CacheKeys::new(NEW).with_previous(OLD)));
    assert_eq!(during.reduce(&log).await.unwrap().cache, CacheOutcome::Hit);
    let after = manager(&pair, Some(CacheKeys::new(NEW)));
    assert_eq!(
        after.reduce(&log).await.unwrap().cache,
        CacheOutcome::Corrupt
    );
    after.flush().await;
    assert_eq!(after.reduce(&log).await.unwrap().cache, CacheOutcome::Hit);
    // The old key alone no longer verifies the rewritten entry.
    assert_eq!(
        before.reduce(&log).await.unwrap().cache,
        CacheOutcome::Corrupt
    );
}
