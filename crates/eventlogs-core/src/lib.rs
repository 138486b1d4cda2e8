//! Core of eventlogs: types, the `EventStore`/`ReductionCache` traits and the reduce/append algorithm.
//!
//! This crate has no database client. Users normally depend on the `eventlogs` facade, which
//! re-exports everything here together with the backends.
//!
//! The crate root is the API a service uses; [`backend`] holds what only authors of stores and
//! caches need.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod aggregate;
mod cache;
mod entry;
mod error;
mod feed;
mod invalid_input;
mod limits;
mod log_id;
mod mac;
mod manager;
mod options;
mod policy;
mod record;
mod redact;
mod reduction;
mod retry;
mod state;
mod store;
mod subscription;
pub mod telemetry;
mod timestamp;
mod upcast;
mod upcast_feed;

pub use aggregate::{Aggregate, EventsOnly};
pub use cache::ReductionCache;
pub use error::{BoxError, Error, ErrorKind, InvalidInput, Result};
pub use feed::{EventFeed, FeedEvent, FeedPage, FeedPosition};
pub use limits::Limits;
pub use log_id::{LogId, ParseLogIdError};
pub use mac::CacheKeys;
pub use manager::{CacheStats, Executed, LogManager, LogManagerBuilder};
pub use options::AppendOptions;
pub use policy::{Always, CacheReads, CachingPolicy, LogAgePolicy, LogLengthPolicy, Never};
pub use record::EventRecord;
pub use reduction::{CacheOutcome, Reduction};
pub use retry::RetryPolicy;
pub use state::LogState;
pub use store::EventStore;
pub use subscription::{
    AtLeastOnce, FeedFilter, Handler, Lag, Subscription, SubscriptionHandle, SubscriptionName,
    SubscriptionOptions,
};
pub use timestamp::Timestamp;
pub use upcast::{Upcast, Upcasters};
pub use upcast_feed::UpcastFeed;

// The crate's own code names these from the root, as before the split.
pub(crate) use cache::CacheKey;
pub(crate) use entry::CacheEntry;
pub(crate) use record::{NewEvent, RawEvent};

/// What authors of stores, caches and delivery modes need, and services do not: the requests
/// and records a store exchanges, the cache entry framing, the subscription back-end traits,
/// helpers every backend shares, and the `async_trait` macro the traits are written with.
///
/// A service built on the stores and caches that ship with eventlogs never imports from here.
pub mod backend {
    pub use crate::cache::{CacheKey, DEFAULT_MAX_ENTRY_BYTES};
    pub use crate::entry::{
        CacheEntry, EntryError, EntryHeader, FORMAT as CACHE_FORMAT,
        HEADER_LEN as CACHE_HEADER_LEN, THROUGH_INDEX_OFFSET,
    };
    pub use crate::log_id::{LOG_ID_LEN, LOG_ID_PREFIX};
    pub use crate::record::{NewEvent, RawEvent};
    pub use crate::redact::redact_connection_string;
    pub use crate::store::{
        check_idempotency_key, AppendRequest, Appended, RawEventStream, StoredKey,
    };
    pub use crate::subscription::{
        handler_failed, Delivery, SubscriptionClaim, SubscriptionStore,
        MAX_BATCH_SIZE as MAX_SUBSCRIPTION_BATCH, MAX_NAME_LEN as MAX_SUBSCRIPTION_NAME_LEN,
    };

    /// Re-exported so implementors of the traits use the same version.
    pub use async_trait::async_trait;
}
