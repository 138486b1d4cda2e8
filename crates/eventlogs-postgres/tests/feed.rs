//! The global feed on PostgreSQL: the conformance suite on a fresh schema per test, and a
//! transaction that commits late is delivered at its place instead of being skipped.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    EventFeed, EventStore, FeedPosition, LogId, LogState,
};
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::feed_suite::read_until;

mod common;

async fn fresh() -> Option<PostgresEventStore> {
    common::fresh("feed").await
}

async fn pair() -> Option<(Arc<dyn EventStore>, Arc<dyn EventFeed>)> {
    let store = Arc::new(fresh().await?);
    Some((store.clone(), store))
}

mod conformance {
    eventlogs_testkit::event_feed_suite!(super::pair());
}

#[tokio::test]
async fn a_late_commit_is_held_back_then_delivered_in_order() {
    let Some(store) = fresh().await else { return };
    let schema = store.config().schema.clone();
    let feed: Arc<dyn EventFeed> = Arc::new(store.clone());
    // A writer that started first and commits last.
    let mut slow = store.pool().get().await.unwrap();
    let tx = slow.transaction().await.unwrap();
    let slow_log = LogId::new();
    tx.execute(
        &format!("INSERT INTO {schema}.events (log_id, event_index, payload) VALUES ($1, 0, '1')"),
        &[&uuid::Uuid::from_u128(slow_log.to_u128())],
    )
    .await
    .unwrap();
    // A writer that started later and commits first.
    let fast_log = LogId::new();
    let req = AppendRequest::new(
        LogState::empty(fast_log),
        vec![NewEvent::new(&2).unwrap()],
        None,
        None,
    );
    store.append(&req).await.unwrap();
    assert!(
        feed.read_feed(FeedPosition::START, 10)
            .await
            .unwrap()
            .is_empty(),
        "the fast commit waits behind the open transaction"
    );
    tx.commit().await.unwrap();
    let all = read_until(&feed, FeedPosition::START, 10, 2).await;
    let logs: Vec<LogId> = all.iter().map(|e| e.log_id).collect();
    assert_eq!(
        logs,
        [slow_log, fast_log],
        "both delivered, the earlier transaction first"
    );
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_feed_is_ordered_by_transaction_id_as_a_number() {
    let Some(store) = fresh().await else { return };
    let schema = store.config().schema.clone();
    // Transaction ids whose decimal text sorts the other way round ("1000" < "999").
    let client = store.pool().get().await.unwrap();
    for (transaction, log) in [("999", LogId::new()), ("1000", LogId::new())] {
        client
            .execute(
                &format!(
                    "INSERT INTO {schema}.events (log_id, event_index, payload, transaction_id) \
                     VALUES ($1, 0, '1', $2::text::xid8)"
                ),
                &[&uuid::Uuid::from_u128(log.to_u128()), &transaction],
            )
            .await
            .unwrap();
    }
    let feed: Arc<dyn EventFeed> = Arc::new(store.clone());
    let all = read_until(&feed, FeedPosition::START, 1, 2).await;
    let transactions: Vec<u64> = all.iter().map(|e| e.position.transaction).collect();
    assert_eq!(transactions, [999, 1000]);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
