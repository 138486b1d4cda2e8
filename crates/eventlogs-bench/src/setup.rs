//! Connections, stores, caches and data the scenarios share.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use eventlogs::postgres::{AppendGrouping, PostgresEventStore};
use eventlogs::redis::RedisReductionCache;
use eventlogs::{Aggregate, EventRecord, LogId};
use serde::{Deserialize, Serialize};

/// Schema of the benchmark tables.
pub(crate) const SCHEMA: &str = "eventlogs_bench";

/// Schema of the benchmark tables on the Citus cluster (distributed).
pub(crate) const CITUS_SCHEMA: &str = "eventlogs_bench_citus";

/// An event of about 200 bytes of JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Payment {
    pub(crate) amount: i64,
    pub(crate) reference: String,
}

impl Payment {
    pub(crate) fn new(amount: i64) -> Self {
        Self {
            amount,
            reference: format!("{amount:08}-{}", "x".repeat(170)),
        }
    }

    pub(crate) fn json(amount: i64) -> String {
        serde_json::to_string(&Self::new(amount)).unwrap_or_default()
    }
}

/// The folded balance.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Balance {
    pub(crate) total: i64,
    pub(crate) count: u64,
}

impl Aggregate for Balance {
    type Event = Payment;
    const NAME: &'static str = "bench_balance";
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<Payment>) {
        self.total += record.event.amount;
        self.count += 1;
    }
}

/// Server URLs, and the schema the scenarios use on `database_url`.
#[derive(Clone)]
pub(crate) struct Env {
    pub(crate) database_url: String,
    pub(crate) redis_url: String,
    /// The Citus coordinator (`EVENTLOGS_CITUS_URL`), when there is one.
    pub(crate) citus_url: Option<String>,
    pub(crate) schema: &'static str,
    /// Whether `migrate` distributes the schema (on the Citus coordinator).
    pub(crate) distributed: bool,
    /// How the stores group appends (the library's default unless a scenario says otherwise).
    pub(crate) grouping: AppendGrouping,
}

impl Env {
    /// The same servers, with the store on the Citus coordinator's distributed schema.
    pub(crate) fn citus(&self) -> Option<Env> {
        Some(Env {
            database_url: self.citus_url.clone()?,
            redis_url: self.redis_url.clone(),
            citus_url: None,
            schema: CITUS_SCHEMA,
            distributed: true,
            grouping: self.grouping,
        })
    }

    /// The same servers, with stores that group appends as `grouping` says.
    pub(crate) fn grouping(&self, grouping: AppendGrouping) -> Env {
        Env {
            grouping,
            ..self.clone()
        }
    }

    /// A migrated store with `pool_size` connections.
    pub(crate) async fn store(&self, pool_size: usize) -> Result<PostgresEventStore, String> {
        let store = PostgresEventStore::builder(self.database_url.clone())
            .schema(self.schema)
            .distributed(self.distributed)
            .pool_size(pool_size)
            .append_grouping(self.grouping)
            .statement_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        store.migrate().await.map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// A plain deadpool-postgres pool of `size` connections, as a hand-written store would use.
    pub(crate) fn raw_pool(&self, size: usize) -> Result<Pool, String> {
        let config: tokio_postgres::Config =
            self.database_url.parse().map_err(|e| format!("{e}"))?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| e.to_string())
    }

    /// The library's Redis cache.
    pub(crate) async fn cache(&self) -> Result<RedisReductionCache, String> {
        RedisReductionCache::builder(self.redis_url.clone())
            .key_prefix("eventlogs_bench")
            .timeout(Duration::from_millis(200))
            .build()
            .await
            .map_err(|e| e.to_string())
    }

    /// A plain fred client.
    pub(crate) async fn raw_redis(&self) -> Result<fred::clients::Client, String> {
        use fred::interfaces::ClientLike;
        let config =
            fred::types::config::Config::from_url(&self.redis_url).map_err(|e| e.to_string())?;
        let client = fred::clients::Client::new(config, None, None, None);
        client.init().await.map_err(|e| e.to_string())?;
        Ok(client)
    }
}

/// Writes `count` events to a new log of `schema` server-side (fast set-up, no client memory).
/// On a distributed schema the coordinator evaluates the `SELECT` and sends the rows on to the
/// log's shard.
pub(crate) async fn seed_log(pool: &Pool, schema: &str, count: i64) -> Result<LogId, String> {
    let log = LogId::new();
    let client = pool.get().await.map_err(|e| e.to_string())?;
    let sql = format!(
        "INSERT INTO {schema}.events (log_id, event_index, payload) \
         SELECT $1, g, jsonb_build_object('amount', g, 'reference', repeat('x', 178)) FROM generate_series(0::bigint, $2::bigint - 1) g"
    );
    client
        .execute(&sql, &[&uuid::Uuid::from_u128(log.to_u128()), &count])
        .await
        .map_err(|e| e.to_string())?;
    Ok(log)
}
