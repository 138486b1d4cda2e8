//! PostgreSQL-specific promises: heavy contention, the u32 edge, migrations, construction.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    Error, EventStore, InvalidInput, LogId, LogManager, LogState,
};
use eventlogs_fake::FakeReductionCache;
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::aggregates::{Entry, Tally};
use eventlogs_testkit::{assert_dense, fold_from_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_contending_writers_lose_and_duplicate_nothing() {
    const WRITERS: i64 = 64;
    const EACH: i64 = 100;
    let Some(store) = common::store().await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(store);
    let logs: LogManager<Tally> = LogManager::builder(Arc::clone(&store))
        .cache(FakeReductionCache::new())
        .build();
    let log = LogId::new();
    logs.create(&log, &Entry::of(0)).await.unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let logs = logs.clone();
            tokio::spawn(async move {
                let (mut attempts, mut conflicts) = (0u64, 0u64);
                for i in 0..EACH {
                    loop {
                        attempts += 1;
                        let state = logs.reduce(&log).await.unwrap().state();
                        match logs.append(&state, &Entry::of(w * 1_000 + i)).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => {
                                conflicts += 1;
                                // Back off a little so the winner's successors are not starved.
                                tokio::time::sleep(Duration::from_micros(200 * (conflicts % 8)))
                                    .await;
                            }
                            Err(e) => panic!("unexpected {e:?}"),
                        }
                    }
                }
                (attempts, conflicts)
            })
        })
        .collect();
    let (mut attempts, mut conflicts) = (0, 0);
    for t in tasks {
        let (a, c) = t.await.unwrap();
        attempts += a;
        conflicts += c;
    }
    let events = assert_dense(&store, &log).await;
    assert_eq!(
        events.len() as i64,
        WRITERS * EACH + 1,
        "exactly 6,400 appended events plus the first"
    );
    let reference: Tally = fold_from_store(&store, &log).await;
    let expected: i64 = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |i| w * 1_000 + i))
        .sum();
    assert_eq!((reference.sum, reference.out_of_order), (expected, 0));
    let reduced = logs.reduce(&log).await.unwrap();
    assert_eq!(reduced.aggregate, reference);
    assert_eq!(reduced.state().next_index(), 6_401);
    eprintln!(
        "64 writers x 100 appends: {} wins, {attempts} attempts, {conflicts} conflicts, 0 lost, 0 duplicated, {:?}",
        WRITERS * EACH,
        started.elapsed()
    );
}

