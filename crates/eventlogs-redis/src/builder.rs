//! `RedisReductionCacheBuilder`: chainable setters over a [`RedisCacheConfig`] (or an existing
//! fred pool), then `build`.

use std::fmt;
use std::time::Duration;

use eventlogs_core::Result;
use fred::clients::Pool;

use crate::{RedisCacheConfig, RedisCacheOptions, RedisReductionCache};

/// Configures a [`RedisReductionCache`] and connects it; from
/// [`RedisReductionCache::builder`], [`RedisReductionCache::cluster_builder`],
/// [`RedisReductionCache::from_pool`] or [`RedisReductionCache::from_client`] (as
/// [`PostgresEventStore`](https://docs.rs/eventlogs-postgres) is built from a URL or a pool).
///
/// Every setter changes one field of the [`RedisCacheConfig`] it wraps; the defaults are
/// documented there and on [`RedisCacheOptions`]. On an existing pool or client only the
/// cache settings apply (key prefix, TTL, timeout, entry size); the connection settings are
/// the pool's own. `Debug` never shows a password.
#[derive(Clone)]
#[must_use]
pub struct RedisReductionCacheBuilder {
    config: RedisCacheConfig,
    pool: Option<Pool>,
}

impl fmt::Debug for RedisReductionCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReductionCacheBuilder")
            .field("config", &self.config)
            .field("pool", &self.pool.as_ref().map(|_| "existing fred pool"))
            .finish()
    }
}

impl From<RedisCacheConfig> for RedisReductionCacheBuilder {
    fn from(config: RedisCacheConfig) -> Self {
        Self { config, pool: None }
    }
}

impl RedisReductionCacheBuilder {
    pub(crate) fn on_pool(pool: Pool) -> Self {
        Self {
            config: RedisCacheConfig::new(String::new()),
            pool: Some(pool),
        }
    }
}

impl RedisReductionCacheBuilder {
    /// Key prefix (default `"eventlogs"`); see [`RedisCacheOptions::key_prefix`].
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.cache.key_prefix = prefix.into();
        self
    }

    /// Expiry of written entries (default `None`); see [`RedisCacheOptions::ttl`].
    pub fn ttl(mut self, ttl: Option<Duration>) -> Self {
        self.config.cache.ttl = ttl;
        self
    }

    /// Deadline of each call (default 50 ms); see [`RedisCacheOptions::timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.cache.timeout = timeout;
        self
    }

    /// Largest entry read (default 1 MiB); see [`RedisCacheOptions::max_entry_bytes`].
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.config.cache.max_entry_bytes = bytes;
        self
    }

    /// Replaces all the cache options at once.
    pub fn options(mut self, options: RedisCacheOptions) -> Self {
        self.config.cache = options;
        self
    }

    /// ACL user name, overriding one in the URL.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.config.username = Some(username.into());
        self
    }

    /// Password, overriding one in the URL.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.config.password = Some(password.into());
        self
    }

    /// Connections in the pool (default 2); see [`RedisCacheConfig::pool_size`].
    pub fn pool_size(mut self, size: usize) -> Self {
        self.config.pool_size = size;
        self
    }

    /// Deadline of connecting (default 1 s); see [`RedisCacheConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Longest pause between reconnection attempts (default 1 s); see
    /// [`RedisCacheConfig::reconnect_max_delay`].
    pub fn reconnect_max_delay(mut self, delay: Duration) -> Self {
        self.config.reconnect_max_delay = delay;
        self
    }

    /// When a silent connection is replaced (default 2 s); see
    /// [`RedisCacheConfig::unresponsive_timeout`].
    pub fn unresponsive_timeout(mut self, timeout: Duration) -> Self {
        self.config.unresponsive_timeout = timeout;
        self
    }

    /// Whether `build` returns before the first connection (default `false`); see
    /// [`RedisCacheConfig::lazy_connect`].
    pub fn lazy_connect(mut self, lazy: bool) -> Self {
        self.config.lazy_connect = lazy;
        self
    }

    /// Connect with TLS whatever the URL scheme (default `false`); see [`RedisCacheConfig::tls`].
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub fn tls(mut self, tls: bool) -> Self {
        self.config.tls = tls;
        self
    }

    /// The configuration so far.
    #[must_use]
    pub fn config(&self) -> &RedisCacheConfig {
        &self.config
    }

    /// The configuration, to keep or change as data.
    #[must_use]
    pub fn into_config(self) -> RedisCacheConfig {
        self.config
    }

    /// Validates the configuration and connects (on an existing pool or client, validates the
    /// cache settings and uses it as it is).
    ///
    /// Fails with [`InvalidInput::Config`](eventlogs_core::InvalidInput::Config) for a bad
    /// setting or URL (before connecting), and unless
    /// [`lazy_connect`](Self::lazy_connect), with [`Error::Unavailable`](eventlogs_core::Error::Unavailable)
    /// or [`Error::Timeout`](eventlogs_core::Error::Timeout) when Redis cannot be reached
    /// within the connect timeout. Must run inside a Tokio runtime.
    pub async fn build(self) -> Result<RedisReductionCache> {
        match self.pool {
            Some(pool) => RedisReductionCache::on_pool(pool, self.config.cache),
            None => RedisReductionCache::connect(self.config).await,
        }
    }
}
