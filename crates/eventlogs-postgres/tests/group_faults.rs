//! Group append when the network fails: a group that committed but whose reply was lost is
//! an error for every request in it, and each retry with its key learns that it committed.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::blocker::{wait_for_queue, Blocker};
use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    Error, EventStore, LogId, LogState,
};
use eventlogs_postgres::{AppendGrouping, PostgresEventStore};
use eventlogs_testkit::servers::{own_servers, PostgresServer, ProxyMode, TcpProxy};

fn create(log: LogId, key: &str) -> AppendRequest {
    AppendRequest::new(
        LogState::empty(log),
        vec![NewEvent::from_json(r#"{"type":"Opened"}"#).unwrap()],
        None,
        Some(key.to_owned()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_whose_reply_is_lost_is_replayed_request_by_request() {
    if !own_servers() {
        return;
    }
    let mut pg = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let target: SocketAddr = format!("127.0.0.1:{}", pg.port()).parse().unwrap();
    let proxy = TcpProxy::start(target).unwrap();
    // Through the proxy: one statement in flight, no wake-ups sharing the connections.
    let store =
        PostgresEventStore::builder(format!("postgres://postgres@{}/eventlogs", proxy.addr()))
            .pool_size(4)
            .notify_interval(None)
            .append_grouping(AppendGrouping::new().with_max_statements(1))
            .build()
            .unwrap();
    store.migrate().await.unwrap();
    // Straight to the server: the blockers and the final check.
    let direct = PostgresEventStore::builder(pg.url()).build().unwrap();
    let schema = store.config().schema.clone();

    // The only slot is held by an append waiting for a first blocker, while eight keyed
    // creates queue; one of them waits for a second blocker once the group is sent.
    let first = Blocker::hold(direct.pool(), &schema, LogId::new(), 0).await;
    let held = {
        let (store, log) = (store.clone(), first.log);
        tokio::spawn(async move { store.append(&create(log, "held")).await })
    };
    first.wait_for_waiters(1).await;
    let second = Blocker::hold(direct.pool(), &schema, LogId::new(), 0).await;
    let mut logs: Vec<LogId> = (0..7).map(|_| LogId::new()).collect();
    logs.push(second.log);
    let requests: Vec<AppendRequest> = logs
        .iter()
        .enumerate()
        .map(|(i, &log)| create(log, &format!("lost-group-{i}")))
        .collect();
    let tasks: Vec<_> = requests
        .iter()
        .cloned()
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move { store.append(&r).await })
        })
        .collect();
    wait_for_queue(&store, 8).await;
    first.end(false).await;
    held.await.unwrap().unwrap();
    // The group is on the server, waiting; its reply will be lost after it commits.
    second.wait_for_waiters(1).await;
    proxy.set_mode(ProxyMode::SwallowReplies);
    second.end(false).await;
    for task in tasks {
        let lost = task.await.unwrap().unwrap_err();
        assert!(lost.is_retryable(), "a lost reply is retryable: {lost:?}");
    }
    proxy.set_mode(ProxyMode::Forward);
    assert_eq!(store.append_group_stats().largest_group, 8);

    for (request, log) in requests.iter().zip(&logs) {
        let retry = store.append(request).await.unwrap_err();
        assert!(
            matches!(&retry, Error::IdempotentReplay { log_id, first_index: 0, count: 1, .. } if log_id == log),
            "the retry learns its request committed: {retry:?}"
        );
        assert_eq!(direct.load(log, 0, 10).await.unwrap().len(), 1);
    }
    pg.stop();
}
