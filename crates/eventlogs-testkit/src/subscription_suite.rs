//! The subscription conformance suite: catch-up then live, resume, one consumer per name with
//! handover, filters, lag, handler failures and batch sizes.
//!
//! The factory must give a store with an empty feed and no subscriptions.

use std::sync::Arc;
use std::time::Duration;

use eventlogs_core::{
    backend::{AppendRequest, NewEvent, SubscriptionStore},
    BoxError, Error, EventFeed, EventStore, FeedEvent, FeedFilter, FeedPosition, InvalidInput,
    LogId, LogState, Subscription, SubscriptionHandle, SubscriptionName, SubscriptionOptions,
};
use tokio::sync::mpsc;

use crate::feed_suite::read_until;

/// What a subscription suite runs on: a store that is also the feed and keeps subscriptions.
pub trait Subject: SubscriptionStore + EventStore {}
impl<S: SubscriptionStore + EventStore> Subject for S {}

/// How long any one expected delivery may take.
const PATIENCE: Duration = Duration::from_secs(15);

/// Quick polling and claiming so tests stay short.
pub fn fast() -> SubscriptionOptions {
    SubscriptionOptions::default()
        .with_poll_interval(Duration::from_millis(50))
        .with_claim_interval(Duration::from_millis(50))
        .with_retry_backoff(Duration::from_millis(50))
}

