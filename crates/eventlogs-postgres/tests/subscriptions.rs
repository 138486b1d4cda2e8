//! Subscriptions on PostgreSQL: the conformance suite, exactly-once delivery while 16 writers
//! hold transactions open, kills and restarts in both delivery modes, handover after a kill,
//! `LISTEN` wake-ups and a store on a pool it did not create.
#![allow(clippy::unwrap_used)]

mod common;

use common::received::{
    all_received, options, received_table, scalar, subscriber, Mode, DUPLICATES, OUT_OF_ORDER,
};

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{
    backend::{AppendRequest, NewEvent, SubscriptionStore},
    EventStore, LogId, LogState, SubscriptionName,
};
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::subscription_suite::Running;

async fn fresh() -> Option<Arc<PostgresEventStore>> {
    Some(Arc::new(common::fresh("subs").await?))
}

mod conformance {
    eventlogs_testkit::subscription_suite!(super::fresh());
}

/// A small deterministic generator for sizes and pauses.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn deposit() -> NewEvent {
    NewEvent::from_json(r#"{"type":"Deposited","amount":1}"#).unwrap()
}

/// Writes `per_writer` events from each of `writers` concurrent writers. Odd writers hold
/// each transaction open for up to `hold_ms` before committing, so their events commit
/// after later ones.
async fn write(store: &Arc<PostgresEventStore>, writers: u64, per_writer: usize, hold_ms: u64) {
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ ((w + 1) * 7919));
                let mut state = LogState::empty(LogId::new());
                let mut left = per_writer;
                while left > 0 {
                    let n = (1 + dice.roll(20) as usize).min(left);
                    let events: Vec<NewEvent> = (0..n).map(|_| deposit()).collect();
                    if w % 2 == 0 || hold_ms == 0 {
                        let request = AppendRequest::new(state, events, None, None);
                        state = store.append(&request).await.unwrap().state();
                    } else {
                        let mut client = store.pool().get().await.unwrap();
                        let tx = client.transaction().await.unwrap();
                        let log = uuid::Uuid::from_u128(LogId::new().to_u128());
                        let payloads: Vec<&str> = events.iter().map(NewEvent::json).collect();
                        let rows = tx
                            .query(
                                store.batch_append_sql(),
                                &[&log, &0i64, &payloads, &None::<&str>, &1i32],
                            )
                            .await
                            .unwrap();
                        assert_eq!(rows.len(), n);
                        tokio::time::sleep(Duration::from_millis(dice.roll(hold_ms))).await;
                        tx.commit().await.unwrap();
                    }
                    left -= n;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_holding_transactions_open_are_delivered_exactly_once_in_order() {
    let Some(store) = fresh().await else { return };
    received_table(&store).await;
    let (stop, task) = subscriber(&store, "exactly-once", Mode::Transactional, 1, options(500));
    let started = Instant::now();
    write(&store, 16, 6_250, 40).await;
    let written = started.elapsed();
    all_received(&store, 100_000).await;
    let caught_up = started.elapsed();
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert_eq!(scalar(&store, DUPLICATES).await, 0, "no event twice");
    assert_eq!(
        scalar(&store, "SELECT count(*) FROM {schema}.received").await,
        100_000
    );
    assert_eq!(
        scalar(&store, OUT_OF_ORDER).await,
        0,
        "received in feed order"
    );
    let lag = store
        .lag(&SubscriptionName::new("exactly-once").unwrap())
        .await
        .unwrap();
    assert!(lag.is_caught_up(), "{lag:?}");
    println!(
        "100,000 events from 16 writers in {written:?}; the subscriber had all of them, once each, after {caught_up:?}"
    );
}

/// The environment variable that makes [`subscriber_process`] run, with
/// `schema,name,mode,run`.
const CHILD: &str = "EVENTLOGS_TEST_SUBSCRIBER_PROCESS";

/// A recording subscriber in a process of its own, for the kill tests to SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started (and killed) by the kill tests"]
async fn subscriber_process() {
    let spec = std::env::var(CHILD).expect("started by a kill test");
    let parts: Vec<&str> = spec.split(',').collect();
    let [schema, name, mode, run] = parts[..] else {
        panic!("bad {CHILD}: {spec}")
    };
    let url = eventlogs_testkit::servers::database_url().unwrap();
    let store = Arc::new(
        PostgresEventStore::builder(url)
            .schema(schema)
            .build()
            .unwrap(),
    );
    let mode = if mode == "Transactional" {
        Mode::Transactional
    } else {
        Mode::AtLeastOnce
    };
    let (_stop, task) = subscriber(&store, name, mode, run.parse().unwrap(), options(50));
    task.await.unwrap().unwrap();
}

/// Starts [`subscriber_process`].
fn spawn_subscriber(store: &PostgresEventStore, name: &str, mode: Mode, run: i32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["subscriber_process", "--exact", "--ignored", "--nocapture"])
        .env(
            CHILD,
            format!("{},{name},{mode:?},{run}", store.config().schema),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGKILLs a subscriber process four times while writers run, restarting it each time.
async fn kill_and_restart(mode: Mode) {
    let Some(store) = fresh().await else { return };
    received_table(&store).await;
    let name = format!("killed-{mode:?}").to_lowercase();
    let subscription = SubscriptionName::new(name.clone()).unwrap();
    let batch = 50;
    let writers = tokio::spawn({
        let store = Arc::clone(&store);
        async move { write(&store, 8, 2_500, 20).await }
    });
    let mut dice = Dice(42);
    let mut checkpoints = Vec::new();
    for run in 1..=4 {
        let mut child = spawn_subscriber(&store, &name, mode, run);
        // Let it start consuming, then kill it at a random moment.
        let started = Instant::now();
        let delivered = format!("SELECT count(*) FROM {{schema}}.received WHERE run = {run}");
        while scalar(&store, &delivered).await == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "run {run} never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(100 + dice.roll(500))).await;
        child.kill().unwrap();
        child.wait().unwrap();
        // Once the name can be claimed, the killed session is gone, and with it any
        // checkpoint it was writing: what is stored now is what was acknowledged.
        while store.claim(&subscription).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let checkpoint = store.checkpoint(&subscription).await.unwrap();
        checkpoints.push((run, checkpoint));
    }
    writers.await.unwrap();
    let (stop, task) = subscriber(&store, &name, mode, 5, options(batch));
    all_received(&store, 20_000).await;
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    let received = scalar(&store, "SELECT count(*) FROM {schema}.received").await;
    let duplicates = scalar(&store, DUPLICATES).await;
    println!("{mode:?}: 20,000 events, {received} deliveries, {duplicates} duplicates, checkpoints at the kills {checkpoints:?}");
    if mode == Mode::Transactional {
        assert_eq!(
            duplicates, 0,
            "transactional delivery never repeats an event"
        );
        return;
    }
    // Every duplicate was delivered by a killed run after that run's last checkpoint, and
    // each killed run left at most one batch unacknowledged.
    let client = store.pool().get().await.unwrap();
    let schema = &store.config().schema;
    let mut unacknowledged = 0;
    for (run, at) in &checkpoints {
        let rows = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM {schema}.received WHERE run = $1 \
                     AND (tx, pos) > ($2::text::xid8, $3::bigint)"
                ),
                &[run, &at.transaction.to_string(), &(at.sequence as i64)],
            )
            .await
            .unwrap();
        let after: i64 = rows.get(0);
        assert!(
            after <= i64::from(batch),
            "run {run} left {after} events unacknowledged"
        );
        unacknowledged += after;
    }
    assert!(
        duplicates <= unacknowledged,
        "{duplicates} duplicates, {unacknowledged} unacknowledged"
    );
    let unexplained = scalar(
        &store,
        "SELECT count(*) FROM {schema}.received r WHERE EXISTS (SELECT 1 FROM {schema}.received o \
         WHERE o.log_id = r.log_id AND o.event_index = r.event_index AND o.seq < r.seq) \
         AND NOT EXISTS (SELECT 1 FROM {schema}.received o WHERE o.log_id = r.log_id \
         AND o.event_index = r.event_index AND o.seq < r.seq AND o.run < r.run)",
    )
    .await;
    assert_eq!(
        unexplained, 0,
        "a run never repeats what it delivered itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_at_least_once_subscriber_repeats_at_most_its_last_batch() {
    kill_and_restart(Mode::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_transactional_subscriber_repeats_nothing() {
    kill_and_restart(Mode::Transactional).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_consumer_takes_over_when_the_active_one_is_killed() {
    let Some(store) = fresh().await else { return };
    received_table(&store).await;
    let (_a_stop, a) = subscriber(&store, "handover", Mode::Transactional, 1, options(100));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (b_stop, b) = subscriber(&store, "handover", Mode::Transactional, 2, options(100));
    write(&store, 4, 500, 10).await;
    all_received(&store, 2_000).await;
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM {schema}.received WHERE run = 2"
        )
        .await,
        0,
        "the standby receives nothing while the first consumer holds the name"
    );
    a.abort();
    let _ = a.await;
    write(&store, 4, 500, 10).await;
    all_received(&store, 4_000).await;
    b_stop.send(()).unwrap();
    b.await.unwrap().unwrap();
    assert_eq!(
        scalar(
            &store,
            "SELECT count(*) FROM {schema}.received WHERE run = 2"
        )
        .await,
        2_000,
        "the standby took over"
    );
    assert_eq!(scalar(&store, DUPLICATES).await, 0);
    assert_eq!(scalar(&store, OUT_OF_ORDER).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_wake_a_listening_subscriber_without_polling() {
    let Some(store) = fresh().await else { return };
    // A second store on the same schema that announces nothing.
    let quiet = PostgresEventStore::builder(store.config().url.clone())
        .schema(store.config().schema.clone())
        .notify_interval(None)
        .build()
        .unwrap();
    let slow_polling = options(100).with_poll_interval(Duration::from_secs(60));
    let mut running = Running::start(&store, "woken", slow_polling);
    running.live().await;
    // For its first 1.2 s a new listener polls every 25 ms (writers may not have noticed it
    // yet); after that it waits for wake-ups.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let request = AppendRequest::new(LogState::empty(LogId::new()), vec![deposit()], None, None);
    quiet.append(&request).await.unwrap();
    assert!(
        running.stays_quiet(Duration::from_millis(1_000)).await,
        "an append nobody announced waits for the poll"
    );
    let request = AppendRequest::new(LogState::empty(LogId::new()), vec![deposit()], None, None);
    let sent = Instant::now();
    store.append(&request).await.unwrap();
    let got = running.receive(2).await;
    let latency = sent.elapsed();
    running.stop().await.unwrap();
    assert_eq!(got.len(), 2, "the announced append brings both");
    assert!(latency < Duration::from_secs(5), "woken after {latency:?}");
    println!("woken {latency:?} after the append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_on_an_existing_pool_subscribes_by_polling() {
    let Some(owned) = fresh().await else { return };
    let mut config = eventlogs_postgres::deadpool_postgres::Config::new();
    config.url = Some(owned.config().url.clone());
    let pool = config
        .create_pool(
            Some(eventlogs_postgres::deadpool_postgres::Runtime::Tokio1),
            eventlogs_postgres::tokio_postgres::NoTls,
        )
        .unwrap();
    let store = Arc::new(
        PostgresEventStore::from_pool(pool)
            .schema(owned.config().schema.clone())
            .build()
            .unwrap(),
    );
    let mut running = Running::start(
        &store,
        "pooled",
        options(10).with_poll_interval(Duration::from_millis(100)),
    );
    let mut state = LogState::empty(LogId::new());
    for _ in 0..25 {
        let request = AppendRequest::new(state, vec![deposit()], None, None);
        state = store.append(&request).await.unwrap().state();
    }
    let got = running.receive(25).await;
    let second = store
        .claim(&SubscriptionName::new("pooled").unwrap())
        .await
        .unwrap();
    assert!(second.is_none(), "the pooled claim holds the lock");
    running.stop().await.unwrap();
    let indexes: Vec<u32> = got.iter().map(|e| e.event.index).collect();
    assert_eq!(indexes, (0..25).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wake_up_held_back_by_an_open_transaction_is_retried_without_waiting_for_the_poll() {
    let Some(store) = fresh().await else { return };
    let slow_polling = options(100).with_poll_interval(Duration::from_secs(60));
    let mut running = Running::start(&store, "held-back", slow_polling);
    running.live().await;
    // Past the new listener's first 1.2 s of brisk polling, so only the held-back retry can
    // bring the event before the 60-s poll.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // A transaction that wrote an event and stays open holds the feed back.
    let mut other = store.pool().get().await.unwrap();
    let open = other.transaction().await.unwrap();
    let schema = &store.config().schema;
    open.execute(
        &format!("INSERT INTO {schema}.events (log_id, event_index, payload) VALUES ($1, 0, '1')"),
        &[&uuid::Uuid::from_u128(LogId::new().to_u128())],
    )
    .await
    .unwrap();
    let request = AppendRequest::new(LogState::empty(LogId::new()), vec![deposit()], None, None);
    store.append(&request).await.unwrap();
    assert!(
        running.stays_quiet(Duration::from_millis(400)).await,
        "held back behind the open transaction"
    );
    let lag = store
        .lag(&SubscriptionName::new("held-back").unwrap())
        .await
        .unwrap();
    assert!(lag.estimated);
    assert_eq!(
        lag.events, 2,
        "the estimate counts the positions drawn since the checkpoint, the open transaction's too"
    );
    let released = Instant::now();
    open.commit().await.unwrap();
    running.receive(2).await;
    let latency = released.elapsed();
    running.stop().await.unwrap();
    assert!(
        latency < Duration::from_secs(5),
        "delivered {latency:?} after the commit"
    );
    println!("delivered {latency:?} after the blocking transaction ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_send_no_wake_up_while_nobody_listens() {
    use eventlogs_postgres::tokio_postgres::{self, AsyncMessage, NoTls};
    use futures::StreamExt;

    let Some(store) = fresh().await else { return };
    let schema = store.config().schema.clone();
    // A connection that receives the schema's wake-ups but does not (yet) say it listens.
    let (client, mut connection) = tokio_postgres::connect(&store.config().url, NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(_) = message {
                let _ = tx.send(Instant::now());
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN eventlogs_{schema}"))
        .await
        .unwrap();
    // Forty appends paced over half a second: announced, they would make a dozen wake-ups.
    let mut pace = tokio::time::interval(Duration::from_millis(12));
    for _ in 0..40 {
        pace.tick().await;
        let request =
            AppendRequest::new(LogState::empty(LogId::new()), vec![deposit()], None, None);
        store.append(&request).await.unwrap();
    }
    // Now it says it listens, as a subscription's claim does; appends are announced again
    // once the store looks (at most a second later).
    let said = Instant::now();
    client
        .execute(
            "SELECT pg_advisory_lock_shared(hashtextextended($1, 0))",
            &[&format!("eventlogs.listeners.{schema}")],
        )
        .await
        .unwrap();
    let first = loop {
        let request =
            AppendRequest::new(LogState::empty(LogId::new()), vec![deposit()], None, None);
        store.append(&request).await.unwrap();
        if let Ok(Some(at)) = tokio::time::timeout(Duration::from_millis(50), rx.recv()).await {
            break at;
        }
        assert!(said.elapsed() < Duration::from_secs(5), "never announced");
    };
    assert!(first >= said, "a wake-up arrived before anyone listened");
    let mut early = 0;
    while let Ok(at) = rx.try_recv() {
        if at < said {
            early += 1;
        }
    }
    assert_eq!(early, 0, "no wake-up while nobody listened");
    println!("first wake-up {:?} after a listener appeared", first - said);
}

#[tokio::test]
async fn a_new_listener_polls_until_writers_can_have_noticed_it() {
    use eventlogs_core::backend::SubscriptionClaim;

    let Some(store) = fresh().await else { return };
    let name = SubscriptionName::new("new-listener").unwrap();
    let mut claim = store.claim(&name).await.unwrap().unwrap();
    // Writers look for listeners at most once a second, so a wake-up may not come for that
    // long: a new claim's wait returns soon instead, and the subscription reads again.
    let started = Instant::now();
    let woken = tokio::time::timeout(Duration::from_secs(5), claim.wait(Duration::from_secs(60)))
        .await
        .expect("a new listener's wait is short")
        .unwrap();
    assert!(!woken);
    assert!(started.elapsed() < Duration::from_secs(1));
    claim.release().await;
}
