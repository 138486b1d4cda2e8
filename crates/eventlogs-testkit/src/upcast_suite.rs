//! Upcasting conformance: logs written by older code read by newer code (and the other way
//! round), writes stored at the chain's version, refused steps, cache keys per chain.
//!
//! The schemas live in [`schema`]; the property and the subscription checks in files of their
//! own.

mod property;
pub mod schema;
mod subscription;

use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, CacheKey, NewEvent},
    Aggregate, AppendOptions, CacheOutcome, Error, EventRecord, EventStore, LogId, LogManager,
    LogState, Result, Upcast, Upcasters,
};
use futures::{StreamExt, TryStreamExt};

use crate::manager_suite::{builder, Pair};
use crate::support::assert_dense;
pub use property::*;
use schema::{to_v3_named, v2_chain, v3_chain, CENTS, RETAG};
pub use schema::{Account, AccountV1, AccountV2, AccountV3, Fact, Shapes, V1, V2, V3};
pub use subscription::*;

fn manager<A: Aggregate>(pair: &Pair, chain: Upcasters) -> LogManager<A> {
    builder::<A>(pair).upcasters(chain).build()
}

/// Writes `facts` in one batch at `state` as code of schema `version` (1, 2 or 3) would.
pub async fn write_at(
    store: &Arc<dyn EventStore>,
    state: LogState,
    version: u32,
    facts: &[Fact],
) -> LogState {
    fn with<A: Aggregate>(store: &Arc<dyn EventStore>, chain: Upcasters) -> LogManager<A> {
        LogManager::builder(Arc::clone(store))
            .upcasters(chain)
            .build()
    }
    let none = AppendOptions::new();
    let written = match version {
        1 => {
            let events: Vec<V1> = facts.iter().map(|f| f.v1()).collect();
            let logs = with::<AccountV1>(store, Upcasters::new());
            logs.append_with(&state, &events, &none).await
        }
        2 => {
            let events: Vec<V2> = facts.iter().map(|f| f.v2()).collect();
            let logs = with::<AccountV2>(store, v2_chain());
            logs.append_with(&state, &events, &none).await
        }
        _ => {
            let events: Vec<V3> = facts.iter().map(|f| f.v3()).collect();
            let logs = with::<AccountV3>(store, v3_chain());
            logs.append_with(&state, &events, &none).await
        }
    };
    written.unwrap()
}

/// A new log of `facts` written by version 1 code, in two batches.
async fn v1_log(pair: &Pair, facts: &[Fact]) -> LogId {
    let log = LogId::new();
    let half = facts.len().div_ceil(2);
    let state = write_at(&pair.0, LogState::empty(log), 1, &facts[..half]).await;
    if half < facts.len() {
        write_at(&pair.0, state, 1, &facts[half..]).await;
    }
    log
}

/// Stores `json` at `state` with schema `version`, as a raw client would.
async fn raw_append(pair: &Pair, state: LogState, json: &str, version: u32) {
    let event = NewEvent::from_json(json).unwrap();
    let request = AppendRequest::new(state, vec![event], None, None).with_event_version(version);
    pair.0.append(&request).await.unwrap();
}

async fn versions(pair: &Pair, log: &LogId) -> Vec<u32> {
    let raw = assert_dense(&pair.0, log).await;
    raw.iter().map(|e| e.version).collect()
}

fn events<E: Clone>(records: &[EventRecord<E>]) -> Vec<E> {
    records.iter().map(|r| r.event.clone()).collect()
}

/// The reason of an `Error::Corrupt` at `index` of `log`; panics on anything else.
fn corrupt_at<T: std::fmt::Debug>(result: Result<T>, log: LogId, index: u64) -> String {
    match result {
        Err(Error::Corrupt {
            log_id,
            index: at,
            reason,
        }) if log_id == log && at == index => reason,
        other => panic!("expected Corrupt at {log} index {index}, got {other:?}"),
    }
}

