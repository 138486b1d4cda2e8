//! The global feed on PostgreSQL: the conformance suite on a fresh schema per test, and a
//! transaction that commits late is delivered at its place instead of being skipped.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    EventFeed, EventStore, FeedEvent, FeedFilter, FeedPosition, LogId, LogState,
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

/// Payloads that probe every rule of `RawEvent::event_type`.
const TRICKY: &[&str] = &[
    r#"{"type":"Deposited","amount":5}"#,
    r#"{"amount":5,"type":"Deposited"}"#,
    r#"{"Deposited":{"amount":5}}"#,
    r#""Closed""#,
    r#"{"type":7}"#,
    r#"{"type":7,"other":1}"#,
    r#"{"type":null}"#,
    r#"{"type":{"nested":"x"}}"#,
    r#"{"type":""}"#,
    r#"{"":1}"#,
    r#"{"a":1,"b":2}"#,
    r#"{}"#,
    r#"[]"#,
    r#"["Deposited"]"#,
    r#"42"#,
    r#"true"#,
    r#"null"#,
    r#""""#,
    r#"{"type":"Ünïcödé ✓","x":[1,2]}"#,
    r#"{"Ünïcödé ✓":null}"#,
    r#"{"type":"a\"quote"}"#,
    r#""with\nnewline""#,
];

#[tokio::test]
async fn filters_by_event_type_in_sql_exactly_as_event_type_reads_it() {
    let Some(store) = fresh().await else { return };
    let log = LogId::new();
    let events: Vec<NewEvent> = TRICKY
        .iter()
        .map(|json| NewEvent::from_json(*json).unwrap())
        .collect();
    let request = AppendRequest::new(LogState::empty(log), events, None, None);
    store.append(&request).await.unwrap();
    let all = store.read_feed(FeedPosition::START, 100).await.unwrap();
    assert_eq!(all.len(), TRICKY.len());
    let mut names: Vec<String> = all.iter().filter_map(FeedEvent::event_type).collect();
    names.extend(["type", "", "amount", "nested", "Deposited\n"].map(String::from));
    names.sort();
    names.dedup();
    for name in &names {
        let filter = FeedFilter::all().with_event_types([name.as_str()]);
        let page = store
            .read_page(FeedPosition::START, 100, &filter)
            .await
            .unwrap();
        let in_sql: Vec<u32> = page.events.iter().map(|e| e.event.index).collect();
        let in_rust: Vec<u32> = all
            .iter()
            .filter(|e| filter.matches(e))
            .map(|e| e.event.index)
            .collect();
        assert_eq!(in_sql, in_rust, "type {name:?}");
        assert_eq!(page.scanned_through, all.last().map(|e| e.position));
    }
    common::drop_schema(&store).await;
}

#[tokio::test]
async fn a_narrow_filter_receives_only_its_events_and_scans_through_the_rest() {
    let Some(store) = fresh().await else { return };
    let plain = || NewEvent::from_json(r#"{"type":"Viewed"}"#).unwrap();
    let rare = NewEvent::from_json(r#"{"type":"Refunded"}"#).unwrap();
    let watched = LogId::new();
    // 25,000 events in 25 logs; three rare ones, and one log watched by its id.
    let mut expected_rare = Vec::new();
    for batch in 0..25 {
        let log = if batch == 7 { watched } else { LogId::new() };
        let mut events: Vec<NewEvent> = (0..1_000).map(|_| plain()).collect();
        if batch % 10 == 3 {
            events[500] = rare.clone();
            expected_rare.push((log, 500));
        }
        let request = AppendRequest::new(LogState::empty(log), events, None, None);
        store.append(&request).await.unwrap();
    }
    let end = store.head().await.unwrap();
    for (filter, want) in [
        (
            FeedFilter::all().with_event_types(["Refunded"]),
            expected_rare.len(),
        ),
        (FeedFilter::all().with_logs([watched]), 1_000),
        (
            FeedFilter::all()
                .with_logs([watched])
                .with_event_types(["Refunded"]),
            0,
        ),
    ] {
        let (mut at, mut received, mut reads) = (FeedPosition::START, Vec::new(), 0);
        loop {
            let page = store.read_page(at, 100, &filter).await.unwrap();
            reads += 1;
            assert!(page.events.iter().all(|e| filter.matches(e)));
            received.extend(page.events);
            let Some(through) = page.scanned_through else {
                break;
            };
            assert!(through > at, "each read moves on");
            at = through;
            if !page.more {
                break;
            }
        }
        assert_eq!(at, end, "{filter:?}: scanned through to the head");
        assert_eq!(received.len(), want, "{filter:?}");
        // Whatever the filter lets through, at most 100 per read, and at most 10,000 looked
        // at per read: 25,000 events take three reads plus one per 100 matches.
        assert!(reads <= 4 + want / 100, "{filter:?}: {reads} reads");
        if want == expected_rare.len() {
            let got: Vec<(LogId, u32)> =
                received.iter().map(|e| (e.log_id, e.event.index)).collect();
            assert_eq!(got, expected_rare);
        }
    }
    common::drop_schema(&store).await;
}
