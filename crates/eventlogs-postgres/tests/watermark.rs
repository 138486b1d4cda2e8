//! The feed's watermark, one test per case of its argument (see `FeedWatermark`): each kind
//! of append caught in flight holds the feed back until it commits; a transaction that writes
//! events first holds it back too and is delivered whole; one that wrote elsewhere first
//! cannot insert events; transactions with an id that write no events, a transactional
//! subscriber's included, hold nothing back; a prepared transaction does.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    EventFeed, EventStore, FeedPosition, LogId, LogState,
};
use eventlogs_postgres::deadpool_postgres::Object;
use eventlogs_postgres::tokio_postgres::{self, error::SqlState};
use eventlogs_postgres::{FeedWatermark, PostgresEventStore};
use eventlogs_testkit::feed_suite::read_until;
use eventlogs_testkit::servers::{own_servers, PostgresServer};

async fn fresh() -> Option<PostgresEventStore> {
    common::fresh("wm").await
}

/// The same schema read with the watermark of earlier versions.
fn oldest_transaction(store: &PostgresEventStore) -> PostgresEventStore {
    PostgresEventStore::builder(store.config().url.clone())
        .schema(store.config().schema.clone())
        .feed_watermark(FeedWatermark::OldestTransaction)
        .build()
        .unwrap()
}

fn uuid(log: LogId) -> uuid::Uuid {
    uuid::Uuid::from_u128(log.to_u128())
}

fn event(kind: &str) -> NewEvent {
    NewEvent::from_json(format!(r#"{{"type":"{kind}"}}"#)).unwrap()
}

async fn append_one(store: &PostgresEventStore) -> LogId {
    let log = LogId::new();
    let request = AppendRequest::new(LogState::empty(log), vec![event("Plain")], None, None);
    store.append(&request).await.unwrap();
    log
}

/// A client, once the table `{schema}.orders` exists, with the statement that writes an order
/// and the one that writes an event (`$1` log id, `$2` index).
async fn with_orders(store: &PostgresEventStore) -> (Object, String, String) {
    let schema = &store.config().schema;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("CREATE TABLE {schema}.orders (x int)"))
        .await
        .unwrap();
    let order = format!("INSERT INTO {schema}.orders VALUES (1)");
    let event = format!(
        "INSERT INTO {schema}.events (log_id, event_index, payload) VALUES ($1, $2, '{{}}')"
    );
    (client, order, event)
}

/// Every event the feed has now, from the start.
async fn everything(store: &PostgresEventStore) -> Vec<LogId> {
    store
        .read_feed(FeedPosition::START, 1_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id)
        .collect()
}

/// The advisory lock key the gate trigger of this test's schema waits on (tests run in
/// parallel, each with a gate of its own).
fn gate_key(store: &PostgresEventStore) -> i64 {
    let name = &store.config().schema;
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Installs a trigger that makes an insert of a `{"type":"Gate"}` event wait, after its row is
/// written (so with a transaction id and its lock on `events`), until the test opens the gate.
async fn install_gate(store: &PostgresEventStore) {
    let schema = &store.config().schema;
    let gate = gate_key(store);
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.gate() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM pg_advisory_xact_lock_shared({gate}); RETURN NULL; END $$; \
             CREATE TRIGGER gate AFTER INSERT ON {schema}.events FOR EACH ROW \
             WHEN (NEW.payload ->> 'type' = 'Gate') EXECUTE FUNCTION {schema}.gate();"
        ))
        .await
        .unwrap();
}

