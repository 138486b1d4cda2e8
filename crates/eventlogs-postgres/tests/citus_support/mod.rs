//! Connecting the Citus tests to a cluster: the shared one `cargo xtask test` provides, or one
//! of a test's own; and finding which worker holds a log.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use eventlogs_core::LogId;
use eventlogs_postgres::PostgresEventStore;

/// The schema the shared-cluster tests use (they isolate by fresh log ids and keys).
pub(crate) const SCHEMA: &str = "eventlogs_citus";

/// A distributed, migrated store on the shared cluster (`EVENTLOGS_CITUS_URL`), or `None`
/// (skip).
pub(crate) async fn shared_store() -> Option<PostgresEventStore> {
    let url = eventlogs_testkit::servers::citus_url()?;
    Some(distributed_store(&url, SCHEMA).await)
}

/// A store on the coordinator at `url` whose `migrate` distributes `schema`, migrated.
pub(crate) async fn distributed_store(url: &str, schema: &str) -> PostgresEventStore {
    let store = PostgresEventStore::builder(url)
        .schema(schema)
        .distributed(true)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// The worker (host, port as the coordinator knows it) holding `log`'s shard of `events`.
pub(crate) async fn worker_of(store: &PostgresEventStore, log: &LogId) -> (String, i32) {
    let client = store.pool().get().await.unwrap();
    let table = format!("{}.events", store.config().schema);
    let row = client
        .query_one(
            "SELECT nodename::text, nodeport::int FROM citus_shards \
             WHERE table_name = $1::text::regclass \
             AND shardid = get_shard_id_for_distribution_column($1::text::regclass, $2::uuid)",
            &[&table, &uuid::Uuid::from_u128(log.to_u128())],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// `per_worker` fresh log ids for each worker, grouped by worker (in node order).
pub(crate) async fn logs_on_each_worker(
    store: &PostgresEventStore,
    per_worker: usize,
) -> Vec<Vec<LogId>> {
    let mut by_worker: BTreeMap<(String, i32), Vec<LogId>> = BTreeMap::new();
    for _ in 0..10_000 {
        let log = LogId::new();
        let slot = by_worker.entry(worker_of(store, &log).await).or_default();
        if slot.len() < per_worker {
            slot.push(log);
        }
        if by_worker.len() >= 2 && by_worker.values().all(|l| l.len() == per_worker) {
            break;
        }
    }
    assert!(
        by_worker.len() >= 2,
        "the cluster has two workers: {by_worker:?}"
    );
    by_worker.into_values().collect()
}
