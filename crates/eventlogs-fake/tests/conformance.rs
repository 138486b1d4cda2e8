//! The in-memory backends run every conformance suite, exactly as the server backends do.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use eventlogs_core::{EventStore, ReductionCache};
use eventlogs_fake::{FakeEventStore, FakeReductionCache};

async fn store() -> Option<Arc<dyn EventStore>> {
    Some(Arc::new(FakeEventStore::new()))
}

async fn cache() -> Option<Arc<dyn ReductionCache>> {
    Some(Arc::new(FakeReductionCache::new()))
}

async fn pair() -> Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)> {
    Some((store().await?, cache().await?))
}

mod store {
    use super::*;
    eventlogs_testkit::event_store_suite!(store());
}

mod cache {
    use super::*;
    eventlogs_testkit::reduction_cache_suite!(cache());
}

mod cache_keys {
    use super::*;
    eventlogs_testkit::cache_keys_suite!(pair());
}

mod manager {
    use super::*;
    eventlogs_testkit::log_manager_suite!(pair());
}

mod feed {
    use super::*;
    use eventlogs_core::EventFeed;

    async fn pair() -> Option<(Arc<dyn EventStore>, Arc<dyn EventFeed>)> {
        let store = Arc::new(FakeEventStore::new());
        Some((store.clone(), store))
    }

    eventlogs_testkit::event_feed_suite!(pair());
}

mod subscriptions {
    use super::*;

    pub(super) async fn store() -> Option<Arc<FakeEventStore>> {
        Some(Arc::new(FakeEventStore::new()))
    }

    eventlogs_testkit::subscription_suite!(store());
}

mod upcast {
    use super::*;
    eventlogs_testkit::upcast_suite!(pair());
    eventlogs_testkit::upcast_subscription_suite!(subscriptions::store());
}

mod delete {
    use super::*;
    eventlogs_testkit::delete_suite!(pair());
    eventlogs_testkit::delete_feed_suite!(subscriptions::store());
}
