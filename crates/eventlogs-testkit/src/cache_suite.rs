//! The `ReductionCache` conformance suite: byte round trips, compare-and-set, isolation, races.

use std::sync::Arc;

use eventlogs_core::{
    backend::{CacheEntry, CacheKey},
    LogId, ReductionCache, Timestamp,
};

type Cache = Arc<dyn ReductionCache>;

fn key() -> CacheKey {
    CacheKey::new("suite", 1, LogId::new())
}

/// A valid entry for `key` through `index`, whose aggregate is the index.
#[must_use]
pub fn entry(key: &CacheKey, index: u32) -> Vec<u8> {
    CacheEntry {
        through_index: index,
        fingerprint: u64::from(index) * 31,
        reduced_at: Timestamp::now(),
        created_at: Timestamp::now(),
        aggregate: index,
    }
    .encode(key)
    .unwrap()
}

fn index_of(bytes: &[u8]) -> Option<u32> {
    CacheEntry::<()>::peek_through_index(bytes)
}

pub async fn get_of_a_missing_key_is_none(cache: Cache) {
    assert_eq!(cache.get(&key()).await.unwrap(), None);
}

pub async fn put_then_get_returns_the_bytes(cache: Cache) {
    let k = key();
    let bytes = entry(&k, 3);
    assert!(cache.put(&k, 3, &bytes).await.unwrap());
    assert_eq!(cache.get(&k).await.unwrap(), Some(bytes.clone()));
    let decoded =
        CacheEntry::<u32>::decode(&k, &cache.get(&k).await.unwrap().unwrap(), 1 << 20).unwrap();
    assert_eq!(decoded.aggregate, 3);
}

pub async fn put_only_replaces_a_lower_through_index(cache: Cache) {
    let k = key();
    assert!(cache.put(&k, 10, &entry(&k, 10)).await.unwrap());
    assert!(
        !cache.put(&k, 9, &entry(&k, 9)).await.unwrap(),
        "older must not overwrite newer"
    );
    assert!(
        !cache.put(&k, 10, &entry(&k, 10)).await.unwrap(),
        "equal is kept"
    );
    assert_eq!(index_of(&cache.get(&k).await.unwrap().unwrap()), Some(10));
    assert!(cache.put(&k, 11, &entry(&k, 11)).await.unwrap());
    assert_eq!(index_of(&cache.get(&k).await.unwrap().unwrap()), Some(11));
    assert!(cache.put(&k, u32::MAX, &entry(&k, u32::MAX)).await.unwrap());
    assert!(!cache.put(&k, 0, &entry(&k, 0)).await.unwrap());
}

pub async fn put_replaces_an_unreadable_entry(cache: Cache) {
    let k = key();
    assert!(cache.put(&k, 5, b"garbage without a header").await.unwrap());
    assert!(
        cache.put(&k, 0, &entry(&k, 0)).await.unwrap(),
        "any header beats none"
    );
    assert_eq!(index_of(&cache.get(&k).await.unwrap().unwrap()), Some(0));
    assert!(cache.put(&k, 1, &[]).await.unwrap());
    assert!(cache.put(&k, 1, &entry(&k, 1)).await.unwrap());
}

pub async fn delete_removes_the_entry(cache: Cache) {
    let k = key();
    cache.put(&k, 4, &entry(&k, 4)).await.unwrap();
    cache.delete(&k).await.unwrap();
    assert_eq!(cache.get(&k).await.unwrap(), None);
    cache.delete(&k).await.unwrap();
    assert!(
        cache.put(&k, 1, &entry(&k, 1)).await.unwrap(),
        "after delete a lower index may be stored"
    );
}

pub async fn keys_are_isolated(cache: Cache) {
    let log = LogId::new();
    let keys = [
        CacheKey::new("suite", 1, log),
        CacheKey::new("suite", 2, log),
        CacheKey::new("other", 1, log),
        CacheKey::new("suite", 1, LogId::new()),
    ];
    for (i, k) in keys.iter().enumerate() {
        cache.put(k, i as u32, &entry(k, i as u32)).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        let bytes = cache.get(k).await.unwrap().unwrap();
        assert_eq!(
            CacheEntry::<u32>::decode(k, &bytes, 1 << 20)
                .unwrap()
                .aggregate,
            i as u32,
            "{k}"
        );
    }
}

pub async fn racing_puts_keep_the_maximum(cache: Cache) {
    let k = key();
    // Random indexes, seeded from a fresh ULID's random bits.
    let mut seed = LogId::new().to_u128() as u64 | 1;
    let indexes: Vec<u32> = (0..64)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 1_000_000) as u32
        })
        .collect();
    let max = *indexes.iter().max().unwrap();
    let tasks: Vec<_> = indexes
        .iter()
        .map(|&i| {
            let (cache, k) = (Arc::clone(&cache), k.clone());
            tokio::spawn(async move { cache.put(&k, i, &entry(&k, i)).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stored = cache.get(&k).await.unwrap().unwrap();
    assert_eq!(index_of(&stored), Some(max));
    assert_eq!(
        CacheEntry::<u32>::decode(&k, &stored, 1 << 20)
            .unwrap()
            .aggregate,
        max
    );
}
