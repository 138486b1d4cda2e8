//! Store suite, bounds: limits, the `u32` edge of indexes, hostile states, odd keys and metadata.

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    Error, InvalidInput, LogId, LogState,
};

use super::{events, request, write, Store};
use crate::aggregates::Entry;
use crate::support::{assert_dense, unique_key};

/// Over-limit and malformed requests are refused with a typed error, writing nothing.
pub async fn limits_are_enforced_before_writing(store: Store) {
    let limits = *store.limits();
    let log = LogId::new();
    let state = LogState::empty(log);
    let invalid = |err: Error| match err {
        Error::InvalidInput(kind) => kind,
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    let big = NewEvent::new(&"x".repeat(limits.max_event_bytes())).unwrap();
    let err = store
        .append(&AppendRequest::new(state, vec![big], None, None))
        .await
        .unwrap_err();
    assert!(matches!(invalid(err), InvalidInput::EventTooLarge { .. }));
    let many = vec![NewEvent::new(&1).unwrap(); limits.max_batch_events() + 1];
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
    let meta = NewEvent::new(&"m".repeat(limits.max_metadata_bytes())).unwrap();
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
        "k".repeat(limits.max_idempotency_key_bytes() + 1),
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
            matches!(err, Error::LogFull { log_id, next_index, count: c } if log_id == log && next_index == at && c == count as u64),
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
    let max = store.limits().max_idempotency_key_bytes();
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

/// Property: a `LogState` deserialized from anything a client might send (any `next_index`
/// up to `u64::MAX`), with any batch size, gets exactly the outcome the log's length implies,
/// as a typed error or a write, and never a panic: `LogFull` past index `u32::MAX`, an empty
/// batch refused, `ConcurrentAppend` below the end, `LogNotFound`/`IndexGap` past it.
pub async fn hostile_states_get_typed_errors_never_a_panic(store: Store) {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let max = u64::from(u32::MAX);
    let index = prop_oneof![
        0u64..6,
        Just(max - 1),
        Just(max),
        Just(max + 1),
        Just(u64::MAX - 1),
        Just(u64::MAX),
        any::<u64>(),
    ];
    let case = (index, 0usize..4, any::<bool>(), any::<bool>());
    let log = LogId::new();
    let length = std::sync::atomic::AtomicU64::new(0);
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 192,
        failure_persistence: None,
        ..Config::default()
    });
    tokio::task::block_in_place(|| {
        runner
            .run(&case, |(next_index, count, existing, keyed)| {
                let target = if existing { log } else { LogId::new() };
                let json = format!(r#"{{"log_id":"{target}","next_index":{next_index}}}"#);
                let state: LogState = serde_json::from_str(&json).expect("any u64 index parses");
                let len = if existing {
                    length.load(std::sync::atomic::Ordering::SeqCst)
                } else {
                    0
                };
                let key = keyed.then(|| unique_key("hostile"));
                let amounts = vec![1; count];
                let result =
                    handle.block_on(store.append(&request(state, &amounts, key.as_deref())));
                let last = next_index.checked_add(count.max(1) as u64 - 1);
                match result {
                    Err(Error::InvalidInput(InvalidInput::EmptyBatch)) => prop_assert_eq!(count, 0),
                    Err(Error::LogFull {
                        log_id,
                        next_index: n,
                        count: c,
                    }) => {
                        prop_assert!(count > 0 && last.is_none_or(|l| l > max));
                        prop_assert_eq!((log_id, n, c), (target, next_index, count as u64));
                    }
                    Err(Error::ConcurrentAppend { log_id, index }) => {
                        prop_assert!(next_index < len);
                        prop_assert_eq!((log_id, index), (target, next_index));
                    }
                    Err(Error::LogNotFound { log_id }) => {
                        prop_assert!(len == 0 && next_index > 0);
                        prop_assert_eq!(log_id, target);
                    }
                    Err(Error::IndexGap { log_id, index }) => {
                        prop_assert!(len > 0 && next_index > len);
                        prop_assert_eq!((log_id, index), (target, next_index));
                    }
                    Ok(appended) => {
                        prop_assert!(count > 0 && next_index == len);
                        prop_assert_eq!(appended.first_index as u64, next_index);
                        if existing {
                            length.fetch_add(count as u64, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    Err(other) => prop_assert!(false, "unexpected {other:?} for {json} × {count}"),
                }
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let stored = assert_dense(&store, &log).await.len() as u64;
    assert_eq!(stored, length.load(std::sync::atomic::Ordering::SeqCst));
}
