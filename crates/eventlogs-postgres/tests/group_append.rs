//! Group append against a real server: requests held in the queue go out as one statement,
//! and each gets the outcome it would get alone; a payload the server refuses and a race with
//! another process on one log fail only their own request; many writers lose and duplicate
//! nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::blocker::{wait_for_queue, Blocker};

use std::collections::HashMap;
use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, Appended, NewEvent},
    Error, ErrorKind, EventFeed, EventStore, FeedPosition, LogId, LogState,
};
use eventlogs_postgres::{AppendGroupStats, AppendGrouping, PostgresEventStore};

/// A store on a fresh schema whose appends group with at most `statements` in flight.
async fn grouped(statements: usize) -> Option<PostgresEventStore> {
    let store = common::fresh("grp").await?;
    let store = PostgresEventStore::builder(store.config().url.clone())
        .schema(store.config().schema.clone())
        .append_grouping(AppendGrouping::new().with_max_statements(statements))
        .build()
        .unwrap();
    Some(store)
}

fn event(n: u64) -> NewEvent {
    NewEvent::from_json(format!(r#"{{"type":"Paid","n":{n}}}"#)).unwrap()
}

fn request(log: LogId, at: u64, events: &[u64], key: Option<&str>) -> AppendRequest {
    AppendRequest::new(
        LogState::new(log, at),
        events.iter().map(|&n| event(n)).collect(),
        None,
        key.map(str::to_owned),
    )
}

type Outcome = eventlogs_core::Result<Appended>;

/// Appends `requests` concurrently once the store's only slot is held by an append that waits
/// for a blocker, so they all go out in the next statement; returns their outcomes in order.
async fn as_one_group(store: &PostgresEventStore, requests: Vec<AppendRequest>) -> Vec<Outcome> {
    let blocker = Blocker::hold(store.pool(), &store.config().schema, LogId::new(), 0).await;
    let first = {
        let (store, log) = (store.clone(), blocker.log);
        tokio::spawn(async move { store.append(&request(log, 0, &[0], None)).await })
    };
    blocker.wait_for_waiters(1).await;
    let n = requests.len() as u64;
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move { store.append(&r).await })
        })
        .collect();
    wait_for_queue(store, n).await;
    blocker.end(false).await;
    first.await.unwrap().unwrap();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

