//! The Redis cache runs the cache and manager conformance suites on one Redis and on a Redis Cluster.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use eventlogs_core::{EventStore, LogId, ReductionCache};
use eventlogs_fake::FakeEventStore;
use eventlogs_redis::{RedisReductionCache, RedisReductionCacheBuilder};
use eventlogs_testkit::servers::{cluster_nodes, redis_url};

/// Suites check behaviour, not latency: a generous deadline keeps a loaded test machine from
/// turning a slow answer into a failure. The fault tests check the default deadline.
const SUITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A fresh prefix per test, so parallel tests on one server never see each other's keys.
fn prefix() -> String {
    format!("conformance-{}", LogId::new())
}

async fn build(builder: RedisReductionCacheBuilder) -> Arc<dyn ReductionCache> {
    Arc::new(
        builder
            .key_prefix(prefix())
            .timeout(SUITE_TIMEOUT)
            // Keeps the shared server from filling up; the suites never wait that long.
            .ttl(Some(Duration::from_secs(600)))
            .build()
            .await
            .unwrap(),
    )
}

async fn single() -> Option<Arc<dyn ReductionCache>> {
    Some(build(RedisReductionCache::builder(redis_url()?)).await)
}

async fn cluster() -> Option<Arc<dyn ReductionCache>> {
    Some(build(RedisReductionCache::cluster_builder(cluster_nodes()?)).await)
}

async fn with_store(
    cache: Option<Arc<dyn ReductionCache>>,
) -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
    Some((Arc::new(FakeEventStore::new()), cache?))
}

mod cache {
    use super::*;
    eventlogs_testkit::reduction_cache_suite!(single());
}

mod manager {
    use super::*;
    eventlogs_testkit::log_manager_suite!(async { with_store(single().await).await });
}

mod cache_keys {
    use super::*;
    eventlogs_testkit::cache_keys_suite!(async { with_store(single().await).await });
}

mod cluster_cache {
    use super::*;
    eventlogs_testkit::reduction_cache_suite!(cluster());
}

mod cluster_manager {
    use super::*;
    eventlogs_testkit::log_manager_suite!(async { with_store(cluster().await).await });
}
