//! `delete` on the global feed: the log's events leave it and one deletion marker takes their
//! place after everything committed before; racing appends are all deleted or all refused;
//! subscriptions receive the marker through any event-type filter.
//!
//! The factory gives a store that is also the feed and keeps subscriptions
//! ([`Subject`]); its feed may hold other events (every check looks at its own logs only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{
    AppendOptions, Error, EventFeed, EventStore, FeedEvent, FeedFilter, FeedPosition, LogId,
    LogManager, LogState, RetryPolicy, Upcast, Upcasters,
};
use tokio::sync::Barrier;

use super::assert_deleted;
use crate::aggregates::{Entry, Tally};
use crate::feed_suite::read_all;
use crate::subscription_suite::{fast, write, Running, Subject};

/// How long an expected feed event may take to become readable.
const PATIENCE: Duration = Duration::from_secs(15);

/// Every event of `logs` after `after`, once `until` holds for them (polled with a deadline:
/// other writers' open transactions may hold the feed back for a moment).
async fn feed_of(
    feed: &Arc<dyn EventFeed>,
    after: FeedPosition,
    logs: &[LogId],
    until: impl Fn(&[FeedEvent]) -> bool,
) -> Vec<FeedEvent> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mine: Vec<FeedEvent> = read_all(feed, after, 100)
            .await
            .into_iter()
            .filter(|e| logs.contains(&e.log_id))
            .collect();
        if until(&mine) {
            return mine;
        }
        assert!(
            Instant::now() < deadline,
            "the feed never got there: {mine:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn markers(events: &[FeedEvent], log: LogId) -> Vec<&FeedEvent> {
    events
        .iter()
        .filter(|e| e.log_id == log && e.deleted)
        .collect()
}

fn name() -> String {
    format!("delete-{}", LogId::new().ulid())
}

pub async fn delete_leaves_one_marker_in_the_feed_after_what_came_before<S: Subject>(
    store: Arc<S>,
) {
    let feed: Arc<dyn EventFeed> = store.clone();
    let start = feed.head().await.unwrap();
    let (gone, kept) = (LogId::new(), LogId::new());
    let (mut g, mut k) = (LogState::empty(gone), LogState::empty(kept));
    for n in 0..3 {
        g = write(&*store, g, "Deposited", n).await;
    }
    for n in 0..2 {
        k = write(&*store, k, "Withdrew", n).await;
    }
    write(&*store, g, "Deposited", 3).await;
    let logs = [gone, kept];
    let before = feed_of(&feed, start, &logs, |e| e.len() == 6).await;
    assert_eq!(store.delete(&gone).await.unwrap(), 4);
    let k = write(&*store, k, "Withdrew", 2).await;
    let after = feed_of(&feed, start, &logs, |e| e.len() == 4).await;

    let marker = markers(&after, gone);
    assert_eq!(marker.len(), 1, "one marker: {after:?}");
    let marker = marker[0].clone();
    assert!(
        after.iter().all(|e| e.log_id != gone || e.deleted),
        "no event of the deleted log is left: {after:?}"
    );
    assert_eq!(
        marker.event.index, 4,
        "at the index the log would write next"
    );
    let kept_before: Vec<&FeedEvent> = before.iter().filter(|e| e.log_id == kept).collect();
    assert_eq!(after[..2].iter().collect::<Vec<_>>(), kept_before);
    assert!(
        before.iter().all(|e| e.position < marker.position),
        "after everything committed before the delete"
    );
    assert_eq!(after[2], marker);
    assert!(after[3].position > marker.position && !after[3].deleted);
    assert!(feed.head().await.unwrap() >= marker.position);
    assert!(matches!(
        marker.decode::<Entry>(),
        Err(Error::LogDeleted { log_id }) if log_id == gone
    ));

    // A marker passes every event-type filter, never another log's filter.
    let withdrew = FeedFilter::all().with_event_types(["Withdrew"]);
    assert!(withdrew.matches(&marker));
    assert!(!withdrew.clone().with_logs([kept]).matches(&marker));
    let nothing = FeedFilter::all()
        .with_logs([gone])
        .with_event_types(["NoSuchType"]);
    assert!(nothing.matches(&marker));
    let mut at = start;
    let mut paged = Vec::new();
    loop {
        let page = feed.read_page(at, 2, &nothing).await.unwrap();
        paged.extend(page.events);
        match page.scanned_through {
            Some(through) if page.more => at = through,
            _ => break,
        }
    }
    assert_eq!(
        paged,
        std::slice::from_ref(&marker),
        "a filtered read finds the marker"
    );

    // Deleting again leaves no second marker.
    assert_eq!(store.delete(&gone).await.unwrap(), 0);
    write(&*store, k, "Withdrew", 3).await;
    let last = feed_of(&feed, start, &logs, |e| e.len() == 5).await;
    assert_eq!(markers(&last, gone), [&marker]);
}

