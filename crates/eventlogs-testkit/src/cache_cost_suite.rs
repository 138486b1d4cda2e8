//! When the `LogManager` reads and writes the cache by default: writes only of reductions that
//! folded enough new events, reads only while they pay. Part of the manager suite.

use std::sync::Arc;

use eventlogs_core::{
    backend::{CacheEntry, CacheKey},
    CacheOutcome, LogId, LogManager,
};

use crate::aggregates::{Entry, Tally};
use crate::manager_suite::{assert_true, log_of, none, poison, Pair, CACHE_TIMEOUT};

/// What the default settings write: a log only from 32 events on, and a cached reduction again
/// only once 32 new events are behind it; a bad entry is removed whatever the log's length.
pub async fn default_writes_pay_for_themselves(pair: Pair) {
    let logs: LogManager<Tally> = LogManager::builder(Arc::clone(&pair.0))
        .cache(Arc::clone(&pair.1))
        .cache_timeout(CACHE_TIMEOUT)
        .build();
    let cached = |log: LogId| {
        let cache = Arc::clone(&pair.1);
        async move {
            let bytes = cache.get(&CacheKey::of::<Tally>(log)).await.unwrap()?;
            CacheEntry::<()>::peek_through_index(&bytes)
        }
    };
    // 31 events: folding them costs what a hit costs; never written.
    let amounts: Vec<i64> = (1..=31).collect();
    let (short, state) = log_of(&logs, &amounts).await;
    logs.reduce(&short).await.unwrap();
    logs.flush().await;
    assert_eq!(cached(short).await, None, "a 31-event log is not written");
    // The 32nd event makes the fold worth a write.
    let state = logs.append(&state, &Entry::of(32)).await.unwrap();
    let r = logs.reduce(&short).await.unwrap();
    assert_eq!((r.cache, r.events_read), (CacheOutcome::Miss, 32));
    logs.flush().await;
    assert_eq!(cached(short).await, Some(31));
    // 31 new events behind the entry: read beyond it, not written again.
    let more: Vec<Entry> = (33..=63).map(Entry::of).collect();
    let state = logs.append_with(&state, &more, &none()).await.unwrap();
    let r = logs.reduce(&short).await.unwrap();
    assert_eq!(
        (r.cache, r.events_read, r.through_index),
        (CacheOutcome::Hit, 32, 62)
    );
    assert_true(&pair, &r).await;
    logs.flush().await;
    assert_eq!(
        cached(short).await,
        Some(31),
        "31 new events are not worth a write"
    );
    // The 32nd new event is.
    logs.append(&state, &Entry::of(64)).await.unwrap();
    let r = logs.reduce(&short).await.unwrap();
    assert_eq!(
        (r.cache, r.events_read, r.through_index),
        (CacheOutcome::Hit, 33, 63)
    );
    logs.flush().await;
    assert_eq!(cached(short).await, Some(63));
    let r = logs.reduce(&short).await.unwrap();
    assert_eq!((r.cache, r.events_read), (CacheOutcome::Hit, 1));
    assert_true(&pair, &r).await;

    // A damaged entry of a short log is removed, though the log is not worth a write.
    let (tiny, _) = log_of(&logs, &[1, 2, 3]).await;
    let key = CacheKey::of::<Tally>(tiny);
    poison(&pair.1, &key, b"not an entry").await;
    let r = logs.reduce(&tiny).await.unwrap();
    assert_eq!(r.cache, CacheOutcome::Corrupt);
    assert_true(&pair, &r).await;
    logs.flush().await;
    assert_eq!(pair.1.get(&key).await.unwrap(), None);
    let r = logs.reduce(&tiny).await.unwrap();
    assert_eq!((r.cache, r.events_read), (CacheOutcome::Miss, 3));
}

/// By default the cache is asked only while its answers pay: after dozens of misses on logs too
/// short to be cached, one reduce in 16 asks; a hit that spares a long log brings reads back.
pub async fn default_reads_stop_when_they_do_not_pay(pair: Pair) {
    let logs: LogManager<Tally> = LogManager::builder(Arc::clone(&pair.0))
        .cache(Arc::clone(&pair.1))
        .cache_timeout(CACHE_TIMEOUT)
        .build();
    let mut outcomes = Vec::new();
    for _ in 0..80 {
        let (log, _) = log_of(&logs, &[1, 2, 3]).await;
        let r = logs.reduce(&log).await.unwrap();
        assert_eq!(r.aggregate.sum, 6);
        assert_true(&pair, &r).await;
        outcomes.push(r.cache);
    }
    // A fresh manager asks through its first few dozen misses...
    assert!(
        outcomes[..40].iter().all(|o| *o == CacheOutcome::Miss),
        "{outcomes:?}"
    );
    // ...then one reduce in 16.
    let asked = outcomes[48..]
        .iter()
        .filter(|o| **o == CacheOutcome::Miss)
        .count();
    assert!((1..=3).contains(&asked), "{outcomes:?}");
    assert!(outcomes[48..]
        .iter()
        .all(|o| matches!(o, CacheOutcome::Miss | CacheOutcome::Skipped)));
    assert!(logs.cache_stats().skipped_reads >= 28);

    // A long log is written all the same (a skipped read folds it from 0), and once a probe
    // finds it, reads pay again.
    let events: Vec<Entry> = (0..600).map(Entry::of).collect();
    let long = LogId::new();
    logs.create_with(&long, &events, &none()).await.unwrap();
    let r = logs.reduce(&long).await.unwrap();
    assert_true(&pair, &r).await;
    logs.flush().await;
    let mut found = false;
    for _ in 0..=PROBE_EVERY {
        let r = logs.reduce(&long).await.unwrap();
        assert_true(&pair, &r).await;
        if r.cache == CacheOutcome::Hit {
            assert_eq!(r.events_read, 1);
            found = true;
            break;
        }
        assert_eq!(r.cache, CacheOutcome::Skipped);
    }
    assert!(found, "a probe within 16 reduces finds the entry");
    let (short, _) = log_of(&logs, &[1]).await;
    assert_eq!(logs.reduce(&short).await.unwrap().cache, CacheOutcome::Miss);
    assert_eq!(logs.reduce(&long).await.unwrap().cache, CacheOutcome::Hit);
}

/// How often an adaptive manager asks the cache while reads do not pay (one reduce in this many).
const PROBE_EVERY: usize = 16;
