//! Store suite, idempotency keys: replays name the original write, reuse conflicts, races write once.

use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    Error, LogId, LogState,
};

use super::{amount, events, request, write, Store};
use crate::support::{assert_dense, unique_key};

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
        // The same events for another existing log.
        request(other_state, &[1], Some(&key)),
        // Other events, in the create form.
        request(LogState::empty(LogId::new()), &[2], Some(&key)),
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

/// A create whose reply was lost, retried as an append to the log it created (same key, same
/// events and metadata), is a replay naming the original write, also after the log moved on;
/// the original append form retried as a create with a fresh id replays too.
pub async fn a_create_retried_as_an_append_is_a_replay(store: Store) {
    let key = unique_key("create-then-append");
    let log = LogId::new();
    let meta = || Some(NewEvent::from_json(r#"{"request":"r1"}"#).unwrap());
    let create = AppendRequest::new(
        LogState::empty(log),
        events(&[4, 5]),
        meta(),
        Some(key.clone()),
    );
    store.append(&create).await.unwrap();
    let expect_replay = |err: Error| match err {
        Error::IdempotentReplay {
            log_id,
            first_index: 0,
            count: 2,
            ..
        } if log_id == log => {}
        other => panic!("expected a replay of the create, got {other:?}"),
    };
    // The retry found the log (a reduce says next index 2) and sends the request as an append.
    let as_append = AppendRequest::new(
        LogState::new(log, 2),
        events(&[4, 5]),
        meta(),
        Some(key.clone()),
    );
    expect_replay(store.append(&as_append).await.unwrap_err());
    write(&store, LogState::new(log, 2), &[6]).await;
    let later = AppendRequest::new(
        LogState::new(log, 3),
        events(&[4, 5]),
        meta(),
        Some(key.clone()),
    );
    expect_replay(store.append(&later).await.unwrap_err());
    let fresh = AppendRequest::new(
        LogState::empty(LogId::new()),
        events(&[4, 5]),
        meta(),
        Some(key.clone()),
    );
    expect_replay(store.append(&fresh).await.unwrap_err());
    // Same key and log, other content: still a conflict in the append form.
    let other = AppendRequest::new(
        LogState::new(log, 3),
        events(&[4, 5]),
        None,
        Some(key.clone()),
    );
    let err = store.append(&other).await.unwrap_err();
    assert!(
        matches!(&err, Error::IdempotencyConflict { key: k } if *k == key),
        "{err:?}"
    );
    assert_eq!(
        assert_dense(&store, &log)
            .await
            .iter()
            .map(amount)
            .collect::<Vec<_>>(),
        [4, 5, 6]
    );
}
