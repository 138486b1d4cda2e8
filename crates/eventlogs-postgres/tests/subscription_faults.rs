//! Subscriptions while PostgreSQL misbehaves: paused past the statement timeout, then killed
//! and restarted. The subscriber neither hangs nor gives up, and every committed event reaches
//! the read model exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::received::{
    all_received, options, received_table, scalar, subscriber, Mode, DUPLICATES,
};
use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    EventStore, LogId, LogState,
};
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::servers::{own_servers, PostgresServer};

/// Whether to run: a source of servers (Docker or local binaries) exists, or fail when xtask
/// says one must.
fn local() -> bool {
    own_servers()
}

/// Creates one-event logs until `until`, riding out errors; returns (written, failed) calls.
async fn keep_writing(store: Arc<PostgresEventStore>, until: Instant) -> (u64, u64) {
    let (mut written, mut failed) = (0, 0);
    while Instant::now() < until {
        let event = NewEvent::from_json(r#"{"type":"Deposited","amount":1}"#).unwrap();
        let request = AppendRequest::new(LogState::empty(LogId::new()), vec![event], None, None);
        match store.append(&request).await {
            Ok(_) => written += 1,
            Err(e) => {
                assert!(e.is_retryable(), "{e:?}");
                failed += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    (written, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transactional_subscriber_rides_out_a_pause_and_a_restart_exactly_once() {
    if !local() {
        return;
    }
    let mut pg = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let store = Arc::new(
        PostgresEventStore::builder(pg.url())
            .statement_timeout(Duration::from_millis(300))
            .connect_timeout(Duration::from_secs(1))
            .checkout_timeout(Duration::from_secs(1))
            .pool_size(4)
            .build()
            .unwrap(),
    );
    store.migrate().await.unwrap();
    received_table(&store).await;
    let (stop, task) = subscriber(&store, "faults", Mode::Transactional, 1, options(100));
    let started = Instant::now();
    let writer = tokio::spawn(keep_writing(
        Arc::clone(&store),
        started + Duration::from_secs(5),
    ));

    tokio::time::sleep(Duration::from_millis(800)).await;
    pg.pause();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.resume();
    tokio::time::sleep(Duration::from_millis(700)).await;
    pg.kill();
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    let (written, failed) = writer.await.unwrap();
    assert!(failed > 0, "the writer noticed the faults");

    // Every event that committed (acknowledged or not) arrives, once.
    let total = scalar(&store, "SELECT count(*) FROM {schema}.events").await;
    assert!(total >= written as i64);
    all_received(&store, total).await;
    assert!(
        !task.is_finished(),
        "the subscriber kept going through the faults"
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(scalar(&store, DUPLICATES).await, 0, "no event twice");
    println!(
        "paused 1.5 s, then SIGKILLed and restarted: {written} appends acknowledged, {failed} \
         failed, {total} committed, all received once, caught up {:?} after the start",
        started.elapsed()
    );
    drop(pg);
}
