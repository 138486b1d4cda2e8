//! The damaged cache entries a cache backend's poisoning test writes under a key, as a raw
//! client (or an attacker with write access) could.

use eventlogs_core::backend::{CacheEntry, CacheKey, CACHE_FORMAT, CACHE_HEADER_LEN};
use eventlogs_core::{CacheOutcome, LogId, LogManager, Timestamp};

use crate::aggregates::{Tally, TallyV2};
use crate::support::reduce_checked;

/// Ten kinds of damage to `good`, the real `Tally` entry of `log`: garbage, empty, truncated,
/// header only, a flipped bit, a huge body length, another format version, another aggregate
/// version's entry, another log's entry, and 3 MiB.
#[must_use]
pub fn damaged_entries(good: &[u8], log: LogId) -> Vec<(&'static str, Vec<u8>)> {
    let mut flipped = good.to_vec();
    flipped[good.len() / 2] ^= 0x08;
    let mut huge = good.to_vec();
    huge[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut future_format = good.to_vec();
    future_format[3] = CACHE_FORMAT + 1;
    let entry_for = |key: &CacheKey| {
        CacheEntry {
            through_index: 3,
            fingerprint: 0,
            reduced_at: Timestamp::now(),
            created_at: Timestamp::now(),
            aggregate: Tally::default(),
        }
        .encode(key)
        .unwrap()
    };
    vec![
        ("garbage", b"\x00\xffnot an entry at all".to_vec()),
        ("empty", Vec::new()),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("header only", good[..CACHE_HEADER_LEN].to_vec()),
        ("bit flip", flipped),
        ("huge length header", huge),
        ("foreign format version", future_format),
        (
            "another aggregate version's entry",
            entry_for(&CacheKey::of::<TallyV2>(log)),
        ),
        (
            "another log's entry",
            entry_for(&CacheKey::of::<Tally>(LogId::new())),
        ),
        ("oversized", vec![b'x'; 3 * 1024 * 1024]),
    ]
}

/// With damaged bytes (`what`) just written under `log`'s entry: a reduce is right and reports
/// the entry `Corrupt`, and once the manager has flushed, the entry is replaced (a hit that
/// reads only the confirming event).
pub async fn assert_refolded_and_replaced(logs: &LogManager<Tally>, log: &LogId, what: &str) {
    let r = reduce_checked(logs, log).await;
    assert_eq!(r.cache, CacheOutcome::Corrupt, "{what}");
    logs.flush().await;
    let r = reduce_checked(logs, log).await;
    assert_eq!(
        (r.cache, r.events_read),
        (CacheOutcome::Hit, 1),
        "{what}: replaced"
    );
}
