//! Metrics under `metrics-util`'s debugging recorder: writes, reduces, the Redis cache and a
//! subscription on PostgreSQL move the counters, gauges and histograms they should.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use eventlogs::postgres::PostgresEventStore;
use eventlogs::redis::RedisReductionCache;
use eventlogs::telemetry as names;
use eventlogs::{
    Aggregate, AppendOptions, BoxError, CacheReads, ErrorKind, EventFeed, EventRecord, FeedEvent,
    LogId, LogManager, Subscription, SubscriptionOptions,
};
use eventlogs_testkit::servers::{database_url, redis_url};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use serde::{Deserialize, Serialize};

/// The recorder of this test process, installed once.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().unwrap();
        snapshotter
    })
}

/// One metric: kind, name, labels and value (counters summed and histogram samples gathered
/// over every snapshot so far; gauges as last seen).
type Metric = (MetricKind, String, Vec<(String, String)>, Value);

#[derive(Clone, Debug)]
enum Value {
    Counter(u64),
    Gauge(f64),
    Histogram(Vec<f64>),
}

impl From<DebugValue> for Value {
    fn from(value: DebugValue) -> Self {
        match value {
            DebugValue::Counter(n) => Self::Counter(n),
            DebugValue::Gauge(v) => Self::Gauge(v.into_inner()),
            DebugValue::Histogram(v) => Self::Histogram(v.iter().map(|x| x.into_inner()).collect()),
        }
    }
}

/// Everything recorded in this process so far. A snapshot of the debugging recorder drains
/// counters and histograms, so snapshots are added up here.
#[derive(Clone)]
struct Seen(Vec<Metric>);

