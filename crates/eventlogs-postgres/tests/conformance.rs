//! PostgreSQL runs the same conformance suites as every backend.

mod common;

mod store {
    eventlogs_testkit::event_store_suite!(super::common::dyn_store());
}

mod manager_with_fake_cache {
    eventlogs_testkit::log_manager_suite!(super::common::with_fake_cache());
}

mod upcast {
    use std::sync::Arc;

    use eventlogs_postgres::PostgresEventStore;

    /// A schema of its own: the subscription reads the whole feed.
    async fn fresh() -> Option<Arc<PostgresEventStore>> {
        Some(Arc::new(super::common::fresh("upcast").await?))
    }

    eventlogs_testkit::upcast_suite!(super::common::with_fake_cache());
    eventlogs_testkit::upcast_subscription_suite!(fresh());
}

mod delete {
    use std::sync::Arc;

    use eventlogs_core::{EventStore, ReductionCache};
    use eventlogs_postgres::PostgresEventStore;

    /// A schema of its own per test: one test removes every idempotency key.
    async fn fresh() -> Option<Arc<PostgresEventStore>> {
        Some(Arc::new(super::common::fresh("delete").await?))
    }

    async fn pair() -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
        Some((
            fresh().await?,
            Arc::new(eventlogs_fake::FakeReductionCache::new()),
        ))
    }

    eventlogs_testkit::delete_suite!(pair());
    eventlogs_testkit::delete_feed_suite!(fresh());
}
