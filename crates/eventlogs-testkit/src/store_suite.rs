//! The `EventStore` conformance suite: dense logs, one winner, idempotency, limits, round trips.

use std::sync::Arc;

use eventlogs_core::{
    AppendRequest, Error, EventStore, InvalidInput, LogId, LogState, NewEvent, RawEvent,
};
use futures::TryStreamExt;

use crate::aggregates::Entry;
use crate::support::{assert_dense, unique_key};

type Store = Arc<dyn EventStore>;

fn events(amounts: &[i64]) -> Vec<NewEvent> {
    amounts
        .iter()
        .map(|a| NewEvent::new(&Entry::of(*a)).unwrap())
        .collect()
}

fn request(state: LogState, amounts: &[i64], key: Option<&str>) -> AppendRequest {
    AppendRequest::new(state, events(amounts), None, key.map(str::to_owned))
}

async fn write(store: &Store, state: LogState, amounts: &[i64]) -> LogState {
    store
        .append(&request(state, amounts, None))
        .await
        .unwrap()
        .state()
}

fn amount(e: &RawEvent) -> i64 {
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
    let max = store.limits().event_bytes();
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

/// A retried create with a fresh log id is recognised and names the original log.
pub async fn create_replays_with_a_fresh_log_id(store: Store) {
    let key = unique_key("create");
    let first = LogId::new();
    let written = store
        .append(&request(LogState::empty(first), &[5], Some(&key)))
        .await
        .unwrap();
    for _ in 0..3 {
        let retry = LogId::new();
        let err = store
            .append(&request(LogState::empty(retry), &[5], Some(&key)))
            .await
            .unwrap_err();
        match err {
            Error::IdempotentReplay {
                key: k,
                log_id,
                first_index,
                count,
            } => {
                assert_eq!(
                    (k.as_str(), log_id, first_index, count),
                    (key.as_str(), first, 0, 1)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            store.load(&retry, 0, 10).await.unwrap().is_empty(),
            "the retry wrote nothing"
        );
    }
    assert_eq!(written.first_index, 0);
    assert_eq!(assert_dense(&store, &first).await.len(), 1);
}

/// A retried append is a replay even after other writes moved the log on.
pub async fn append_replays_after_the_state_moved(store: Store) {
    let log = LogId::new();
    let key = unique_key("append");
    let state = write(&store, LogState::empty(log), &[1]).await;
    store
        .append(&request(state, &[2, 3], Some(&key)))
        .await
        .unwrap();
    write(&store, LogState::new(log, 3), &[4]).await;
    let err = store
        .append(&request(state, &[2, 3], Some(&key)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::IdempotentReplay { log_id, first_index: 1, count: 2, .. } if *log_id == log),
        "{err:?}"
    );
    // The same request at the fresh state is also a replay, not a second write.
    let err = store
        .append(&request(LogState::new(log, 4), &[2, 3], Some(&key)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IdempotentReplay { .. }), "{err:?}");
    assert_eq!(
        assert_dense(&store, &log)
            .await
            .iter()
            .map(amount)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
}

/// A used key with other events, metadata or another log is a conflict and writes nothing.
pub async fn reused_key_with_another_request_conflicts(store: Store) {
    let log = LogId::new();
    let key = unique_key("conflict");
    let state = store
        .append(&request(LogState::empty(log), &[1], Some(&key)))
        .await
        .unwrap()
        .state();
    let other_log = LogId::new();
    let other_state = write(&store, LogState::empty(other_log), &[1]).await;
    let with_meta = AppendRequest::new(
        state,
        events(&[1]),
        Some(NewEvent::from_json("{}").unwrap()),
        Some(key.clone()),
    );
    for req in [
        request(state, &[2], Some(&key)),
        request(state, &[1, 1], Some(&key)),
        request(other_state, &[1], Some(&key)),
        with_meta,
    ] {
        let err = store.append(&req).await.unwrap_err();
        assert!(
            matches!(&err, Error::IdempotencyConflict { key: k } if *k == key),
            "{err:?}"
        );
    }
    assert_eq!(assert_dense(&store, &log).await.len(), 1);
    assert_eq!(assert_dense(&store, &other_log).await.len(), 1);
}

/// 64 creates racing with one key write one log; every other call is a replay naming it.
pub async fn racing_creates_with_one_key_write_once(store: Store) {
    let key = unique_key("race");
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move {
                let log = LogId::new();
                (
                    log,
                    store
                        .append(&request(LogState::empty(log), &[7], Some(&key)))
                        .await,
                )
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut replays = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (log, Ok(_)) => created.push(log),
            (
                log,
                Err(Error::IdempotentReplay {
                    log_id,
                    first_index: 0,
                    count: 1,
                    ..
                }),
            ) => {
                assert!(store.load(&log, 0, 1).await.unwrap().is_empty());
                replays.push(log_id);
            }
            (_, Err(other)) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1, "one log is created");
    assert_eq!(replays.len(), 63);
    assert!(
        replays.iter().all(|l| *l == created[0]),
        "every replay names the created log"
    );
    assert_eq!(assert_dense(&store, &created[0]).await.len(), 1);
}

/// A write refused for its index leaves its key unused: the corrected retry succeeds.
pub async fn refused_write_does_not_consume_its_key(store: Store) {
    let log = LogId::new();
    let key = unique_key("refused");
    let state = write(&store, LogState::empty(log), &[1]).await;
    let err = store
        .append(&request(LogState::new(log, 0), &[2], Some(&key)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConcurrentAppend { .. }), "{err:?}");
    let err = store
        .append(&request(LogState::new(log, 5), &[2], Some(&key)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IndexGap { .. }), "{err:?}");
    let written = store
        .append(&request(state, &[2], Some(&key)))
        .await
        .unwrap();
    assert_eq!(written.first_index, 1);
}

/// Over-limit and malformed requests are refused with a typed error, writing nothing.
pub async fn limits_are_enforced_before_writing(store: Store) {
    let limits = *store.limits();
    let log = LogId::new();
    let state = LogState::empty(log);
    let invalid = |err: Error| match err {
        Error::InvalidInput(kind) => kind,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let big = NewEvent::new(&"x".repeat(limits.event_bytes())).unwrap();
    let err = store
        .append(&AppendRequest::new(state, vec![big], None, None))
        .await
        .unwrap_err();
    assert!(matches!(invalid(err), InvalidInput::EventTooLarge { .. }));
    let many = vec![NewEvent::new(&1).unwrap(); limits.batch_events() + 1];
    let err = store
        .append(&AppendRequest::new(state, many, None, None))
        .await
        .unwrap_err();
    assert!(matches!(invalid(err), InvalidInput::BatchTooLarge { .. }));
    let err = store
        .append(&AppendRequest::new(state, vec![], None, None))
        .await
        .unwrap_err();
    assert_eq!(invalid(err), InvalidInput::EmptyBatch);
    let meta = NewEvent::new(&"m".repeat(limits.metadata_bytes())).unwrap();
    let err = store
        .append(&AppendRequest::new(state, events(&[1]), Some(meta), None))
        .await
        .unwrap_err();
    assert!(matches!(
        invalid(err),
        InvalidInput::MetadataTooLarge { .. }
    ));
    for key in [
        String::new(),
        "k".repeat(limits.idempotency_key_bytes() + 1),
        "nul\0key".to_owned(),
    ] {
        let err = store
            .append(&request(state, &[1], Some(&key)))
            .await
            .unwrap_err();
        assert!(matches!(invalid(err), InvalidInput::IdempotencyKey { .. }));
    }
    let nul = NewEvent::new(&Entry {
        amount: 1,
        note: "a\0b".into(),
    })
    .unwrap();
    let err = store
        .append(&AppendRequest::new(state, vec![nul], None, None))
        .await
        .unwrap_err();
    assert!(matches!(invalid(err), InvalidInput::Serialize(_)));
    assert!(
        store.load(&log, 0, 10).await.unwrap().is_empty(),
        "nothing was written"
    );
}

/// Index `u32::MAX` is the last a log can hold: any write past it is `LogFull`, writing nothing.
pub async fn last_index_is_u32_max(store: Store) {
    let log = LogId::new();
    write(&store, LogState::empty(log), &[1]).await;
    let max = u64::from(u32::MAX);
    for (at, count) in [(max, 2), (max + 1, 1), (max - 1, 3)] {
        let amounts = vec![1; count];
        let err = store
            .append(&request(LogState::new(log, at), &amounts, None))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::LogFull { log_id, next_index, count: c } if log_id == log && next_index == at && c == count),
            "{err:?}"
        );
    }
    // At u32::MAX itself the index fits; this log is short, so it is a gap, not LogFull.
    let err = store
        .append(&request(LogState::new(log, max), &[1], None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::IndexGap { .. }), "{err:?}");
    assert_eq!(assert_dense(&store, &log).await.len(), 1);
}

/// Keys with quotes, SQL, unicode and the maximum length, and odd metadata, come back exactly.
pub async fn keys_and_metadata_round_trip(store: Store) {
    let max = store.limits().idempotency_key_bytes();
    let mut long = unique_key("long");
    while long.len() + 'é'.len_utf8() <= max {
        long.push('é');
    }
    let keys = [
        format!("it's \"quoted\" -- {}", LogId::new()),
        format!("'; DROP TABLE events; -- {}", LogId::new()),
        format!("ключ 🔑 鍵 {}", LogId::new()),
        long,
    ];
    for key in keys {
        assert!(key.len() <= max);
        let log = LogId::new();
        let meta = NewEvent::new(
            &serde_json::json!({"quote": "'\"", "emoji": "🦀", "nested": {"a": [1, null]}}),
        )
        .unwrap();
        let note = format!("note {key}");
        let event = NewEvent::new(&Entry {
            amount: 3,
            note: note.clone(),
        })
        .unwrap();
        let req = AppendRequest::new(
            LogState::empty(log),
            vec![event],
            Some(meta),
            Some(key.clone()),
        );
        store.append(&req).await.unwrap();
        let page = store.load(&log, 0, 1).await.unwrap();
        assert_eq!(page[0].idempotency_key.as_deref(), Some(key.as_str()));
        assert_eq!(
            serde_json::from_str::<Entry>(&page[0].payload)
                .unwrap()
                .note,
            note
        );
        let meta: serde_json::Value =
            serde_json::from_str(page[0].metadata.as_deref().unwrap()).unwrap();
        assert_eq!(meta["emoji"], "🦀");
        let err = store.append(&req).await.unwrap_err();
        assert!(
            matches!(&err, Error::IdempotentReplay { key: k, .. } if *k == key),
            "{err:?}"
        );
    }
}