/// Appenders race one delete: afterwards the delete removed exactly what was acknowledged,
/// every later append is refused, and the feed holds nothing of the log but its marker.
pub async fn delete_racing_appends_keeps_the_whole_log_or_none<S: Subject>(store: Arc<S>) {
    const WRITERS: usize = 12;
    let writer: Arc<dyn EventStore> = store.clone();
    let feed: Arc<dyn EventFeed> = store.clone();
    let start = feed.head().await.unwrap();
    let patient = RetryPolicy::default()
        .with_max_attempts(10_000)
        .with_backoff(Duration::from_micros(100), Duration::from_millis(5));
    let logs: LogManager<Tally> = LogManager::builder(Arc::clone(&writer))
        .retry_policy(patient)
        .build();
    let log = LogId::new();
    logs.create(&log, &Entry::of(0)).await.unwrap();
    let barrier = Arc::new(Barrier::new(WRITERS + 1));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (logs, barrier) = (logs.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                let batch = vec![Entry::of(1); 1 + w % 3];
                let mut acknowledged = 0u64;
                loop {
                    let done = logs
                        .execute(&log, &AppendOptions::new(), |_: Option<&Tally>| {
                            Ok::<_, Error>(batch.clone())
                        })
                        .await;
                    match done {
                        Ok(done) => acknowledged += done.count,
                        Err(Error::LogDeleted { .. }) => return acknowledged,
                        Err(e) => panic!("writer {w}: {e:?}"),
                    }
                }
            })
        })
        .collect();
    barrier.wait().await;
    let deadline = Instant::now() + PATIENCE;
    while writer.load(&log, 30, 1).await.unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the writers never wrote 30 events"
        );
        tokio::task::yield_now().await;
    }
    let removed = writer.delete(&log).await.unwrap();
    let mut acknowledged = 1;
    for w in writers {
        acknowledged += w.await.unwrap();
    }
    assert_eq!(
        removed, acknowledged,
        "the delete took every acknowledged event"
    );
    for at in [0, 1, removed, removed + 1] {
        let refused = logs.append(&LogState::new(log, at), &Entry::of(1)).await;
        assert_deleted(refused, log, &format!("append at {at} after the race"));
    }
    let mine = feed_of(&feed, start, &[log], |e| !markers(e, log).is_empty()).await;
    assert_eq!(mine.len(), 1, "only the marker is left: {mine:?}");
    assert!(mine[0].deleted);
    assert_eq!(u64::from(mine[0].event.index), removed);
}

pub async fn delete_markers_reach_subscriptions_through_event_type_filters<S: Subject>(
    store: Arc<S>,
) {
    let (gone, kept, later) = (LogId::new(), LogId::new(), LogId::new());
    let mut g = LogState::empty(gone);
    for n in 0..3 {
        g = write(&*store, g, "Deposited", n).await;
    }
    assert_eq!(store.delete(&gone).await.unwrap(), 3);
    let mut k = LogState::empty(kept);
    for n in 0..2 {
        k = write(&*store, k, "Withdrew", n).await;
    }
    let filter = FeedFilter::all()
        .with_logs([gone, kept, later])
        .with_event_types(["Withdrew"]);
    // With upcasters too: they leave a marker as it is.
    let chain = Upcasters::new().then(Upcast::new("credits").rename("Deposited", "Credited"));
    let mut running = [
        Running::start(&store, &name(), fast().with_filter(filter.clone())),
        Running::start(
            &store,
            &name(),
            fast().with_filter(filter).with_upcasters(chain),
        ),
    ];
    for subscriber in &mut running {
        let got = subscriber.receive(3).await;
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].deleted && got[0].log_id == gone, "{got:?}");
        assert!(got[1..].iter().all(|e| e.log_id == kept && !e.deleted));
    }
    // Live: a log of filtered-out events is created and deleted; only its marker arrives.
    let mut l = LogState::empty(later);
    for n in 0..2 {
        l = write(&*store, l, "Deposited", n).await;
    }
    assert_eq!(store.delete(&later).await.unwrap(), 2);
    write(&*store, k, "Withdrew", 2).await;
    for mut subscriber in running {
        let got = subscriber.receive(2).await;
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].deleted && got[0].log_id == later, "{got:?}");
        assert_eq!(got[0].event.index, 2);
        assert!(!got[1].deleted && got[1].log_id == kept);
        subscriber.stop().await.unwrap();
    }
}
