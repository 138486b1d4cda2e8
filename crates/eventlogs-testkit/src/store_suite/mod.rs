//! The `EventStore` conformance suite: dense logs, one winner, idempotency, limits, round trips.
//!
//! The behaviours are spread over this module (writes and reads), `idempotency` and `bounds`;
//! every one is re-exported here, where the suite's macro finds it.

mod bounds;
mod idempotency;

use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, NewEvent, RawEvent},
    Error, EventStore, InvalidInput, LogId, LogState,
};
use futures::TryStreamExt;

pub use bounds::*;
pub use idempotency::*;

use crate::aggregates::Entry;
use crate::support::{assert_dense, unique_key};

pub(crate) type Store = Arc<dyn EventStore>;

pub(crate) fn events(amounts: &[i64]) -> Vec<NewEvent> {
    amounts
        .iter()
        .map(|a| NewEvent::new(&Entry::of(*a)).unwrap())
        .collect()
}

pub(crate) fn request(state: LogState, amounts: &[i64], key: Option<&str>) -> AppendRequest {
    AppendRequest::new(state, events(amounts), None, key.map(str::to_owned))
}

pub(crate) async fn write(store: &Store, state: LogState, amounts: &[i64]) -> LogState {
    store
        .append(&request(state, amounts, None))
        .await
        .unwrap()
        .state()
}

pub(crate) fn amount(e: &RawEvent) -> i64 {
    serde_json::from_str::<Entry>(&e.payload).unwrap().amount
}

