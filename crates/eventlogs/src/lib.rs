//! eventlogs: event sourcing with dense per-entity logs, optimistic concurrency, idempotency
//! keys and asynchronously cached reductions.
//!
//! The crate root is what a service uses: [`LogManager`] (with [`LogManager::execute`] for
//! commands), [`Aggregate`], [`Subscription`] and their types. [`backend`] holds what only
//! authors of stores and caches need. The backends sit behind cargo features: `fake` (the only
//! default) gives [`fake::FakeEventStore`] and [`fake::FakeReductionCache`]; `postgres-store`
//! gives `postgres`, `redis-cache` gives `redis`, `tls` turns on rustls for them, and `uuid`
//! converts [`LogId`] to and from `uuid::Uuid`.
//!
//! The rest of this page is the project README; its Rust examples are compiled and run as tests.
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use eventlogs_core::*;

/// In-memory store and cache: the quickstart default, for prototypes and tests.
#[cfg(feature = "fake")]
#[cfg_attr(docsrs, doc(cfg(feature = "fake")))]
pub use eventlogs_fake as fake;

/// PostgreSQL event store.
#[cfg(feature = "postgres-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres-store")))]
pub use eventlogs_postgres as postgres;

/// Redis reduction cache.
#[cfg(feature = "redis-cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis-cache")))]
pub use eventlogs_redis as redis;
