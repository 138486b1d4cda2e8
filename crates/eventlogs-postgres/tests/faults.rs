//! PostgreSQL misbehaving: a lost acknowledgement, a SIGKILL in a burst of appends, a SIGSTOP
//! longer than the statement timeout. Nothing acknowledged is lost, nothing is duplicated,
//! every failure is a typed retryable error within its deadline.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{AppendOptions, Error, EventStore, LogId, LogManager, LogState};
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::aggregates::{Entry, Tally};
use eventlogs_testkit::assert_dense;
use eventlogs_testkit::servers::{own_servers, PostgresServer, ProxyMode, TcpProxy};

/// Whether to run: a source of servers (Docker or local binaries) exists, or fail when xtask
/// says one must.
fn local() -> bool {
    own_servers()
}

async fn start() -> PostgresServer {
    tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap()
}

fn keyed(key: String) -> AppendOptions {
    AppendOptions::default().with_idempotency_key(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_is_recovered_by_retrying_with_the_same_key() {
    if !local() {
        return;
    }
    let pg = start().await;
    let target: SocketAddr = format!("127.0.0.1:{}", pg.port()).parse().unwrap();
    let proxy = TcpProxy::start(target).unwrap();
    let url = format!("postgres://postgres@{}/eventlogs", proxy.addr());
    // No subscription wake-ups: their NOTIFY would share the only connection, and the proxy
    // must swallow the append's reply, not the notification's.
    let store = PostgresEventStore::builder(url)
        .pool_size(1)
        .statement_timeout(Duration::from_secs(5))
        .notify_interval(None)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let logs: LogManager<Tally> = LogManager::new(store.clone());
    // Warm the only connection so both append statements are prepared before the cut.
    logs.create_with(
        &LogId::new(),
        &[Entry::of(0)],
        &keyed(format!("warm-{}", LogId::new())),
    )
    .await
    .unwrap();
    let log = LogId::new();
    let state = logs.create(&log, &Entry::of(1)).await.unwrap();

    let key = format!("lost-ack-{}", LogId::new());
    proxy.set_mode(ProxyMode::SwallowReplies);
    let lost = logs
        .append_with(&state, &[Entry::of(2)], &keyed(key.clone()))
        .await
        .unwrap_err();
    assert!(
        lost.is_retryable(),
        "a lost reply is a retryable error: {lost:?}"
    );
    proxy.set_mode(ProxyMode::Forward);

    let retry = logs
        .append_with(&state, &[Entry::of(2)], &keyed(key.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&retry, Error::IdempotentReplay { log_id, first_index: 1, count: 1, .. } if *log_id == log),
        "the retry learns the first attempt committed: {retry:?}"
    );
    // Checked straight in the database, not through the proxy.
    let direct: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::builder(pg.url()).build().unwrap());
    let events = assert_dense(&direct, &log).await;
    assert_eq!(
        events.len(),
        2,
        "exactly one event was written by the two attempts"
    );
    assert_eq!(events[1].idempotency_key.as_deref(), Some(key.as_str()));
    eprintln!(
        "lost acknowledgement: 1 write, first call {}, retry IdempotentReplay",
        lost.kind()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_append() {
    if !local() {
        return;
    }
    const WRITERS: usize = 8;
    let deadline = Duration::from_millis(800);
    let mut pg = start().await;
    let store = PostgresEventStore::builder(pg.url())
        .pool_size(WRITERS)
        .checkout_timeout(deadline)
        .connect_timeout(deadline)
        .statement_timeout(deadline)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let logs: LogManager<Tally> = LogManager::new(store.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let slowest_failure_ms = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (logs, stop, failures, slowest) = (
                logs.clone(),
                Arc::clone(&stop),
                Arc::clone(&failures),
                Arc::clone(&slowest_failure_ms),
            );
            tokio::spawn(async move {
                let log = LogId::new();
                let mut state = LogState::empty(log);
                let mut acknowledged: Vec<i64> = Vec::new();
                let mut n = 0i64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let amount = (w as i64) * 1_000_000 + n;
                    let key = format!("kill-{log}-{n}");
                    // Retry this event with the same key until the store answers for it.
                    loop {
                        let started = Instant::now();
                        match logs
                            .append_with(&state, &[Entry::of(amount)], &keyed(key.clone()))
                            .await
                        {
                            Ok(next) => {
                                state = next;
                                acknowledged.push(amount);
                                break;
                            }
                            Err(Error::IdempotentReplay {
                                first_index, count, ..
                            }) => {
                                state = LogState::new(log, first_index + count);
                                acknowledged.push(amount);
                                break;
                            }
                            Err(e) => {
                                assert!(e.is_retryable(), "outage errors are retryable: {e:?}");
                                failures.fetch_add(1, Ordering::SeqCst);
                                slowest.fetch_max(
                                    started.elapsed().as_millis() as u64,
                                    Ordering::SeqCst,
                                );
                                tokio::time::sleep(Duration::from_millis(25)).await;
                            }
                        }
                    }
                }
                (log, acknowledged)
            })
        })
        .collect();
    let kill_after = 150 + (LogId::new().to_u128() % 400) as u64;
    tokio::time::sleep(Duration::from_millis(kill_after)).await;
    pg.kill();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let direct: Arc<dyn EventStore> =
        Arc::new(PostgresEventStore::builder(pg.url()).build().unwrap());
    let mut total = 0;
    for writer in writers {
        let (log, acknowledged) = writer.await.unwrap();
        let stored = assert_dense(&direct, &log).await;
        let amounts: Vec<i64> = stored
            .iter()
            .map(|e| serde_json::from_str::<Entry>(&e.payload).unwrap().amount)
            .collect();
        assert_eq!(
            amounts, acknowledged,
            "every acknowledged append is stored once, in order, and nothing else"
        );
        total += acknowledged.len();
    }
    let failures = failures.load(Ordering::SeqCst);
    let slowest = slowest_failure_ms.load(Ordering::SeqCst);
    assert!(failures > 0, "the kill was noticed");
    assert!(
        slowest <= 2 * deadline.as_millis() as u64 + 500,
        "a failing call took {slowest} ms"
    );
    // The pool recovered: new work succeeds at once.
    let log = LogId::new();
    logs.create(&log, &Entry::of(1)).await.unwrap();
    // The appends went through the default path, grouped.
    let grouped = store.append_group_stats();
    assert!(grouped.group_statements > 0, "{grouped:?}");
    eprintln!(
        "SIGKILL after {kill_after} ms: {total} acknowledged appends all present, 0 duplicated, \
         {failures} retryable failures during the outage, slowest {slowest} ms, {} requests \
         in {} group statements",
        grouped.grouped_requests, grouped.group_statements
    );
    pg.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_gives_typed_timeouts_and_no_task_hangs() {
    if !local() {
        return;
    }
    let deadline = Duration::from_millis(300);
    let pg = start().await;
    let store = PostgresEventStore::builder(pg.url())
        .pool_size(4)
        .checkout_timeout(deadline)
        .connect_timeout(deadline)
        .statement_timeout(deadline)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let logs: LogManager<Tally> = LogManager::new(store.clone());
    let log = LogId::new();
    let mut state = logs.create(&log, &Entry::of(1)).await.unwrap();
    pg.pause();
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let logs = logs.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let result = match i % 3 {
                    0 => logs.append(&state, &Entry::of(2)).await.map(|_| ()),
                    1 => logs.load(&log, 0, 10).await.map(|_| ()),
                    _ => logs.reduce(&log).await.map(|_| ()),
                };
                (result, started.elapsed())
            })
        })
        .collect();
    let mut kinds = HashMap::new();
    for call in calls {
        let (result, took) = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("no task hangs")
            .unwrap();
        let err = result.expect_err("a paused server cannot answer");
        assert!(err.is_retryable(), "{err:?}");
        assert!(
            took < deadline * 3 + Duration::from_millis(500),
            "took {took:?}"
        );
        *kinds.entry(err.kind()).or_insert(0) += 1;
    }
    pg.resume();
    // Consistent after resume: the paused append may still commit once the server reads it
    // (its connection was discarded, not its request), but whole or not at all.
    loop {
        state = logs.reduce(&log).await.unwrap().state();
        match logs.append(&state, &Entry::of(3)).await {
            Ok(_) => break,
            Err(e) if e.is_conflict() => continue,
            Err(e) => panic!("after resume: {e:?}"),
        }
    }
    let direct: Arc<dyn EventStore> = Arc::new(store);
    let events = assert_dense(&direct, &log).await;
    assert!(events.len() == 2 || events.len() == 3);
    eprintln!(
        "SIGSTOP: 8 calls failed with {kinds:?} within {:?}; {} events after resume",
        deadline * 3,
        events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_paused_mid_stream_ends_the_stream_with_a_timeout() {
    use futures::StreamExt;
    if !local() {
        return;
    }
    let deadline = Duration::from_millis(400);
    let pg = start().await;
    let store = PostgresEventStore::builder(pg.url())
        .statement_timeout(deadline)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let log = LogId::new();
    let client = store.pool().get().await.unwrap();
    // Enough rows (about 100 MB) that the server is still sending when it is paused.
    client
        .execute(
            "INSERT INTO eventlogs.events (log_id, event_index, payload) \
             SELECT $1, g, jsonb_build_object('amount', 1, 'note', repeat('n', 300)) FROM generate_series(0::bigint, 299999) g",
            &[&uuid::Uuid::from_u128(log.to_u128())],
        )
        .await
        .unwrap();
    // Fresh statistics, so the first row comes from an index scan at once, not after a sort.
    client
        .batch_execute("ANALYZE eventlogs.events")
        .await
        .unwrap();
    drop(client);
    let mut stream = store.stream(&log, 0).await.unwrap();
    for _ in 0..10 {
        stream.next().await.unwrap().unwrap();
    }
    pg.pause();
    let paused_at = Instant::now();
    let mut read = 10u64;
    let error = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the stream never hangs")
        {
            Some(Ok(_)) => read += 1,
            Some(Err(e)) => break e,
            None => panic!("the stream ended without an error while the server was paused"),
        }
    };
    let waited = paused_at.elapsed();
    assert!(
        matches!(error, Error::Timeout { .. }) && error.is_retryable(),
        "{error:?}"
    );
    assert!(
        waited < deadline * 3 + Duration::from_secs(2),
        "took {waited:?}"
    );
    assert!(
        stream.next().await.is_none(),
        "the stream ends after its error"
    );
    pg.resume();
    assert!(
        store.load(&log, 0, 5).await.unwrap().len() == 5,
        "the pool works after resume"
    );
    eprintln!("paused mid-stream after {read} rows: Timeout after {waited:?}");
}
