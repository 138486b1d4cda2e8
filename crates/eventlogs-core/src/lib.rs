//! Core of eventlogs: types, the `EventStore`/`ReductionCache` traits and the reduce/append algorithm.
//!
//! This crate has no database client. Users normally depend on the `eventlogs` facade, which
//! re-exports everything here together with the backends.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod aggregate;
mod cache;
mod entry;
mod error;
mod feed;
mod invalid_input;
mod limits;
mod log_id;
mod manager;
mod options;
mod policy;
mod record;
mod redact;
mod reduction;
mod state;
mod store;
mod subscription;
mod timestamp;

pub use aggregate::Aggregate;
pub use cache::{CacheKey, ReductionCache};
pub use entry::{CacheEntry, EntryError, HEADER_LEN as CACHE_HEADER_LEN, THROUGH_INDEX_OFFSET};
pub use error::{BoxError, Error, InvalidInput, Result};
pub use feed::{EventFeed, FeedEvent, FeedPosition};
pub use limits::Limits;
pub use log_id::{LogId, ParseLogIdError, LOG_ID_LEN, LOG_ID_PREFIX};
pub use manager::{CacheStats, LogManager, LogManagerBuilder};
pub use options::AppendOptions;
pub use policy::{Always, CachingPolicy, LogAgePolicy, LogLengthPolicy, Never};
pub use record::{EventRecord, NewEvent, RawEvent};
pub use redact::redact_connection_string;
pub use reduction::{CacheOutcome, Reduction};
pub use state::LogState;
pub use store::{
    check_idempotency_key, AppendRequest, Appended, EventStore, RawEventStream, StoredKey,
};
pub use subscription::{
    handler_failed, AtLeastOnce, Delivery, FeedFilter, Handler, Lag, Subscription,
    SubscriptionClaim, SubscriptionName, SubscriptionOptions, SubscriptionStore,
    MAX_BATCH_SIZE as MAX_SUBSCRIPTION_BATCH, MAX_NAME_LEN as MAX_SUBSCRIPTION_NAME_LEN,
};
pub use timestamp::Timestamp;

/// Re-exported so implementors of the traits use the same version.
pub use async_trait::async_trait;
