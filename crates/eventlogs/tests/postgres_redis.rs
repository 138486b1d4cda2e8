//! The LogManager suite over the production pair: PostgreSQL events and a Redis (or Redis
//! Cluster) cache — every cache state of invariant 4, races and retries, end to end.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use eventlogs::postgres::PostgresEventStore;
use eventlogs::redis::{RedisReductionCache, RedisReductionCacheBuilder};
use eventlogs::{EventStore, LogId, ReductionCache};
use eventlogs_testkit::servers::{citus_url, cluster_nodes, database_url, redis_url};

async fn store() -> Option<Arc<dyn EventStore>> {
    let store = PostgresEventStore::builder(database_url()?)
        .schema("eventlogs_test")
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    Some(Arc::new(store))
}

async fn cache(builder: RedisReductionCacheBuilder) -> Arc<dyn ReductionCache> {
    let cache = builder
        .key_prefix(format!("facade-{}", LogId::new()))
        .timeout(Duration::from_secs(2))
        .ttl(Some(Duration::from_secs(600)))
        .build()
        .await
        .unwrap();
    Arc::new(cache)
}

async fn with_redis() -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
    let url = redis_url()?;
    Some((
        store().await?,
        cache(RedisReductionCache::builder(url)).await,
    ))
}

async fn with_cluster() -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
    let nodes = cluster_nodes()?;
    Some((
        store().await?,
        cache(RedisReductionCache::cluster_builder(nodes)).await,
    ))
}

mod postgres_and_redis {
    eventlogs_testkit::log_manager_suite!(super::with_redis());
}

mod postgres_and_redis_cluster {
    eventlogs_testkit::log_manager_suite!(super::with_cluster());
}

/// The same suite on a schema distributed over a Citus cluster.
async fn citus_with_redis() -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
    let store = PostgresEventStore::builder(citus_url()?)
        .schema("eventlogs_citus")
        .distributed(true)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    let url = redis_url()?;
    Some((
        Arc::new(store),
        cache(RedisReductionCache::builder(url)).await,
    ))
}

mod citus_and_redis {
    eventlogs_testkit::log_manager_suite!(super::citus_with_redis());
}
