//! In-memory backends for eventlogs: `FakeEventStore` and `FakeReductionCache`.
//!
//! Both keep the same promises as the PostgreSQL and Redis backends and pass the same
//! conformance suites, so they are a faithful stand-in for prototypes, examples and tests.
//! The cache can also report what it is asked and inject faults.

mod cache;
mod store;
mod subscriptions;

pub use cache::{CacheFault, CacheOperation, FakeReductionCache};
pub use store::FakeEventStore;
pub use subscriptions::FakeClaim;
