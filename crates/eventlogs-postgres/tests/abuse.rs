//! Storms and hostile input against PostgreSQL, checked afterwards straight in the database.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    AppendOptions, Error, EventStore, InvalidInput, LogId, LogManager, LogState,
};
use eventlogs_fake::FakeReductionCache;
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::aggregates::{Entry, Tally};
use eventlogs_testkit::assert_dense;

/// How many rows carry `key`, and how many key records exist for it.
async fn key_rows(store: &PostgresEventStore, key: &str) -> (i64, i64) {
    let client = store.pool().get().await.unwrap();
    let s = common::SCHEMA;
    let events: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {s}.events WHERE idempotency_key = $1"),
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    let keys: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM {s}.idempotency_keys WHERE key = $1"),
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    (events, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_one_key_writes_exactly_once() {
    let Some(store) = common::store().await else {
        return;
    };
    let logs: LogManager<Tally> = LogManager::builder(store.clone())
        .cache(FakeReductionCache::new())
        .build();
    let key = format!("storm-{}", LogId::new());
    let opts = AppendOptions::default().with_idempotency_key(key.clone());
    let creates: Vec<_> = (0..64)
        .map(|_| {
            let (logs, opts) = (logs.clone(), opts.clone());
            tokio::spawn(async move {
                logs.create_with(&LogId::new(), &[Entry::of(42)], &opts)
                    .await
            })
        })
        .collect();
    let mut created = Vec::new();
    let mut named = Vec::new();
    for c in creates {
        match c.await.unwrap() {
            Ok(state) => created.push(state.log_id()),
            Err(Error::IdempotentReplay {
                log_id,
                first_index: 0,
                count: 1,
                ..
            }) => named.push(log_id),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    let log = created[0];
    for _ in 0..10_000 {
        match logs
            .create_with(&LogId::new(), &[Entry::of(42)], &opts)
            .await
        {
            Err(Error::IdempotentReplay {
                log_id,
                first_index: 0,
                count: 1,
                ..
            }) => named.push(log_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    let parallel: Vec<_> = (0..16)
        .map(|_| {
            let (logs, opts) = (logs.clone(), opts.clone());
            tokio::spawn(async move {
                let mut names = Vec::new();
                for _ in 0..100 {
                    match logs
                        .create_with(&LogId::new(), &[Entry::of(42)], &opts)
                        .await
                    {
                        Err(Error::IdempotentReplay {
                            log_id,
                            first_index: 0,
                            count: 1,
                            ..
                        }) => names.push(log_id),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                names
            })
        })
        .collect();
    for p in parallel {
        named.extend(p.await.unwrap());
    }
    let replies = named.len();
    assert_eq!(replies, 63 + 10_000 + 1_600);
    assert!(
        named.iter().all(|l| *l == log),
        "every reply names the one log"
    );
    let direct: Arc<dyn EventStore> = Arc::new(store.clone());
    assert_eq!(assert_dense(&direct, &log).await.len(), 1);
    assert_eq!(
        key_rows(&store, &key).await,
        (1, 1),
        "one event and one key record in the database"
    );
    eprintln!("same-key storm: 1 write, {replies} replies, all naming {log} index 0");
}

#[tokio::test]
async fn hostile_input_is_refused_or_round_trips_exactly() {
    let Some(store) = common::store().await else {
        return;
    };
    let limits = *store.limits();
    let one = || vec![NewEvent::new(&Entry::of(1)).unwrap()];
    // Keys: exact round trips for the odd but valid, typed refusals for the invalid.
    let odd = [
        "'; DROP TABLE events; --".to_owned(),
        "\" OR 1=1 --".to_owned(),
        "$1::uuid)); SELECT pg_sleep(10); --".to_owned(),
        "ключ 🔑 鍵 \u{200b}\u{feff}".to_owned(),
        "\\x00 \\u0000 %s %n {}".to_owned(),
        "k".repeat(limits.max_idempotency_key_bytes()),
    ];
    for key in &odd {
        let log = LogId::new();
        let unique = if key.len() + 30 <= limits.max_idempotency_key_bytes() {
            format!("{key}{}", LogId::new())
        } else {
            key.clone()
        };
        let req = AppendRequest::new(LogState::empty(log), one(), None, Some(unique.clone()));
        match store.append(&req).await {
            Ok(_) => {
                let stored = store.load(&log, 0, 1).await.unwrap();
                assert_eq!(stored[0].idempotency_key.as_deref(), Some(unique.as_str()));
                assert_eq!(key_rows(&store, &unique).await, (1, 1));
            }
            // The maximum-length key may have been used by an earlier run of this test.
            Err(Error::IdempotentReplay { .. })
                if unique.len() == limits.max_idempotency_key_bytes() => {}
            Err(e) => panic!("{key:?}: {e:?}"),
        }
    }
    let refused = [
        "".to_owned(),
        "nul\0inside".to_owned(),
        "x".repeat(10 * 1024),
    ];
    for key in refused {
        let log = LogId::new();
        let req = AppendRequest::new(LogState::empty(log), one(), None, Some(key.clone()));
        let err = store.append(&req).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput(InvalidInput::IdempotencyKey { .. })
            ),
            "{err:?}"
        );
        assert!(store.load(&log, 0, 1).await.unwrap().is_empty());
    }
    // Log ids are parsed, never passed through: hostile strings are refused by the parser.
    for text in [
        "",
        "log_",
        "log_'; DROP TABLE events;--",
        "log_01JDQ5Z8X4M3V6N9P2R7S8T0A\0",
        &"9".repeat(10_000),
    ] {
        assert!(text.parse::<LogId>().is_err(), "{text:?}");
    }
    // Payloads: NUL refused, odd unicode and JSON-looking text round-trips exactly.
    let log = LogId::new();
    let note = "'; DROP TABLE events; -- \" \\ \u{1F980} \u{10FFFF} {\"a\":1}".to_owned();
    let req = AppendRequest::new(
        LogState::empty(log),
        vec![NewEvent::new(&Entry {
            amount: 5,
            note: note.clone(),
        })
        .unwrap()],
        None,
        None,
    );
    store.append(&req).await.unwrap();
    let back: Entry =
        serde_json::from_str(&store.load(&log, 0, 1).await.unwrap()[0].payload).unwrap();
    assert_eq!(back.note, note);
    let nul = NewEvent::new(&Entry {
        amount: 5,
        note: "a\0b".into(),
    })
    .unwrap();
    let err = store
        .append(&AppendRequest::new(
            LogState::new(log, 1),
            vec![nul],
            None,
            None,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(InvalidInput::Serialize(_))),
        "{err:?}"
    );
    // Oversized events and batches are refused before anything is written.
    let big = NewEvent::new(&"x".repeat(limits.max_event_bytes())).unwrap();
    let err = store
        .append(&AppendRequest::new(
            LogState::new(log, 1),
            vec![big],
            None,
            None,
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(InvalidInput::EventTooLarge { .. })),
        "{err:?}"
    );
    let many = vec![NewEvent::new(&1).unwrap(); limits.max_batch_events() + 1];
    let err = store
        .append(&AppendRequest::new(LogState::new(log, 1), many, None, None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(InvalidInput::BatchTooLarge { .. })),
        "{err:?}"
    );
    let direct: Arc<dyn EventStore> = Arc::new(store.clone());
    assert_eq!(
        assert_dense(&direct, &log).await.len(),
        1,
        "nothing half-written"
    );
    // The tables are intact.
    let client = store.pool().get().await.unwrap();
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1 \
             AND table_name IN ('events', 'idempotency_keys', 'schema_migrations')",
            &[&common::SCHEMA],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 3);
}