/// Waits until some backend waits for the gate.
async fn someone_waits_at_the_gate(store: &PostgresEventStore) {
    let client = store.pool().get().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND ((classid::bigint << 32) | objid::bigint) = $1)",
                &[&gate_key(store)],
            )
            .await
            .unwrap()
            .get(0);
        if waiting {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the append never reached the gate"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Debug, Clone, Copy)]
enum Path {
    OneEvent,
    Batch,
    Keyed,
}

/// Catches an append of the given kind in flight (row written, not committed), commits
/// another append meanwhile, and checks the feed hands out neither until the first commits,
/// then both, in transaction order.
async fn an_append_in_flight_holds_the_feed_back(path: Path) {
    let Some(store) = fresh().await else { return };
    install_gate(&store).await;
    let gate = gate_key(&store);
    let gatekeeper = store.pool().get().await.unwrap();
    gatekeeper
        .execute("SELECT pg_advisory_lock($1)", &[&gate])
        .await
        .unwrap();
    let slow_log = LogId::new();
    let events = match path {
        Path::OneEvent | Path::Keyed => vec![event("Gate")],
        Path::Batch => vec![event("Plain"), event("Gate"), event("Plain")],
    };
    let key = matches!(path, Path::Keyed).then(|| "gate-key".to_owned());
    let request = AppendRequest::new(LogState::empty(slow_log), events, None, key);
    let slow = tokio::spawn({
        let store = store.clone();
        async move { store.append(&request).await }
    });
    someone_waits_at_the_gate(&store).await;
    let fast_log = append_one(&store).await;
    assert!(
        everything(&store).await.is_empty(),
        "{path:?}: a later commit is held back while the append is in flight"
    );
    gatekeeper
        .execute("SELECT pg_advisory_unlock($1)", &[&gate])
        .await
        .unwrap();
    slow.await.unwrap().unwrap();
    let feed: Arc<dyn EventFeed> = Arc::new(store.clone());
    let expected = match path {
        Path::OneEvent | Path::Keyed => 2,
        Path::Batch => 4,
    };
    let all = read_until(&feed, FeedPosition::START, 10, expected).await;
    let logs: Vec<LogId> = all.iter().map(|e| e.log_id).collect();
    let mut want = vec![slow_log; expected - 1];
    want.push(fast_log);
    assert_eq!(logs, want, "{path:?}: the append in flight comes first");
    common::drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_waits_for_a_one_event_append_in_flight() {
    an_append_in_flight_holds_the_feed_back(Path::OneEvent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_waits_for_a_batch_append_in_flight() {
    an_append_in_flight_holds_the_feed_back(Path::Batch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_waits_for_a_keyed_append_in_flight() {
    an_append_in_flight_holds_the_feed_back(Path::Keyed).await;
}

#[tokio::test]
async fn watermark_ignores_transactions_that_write_no_events() {
    let Some(store) = fresh().await else { return };
    let schema = store.config().schema.clone();
    let mut client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("CREATE TABLE {schema}.unrelated (x int)"))
        .await
        .unwrap();
    let open = client.transaction().await.unwrap();
    open.execute(&format!("INSERT INTO {schema}.unrelated VALUES (1)"), &[])
        .await
        .unwrap();
    // A reader of events that writes elsewhere holds nothing back either.
    open.query(&format!("SELECT count(*) FROM {schema}.events"), &[])
        .await
        .unwrap();
    let log = append_one(&store).await;
    assert_eq!(
        everything(&store).await,
        [log],
        "an unrelated open transaction holds nothing back"
    );
    let old = oldest_transaction(&store);
    assert!(
        everything(&old).await.is_empty(),
        "the oldest-transaction watermark is held back by it"
    );
    open.rollback().await.unwrap();
    // Any other test's open transaction on this server holds that watermark back too: wait.
    let old: Arc<dyn EventFeed> = Arc::new(old);
    let after = read_until(&old, FeedPosition::START, 10, 1).await;
    assert_eq!(after.iter().map(|e| e.log_id).collect::<Vec<_>>(), [log]);
    common::drop_schema(&store).await;
}

#[tokio::test]
async fn watermark_waits_for_a_transaction_that_wrote_events_first_and_delivers_it_whole() {
    let Some(store) = fresh().await else { return };
    let (mut client, order, insert) = with_orders(&store).await;
    let own = LogId::new();
    let tx = client.transaction().await.unwrap();
    tx.execute(&insert, &[&uuid(own), &0i64]).await.unwrap();
    tx.execute(&order, &[]).await.unwrap();
    // Events again after writing elsewhere: it has held its lock on events since before its id.
    tx.execute(&insert, &[&uuid(own), &1i64]).await.unwrap();
    let later = append_one(&store).await;
    assert!(
        everything(&store).await.is_empty(),
        "held back by the open event writer"
    );
    tx.commit().await.unwrap();
    assert_eq!(everything(&store).await, [own, own, later]);
    common::drop_schema(&store).await;
}

#[tokio::test]
async fn watermark_trigger_refuses_events_after_other_writes() {
    let Some(store) = fresh().await else { return };
    let schema = store.config().schema.clone();
    let (mut client, order, insert) = with_orders(&store).await;
    let refused = SqlState::from_code("EL001");
    for first in [order.clone(), "SELECT pg_current_xact_id()".to_owned()] {
        let tx = client.transaction().await.unwrap();
        tx.execute(&first, &[]).await.unwrap();
        let error: tokio_postgres::Error = tx
            .execute(&insert, &[&uuid(LogId::new()), &0i64])
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(&refused), "after `{first}`: {error:?}");
        tx.rollback().await.unwrap();
    }
    // The same through COPY.
    let tx = client.transaction().await.unwrap();
    tx.execute(&order, &[]).await.unwrap();
    let copy = tx
        .copy_in::<_, bytes::Bytes>(&format!(
            "COPY {schema}.events (log_id, event_index, payload) FROM STDIN"
        ))
        .await;
    let error = match copy {
        Err(error) => error,
        Ok(sink) => {
            use futures::SinkExt;
            let mut sink = Box::pin(sink);
            let row = format!("{}\t0\t{{}}\n", uuid(LogId::new()));
            let sent = sink.send(bytes::Bytes::from(row)).await;
            match sent {
                Err(error) => error,
                Ok(()) => sink.as_mut().finish().await.unwrap_err(),
            }
        }
    };
    assert_eq!(error.code(), Some(&refused), "COPY: {error:?}");
    drop(tx);
    assert!(everything(&store).await.is_empty(), "nothing was written");
    common::drop_schema(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_waits_for_a_prepared_transaction() {
    // On a server of its own, which allows two-phase commit (`max_prepared_transactions`).
    if !own_servers() {
        return;
    }
    let server = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let store = PostgresEventStore::builder(server.url())
        .schema("prepared")
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let client = store.pool().get().await.unwrap();
    let prepared = LogId::new();
    client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO prepared.events (log_id, event_index, payload) \
             VALUES ('{}', 0, '{{}}'); PREPARE TRANSACTION 'eventlogs-test'",
            uuid(prepared)
        ))
        .await
        .unwrap();
    let later = append_one(&store).await;
    let held = everything(&store).await;
    client
        .batch_execute("COMMIT PREPARED 'eventlogs-test'")
        .await
        .unwrap();
    assert!(held.is_empty(), "held back by the prepared transaction");
    assert_eq!(everything(&store).await, [prepared, later]);
}
