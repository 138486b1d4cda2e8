//! Faults on a Citus cluster of the test's own: a worker SIGKILLed in the middle of a burst of
//! appends (with and without keys), and a paused worker. Every test name holds `citus`.
#![allow(clippy::unwrap_used)]

mod citus_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use citus_support::worker_of;
use eventlogs_core::{
    backend::{AppendRequest, NewEvent},
    Error, EventStore, LogId, LogState,
};
use eventlogs_postgres::PostgresEventStore;
use eventlogs_testkit::aggregates::Entry;
use eventlogs_testkit::assert_dense;
use eventlogs_testkit::servers::{citus_available, CitusCluster};

/// Whether this machine can start a Citus cluster; a skip message otherwise.
fn citus_here() -> bool {
    let here = citus_available();
    if !here {
        eprintln!(
            "skipping: no Citus here (install it for PostgreSQL, or build citusdata/citus:13.2)"
        );
    }
    here
}

async fn cluster() -> CitusCluster {
    tokio::task::spawn_blocking(CitusCluster::start)
        .await
        .unwrap()
        .unwrap()
}

/// The statement deadline of the kill test's store.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A distributed store on `cluster` with short deadlines, so faults show up quickly.
async fn store_on(cluster: &CitusCluster, statement_timeout: Duration) -> PostgresEventStore {
    let store = PostgresEventStore::builder(cluster.url())
        .schema("citus_faults")
        .distributed(true)
        .statement_timeout(statement_timeout)
        .connect_timeout(Duration::from_secs(1))
        .checkout_timeout(Duration::from_secs(2))
        .pool_size(24)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// Fresh logs grouped by the worker (index into `cluster.workers()`) that holds them.
async fn logs_by_worker(
    store: &PostgresEventStore,
    cluster: &CitusCluster,
    per_worker: usize,
) -> Vec<Vec<LogId>> {
    let names: Vec<(String, i32)> = cluster
        .workers()
        .iter()
        .map(|w| {
            let (host, port) = w.node_name();
            (host, i32::from(port))
        })
        .collect();
    let mut by_worker = vec![Vec::new(); names.len()];
    while by_worker.iter().any(|l| l.len() < per_worker) {
        let log = LogId::new();
        let holder = worker_of(store, &log).await;
        let at = names.iter().position(|n| *n == holder).unwrap();
        if by_worker[at].len() < per_worker {
            by_worker[at].push(log);
        }
    }
    by_worker
}

fn request(log: LogId, index: u64, amount: i64, key: Option<String>) -> AppendRequest {
    let event = NewEvent::new(&Entry::of(amount)).unwrap();
    AppendRequest::new(LogState::new(log, index), vec![event], None, key)
}

/// What the writers saw.
#[derive(Default)]
struct Record {
    /// Acknowledged appends: (log, index) → amount.
    acked: HashMap<(LogId, u32), i64>,
    /// Errors: the worker of the log, whether the write was keyed, the kind, retryable.
    errors: Vec<(usize, bool, eventlogs_core::ErrorKind, bool)>,
    /// When each worker's logs last got an append acknowledged.
    last_ack: HashMap<usize, Instant>,
    /// The slowest call to a log of each worker while the victim was down, keyless and keyed
    /// apart: (worker, keyed) → duration.
    slowest_during_outage: HashMap<(usize, bool), Duration>,
}

/// One writer owns `log` (on worker `worker`): it appends unique amounts one by one, retrying
/// a failed append with the same request (and key) until it is acknowledged or replayed.
async fn writer(
    store: Arc<PostgresEventStore>,
    log: LogId,
    worker: usize,
    keyed: bool,
    outage: Arc<Mutex<Option<Instant>>>,
    until: Instant,
    record: Arc<Mutex<Record>>,
) {
    let mut index = 0u64;
    let base = (worker as i64 + 1) * 1_000_000 + (LogId::new().to_u128() % 10_000) as i64 * 100;
    let mut amount = base;
    while Instant::now() < until {
        let key = keyed.then(|| format!("fault-{log}-{index}"));
        let started = Instant::now();
        let result = store.append(&request(log, index, amount, key)).await;
        let took = started.elapsed();
        if outage.lock().unwrap().is_some() {
            let mut rec = record.lock().unwrap();
            let slowest = rec
                .slowest_during_outage
                .entry((worker, keyed))
                .or_default();
            *slowest = (*slowest).max(took);
        }
        let acked = match result {
            Ok(_) | Err(Error::IdempotentReplay { .. }) => Ok(true),
            // Keyless: an earlier attempt of this very request committed before its reply
            // was lost; the amount at the index tells.
            Err(Error::ConcurrentAppend { .. }) if !keyed => {
                match store.load(&log, index as u32, 1).await {
                    Ok(page) if page.len() == 1 => {
                        let stored: Entry = serde_json::from_str(&page[0].payload).unwrap();
                        assert_eq!(stored.amount, amount, "index {index} of {log} was reused");
                        Ok(true)
                    }
                    Ok(_) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match acked {
            Ok(true) => {
                let mut rec = record.lock().unwrap();
                rec.acked.insert((log, index as u32), amount);
                rec.last_ack.insert(worker, Instant::now());
                drop(rec);
                index += 1;
                amount += 1;
            }
            Ok(false) => {}
            Err(e) => {
                record
                    .lock()
                    .unwrap()
                    .errors
                    .push((worker, keyed, e.kind(), e.is_retryable()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A worker SIGKILLed in the middle of a burst of appends with and without keys, then
/// restarted: nothing acknowledged is lost, no index is reused, no keyed write is half
/// written, every error is retryable, appends without a key to the other worker's logs never
/// stall (keyed ones end by their deadline: their key may live on the dead worker), and no
/// leftover prepared transaction blocks the restarted worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn citus_a_worker_killed_mid_burst_loses_nothing_and_stalls_no_other_worker() {
    if !citus_here() {
        return;
    }
    let mut cluster = cluster().await;
    let store = Arc::new(store_on(&cluster, STATEMENT_TIMEOUT).await);
    let logs = logs_by_worker(&store, &cluster, 6).await;
    let record = Arc::new(Mutex::new(Record::default()));
    let outage = Arc::new(Mutex::new(None));
    let until = Instant::now() + Duration::from_secs(9);
    let mut tasks = Vec::new();
    for (worker, worker_logs) in logs.iter().enumerate() {
        for (i, log) in worker_logs.iter().enumerate() {
            tasks.push(tokio::spawn(writer(
                Arc::clone(&store),
                *log,
                worker,
                i % 2 == 0,
                Arc::clone(&outage),
                until,
                Arc::clone(&record),
            )));
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = 0;
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.worker_mut(victim).kill());
    *outage.lock().unwrap() = Some(killed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    *outage.lock().unwrap() = None;
    let restarted = Instant::now();
    tokio::task::block_in_place(|| cluster.worker_mut(victim).restart()).unwrap();
    eprintln!("worker restarted in {:?}", restarted.elapsed());
    for task in tasks {
        task.await.unwrap();
    }

    let record = std::mem::take(&mut *record.lock().unwrap());
    let errors = &record.errors;
    assert!(
        errors.iter().all(|(_, _, _, retryable)| *retryable),
        "every error is retryable: {errors:?}"
    );
    let survivor_errors: Vec<_> = errors.iter().filter(|(w, ..)| *w != victim).collect();
    assert!(
        survivor_errors.iter().all(|(_, keyed, ..)| *keyed),
        "appends without a key to the other worker's logs never fail: {survivor_errors:?}"
    );
    let victim_back = record.last_ack.get(&victim).copied().unwrap();
    assert!(
        victim_back > restarted,
        "the restarted worker's logs take appends again"
    );
    eprintln!(
        "{} appends acknowledged; {} errors on the killed worker's logs, {} on the other's \
         (keyed writes whose key lives on the killed worker); slowest call during the outage \
         by (worker, keyed): {:?}",
        record.acked.len(),
        errors.len() - survivor_errors.len(),
        survivor_errors.len(),
        record.slowest_during_outage
    );
    // Appends without a key to the other worker's logs never stall. A keyed append to them
    // needs the key's worker too, which may be the dead one: it ends with a retryable error,
    // at once where the dead worker's port refuses connections (local processes), or at the
    // statement deadline where its address stops answering (a killed container).
    let slowest = |keyed: bool| {
        record
            .slowest_during_outage
            .get(&(1 - victim, keyed))
            .copied()
            .unwrap_or_default()
    };
    assert!(
        slowest(false) < Duration::from_secs(1),
        "appends without a key to the other worker's logs never stall: slowest {:?}",
        slowest(false)
    );
    assert!(
        slowest(true) < STATEMENT_TIMEOUT + Duration::from_secs(1),
        "keyed appends to the other worker's logs end by their deadline: slowest {:?}",
        slowest(true)
    );
    // Nothing acknowledged is lost, nothing is duplicated, every log is dense.
    let dyn_store: Arc<dyn EventStore> = Arc::clone(&store) as Arc<dyn EventStore>;
    let mut per_log: HashMap<LogId, usize> = HashMap::new();
    for log in logs.concat() {
        let events = assert_dense(&dyn_store, &log).await;
        for event in &events {
            if let Some(amount) = record.acked.get(&(log, event.index)) {
                let stored: Entry = serde_json::from_str(&event.payload).unwrap();
                assert_eq!(stored.amount, *amount, "{log} #{}", event.index);
            }
        }
        per_log.insert(log, events.len());
    }
    for (log, index) in record.acked.keys() {
        assert!(
            (*index as usize) < per_log[log],
            "acknowledged {log} #{index} is stored"
        );
    }
    // No keyed write is half written: every keyed event has its log's key record and its
    // key's claim, and every claim whose write committed has its events.
    let client = store.pool().get().await.unwrap();
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM citus_faults.events e WHERE e.idempotency_key IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM citus_faults.log_keys k WHERE k.log_id = e.log_id \
             AND k.key = e.idempotency_key AND k.state = 'done')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "keyed events without their log's key record");
    let done_without_events: i64 = client
        .query_one(
            "SELECT count(*) FROM citus_faults.log_keys k WHERE k.state = 'done' AND NOT EXISTS \
             (SELECT 1 FROM citus_faults.events e WHERE e.log_id = k.log_id \
             AND e.event_index = k.first_index AND e.idempotency_key = k.key)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(done_without_events, 0, "key records without their events");
    // The restarted worker holds no prepared transaction that could block a write.
    let victim_url = cluster.workers()[victim].url();
    let (worker_client, connection) = tokio_postgres::connect(&victim_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let prepared: i64 = worker_client
        .query_one("SELECT count(*) FROM pg_prepared_xacts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        prepared, 0,
        "no prepared transaction left on the restarted worker"
    );
}

/// A paused worker: appends to its logs end in a retryable `Timeout` within the statement
/// deadline, appends to the other worker's logs go on, and once resumed, a retry with the same
/// key is answered (written or replayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn citus_a_paused_worker_times_out_its_appends_and_spares_the_others() {
    if !citus_here() {
        return;
    }
    let cluster = cluster().await;
    let timeout = Duration::from_millis(500);
    let store = store_on(&cluster, timeout).await;
    let logs = logs_by_worker(&store, &cluster, 1).await;
    let (paused_log, other_log) = (logs[0][0], logs[1][0]);
    for log in [paused_log, other_log] {
        store.append(&request(log, 0, 1, None)).await.unwrap();
    }
    tokio::task::block_in_place(|| cluster.workers()[0].pause());
    let key = Some(format!("paused-{paused_log}"));
    let started = Instant::now();
    let err = store
        .append(&request(paused_log, 1, 2, key.clone()))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(took < timeout * 4, "bounded by the deadline: {took:?}");
    for i in 1..20 {
        store
            .append(&request(other_log, i, 100 + i as i64, None))
            .await
            .unwrap();
    }
    tokio::task::block_in_place(|| cluster.workers()[0].resume());
    // The retry resolves the timed-out attempt: its write committed (a replay), or it is
    // voided after the claim grace and written now.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.append(&request(paused_log, 1, 2, key.clone())).await {
            Ok(_) | Err(Error::IdempotentReplay { .. }) => break,
            Err(e) if e.is_retryable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("after resume: {e:?}"),
        }
    }
    let dyn_store: Arc<dyn EventStore> = Arc::new(store);
    assert_eq!(assert_dense(&dyn_store, &paused_log).await.len(), 2);
    assert_eq!(assert_dense(&dyn_store, &other_log).await.len(), 20);
}
