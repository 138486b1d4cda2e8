//! PostgreSQL runs the same conformance suites as every backend.

mod common;

mod store {
    eventlogs_testkit::event_store_suite!(super::common::dyn_store());
}

mod manager_with_fake_cache {
    eventlogs_testkit::log_manager_suite!(super::common::with_fake_cache());
}