/// Events come back with their index, payload, metadata, key and a commit time.
pub async fn append_and_load_round_trip(store: Store) {
    let log = LogId::new();
    let key = unique_key("round-trip");
    let meta = NewEvent::from_json(r#"{"user":"alice","n":1}"#).unwrap();
    let req = AppendRequest::new(
        LogState::empty(log),
        events(&[5, 7]),
        Some(meta),
        Some(key.clone()),
    );
    let written = store.append(&req).await.unwrap();
    assert_eq!(
        (written.log_id, written.first_index, written.count),
        (log, 0, 2)
    );
    assert_eq!(written.state(), LogState::new(log, 2));
    let state = write(&store, written.state(), &[9]).await;
    assert_eq!(state.next_index(), 3);

    let page = store.load(&log, 0, 10).await.unwrap();
    assert_eq!(page.iter().map(|e| e.index).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(page.iter().map(amount).collect::<Vec<_>>(), [5, 7, 9]);
    assert_eq!(page[0].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(page[1].idempotency_key.as_deref(), Some(key.as_str()));
    assert_eq!(page[2].idempotency_key, None);
    let meta: serde_json::Value =
        serde_json::from_str(page[0].metadata.as_deref().unwrap()).unwrap();
    assert_eq!(meta, serde_json::json!({"user": "alice", "n": 1}));
    assert_eq!(page[2].metadata, None);
    assert_eq!(page[0].recorded_at, written.recorded_at);
    assert_eq!(
        page[0].recorded_at, page[1].recorded_at,
        "a batch commits at one time"
    );
    assert!(page[2].recorded_at >= page[0].recorded_at);
    // Reading twice gives the same bytes, so fingerprints are stable.
    let again = store.load(&log, 0, 10).await.unwrap();
    assert_eq!(page, again);
    assert_eq!(page[2].fingerprint(), again[2].fingerprint());
}

/// `stream` returns every event from the start index, in order.
pub async fn stream_reads_from_index_in_order(store: Store) {
    let log = LogId::new();
    let amounts: Vec<i64> = (0..600).collect();
    let mut state = LogState::empty(log);
    for chunk in amounts.chunks(150) {
        state = write(&store, state, chunk).await;
    }
    let all: Vec<RawEvent> = store
        .stream(&log, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.iter().map(amount).collect::<Vec<_>>(), amounts);
    let tail: Vec<RawEvent> = store
        .stream(&log, 590)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        tail.iter().map(|e| e.index).collect::<Vec<_>>(),
        (590..600).collect::<Vec<u32>>()
    );
    let past: Vec<RawEvent> = store
        .stream(&log, 600)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(past.is_empty());
    let unknown: Vec<RawEvent> = store
        .stream(&LogId::new(), 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(unknown.is_empty());
}

/// Pages of `load` concatenate to the log; past the end and unknown logs give empty pages.
pub async fn load_pages_through_a_log(store: Store) {
    let log = LogId::new();
    write(&store, LogState::empty(log), &(0..25).collect::<Vec<_>>()).await;
    let mut from = 0;
    let mut seen = Vec::new();
    loop {
        let page = store.load(&log, from, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        from = page.last().unwrap().index + 1;
        seen.extend(page.iter().map(amount));
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
    assert!(store.load(&log, 25, 10).await.unwrap().is_empty());
    assert!(store.load(&log, u32::MAX, 10).await.unwrap().is_empty());
    assert!(store.load(&LogId::new(), 0, 10).await.unwrap().is_empty());
    // One page rule for every store (and the manager): at most `page_events`, more is refused.
    let max = store.limits().max_page_events();
    assert_eq!(store.load(&log, 0, max).await.unwrap().len(), 25);
    assert!(store.load(&log, 0, 0).await.unwrap().is_empty());
    for over in [max + 1, u32::MAX] {
        let err = store.load(&log, 0, over).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(InvalidInput::PageTooLarge { requested, max: m }) if requested == over && m == max),
            "{err:?}"
        );
    }
}

/// An append at an index that is already taken fails and writes nothing.
pub async fn stale_index_is_a_concurrent_append(store: Store) {
    let log = LogId::new();
    let state = write(&store, LogState::empty(log), &[1, 2, 3]).await;
    for stale in [0, 1, 2] {
        let err = store
            .append(&request(LogState::new(log, stale), &[99], None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::ConcurrentAppend { log_id, index } if log_id == log && index == stale),
            "{err:?}"
        );
        assert!(err.is_conflict() && !err.is_retryable());
    }
    // Creating an existing log is a concurrent append too.
    let err = store
        .append(&request(LogState::empty(log), &[99], None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConcurrentAppend { .. }), "{err:?}");
    assert_eq!(assert_dense(&store, &log).await.len(), 3);
    write(&store, state, &[4]).await;
    assert_eq!(
        assert_dense(&store, &log)
            .await
            .iter()
            .map(amount)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
}

/// An append past the end of a log, or to a missing log at an index above 0, is refused.
pub async fn index_past_the_end_is_refused(store: Store) {
    let log = LogId::new();
    write(&store, LogState::empty(log), &[1, 2]).await;
    for index in [3, 4, 1_000, u64::from(u32::MAX)] {
        let err = store
            .append(&request(LogState::new(log, index), &[9], None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::IndexGap { log_id, index: i } if log_id == log && i == index),
            "{err:?}"
        );
        assert!(err.is_conflict());
    }
    let missing = LogId::new();
    let err = store
        .append(&request(LogState::new(missing, 1), &[9], None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::LogNotFound { log_id } if log_id == missing),
        "{err:?}"
    );
    // A state of a longer log, used on a shorter one, lands past its end.
    let long = LogId::new();
    let long_state = write(&store, LogState::empty(long), &[1, 2, 3, 4]).await;
    let err = store
        .append(&request(
            LogState::new(log, long_state.next_index()),
            &[9],
            None,
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IndexGap { .. }), "{err:?}");
    assert_eq!(assert_dense(&store, &log).await.len(), 2);
    assert!(store.load(&missing, 0, 10).await.unwrap().is_empty());
}

/// Of 64 appends racing for one index exactly one succeeds; the others write nothing.
pub async fn racing_appends_have_one_winner(store: Store) {
    let log = LogId::new();
    let state = write(&store, LogState::empty(log), &[0]).await;
    let tasks: Vec<_> = (1..=64)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.append(&request(state, &[i], None)).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(appended) => winners.push((i as i64 + 1, appended)),
            Err(Error::ConcurrentAppend { log_id, index }) => assert_eq!((log_id, index), (log, 1)),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    let stored = assert_dense(&store, &log).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(amount(&stored[1]), winners[0].0);
}

/// A batch is written whole or not at all.
pub async fn batch_is_atomic(store: Store) {
    let log = LogId::new();
    let state = write(&store, LogState::empty(log), &[1, 2]).await;
    // Stale batch: nothing of it lands.
    let err = store
        .append(&request(LogState::new(log, 1), &[10, 11, 12], None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConcurrentAppend { .. }), "{err:?}");
    // A batch with one oversized event: refused before anything is written.
    let max = store.limits().max_event_bytes();
    let mut batch = events(&[20, 21]);
    batch.push(
        NewEvent::new(&Entry {
            amount: 22,
            note: "x".repeat(max),
        })
        .unwrap(),
    );
    let err = store
        .append(&AppendRequest::new(state, batch, None, None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput(InvalidInput::EventTooLarge { position: 2, .. })
        ),
        "{err:?}"
    );
    assert_eq!(assert_dense(&store, &log).await.len(), 2);
    // A good batch lands whole with consecutive indexes.
    let written = store
        .append(&request(state, &[30, 31, 32], None))
        .await
        .unwrap();
    assert_eq!((written.first_index, written.count), (2, 3));
    let stored = assert_dense(&store, &log).await;
    assert_eq!(
        stored.iter().map(amount).collect::<Vec<_>>(),
        [1, 2, 30, 31, 32]
    );
}