async fn count(store: &PostgresEventStore, log: LogId) -> usize {
    store.load(&log, 0, 1000).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grouped_appends_each_get_the_outcome_they_would_get_alone() {
    let Some(store) = grouped(1).await else {
        return;
    };
    // Before the group: logs with two events, and two keyed writes.
    let mut existing = Vec::new();
    for _ in 0..6 {
        let log = LogId::new();
        store.append(&request(log, 0, &[1, 2], None)).await.unwrap();
        existing.push(log);
    }
    let replayed = request(LogId::new(), 0, &[7], Some("grp-replayed"));
    store.append(&replayed).await.unwrap();
    let conflicted_log = LogId::new();
    store
        .append(&request(conflicted_log, 0, &[8], Some("grp-conflicted")))
        .await
        .unwrap();

    let creates: Vec<LogId> = (0..10).map(|_| LogId::new()).collect();
    let keyed: Vec<LogId> = (0..2).map(|_| LogId::new()).collect();
    let batches: Vec<LogId> = (0..2).map(|_| LogId::new()).collect();
    let missing = [LogId::new(), LogId::new()];
    let mut requests = Vec::new();
    let mut expected: Vec<Result<(u64, u64), ErrorKind>> = Vec::new();
    for &log in &creates {
        requests.push(request(log, 0, &[1], None));
        expected.push(Ok((0, 1)));
    }
    for &log in &existing[..3] {
        requests.push(request(log, 2, &[3], None));
        expected.push(Ok((2, 1)));
    }
    // A race already lost: index 1 is taken.
    for &log in &existing[3..5] {
        requests.push(request(log, 1, &[9], None));
        expected.push(Err(ErrorKind::ConcurrentAppend));
    }
    requests.push(request(existing[5], 3, &[9], None));
    expected.push(Err(ErrorKind::IndexGap));
    for &log in &missing {
        requests.push(request(log, 1, &[9], None));
        expected.push(Err(ErrorKind::LogNotFound));
    }
    requests.push(replayed.clone());
    expected.push(Err(ErrorKind::IdempotentReplay));
    requests.push(request(LogId::new(), 0, &[99], Some("grp-conflicted")));
    expected.push(Err(ErrorKind::IdempotencyConflict));
    for (i, &log) in keyed.iter().enumerate() {
        requests.push(request(log, 0, &[5], Some(&format!("grp-new-{i}"))));
        expected.push(Ok((0, 1)));
    }
    for &log in &batches {
        requests.push(request(log, 0, &[1, 2, 3], None));
        expected.push(Ok((0, 3)));
    }
    let n = requests.len();

    let outcomes = as_one_group(&store, requests.clone()).await;

    let stats = store.append_group_stats();
    assert_eq!(stats.group_statements, 1, "{stats:?}");
    assert_eq!(stats.largest_group, n as u64, "{stats:?}");
    assert_eq!(stats.splits, 0, "{stats:?}");
    for ((request, outcome), want) in requests.iter().zip(&outcomes).zip(&expected) {
        match (outcome, want) {
            (Ok(a), Ok((first, count))) => {
                assert_eq!(a.log_id, request.log_id());
                assert_eq!(
                    (u64::from(a.first_index), u64::from(a.count)),
                    (*first, *count)
                );
            }
            (Err(e), Err(kind)) => assert_eq!(e.kind(), *kind, "{e}"),
            _ => panic!("{:?}: got {outcome:?}, wanted {want:?}", request.log_id()),
        }
    }
    if let Err(Error::IdempotentReplay {
        first_index, count, ..
    }) = &outcomes[n - 6]
    {
        assert_eq!((*first_index, *count), (0, 1));
    } else {
        panic!("the replay lost its original: {:?}", outcomes[n - 6]);
    }
    // What was written is exactly what succeeded; the refused wrote nothing.
    for &log in creates.iter().chain(&keyed) {
        assert_eq!(count(&store, log).await, 1);
    }
    for &log in &existing[..3] {
        assert_eq!(count(&store, log).await, 3);
    }
    for &log in &existing[3..] {
        assert_eq!(count(&store, log).await, 2);
    }
    for &log in &missing {
        assert_eq!(count(&store, log).await, 0);
    }
    for &log in &batches {
        let events = store.load(&log, 0, 10).await.unwrap();
        let indexes: Vec<u32> = events.iter().map(|e| e.index).collect();
        assert_eq!(indexes, [0, 1, 2]);
    }
    assert_eq!(count(&store, conflicted_log).await, 1);
    let key = store
        .find_idempotency_key("grp-new-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(key.log_id, keyed[1]);
    // The feed holds each log's events in index order, the group's as one transaction.
    let feed: Arc<dyn EventFeed> = Arc::new(store.clone());
    let events = feed.read_feed(FeedPosition::START, 1000).await.unwrap();
    let mut last: HashMap<LogId, u32> = HashMap::new();
    for e in &events {
        if let Some(previous) = last.insert(e.log_id, e.event.index) {
            assert_eq!(e.event.index, previous + 1, "{:?}", e.log_id);
        }
    }
    common::drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payload_the_server_refuses_fails_only_its_own_request() {
    let Some(store) = grouped(1).await else {
        return;
    };
    // Valid JSON that `jsonb` cannot store: a number beyond `numeric`'s range.
    let hostile = NewEvent::from_json(r#"{"type":"Paid","amount":1e200000}"#).unwrap();
    let alone = store
        .append(&AppendRequest::new(
            LogState::empty(LogId::new()),
            vec![hostile.clone()],
            None,
            None,
        ))
        .await
        .unwrap_err();
    let logs: Vec<LogId> = (0..16).map(|_| LogId::new()).collect();
    let mut requests: Vec<AppendRequest> =
        logs.iter().map(|&l| request(l, 0, &[1], None)).collect();
    requests[11] = AppendRequest::new(LogState::empty(logs[11]), vec![hostile], None, None);

    let outcomes = as_one_group(&store, requests).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 11 {
            let e = outcome.as_ref().unwrap_err();
            assert_eq!(e.kind(), alone.kind(), "{e} vs {alone}");
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert_eq!(count(&store, logs[i]).await, 0);
        } else {
            assert!(outcome.is_ok(), "{i}: {outcome:?}");
            assert_eq!(count(&store, logs[i]).await, 1);
        }
    }
    assert!(store.append_group_stats().splits >= 1);
    common::drop_schema(&store).await;
}

/// Twelve requests in one group, one of which races another process on its log: that one
/// loses with `ConcurrentAppend`, the others are written. Returns the store's counters.
async fn race_in_a_group(keyed: bool) -> Option<AppendGroupStats> {
    let store = grouped(1).await?;
    let logs: Vec<LogId> = (0..12).map(|_| LogId::new()).collect();
    let requests: Vec<AppendRequest> = logs
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let key = format!("race-{i}-{l}");
            request(l, 0, &[1], keyed.then_some(key.as_str()))
        })
        .collect();
    // Another process is writing index 0 of logs[5] and commits while the group waits for it.
    let rival = Blocker::hold(store.pool(), &store.config().schema, logs[5], 0).await;
    let race = {
        let store = store.clone();
        tokio::spawn(async move { as_one_group(&store, requests).await })
    };
    rival.wait_for_waiters(1).await;
    rival.end(true).await;
    let outcomes = race.await.unwrap();

    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 5 {
            let e = outcome.as_ref().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::ConcurrentAppend, "{e}");
        } else {
            assert!(outcome.is_ok(), "{i}: {outcome:?}");
        }
        assert_eq!(count(&store, logs[i]).await, 1);
    }
    let stats = store.append_group_stats();
    common::drop_schema(&store).await;
    Some(stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_race_with_another_process_loses_only_its_own_request() {
    // Keyed requests share the general statement, which fails on the race and is split.
    let Some(stats) = race_in_a_group(true).await else {
        return;
    };
    assert!(stats.splits >= 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_race_with_another_process_loses_only_its_own_request_in_a_one_event_group() {
    // One event each without keys: the lean statement skips the lost row, nothing is split.
    let Some(stats) = race_in_a_group(false).await else {
        return;
    };
    assert_eq!((stats.group_statements, stats.splits), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_event_groups_each_get_the_outcome_they_would_get_alone() {
    let Some(store) = grouped(1).await else {
        return;
    };
    let existing: Vec<LogId> = (0..4).map(|_| LogId::new()).collect();
    for &log in &existing {
        store.append(&request(log, 0, &[1, 2], None)).await.unwrap();
    }
    let creates: Vec<LogId> = (0..8).map(|_| LogId::new()).collect();
    let missing = LogId::new();
    let mut requests: Vec<AppendRequest> =
        creates.iter().map(|&l| request(l, 0, &[1], None)).collect();
    requests.push(request(existing[0], 2, &[3], None)); // written
    requests.push(request(existing[1], 1, &[9], None)); // taken
    requests.push(request(existing[2], 5, &[9], None)); // gap
    requests.push(request(missing, 1, &[9], None)); // no such log
    let outcomes = as_one_group(&store, requests).await;
    for outcome in &outcomes[..9] {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let kinds: Vec<ErrorKind> = outcomes[9..]
        .iter()
        .map(|o| o.as_ref().unwrap_err().kind())
        .collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::ConcurrentAppend,
            ErrorKind::IndexGap,
            ErrorKind::LogNotFound
        ]
    );
    let counts = (
        count(&store, existing[0]).await,
        count(&store, existing[1]).await,
        count(&store, existing[2]).await,
        count(&store, missing).await,
    );
    assert_eq!(counts, (3, 2, 2, 0));
    let stats = store.append_group_stats();
    assert_eq!(
        (stats.group_statements, stats.largest_group),
        (1, 12),
        "{stats:?}"
    );
    common::drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_grouped_writers_lose_and_duplicate_nothing() {
    const WRITERS: u64 = 64;
    const EACH: u64 = 50;
    let Some(store) = common::fresh("grp").await else {
        return;
    };
    // Half the writers have a log of their own; the other half share eight logs and race.
    let shared: Vec<LogId> = (0..8).map(|_| LogId::new()).collect();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            let log = if w % 2 == 0 {
                LogId::new()
            } else {
                shared[(w / 2 % 8) as usize]
            };
            tokio::spawn(async move {
                let mut wins = Vec::new();
                let mut next = 0u64;
                while (wins.len() as u64) < EACH {
                    let key = format!("w{w}-{}", wins.len());
                    match store.append(&request(log, next, &[w], Some(&key))).await {
                        Ok(a) => {
                            wins.push(u64::from(a.first_index));
                            next = u64::from(a.first_index) + 1;
                        }
                        Err(Error::ConcurrentAppend { .. }) => {
                            next = store.load(&log, 0, 1000).await.unwrap().len() as u64;
                        }
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
                (log, wins)
            })
        })
        .collect();
    let mut won: HashMap<LogId, Vec<u64>> = HashMap::new();
    for task in tasks {
        let (log, wins) = task.await.unwrap();
        won.entry(log).or_default().extend(wins);
    }
    for (log, mut wins) in won {
        wins.sort_unstable();
        let events = store.load(&log, 0, 1000).await.unwrap();
        let indexes: Vec<u64> = events.iter().map(|e| u64::from(e.index)).collect();
        assert_eq!(
            indexes, wins,
            "every acknowledged append is there, once, densely"
        );
    }
    let stats = store.append_group_stats();
    assert!(
        stats.largest_group > 1,
        "the writers never grouped: {stats:?}"
    );
    common::drop_schema(&store).await;
}

/// Requests to deleted logs, in one group with a live one, each get `LogDeleted` whatever
/// their index, key or size, and write nothing; the live request is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_refuses_every_request_to_a_deleted_log() {
    let Some(store) = grouped(1).await else {
        return;
    };
    let mut deleted = Vec::new();
    for _ in 0..5 {
        let log = LogId::new();
        store
            .append(&request(log, 0, &[1, 2, 3], None))
            .await
            .unwrap();
        assert_eq!(store.delete(&log).await.unwrap(), 3);
        deleted.push(log);
    }
    let live = LogId::new();
    store.append(&request(live, 0, &[1], None)).await.unwrap();
    let requests = vec![
        request(deleted[0], 0, &[9], Some("grp-deleted-create")),
        request(deleted[1], 1, &[9], None),
        request(deleted[2], 3, &[9, 9], Some("grp-deleted-batch")),
        request(deleted[3], 4, &[9], Some("grp-deleted-past")),
        request(deleted[4], 2, &[9, 9], None),
        request(live, 1, &[2], None),
    ];
    let outcomes = as_one_group(&store, requests).await;
    for (i, outcome) in outcomes[..5].iter().enumerate() {
        let error = outcome.as_ref().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::LogDeleted, "request {i}: {error}");
    }
    assert_eq!(outcomes[5].as_ref().unwrap().first_index, 1);
    for log in &deleted {
        let read = store.load(log, 0, 10).await.unwrap_err();
        assert_eq!(read.kind(), ErrorKind::LogDeleted);
    }
    assert_eq!(count(&store, live).await, 2);
}
