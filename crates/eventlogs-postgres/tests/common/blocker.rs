//! Holding appends back on the server: a transaction elsewhere with an uncommitted event, so
//! an append to the same log and index waits for it, and the store's queue fills meanwhile.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use eventlogs_core::LogId;
use eventlogs_postgres::deadpool_postgres::{Object, Pool};
use eventlogs_postgres::PostgresEventStore;

/// A transaction holding an uncommitted event at `index` of `log`.
pub(crate) struct Blocker {
    client: Object,
    observer: Object,
    pid: i32,
    /// The log it holds.
    pub(crate) log: LogId,
}

impl Blocker {
    /// Opens the transaction on a connection of `pool`, whose database holds `schema`.
    pub(crate) async fn hold(pool: &Pool, schema: &str, log: LogId, index: i64) -> Self {
        let client = pool.get().await.unwrap();
        let observer = pool.get().await.unwrap();
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        client.batch_execute("BEGIN").await.unwrap();
        client
            .execute(
                &format!(
                    "INSERT INTO {schema}.events (log_id, event_index, payload) VALUES ($1, $2, '{{}}')"
                ),
                &[&uuid::Uuid::from_u128(log.to_u128()), &index],
            )
            .await
            .unwrap();
        Self {
            client,
            observer,
            pid,
            log,
        }
    }

    /// Waits until `n` backends wait for this transaction.
    pub(crate) async fn wait_for_waiters(&self, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = self
                .observer
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    &[&self.pid],
                )
                .await
                .unwrap()
                .get(0);
            if waiting >= n {
                return;
            }
            assert!(Instant::now() < deadline, "nobody waited for the blocker");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Commits (the event stays) or rolls back (it never was).
    pub(crate) async fn end(self, commit: bool) {
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        self.client.batch_execute(end).await.unwrap();
    }
}

/// Waits until `n` requests wait in the store's queue.
pub(crate) async fn wait_for_queue(store: &PostgresEventStore, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.append_group_stats().waiting < n {
        assert!(
            Instant::now() < deadline,
            "the queue never reached {n}: {:?}",
            store.append_group_stats()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
