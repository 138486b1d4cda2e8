//! The global feed conformance suite: every committed event once, in one order, resumable.
//!
//! The factory must give a store with an empty feed (a fresh schema, a new in-memory store).

use std::collections::HashMap;
use std::sync::Arc;

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    EventFeed, EventStore, FeedEvent, FeedFilter, FeedPosition, LogId, LogState,
};

use crate::aggregates::Entry;

/// A store and its feed (usually the same object).
pub type FeedPair = (Arc<dyn EventStore>, Arc<dyn EventFeed>);

async fn write(store: &Arc<dyn EventStore>, state: LogState, amounts: &[i64]) -> LogState {
    let events = amounts
        .iter()
        .map(|a| NewEvent::new(&Entry::of(*a)).unwrap())
        .collect();
    store
        .append(&AppendRequest::new(state, events, None, None))
        .await
        .unwrap()
        .state()
}

/// Reads the whole feed after `after` in pages of `page`.
pub async fn read_all(feed: &Arc<dyn EventFeed>, after: FeedPosition, page: u32) -> Vec<FeedEvent> {
    let mut out: Vec<FeedEvent> = Vec::new();
    let mut at = after;
    loop {
        let batch = feed.read_feed(at, page).await.unwrap();
        let Some(last) = batch.last() else { return out };
        assert!(batch.len() <= page as usize);
        at = last.position;
        out.extend(batch);
    }
}

/// Reads after `after` until `count` events arrived. Other writers' open transactions may hold
/// the feed back for a moment (that is the watermark doing its job), so an empty page is
/// retried for up to ten seconds.
pub async fn read_until(
    feed: &Arc<dyn EventFeed>,
    after: FeedPosition,
    page: u32,
    count: usize,
) -> Vec<FeedEvent> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut out = read_all(feed, after, page).await;
    while out.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {count} events arrived",
            out.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let at = out.last().map_or(after, |e| e.position);
        out.extend(read_all(feed, at, page).await);
    }
    out
}

fn amount(e: &FeedEvent) -> i64 {
    serde_json::from_str::<Entry>(&e.event.payload)
        .unwrap()
        .amount
}

pub async fn feed_delivers_every_event_once_in_commit_order(pair: FeedPair) {
    let (store, feed) = pair;
    assert!(
        feed.read_feed(FeedPosition::START, 10)
            .await
            .unwrap()
            .is_empty(),
        "the feed starts empty"
    );
    let logs: Vec<LogId> = (0..3).map(|_| LogId::new()).collect();
    let mut states: Vec<LogState> = logs.iter().map(|l| LogState::empty(*l)).collect();
    let mut expected = Vec::new();
    for round in 0..5i64 {
        for (i, state) in states.iter_mut().enumerate() {
            let amounts: Vec<i64> = (0..=(round % 3))
                .map(|k| round * 100 + i as i64 * 10 + k)
                .collect();
            *state = write(&store, *state, &amounts).await;
            expected.extend(amounts.iter().map(|a| (logs[i], *a)));
        }
    }
    let all = read_until(&feed, FeedPosition::START, 7, expected.len()).await;
    let got: Vec<(LogId, i64)> = all.iter().map(|e| (e.log_id, amount(e))).collect();
    assert_eq!(got, expected, "every event once, in commit order");
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "positions increase"
    );
    // Resuming from any event's position gives exactly the rest.
    let middle = all[11].position;
    let rest = read_until(&feed, middle, 4, all.len() - 12).await;
    assert_eq!(rest.len(), all.len() - 12);
    assert_eq!(rest[0].position, all[12].position);
    assert!(read_all(&feed, all.last().unwrap().position, 10)
        .await
        .is_empty());
}

pub async fn concurrent_writers_are_read_once_each(pair: FeedPair) {
    let (store, feed) = pair;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let log = LogId::new();
                let mut state = LogState::empty(log);
                for i in 0..40 {
                    let batch: Vec<i64> =
                        (0..(1 + i % 3)).map(|k| w * 10_000 + i * 10 + k).collect();
                    state = write(&store, state, &batch).await;
                }
                (log, state.next_index())
            })
        })
        .collect();
    // A reader follows the feed while the writers run.
    let reader = {
        let feed = Arc::clone(&feed);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut at = FeedPosition::START;
            for _ in 0..200 {
                let batch = feed.read_feed(at, 50).await.unwrap();
                if let Some(last) = batch.last() {
                    at = last.position;
                }
                seen.extend(batch);
                tokio::task::yield_now().await;
            }
            (seen, at)
        })
    };
    let mut lengths = HashMap::new();
    for w in writers {
        let (log, len) = w.await.unwrap();
        lengths.insert(log, len);
    }
    let (mut seen, at) = reader.await.unwrap();
    let total: u64 = lengths.values().sum();
    let mut positions: Vec<FeedPosition> = seen.iter().map(|e| e.position).collect();
    positions.dedup();
    assert!(
        seen.len() as u64 <= total && positions.len() == seen.len(),
        "the reader saw {} events ({} distinct positions) of {total} written: {:?}",
        seen.len(),
        positions.len(),
        seen.iter()
            .map(|e| (e.position, e.log_id, e.event.index))
            .collect::<Vec<_>>()
    );
    seen.extend(read_until(&feed, at, 64, total as usize - seen.len()).await);
    assert_eq!(seen.len() as u64, total, "every event exactly once");
    assert!(seen.windows(2).all(|w| w[0].position < w[1].position));
    let mut next: HashMap<LogId, u32> = HashMap::new();
    for e in &seen {
        let expected = next.entry(e.log_id).or_insert(0);
        assert_eq!(e.event.index, *expected, "each log in index order");
        *expected += 1;
    }
}

