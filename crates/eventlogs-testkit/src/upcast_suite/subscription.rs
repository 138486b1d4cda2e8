//! Upcasting on the global feed: subscriptions hand their handler upcast events, and an
//! event-type filter naming a current type finds the events stored under its old name.

use std::sync::Arc;
use std::time::Duration;

use eventlogs_core::{
    EventFeed, EventStore, FeedEvent, FeedFilter, FeedPosition, LogId, LogState, UpcastFeed,
};

use super::schema::{v3_chain, Fact, V3};
use super::write_at;
use crate::feed_suite::read_all;
use crate::subscription_suite::{fast, Running, Subject};

fn name() -> String {
    format!("upcast-{}", LogId::new().ulid())
}

fn decoded(events: &[FeedEvent]) -> Vec<V3> {
    events
        .iter()
        .map(|e| e.decode::<V3>().unwrap().event)
        .collect()
}

pub async fn subscriptions_hand_over_upcast_events<S: Subject>(store: Arc<S>) {
    let writer: Arc<dyn EventStore> = store.clone();
    let log = LogId::new();
    let facts = [
        Fact::Deposit(3),
        Fact::Withdraw(1),
        Fact::Freeze,
        Fact::Deposit(50),
        Fact::Deposit(7),
    ];
    let state = write_at(&writer, LogState::empty(log), 1, &facts[..3]).await;
    let state = write_at(&writer, state, 2, &facts[3..4]).await;
    write_at(&writer, state, 3, &facts[4..]).await;
    let want: Vec<V3> = facts.iter().map(|f| f.v3()).collect();

    let mine = FeedFilter::all().with_logs([log]);
    let options = fast().with_upcasters(v3_chain()).with_filter(mine.clone());
    let mut running = Running::start(&store, &name(), options);
    let got = running.receive(5).await;
    running.stop().await.unwrap();
    assert_eq!(decoded(&got), want);
    assert!(got.iter().all(|e| e.event.version == 3), "{got:?}");

    // `Credited` finds the version 1 `Deposited` too, and nothing else.
    let credited = mine.with_event_types(["Credited"]);
    let options = fast()
        .with_upcasters(v3_chain())
        .with_filter(credited.clone());
    let mut running = Running::start(&store, &name(), options);
    let got = running.receive(3).await;
    assert!(running.stays_quiet(Duration::from_millis(300)).await);
    running.stop().await.unwrap();
    let indexes: Vec<u32> = got.iter().map(|e| e.event.index).collect();
    assert_eq!(indexes, [0, 3, 4]);
    assert_eq!(decoded(&got), [0, 3, 4].map(|i| want[i].clone()));
    let stored = v3_chain().stored_filter(&credited);
    let names: Vec<&str> = stored
        .event_types()
        .unwrap()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["Credited", "Deposited"]);
    assert_eq!(stored.logs(), credited.logs());

    // A reader of the raw feed upcasts with the same chain.
    let feed: Arc<dyn EventFeed> = store.clone();
    let mut raw: Vec<FeedEvent> = read_all(&feed, FeedPosition::START, 100)
        .await
        .into_iter()
        .filter(|e| e.log_id == log)
        .collect();
    let versions: Vec<u32> = raw.iter().map(|e| e.event.version).collect();
    assert_eq!(versions, [1, 1, 1, 2, 3]);
    for event in &mut raw {
        v3_chain().upcast_feed_event(event).unwrap();
    }
    assert_eq!(decoded(&raw), want);
}

/// `UpcastFeed` reads the feed upcast, and its filtered pages find renamed types.
pub async fn upcast_feed_reads_upcast_events_and_renamed_types<S: Subject>(store: Arc<S>) {
    let writer: Arc<dyn EventStore> = store.clone();
    let log = LogId::new();
    let facts = [Fact::Deposit(4), Fact::Withdraw(2), Fact::Deposit(9)];
    let state = write_at(&writer, LogState::empty(log), 1, &facts[..2]).await;
    write_at(&writer, state, 3, &facts[2..]).await;
    let want: Vec<V3> = facts.iter().map(|f| f.v3()).collect();

    let feed: Arc<dyn EventFeed> = store.clone();
    let upcast = UpcastFeed::new(feed, v3_chain());
    let mine: Vec<FeedEvent> = upcast
        .read_feed(FeedPosition::START, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.log_id == log)
        .collect();
    assert_eq!(decoded(&mine), want);

    let credited = FeedFilter::all()
        .with_logs([log])
        .with_event_types(["Credited"]);
    let mut found = Vec::new();
    let mut after = FeedPosition::START;
    loop {
        let page = upcast.read_page(after, 100, &credited).await.unwrap();
        found.extend(page.events);
        match page.scanned_through {
            Some(through) if page.more => after = through,
            _ => break,
        }
    }
    let indexes: Vec<u32> = found.iter().map(|e| e.event.index).collect();
    assert_eq!(indexes, [0, 2]);
    assert_eq!(decoded(&found), [want[0].clone(), want[2].clone()]);
}