pub async fn v2_code_upcasts_v1_logs_in_reduce_load_stream_and_execute(pair: Pair) {
    let facts = [
        Fact::Deposit(5),
        Fact::Withdraw(2),
        Fact::Freeze,
        Fact::Deposit(1),
    ];
    let log = v1_log(&pair, &facts).await;
    let v2 = manager::<AccountV2>(&pair, v2_chain());
    let r = v2.reduce(&log).await.unwrap();
    assert_eq!(r.aggregate.0, Account::of(&facts));
    let want: Vec<V2> = facts.iter().map(|f| f.v2()).collect();
    assert_eq!(events(&v2.load(&log, 0, 100).await.unwrap()), want);
    assert_eq!(events(&v2.load(&log, 1, 2).await.unwrap()), want[1..3]);
    let streamed: Vec<EventRecord<V2>> = v2.stream(&log, 2).try_collect().await.unwrap();
    assert_eq!(events(&streamed), want[2..]);
    assert_eq!(streamed[0].index, 2);
    let mut seen = None;
    let done = v2
        .execute(&log, &AppendOptions::new(), |a: Option<&AccountV2>| {
            seen = a.map(|a| a.0.clone());
            Ok::<_, Error>(vec![V2::Debited { cents: 400 }])
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        Some(Account::of(&facts)),
        "the decision sees the upcast state"
    );
    let all = [&facts[..], &[Fact::Withdraw(4)]].concat();
    assert_eq!(done.reduction.aggregate.0, Account::of(&all));
    assert_eq!(done.reduction, v2.reduce(&log).await.unwrap());
}

pub async fn v3_code_upcasts_v1_logs_through_the_chained_steps(pair: Pair) {
    let facts = [Fact::Deposit(7), Fact::Freeze, Fact::Withdraw(3)];
    let log = v1_log(&pair, &facts).await;
    let v3 = manager::<AccountV3>(&pair, v3_chain());
    let want: Vec<V3> = facts.iter().map(|f| f.v3()).collect();
    assert_eq!(events(&v3.load(&log, 0, 10).await.unwrap()), want);
    let streamed: Vec<EventRecord<V3>> = v3.stream(&log, 0).try_collect().await.unwrap();
    assert_eq!(events(&streamed), want);
    let first = v3.reduce(&log).await.unwrap();
    assert_eq!(first.aggregate.0, Account::of(&facts));
    v3.flush().await;
    let done = v3
        .execute(&log, &AppendOptions::new(), |a: Option<&AccountV3>| {
            let locked = a.is_some_and(|a| a.0.locked);
            Ok::<_, Error>(if locked { vec![V3::Locked] } else { vec![] })
        })
        .await
        .unwrap();
    assert_eq!(done.count, 1, "the upcast `Frozen` reads as `Locked`");
    let all = [&facts[..], &[Fact::Freeze]].concat();
    let r = v3.reduce(&log).await.unwrap();
    assert_eq!(
        (r.cache, r.events_read),
        (CacheOutcome::Hit, 2),
        "upcast reductions are cached like any other"
    );
    assert_eq!(r.aggregate.0, Account::of(&all));
    assert_eq!(r, done.reduction);
}

pub async fn writes_are_stored_at_the_upcast_chain_version_and_not_upcast_again(pair: Pair) {
    let log = v1_log(&pair, &[Fact::Deposit(10), Fact::Freeze]).await;
    let v2 = manager::<AccountV2>(&pair, v2_chain());
    let state = v2.reduce(&log).await.unwrap().state();
    let batch = [V2::Debited { cents: 250 }, V2::Credited { cents: 5 }];
    v2.append_with(&state, &batch, &AppendOptions::new())
        .await
        .unwrap();
    let fresh = LogId::new();
    v2.create(&fresh, &V2::Credited { cents: 7 }).await.unwrap();
    assert_eq!(versions(&pair, &log).await, [1, 1, 2, 2]);
    assert_eq!(versions(&pair, &fresh).await, [2]);
    let raw = assert_dense(&pair.0, &log).await;
    let stored: V1 = serde_json::from_str(&raw[0].payload).unwrap();
    assert_eq!(stored, V1::Deposited { amount: 10 }, "stored as written");
    let stored: V2 = serde_json::from_str(&raw[2].payload).unwrap();
    assert_eq!(stored, batch[0], "stored as written");
    // Step 1 refuses an event without a euro amount, so reading a version 2 event through
    // it again would fail.
    let mut want = Account::of(&[Fact::Deposit(10), Fact::Freeze]);
    want.cents += 5 - 250;
    want.history
        .extend(["2: -250 EUR".to_owned(), "3: +5 EUR".to_owned()]);
    assert_eq!(v2.reduce(&log).await.unwrap().aggregate.0, want);
    let v3 = manager::<AccountV3>(&pair, v3_chain());
    assert_eq!(v3.reduce(&log).await.unwrap().aggregate.0, want);
    let done = v3
        .execute(&log, &AppendOptions::new(), |_: Option<&AccountV3>| {
            Ok::<_, Error>(vec![V3::Locked])
        })
        .await
        .unwrap();
    assert_eq!(done.first_index, 4);
    assert_eq!(versions(&pair, &log).await, [1, 1, 2, 2, 3]);
    let eur = || "EUR".to_owned();
    let tail = [
        V3::Debited {
            cents: 250,
            currency: eur(),
        },
        V3::Credited {
            cents: 5,
            currency: eur(),
        },
        V3::Locked,
    ];
    assert_eq!(events(&v3.load(&log, 2, 10).await.unwrap()), tail);
    // The store keeps whatever version a request names; 0 is taken as 1.
    let other = LogId::new();
    raw_append(&pair, LogState::empty(other), r#""Locked""#, 3).await;
    raw_append(&pair, LogState::new(other, 1), r#""Locked""#, 0).await;
    raw_append(&pair, LogState::new(other, 2), r#""Locked""#, 7).await;
    assert_eq!(versions(&pair, &other).await, [3, 1, 7]);
}

pub async fn events_newer_than_the_upcast_chain_are_corrupt(pair: Pair) {
    let log = v1_log(&pair, &[Fact::Deposit(1), Fact::Deposit(2)]).await;
    let state = write_at(&pair.0, LogState::new(log, 2), 2, &[Fact::Withdraw(1)]).await;
    let v1 = manager::<AccountV1>(&pair, Upcasters::new());
    corrupt_at(v1.reduce(&log).await, log, 2);
    corrupt_at(v1.load(&log, 0, 10).await, log, 2);
    assert_eq!(
        v1.load(&log, 0, 2).await.unwrap().len(),
        2,
        "older events still read"
    );
    let mut stream = v1.stream(&log, 0);
    for index in 0..2 {
        assert_eq!(stream.next().await.unwrap().unwrap().index, index);
    }
    corrupt_at(stream.next().await.unwrap(), log, 2);
    let refused = v1
        .execute(&log, &AppendOptions::new(), |_: Option<&AccountV1>| {
            Ok::<_, Error>(vec![V1::Frozen])
        })
        .await;
    corrupt_at(refused, log, 2);
    assert_eq!(versions(&pair, &log).await, [1, 1, 2], "nothing written");
    write_at(&pair.0, state, 3, &[Fact::Freeze]).await;
    let v2 = manager::<AccountV2>(&pair, v2_chain());
    corrupt_at(v2.reduce(&log).await, log, 3);
    let v3 = manager::<AccountV3>(&pair, v3_chain());
    assert_eq!(v3.reduce(&log).await.unwrap().through_index, 3);
    // A version no deployment here knows, written by a newer one.
    let newer = LogId::new();
    raw_append(&pair, LogState::empty(newer), r#""Locked""#, 4).await;
    corrupt_at(v3.reduce(&newer).await, newer, 0);
}

pub async fn a_refused_upcast_is_corrupt_and_names_the_step(pair: Pair) {
    let log = v1_log(&pair, &[Fact::Deposit(3)]).await;
    let lots = r#"{"type":"Deposited","amount":"lots"}"#;
    raw_append(&pair, LogState::new(log, 1), lots, 1).await;
    let v2 = manager::<AccountV2>(&pair, v2_chain());
    let v3 = manager::<AccountV3>(&pair, v3_chain());
    for reason in [
        corrupt_at(v2.reduce(&log).await, log, 1),
        corrupt_at(v3.reduce(&log).await, log, 1),
        corrupt_at(v3.load(&log, 0, 10).await, log, 1),
    ] {
        assert!(reason.contains(CENTS), "{reason}");
    }
    let mut stream = v3.stream(&log, 0);
    assert_eq!(stream.next().await.unwrap().unwrap().index, 0);
    assert!(corrupt_at(stream.next().await.unwrap(), log, 1).contains(CENTS));
    let refused = v3
        .execute(&log, &AppendOptions::new(), |_: Option<&AccountV3>| {
            Ok::<_, Error>(vec![V3::Locked])
        })
        .await;
    assert!(corrupt_at(refused, log, 1).contains(CENTS));
    assert_eq!(versions(&pair, &log).await, [1, 1], "nothing written");
    // A version 2 event goes through step 2 only, which wants a type tag.
    let untagged = LogId::new();
    raw_append(&pair, LogState::empty(untagged), r#"{"cents":5}"#, 2).await;
    let reason = corrupt_at(v3.reduce(&untagged).await, untagged, 0);
    assert!(
        reason.contains(RETAG) && !reason.contains(CENTS),
        "{reason}"
    );
    // `map_all` sees events no rename or typed rule matched.
    let bare = LogId::new();
    raw_append(&pair, LogState::empty(bare), "42", 1).await;
    assert!(corrupt_at(v3.reduce(&bare).await, bare, 0).contains(RETAG));
    corrupt_at(v2.reduce(&bare).await, bare, 0);
    // A map that changes the type name is refused: feed filters follow renames only.
    let sneaky = Upcasters::new().then(Upcast::new("sneaky").map("Deposited", |mut e| {
        e["type"] = "Credited".into();
        Ok(e)
    }));
    let renamed = corrupt_at(
        manager::<AccountV2>(&pair, sneaky).reduce(&log).await,
        log,
        0,
    );
    assert!(
        renamed.contains("sneaky") && renamed.contains("rename"),
        "{renamed}"
    );
}

pub async fn cached_reductions_are_keyed_by_the_upcast_chain(pair: Pair) {
    assert_eq!(Upcasters::new().version(), 1);
    assert_eq!(Upcasters::new().fingerprint(), 0);
    assert_eq!((v2_chain().version(), v3_chain().version()), (2, 3));
    assert_eq!(v3_chain(), v3_chain());
    assert_ne!(v2_chain().fingerprint(), v3_chain().fingerprint());
    let facts = [Fact::Deposit(4), Fact::Freeze, Fact::Withdraw(1)];
    let log = v1_log(&pair, &facts).await;
    let shapes =
        |json: Vec<serde_json::Value>| Shapes(json.iter().map(|v| v.to_string()).collect());
    let as_v1 = shapes(
        facts
            .map(|f| serde_json::to_value(f.v1()).unwrap())
            .to_vec(),
    );
    let as_v3 = shapes(
        facts
            .map(|f| serde_json::to_value(f.v3()).unwrap())
            .to_vec(),
    );

    let plain = manager::<Shapes>(&pair, Upcasters::new());
    assert_eq!(plain.reduce(&log).await.unwrap().aggregate, as_v1);
    plain.flush().await;
    let plain_key = CacheKey::of::<Shapes>(log);
    assert!(pair.1.get(&plain_key).await.unwrap().is_some());
    let upcasting = manager::<Shapes>(&pair, v3_chain());
    let r = upcasting.reduce(&log).await.unwrap();
    assert_eq!(
        (r.cache, r.events_read),
        (CacheOutcome::Miss, 3),
        "the entry folded without upcasters is not read"
    );
    assert_eq!(r.aggregate, as_v3);
    upcasting.flush().await;
    let key = plain_key.clone().upcast_with(v3_chain().fingerprint());
    assert_ne!(key.as_str(), plain_key.as_str());
    assert!(pair.1.get(&key).await.unwrap().is_some());
    let hit = upcasting.reduce(&log).await.unwrap();
    assert_eq!((hit.cache, hit.events_read), (CacheOutcome::Hit, 1));
    assert_eq!(hit.aggregate, as_v3);
    let hit = plain.reduce(&log).await.unwrap();
    assert_eq!((hit.cache, hit.aggregate), (CacheOutcome::Hit, as_v1));
    // Another chain, or the same version with a step renamed: keys of their own.
    for chain in [v2_chain(), v2_chain().then(to_v3_named("v3, rewritten"))] {
        assert_ne!(chain.fingerprint(), v3_chain().fingerprint());
        let r = manager::<Shapes>(&pair, chain).reduce(&log).await.unwrap();
        assert_eq!(r.cache, CacheOutcome::Miss);
    }
    // One aggregate name and version across event versions: the chain alone parts them.
    let v1 = manager::<AccountV1>(&pair, Upcasters::new());
    v1.reduce(&log).await.unwrap();
    v1.flush().await;
    let r = manager::<AccountV3>(&pair, v3_chain())
        .reduce(&log)
        .await
        .unwrap();
    assert_eq!(r.cache, CacheOutcome::Miss);
    assert_eq!(r.aggregate.0, Account::of(&facts));
}