#[tokio::test]
async fn u32_max_is_the_last_index_a_log_holds() {
    let Some(store) = common::store().await else {
        return;
    };
    let log = LogId::new();
    let client = store.pool().get().await.unwrap();
    let uuid = uuid::Uuid::from_u128(log.to_u128());
    // Seed the end of a very long log directly (4 billion rows are not needed to test the edge).
    let insert = format!(
        "INSERT INTO {}.events (log_id, event_index, payload) VALUES ($1, $2, '{{\"amount\":1,\"note\":\"\"}}')",
        common::SCHEMA
    );
    client
        .execute(&insert, &[&uuid, &(i64::from(u32::MAX) - 1)])
        .await
        .unwrap();
    let over = client
        .execute(&insert, &[&uuid, &(i64::from(u32::MAX) + 1)])
        .await;
    assert!(
        over.is_err(),
        "the table itself refuses an index past u32::MAX"
    );
    let event = || vec![NewEvent::new(&Entry::of(1)).unwrap()];
    let at_max = LogState::new(log, u64::from(u32::MAX));
    let written = store
        .append(&AppendRequest::new(at_max, event(), None, None))
        .await
        .unwrap();
    assert_eq!(written.first_index, u32::MAX);
    assert_eq!(written.state().next_index(), u64::from(u32::MAX) + 1);
    let err = store
        .append(&AppendRequest::new(written.state(), event(), None, None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LogFull { .. }), "{err:?}");
    let tail = store.load(&log, u32::MAX - 1, 10).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.index).collect::<Vec<_>>(),
        [u32::MAX - 1, u32::MAX]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_run_twice_and_concurrently() {
    let Some(url) = eventlogs_testkit::servers::database_url() else {
        return;
    };
    let schema = format!(
        "migrate_{}",
        LogId::new().to_string().to_lowercase().replace("log_", "")
    );
    let stores: Vec<PostgresEventStore> = (0..4)
        .map(|_| {
            PostgresEventStore::builder(url.clone())
                .schema(schema.clone())
                .pool_size(2)
                .build()
                .unwrap()
        })
        .collect();
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    stores[0].migrate().await.unwrap();
    let client = stores[0].pool().get().await.unwrap();
    let versions: Vec<i32> = client
        .query(
            &format!("SELECT version FROM {schema}.schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let expected: Vec<i32> = eventlogs_postgres::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, expected, "each migration recorded once");
    let log = LogId::new();
    let req = AppendRequest::new(
        LogState::empty(log),
        vec![NewEvent::new(&1).unwrap()],
        None,
        None,
    );
    stores[1].append(&req).await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// Captured `fmt` output of a current-thread test.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On a current-thread runtime, the spans of `migrate` and of a subscription claim tag only
/// their own events: a span entered across an `.await` would also tag every other task's.
#[tokio::test(flavor = "current_thread")]
async fn migrate_and_claim_spans_tag_only_their_own_events() {
    use eventlogs_core::{backend::SubscriptionStore, SubscriptionName};
    let Some(url) = eventlogs_testkit::servers::database_url() else {
        return;
    };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = tokio::spawn({
        let done = Arc::clone(&done);
        async move {
            let mut ticks = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                ticks += 1;
                tracing::info!(ticks, "unrelated task");
                tokio::task::yield_now().await;
            }
            ticks
        }
    });
    let schema = format!("spans_{}", LogId::new().ulid().to_string().to_lowercase());
    let store = PostgresEventStore::builder(url)
        .schema(schema.clone())
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let name = SubscriptionName::new("spans").unwrap();
    let claim = store.claim(&name).await.unwrap();
    assert!(claim.is_some());
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let ticks = other.await.unwrap();
    drop(claim);
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let unrelated: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("unrelated task"))
        .collect();
    assert!(
        ticks > 1 && !unrelated.is_empty(),
        "the other task ran meanwhile"
    );
    for line in unrelated {
        assert!(
            !line.contains("eventlogs.postgres"),
            "another task's event was tagged with our span: {line}"
        );
    }
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_store_on_an_existing_pool_works_and_an_unmigrated_schema_is_a_config_error() {
    let Some(store) = common::store().await else {
        return;
    };
    let shared = PostgresEventStore::from_pool(store.pool().clone())
        .schema(common::SCHEMA)
        .build()
        .unwrap();
    let log = LogId::new();
    let req = AppendRequest::new(
        LogState::empty(log),
        vec![NewEvent::new(&7).unwrap()],
        None,
        None,
    );
    shared.append(&req).await.unwrap();
    assert_eq!(store.load(&log, 0, 1).await.unwrap().len(), 1);
    let missing = PostgresEventStore::from_pool(store.pool().clone())
        .schema("never_migrated")
        .build()
        .unwrap();
    let err = missing.append(&req).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(InvalidInput::Config(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn requests_are_checked_before_anything_is_sent() {
    // Nothing listens on port 1: any network use would fail with Unavailable or Timeout.
    let store = PostgresEventStore::builder("postgres://app:s3cret@127.0.0.1:1/none")
        .build()
        .unwrap();
    let huge = NewEvent::new(&"x".repeat(store.config().limits.max_event_bytes() + 1)).unwrap();
    let req = AppendRequest::new(LogState::empty(LogId::new()), vec![huge], None, None);
    let err = store.append(&req).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(InvalidInput::EventTooLarge { .. })),
        "{err:?}"
    );
    let unreachable = store.load(&LogId::new(), 0, 1).await.unwrap_err();
    assert!(unreachable.is_retryable(), "{unreachable:?}");
    for shown in [
        format!("{store:?}"),
        format!("{unreachable:?}"),
        unreachable.to_string(),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

/// Peak resident memory of this process in KiB (nextest runs each test in its own process).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn reducing_a_long_log_holds_a_bounded_number_of_events() {
    const EVENTS: i64 = 200_000;
    let Some(store) = common::store().await else {
        return;
    };
    let log = LogId::new();
    let client = store.pool().get().await.unwrap();
    // About 60 MB of JSON in all: far more than the bound asserted below.
    let seed = format!(
        "INSERT INTO {}.events (log_id, event_index, payload) \
         SELECT $1, g, jsonb_build_object('amount', 1, 'note', repeat('n', 300)) FROM generate_series(0::bigint, $2::bigint - 1) g",
        common::SCHEMA
    );
    client
        .execute(&seed, &[&uuid::Uuid::from_u128(log.to_u128()), &EVENTS])
        .await
        .unwrap();
    drop(client);
    let logs: LogManager<Tally> = LogManager::new(store);
    let before = peak_rss_kib();
    let reduced = logs.reduce(&log).await.unwrap();
    let grown_mib = (peak_rss_kib().saturating_sub(before)) as f64 / 1024.0;
    assert_eq!(reduced.aggregate.count, EVENTS as u64);
    assert_eq!(reduced.aggregate.out_of_order, 0);
    eprintln!("reduce of {EVENTS} events grew the peak RSS by {grown_mib:.1} MiB");
    assert!(
        grown_mib < 16.0,
        "reduce buffered the log: peak RSS grew {grown_mib:.1} MiB"
    );
}

#[tokio::test]
async fn an_exhausted_pool_is_a_retryable_timeout_and_recovers() {
    use futures::StreamExt;
    let Some(url) = eventlogs_testkit::servers::database_url() else {
        return;
    };
    let store = PostgresEventStore::builder(url)
        .schema(common::SCHEMA)
        .pool_size(1)
        .checkout_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let log = LogId::new();
    let req = AppendRequest::new(
        LogState::empty(log),
        vec![NewEvent::new(&Entry::of(1)).unwrap(); 3],
        None,
        None,
    );
    store.append(&req).await.unwrap();
    // An open stream holds the only connection.
    let mut open = store.stream(&log, 0).await.unwrap();
    assert!(open.next().await.unwrap().is_ok());
    let started = Instant::now();
    let err = store.load(&log, 0, 10).await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { .. }) && err.is_retryable(),
        "{err:?}"
    );
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    drop(open);
    assert_eq!(
        store.load(&log, 0, 10).await.unwrap().len(),
        3,
        "the connection came back to the pool"
    );
    assert_eq!(store.pool().status().size, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_based_sequences_with_random_cache_faults() {
    use eventlogs_fake::{CacheFault, FakeReductionCache};
    let Some(store) = common::store().await else {
        return;
    };
    let cache = Arc::new(FakeReductionCache::new());
    let faults = Arc::clone(&cache);
    let inject: eventlogs_testkit::model::FaultInjector = Arc::new(move |kind| {
        faults.set_fault(match kind {
            1 => Some(CacheFault::Fail),
            2 => Some(CacheFault::Delay(Duration::from_millis(60))),
            3 => Some(CacheFault::Corrupt),
            4 => Some(CacheFault::Foreign),
            _ => None,
        })
    });
    let pair: eventlogs_testkit::manager_suite::Pair = (Arc::new(store), cache);
    eventlogs_testkit::model::check_with_faults(pair, inject).await;
}
