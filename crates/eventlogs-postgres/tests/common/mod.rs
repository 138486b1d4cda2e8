//! Connecting the tests to the PostgreSQL that `cargo xtask test` provides.
#![allow(dead_code, clippy::unwrap_used)]

pub(crate) mod blocker;
pub(crate) mod received;

use std::sync::Arc;

use eventlogs_core::{EventStore, ReductionCache};
use eventlogs_postgres::PostgresEventStore;

/// The schema every conformance test shares (tests isolate by fresh log ids and keys).
pub(crate) const SCHEMA: &str = "eventlogs_test";

/// A migrated store on the test database, or `None` to skip.
pub(crate) async fn store() -> Option<PostgresEventStore> {
    let url = eventlogs_testkit::servers::database_url()?;
    let store = PostgresEventStore::builder(url)
        .schema(SCHEMA)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// A migrated store on a schema of its own (named `{prefix}_…`), so its feed starts empty
/// and it has no subscriptions.
pub(crate) async fn fresh(prefix: &str) -> Option<PostgresEventStore> {
    let url = eventlogs_testkit::servers::database_url()?;
    let suffix = eventlogs_core::LogId::new()
        .ulid()
        .to_string()
        .to_lowercase();
    let store = PostgresEventStore::builder(url)
        .schema(format!("{prefix}_{suffix}"))
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// Drops the store's schema (a test's own, from [`fresh`]).
pub(crate) async fn drop_schema(store: &PostgresEventStore) {
    let schema = &store.config().schema;
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// The store as a trait object.
pub(crate) async fn dyn_store() -> Option<Arc<dyn EventStore>> {
    Some(Arc::new(store().await?))
}

/// The store with the in-memory cache.
pub(crate) async fn with_fake_cache() -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
    Some((
        dyn_store().await?,
        Arc::new(eventlogs_fake::FakeReductionCache::new()),
    ))
}