impl Seen {
    fn now() -> Self {
        static TOTALS: Mutex<Vec<Metric>> = Mutex::new(Vec::new());
        let mut totals = TOTALS.lock().unwrap();
        for (key, _, _, value) in snapshotter().snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let name = key.name().to_owned();
            let labels: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let same = totals
                .iter_mut()
                .find(|(k, n, l, _)| *k == kind && *n == name && *l == labels);
            match (same, Value::from(value)) {
                (Some((_, _, _, Value::Counter(total))), Value::Counter(n)) => *total += n,
                (Some((_, _, _, Value::Histogram(all))), Value::Histogram(more)) => {
                    all.extend(more);
                }
                (Some((_, _, _, last)), value) => *last = value,
                (None, value) => totals.push((kind, name, labels, value)),
            }
        }
        Self(totals.clone())
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Value> {
        self.0.iter().find_map(|(_, n, l, value)| {
            let matches = n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v));
            matches.then_some(value)
        })
    }

    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels) {
            Some(Value::Counter(n)) => *n,
            _ => 0,
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, labels) {
            Some(Value::Gauge(v)) => Some(*v),
            _ => None,
        }
    }

    fn samples(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.find(name, labels) {
            Some(Value::Histogram(v)) => v.clone(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Balance(i64);

impl Aggregate for Balance {
    type Event = Deposited;
    const NAME: &'static str = "metrics-balance";
    const VERSION: u32 = 1;

    fn apply(&mut self, record: &EventRecord<Deposited>) {
        self.0 += record.event.amount;
    }
}

/// A store on `schema`: one per test, so that the subscription's feed holds only its events.
async fn store(schema: &str) -> Option<PostgresEventStore> {
    let store = PostgresEventStore::builder(database_url()?)
        .schema(schema)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

#[tokio::test]
async fn metrics_count_writes_reduces_and_the_cache() {
    // Installs the recorder before anything is recorded.
    let before = Seen::now();
    let (Some(store), Some(redis)) = (store("eventlogs_metrics").await, redis_url()) else {
        return;
    };
    let cache = RedisReductionCache::builder(redis)
        .key_prefix(format!("metrics-{}", LogId::new()))
        .build()
        .await
        .unwrap();
    let logs: LogManager<Balance> = LogManager::builder(store)
        .cache(cache)
        .cache_reads(CacheReads::Always)
        .min_events_per_write(1)
        .build();
    let id = LogId::new();
    let opened = logs.create(&id, &Deposited { amount: 5 }).await.unwrap();
    let taken = logs
        .create(&id, &Deposited { amount: 1 })
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::ConcurrentAppend);
    let keyed = AppendOptions::new().with_idempotency_key(format!("deposit-{id}"));
    let two = [Deposited { amount: 2 }, Deposited { amount: 3 }];
    logs.append_with(&opened, &two, &keyed).await.unwrap();
    let replay = logs.append_with(&opened, &two, &keyed).await.unwrap_err();
    assert_eq!(replay.kind(), ErrorKind::IdempotentReplay);
    let cold = logs.reduce(&id).await.unwrap();
    logs.flush().await;
    let warm = logs.reduce(&id).await.unwrap();
    assert_eq!((cold.aggregate.0, warm.aggregate.0), (10, 10));
    let missing = logs.reduce(&LogId::new()).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::LogNotFound);

    let after = Seen::now();
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.counter(name, labels) - before.counter(name, labels)
    };
    let write = |op: &'static str, outcome: &'static str| [("op", op), ("outcome", outcome)];
    let writes = |op, outcome| {
        after
            .samples(names::APPEND_DURATION, &write(op, outcome))
            .len()
            - before
                .samples(names::APPEND_DURATION, &write(op, outcome))
                .len()
    };
    assert_eq!(writes("create", "ok"), 1);
    assert_eq!(writes("create", "concurrent_append"), 1);
    assert_eq!(writes("append", "ok"), 1);
    assert_eq!(writes("append", "idempotent_replay"), 1);
    assert_eq!(delta(names::APPENDED_EVENTS, &[("op", "create")]), 1);
    assert_eq!(delta(names::APPENDED_EVENTS, &[("op", "append")]), 2);
    let took = after.samples(
        names::APPEND_DURATION,
        &write("append", "idempotent_replay"),
    );
    assert_eq!(took.len(), 1);
    assert!(took[0] > 0.0 && took[0] < 60.0, "{took:?}");

    let reduces = |cache| {
        after
            .samples(names::REDUCE_DURATION, &[("cache", cache)])
            .len()
            - before
                .samples(names::REDUCE_DURATION, &[("cache", cache)])
                .len()
    };
    assert_eq!((reduces("miss"), reduces("hit")), (1, 1));
    assert_eq!(delta(names::REDUCE_ERRORS, &[("kind", "log_not_found")]), 1);
    // The cold reduce read all 3 events; the warm one only the cached entry's last event.
    assert_eq!(delta(names::REDUCE_EVENTS_READ, &[]), 3 + 1);
    assert_eq!(
        after
            .samples(names::REDUCE_DURATION, &[("cache", "hit")])
            .len(),
        1
    );
    assert_eq!(delta(names::CACHE_READS, &[("outcome", "hit")]), 1);
    // The cold reduce and the missing log.
    assert_eq!(delta(names::CACHE_READS, &[("outcome", "miss")]), 2);
    assert_eq!(delta(names::CACHE_WRITES, &[("outcome", "written")]), 1);
    assert_eq!(after.gauge(names::CACHE_WRITE_QUEUE, &[]), Some(0.0));
}

#[tokio::test]
async fn metrics_follow_a_subscription_to_the_head() {
    // Installed before anything is recorded: what comes before goes nowhere.
    snapshotter();
    let Some(store) = store("eventlogs_metrics_feed").await else {
        return;
    };
    let store = Arc::new(store);
    let name = format!("metrics-{}", LogId::new());
    let options = SubscriptionOptions::default()
        .with_batch_size(10)
        .with_poll_interval(Duration::from_millis(50));
    let subscription = Subscription::new(Arc::clone(&store), &name, options).unwrap();
    // From the head, so earlier runs' events are not this test's.
    subscription
        .reset(store.head().await.unwrap())
        .await
        .unwrap();
    let logs: LogManager<Balance> = LogManager::new(Arc::clone(&store));
    for _ in 0..3 {
        let events: Vec<Deposited> = (0..10).map(|amount| Deposited { amount }).collect();
        logs.create_with(&LogId::new(), &events, &AppendOptions::new())
            .await
            .unwrap();
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&seen);
    let handle = subscription.spawn(move |events: Vec<FeedEvent>| {
        let counted = Arc::clone(&counted);
        async move {
            counted.fetch_add(events.len(), Ordering::SeqCst);
            Ok::<(), BoxError>(())
        }
    });
    let label = [("subscription", name.as_str())];
    // Polls the recorder until the runner reports itself at the head after all 30 events.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let seen_all = loop {
        let now = Seen::now();
        let events = now.counter(names::SUBSCRIPTION_EVENTS, &label);
        if events == 30 && now.gauge(names::SUBSCRIPTION_LAG, &label) == Some(0.0) {
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{events} events reported, {} handled",
            seen.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    handle.stop().await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 30);
    let batches = seen_all.counter(names::SUBSCRIPTION_BATCHES, &label);
    assert_eq!(batches, 3, "30 events in batches of 10");
    let handled = seen_all.samples(names::SUBSCRIPTION_HANDLER_DURATION, &label);
    assert_eq!(handled.len(), 3, "one duration per batch");
    assert_eq!(seen_all.counter(names::SUBSCRIPTION_CLAIMS, &label), 1);
    assert_eq!(seen_all.counter(names::SUBSCRIPTION_HANDOVERS, &label), 0);
}