pub async fn head_is_the_last_readable_position(pair: FeedPair) {
    let (store, feed) = pair;
    assert_eq!(
        feed.head().await.unwrap(),
        FeedPosition::START,
        "empty feed"
    );
    let state = write(&store, LogState::empty(LogId::new()), &[1, 2, 3]).await;
    let written = read_until(&feed, FeedPosition::START, 10, 3).await;
    let head = feed.head().await.unwrap();
    assert_eq!(head, written[2].position);
    assert!(feed.read_feed(head, 10).await.unwrap().is_empty());
    write(&store, state, &[4, 5]).await;
    let newer = read_until(&feed, head, 10, 2).await;
    assert_eq!(newer.iter().map(amount).collect::<Vec<_>>(), [4, 5]);
}

/// Every event after `after` that passes `filter`, read page by page with `read_page`, and
/// where the last read looked through.
async fn read_pages(
    feed: &Arc<dyn EventFeed>,
    filter: &FeedFilter,
    page: u32,
) -> (Vec<FeedEvent>, Option<FeedPosition>) {
    let (mut out, mut at, mut through) = (Vec::new(), FeedPosition::START, None);
    loop {
        let read = feed.read_page(at, page, filter).await.unwrap();
        assert!(read.events.len() <= page as usize);
        assert!(read.events.iter().all(|e| filter.matches(e)));
        assert!(read.events.iter().all(|e| e.position > at));
        if let (Some(last), Some(scanned)) = (read.events.last(), read.scanned_through) {
            assert!(
                last.position <= scanned,
                "nothing handed out past where it looked"
            );
        }
        out.extend(read.events);
        let Some(scanned) = read.scanned_through else {
            return (out, through);
        };
        assert!(scanned > at, "each read moves on");
        (at, through) = (scanned, Some(scanned));
        if !read.more {
            return (out, through);
        }
    }
}

pub async fn read_page_filters_and_says_how_far_it_looked(pair: FeedPair) {
    let (store, feed) = pair;
    let (a, b) = (LogId::new(), LogId::new());
    let typed = |kind: &str, n: usize| -> Vec<NewEvent> {
        (0..n)
            .map(|i| NewEvent::from_json(format!(r#"{{"type":"{kind}","amount":{i}}}"#)).unwrap())
            .collect()
    };
    for (log, events) in [(a, typed("Credited", 5)), (b, typed("Debited", 2))] {
        let request = AppendRequest::new(LogState::empty(log), events, None, None);
        store.append(&request).await.unwrap();
    }
    let all = read_until(&feed, FeedPosition::START, 100, 7).await;
    let end = all.last().map(|e| e.position);
    for (filter, want) in [
        (FeedFilter::all(), 7),
        (FeedFilter::all().with_logs([b]), 2),
        (FeedFilter::all().with_logs([a, b]), 7),
        (FeedFilter::all().with_event_types(["Credited"]), 5),
        (
            FeedFilter::all().with_event_types(["Debited", "Credited"]),
            7,
        ),
        (FeedFilter::all().with_event_types(["NoSuchType"]), 0),
        (
            FeedFilter::all()
                .with_event_types(["Debited"])
                .with_logs([a]),
            0,
        ),
    ] {
        for page in [1, 2, 100] {
            let (got, through) = read_pages(&feed, &filter, page).await;
            let expected: Vec<FeedPosition> = all
                .iter()
                .filter(|e| filter.matches(e))
                .map(|e| e.position)
                .collect();
            let positions: Vec<FeedPosition> = got.iter().map(|e| e.position).collect();
            assert_eq!(positions, expected, "{filter:?}, pages of {page}");
            assert_eq!(got.len(), want, "{filter:?}");
            assert_eq!(
                through, end,
                "{filter:?}, pages of {page}: looked through to the end"
            );
        }
    }
    let after_end = feed
        .read_page(end.unwrap(), 10, &FeedFilter::all())
        .await
        .unwrap();
    assert!(after_end.events.is_empty() && after_end.scanned_through.is_none());
}
