//! Redis and Redis Cluster [`ReductionCache`](eventlogs_core::ReductionCache) for eventlogs, on the [`fred`] client.
//!
//! [`RedisReductionCache`] stores encoded reductions under
//! `{key_prefix}:{aggregate}:v{version}:{log_id}`. Writes are a Lua compare-and-set on the
//! entry's `through_index`, reads are bounded by the entry size limit, and every call has a
//! short deadline and fails fast while Redis is down, so the cache can make `reduce` faster
//! but never wrong or stuck.
//!
//! ```no_run
//! # async fn demo(store: impl eventlogs_core::EventStore) -> eventlogs_core::Result<()> {
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Default, Serialize, Deserialize)] struct Account(i64);
//! # impl eventlogs_core::Aggregate for Account {
//! #     type Event = i64; const NAME: &'static str = "account"; const VERSION: u32 = 1;
//! #     fn apply(&mut self, r: &eventlogs_core::EventRecord<i64>) { self.0 += r.event; }
//! # }
//! use eventlogs_core::LogManager;
//! use eventlogs_redis::RedisReductionCache;
//!
//! let cache = RedisReductionCache::builder("redis://127.0.0.1:6379")
//!     .key_prefix("myapp")
//!     .build()
//!     .await?;
//! let logs = LogManager::<Account>::builder(store).cache(cache).build();
//! # let _ = logs;
//! # Ok(())
//! # }
//! ```
//!
//! Crate feature `tls`: `rediss://` URLs and [`RedisReductionCacheBuilder::tls`] (rustls).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod cache;
mod config;
mod connect;
mod error;
mod script;
mod stats;

pub use builder::RedisReductionCacheBuilder;
pub use cache::RedisReductionCache;
pub use config::{RedisCacheConfig, RedisCacheOptions, RedisServers};
pub use stats::RedisCacheStats;

/// The fred client, re-exported for [`RedisReductionCache::from_client`] and
/// [`RedisReductionCache::from_pool`].
pub use fred;