/// Appends one event of type `kind` to `state`'s log.
pub async fn write<S: Subject>(store: &S, state: LogState, kind: &str, n: usize) -> LogState {
    let json = format!(r#"{{"type":"{kind}","n":{n}}}"#);
    let event = NewEvent::from_json(json).unwrap();
    store
        .append(&AppendRequest::new(state, vec![event], None, None))
        .await
        .unwrap()
        .state()
}

/// Writes `count` events round-robin over `logs`, all of type `kind`.
pub async fn write_many<S: Subject>(store: &S, logs: &mut [LogState], kind: &str, count: usize) {
    for n in 0..count {
        let slot = n % logs.len();
        logs[slot] = write(store, logs[slot], kind, n).await;
    }
}

fn new_logs(n: usize) -> Vec<LogState> {
    (0..n).map(|_| LogState::empty(LogId::new())).collect()
}

/// A subscription running in the background ([`Subscription::spawn`]), its batches arriving
/// on a channel.
pub struct Running {
    pub batches: mpsc::UnboundedReceiver<Vec<FeedEvent>>,
    pub handle: SubscriptionHandle,
}

impl Running {
    /// Starts `name` on `store` with at-least-once delivery into a channel.
    pub fn start<S: Subject>(store: &Arc<S>, name: &str, options: SubscriptionOptions) -> Self {
        let subscription = Subscription::new(Arc::clone(store), name, options).unwrap();
        let (tx, batches) = mpsc::unbounded_channel();
        let handle = subscription.spawn(move |events: Vec<FeedEvent>| {
            let tx = tx.clone();
            async move {
                tx.send(events)
                    .map_err(|_| BoxError::from("test receiver gone"))?;
                Ok(())
            }
        });
        Self { batches, handle }
    }

    /// Waits until it holds its name and reads the feed.
    pub async fn live(&mut self) {
        let live = tokio::time::timeout(PATIENCE, self.handle.live())
            .await
            .expect("the subscription did not go live");
        assert!(live, "the subscription ended before it went live");
    }

    /// Receives until `count` events arrived in total.
    pub async fn receive(&mut self, count: usize) -> Vec<FeedEvent> {
        let mut out = Vec::new();
        while out.len() < count {
            let batch = tokio::time::timeout(PATIENCE, self.batches.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {count} events arrived", out.len()))
                .expect("the subscription stopped");
            out.extend(batch);
        }
        out
    }

    /// Whether nothing arrives within `wait`.
    pub async fn stays_quiet(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.batches.recv())
            .await
            .is_err()
    }

    /// Stops it cleanly and returns how it ended.
    pub async fn stop(self) -> eventlogs_core::Result<()> {
        tokio::time::timeout(PATIENCE, self.handle.stop())
            .await
            .expect("the subscription did not stop")
    }

    /// Waits for it to end on its own and returns how.
    pub async fn join(self) -> eventlogs_core::Result<()> {
        tokio::time::timeout(PATIENCE, self.handle.join())
            .await
            .expect("the subscription did not end")
    }
}

fn name() -> String {
    format!("suite-{}", LogId::new().ulid())
}

fn positions(events: &[FeedEvent]) -> Vec<FeedPosition> {
    events.iter().map(|e| e.position).collect()
}

async fn whole_feed<S: Subject>(store: &Arc<S>, count: usize) -> Vec<FeedEvent> {
    let feed: Arc<dyn EventFeed> = Arc::clone(store) as Arc<dyn EventFeed>;
    read_until(&feed, FeedPosition::START, 100, count).await
}

pub async fn catches_up_then_follows_live<S: Subject>(store: Arc<S>) {
    let mut logs = new_logs(3);
    write_many(&*store, &mut logs, "Deposited", 30).await;
    let name = name();
    let mut running = Running::start(&store, &name, fast().with_batch_size(7));
    let mut received = running.receive(30).await;
    write_many(&*store, &mut logs, "Deposited", 20).await;
    received.extend(running.receive(20).await);
    running.stop().await.unwrap();
    let feed = whole_feed(&store, 50).await;
    assert_eq!(
        positions(&received),
        positions(&feed),
        "every event once, in feed order"
    );
    let name = SubscriptionName::new(name).unwrap();
    assert_eq!(store.checkpoint(&name).await.unwrap(), feed[49].position);
    let lag = store.lag(&name).await.unwrap();
    assert!(lag.is_caught_up(), "{lag:?}");
    assert_eq!(lag.behind, Duration::ZERO);
}

pub async fn resumes_from_its_checkpoint<S: Subject>(store: Arc<S>) {
    let mut logs = new_logs(2);
    write_many(&*store, &mut logs, "Deposited", 10).await;
    let name = name();
    let mut first = Running::start(&store, &name, fast().with_batch_size(4));
    let before = first.receive(10).await;
    first.stop().await.unwrap();
    write_many(&*store, &mut logs, "Deposited", 10).await;
    let mut second = Running::start(&store, &name, fast().with_batch_size(4));
    let after = second.receive(10).await;
    assert!(
        second.stays_quiet(Duration::from_millis(300)).await,
        "nothing is delivered twice"
    );
    second.stop().await.unwrap();
    let mut all = before;
    all.extend(after);
    assert_eq!(positions(&all), positions(&whole_feed(&store, 20).await));
}

pub async fn one_consumer_per_name_then_handover<S: Subject>(store: Arc<S>) {
    let name = name();
    let subscription = SubscriptionName::new(name.clone()).unwrap();
    let held = store
        .claim(&subscription)
        .await
        .unwrap()
        .expect("a free name");
    assert!(
        store.claim(&subscription).await.unwrap().is_none(),
        "a held name cannot be claimed twice"
    );
    drop(held);
    let again = store.claim(&subscription).await.unwrap();
    assert!(again.is_some(), "dropping a claim releases the name");
    drop(again);

    let mut a = Running::start(&store, &name, fast());
    a.live().await;
    assert!(a.handle.is_live());
    let mut b = Running::start(&store, &name, fast());
    let mut logs = new_logs(2);
    write_many(&*store, &mut logs, "Deposited", 10).await;
    let first = a.receive(10).await;
    assert!(
        b.stays_quiet(Duration::from_millis(400)).await,
        "the second consumer receives nothing while the first holds the name"
    );
    assert!(!b.handle.is_live(), "the standby is not live");
    a.stop().await.unwrap();
    b.live().await;
    write_many(&*store, &mut logs, "Deposited", 10).await;
    let rest = b.receive(10).await;
    b.stop().await.unwrap();
    let mut all = first;
    all.extend(rest);
    assert_eq!(positions(&all), positions(&whole_feed(&store, 20).await));
}

pub async fn filters_by_event_type_and_log<S: Subject>(store: Arc<S>) {
    let mut logs = new_logs(3);
    for n in 0..12 {
        let slot = n % 3;
        let kind = if n % 2 == 0 { "Deposited" } else { "Withdrew" };
        logs[slot] = write(&*store, logs[slot], kind, n).await;
    }
    let feed = whole_feed(&store, 12).await;

    let by_type = name();
    let filter = FeedFilter::all().with_event_types(["Withdrew"]);
    let mut running = Running::start(
        &store,
        &by_type,
        fast().with_batch_size(5).with_filter(filter),
    );
    let got = running.receive(6).await;
    assert!(running.stays_quiet(Duration::from_millis(300)).await);
    running.stop().await.unwrap();
    assert!(got
        .iter()
        .all(|e| e.event.event_type().as_deref() == Some("Withdrew")));
    let filtered = SubscriptionName::new(by_type).unwrap();
    assert_eq!(
        store.checkpoint(&filtered).await.unwrap(),
        feed[11].position,
        "skipped events are checkpointed too"
    );

    let log = logs[1].log_id();
    let by_log = name();
    let mut running = Running::start(
        &store,
        &by_log,
        fast().with_filter(FeedFilter::all().with_logs([log])),
    );
    let got = running.receive(4).await;
    assert!(running.stays_quiet(Duration::from_millis(300)).await);
    running.stop().await.unwrap();
    assert!(got.iter().all(|e| e.log_id == log));
    let indexes: Vec<u32> = got.iter().map(|e| e.event.index).collect();
    assert_eq!(indexes, vec![0, 1, 2, 3]);
}

pub async fn lag_counts_what_is_waiting<S: Subject>(store: Arc<S>) {
    let name = name();
    let subscription = SubscriptionName::new(name.clone()).unwrap();
    let lag = store.lag(&subscription).await.unwrap();
    assert_eq!(lag.checkpoint, FeedPosition::START);
    assert!(lag.is_caught_up());
    let mut logs = new_logs(2);
    write_many(&*store, &mut logs, "Deposited", 8).await;
    whole_feed(&store, 8).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let lag = store.lag(&subscription).await.unwrap();
    assert_eq!(lag.events, 8);
    assert!(lag.behind >= Duration::from_millis(150), "{lag:?}");
    assert!(lag.behind < Duration::from_secs(60), "{lag:?}");
    let mut running = Running::start(&store, &name, fast().with_batch_size(3));
    running.receive(8).await;
    running.stop().await.unwrap();
    let lag = store.lag(&subscription).await.unwrap();
    assert!(lag.is_caught_up(), "{lag:?}");
}

pub async fn a_failing_handler_stops_and_its_batch_is_redelivered<S: Subject>(store: Arc<S>) {
    let mut logs = new_logs(1);
    write_many(&*store, &mut logs, "Deposited", 5).await;
    whole_feed(&store, 5).await;
    let name = name();
    let subscription =
        Subscription::new(Arc::clone(&store), &name, fast().with_batch_size(3)).unwrap();
    let mut calls = 0;
    let outcome = subscription
        .run(
            |_events: Vec<FeedEvent>| {
                calls += 1;
                async move { Err::<(), BoxError>("read model is down".into()) }
            },
            std::future::pending(),
        )
        .await;
    assert_eq!(calls, 1);
    match outcome {
        Err(Error::Handler { subscription, .. }) => assert_eq!(subscription, name),
        other => panic!("expected a handler error, got {other:?}"),
    }
    assert_eq!(
        subscription.checkpoint().await.unwrap(),
        FeedPosition::START,
        "a failed batch is not checkpointed"
    );
    // In the background, the handle reports the same failure when joined.
    let failing = subscription.spawn(|_events: Vec<FeedEvent>| async move {
        Err::<(), BoxError>("read model is still down".into())
    });
    let joined = tokio::time::timeout(PATIENCE, failing.join())
        .await
        .expect("a failing subscription ends");
    assert!(matches!(joined, Err(Error::Handler { .. })), "{joined:?}");
    let mut running = Running::start(&store, &name, fast().with_batch_size(3));
    let got = running.receive(5).await;
    running.stop().await.unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(got[0].event.index, 0, "the failed batch comes again");
}

pub async fn a_dropped_handle_stops_the_subscription<S: Subject>(store: Arc<S>) {
    let name = name();
    let mut first = Running::start(&store, &name, fast());
    first.live().await;
    drop(first);
    // The name is free again: a second consumer goes live, and receives what is written.
    let mut second = Running::start(&store, &name, fast());
    second.live().await;
    let mut logs = new_logs(1);
    write_many(&*store, &mut logs, "Deposited", 3).await;
    assert_eq!(second.receive(3).await.len(), 3);
    second.stop().await.unwrap();
}

pub async fn batches_respect_the_batch_size<S: Subject>(store: Arc<S>) {
    let mut logs = new_logs(4);
    write_many(&*store, &mut logs, "Deposited", 23).await;
    whole_feed(&store, 23).await;
    let mut running = Running::start(&store, &name(), fast().with_batch_size(4));
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < 23 {
        let batch = tokio::time::timeout(PATIENCE, running.batches.recv())
            .await
            .unwrap()
            .unwrap();
        total += batch.len();
        sizes.push(batch.len());
    }
    running.stop().await.unwrap();
    assert!(sizes.iter().all(|s| (1..=4).contains(s)), "{sizes:?}");
    assert_eq!(total, 23);
}

pub async fn bad_names_and_options_are_refused<S: Subject>(store: Arc<S>) {
    let refused = |r: eventlogs_core::Result<Subscription<Arc<S>>>| match r {
        Err(Error::InvalidInput(InvalidInput::SubscriptionName(_) | InvalidInput::Config(_))) => {}
        other => panic!("expected invalid input, got {:?}", other.map(|_| ())),
    };
    refused(Subscription::new(Arc::clone(&store), "", fast()));
    refused(Subscription::new(Arc::clone(&store), "a b", fast()));
    refused(Subscription::new(
        Arc::clone(&store),
        "x",
        fast().with_batch_size(0),
    ));
    refused(Subscription::new(
        Arc::clone(&store),
        "x",
        fast().with_batch_size(10_001),
    ));
    refused(Subscription::new(
        Arc::clone(&store),
        "x",
        fast().with_poll_interval(Duration::ZERO),
    ));
}

pub async fn reset_replays_from_a_position_only_while_nobody_runs_it<S: Subject>(store: Arc<S>) {
    let mut logs = new_logs(2);
    write_many(&*store, &mut logs, "Deposited", 10).await;
    let name = name();
    let mut running = Running::start(&store, &name, fast().with_batch_size(4));
    let first = running.receive(10).await;
    let subscription = Subscription::new(Arc::clone(&store), &name, fast()).unwrap();
    let refused = subscription.reset(FeedPosition::START).await.unwrap_err();
    assert!(
        matches!(&refused, Error::SubscriptionRunning { subscription } if *subscription == name),
        "a running subscription is not reset: {refused:?}"
    );
    assert_ne!(
        subscription.checkpoint().await.unwrap(),
        FeedPosition::START,
        "the refused reset changed nothing (delivered batches stay checkpointed)"
    );
    running.stop().await.unwrap();
    subscription.reset(first[5].position).await.unwrap();
    assert_eq!(subscription.checkpoint().await.unwrap(), first[5].position);
    let mut again = Running::start(&store, &name, fast().with_batch_size(4));
    let replayed = again.receive(4).await;
    assert_eq!(positions(&replayed), positions(&first[6..]));
    again.stop().await.unwrap();
    subscription.reset(FeedPosition::START).await.unwrap();
    let mut rebuilt = Running::start(&store, &name, fast().with_batch_size(4));
    let all = rebuilt.receive(10).await;
    rebuilt.stop().await.unwrap();
    assert_eq!(positions(&all), positions(&first));
}

pub async fn a_reset_to_the_head_skips_history<S: Subject>(store: Arc<S>) {
    let mut logs = new_logs(2);
    write_many(&*store, &mut logs, "Deposited", 5).await;
    let history = whole_feed(&store, 5).await;
    let name = name();
    let subscription = Subscription::new(Arc::clone(&store), &name, fast()).unwrap();
    subscription
        .reset(store.head().await.unwrap())
        .await
        .unwrap();
    let mut running = Running::start(&store, &name, fast());
    write_many(&*store, &mut logs, "Withdrew", 3).await;
    let got = running.receive(3).await;
    assert!(running.stays_quiet(Duration::from_millis(300)).await);
    running.stop().await.unwrap();
    let all = whole_feed(&store, 8).await;
    assert_eq!(positions(&got), positions(&all[5..]));
    assert!(got.iter().all(|e| !history.contains(e)));
}
