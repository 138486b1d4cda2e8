//! `RedisReductionCache`: the `ReductionCache` on Redis or Redis Cluster, with deadlines and counters.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use eventlogs_core::{backend::CacheKey, Error, ReductionCache, Result};
use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::config::Options;
use fred::types::Value;
use tracing::Instrument;

use crate::config::{RedisCacheConfig, RedisCacheOptions};
use crate::error::{from_fred, timeout, unexpected_reply};
use crate::script::{read_reply, GET_SCRIPT, PUT_SCRIPT};
use crate::stats::{bump, Counters, RedisCacheStats};
use crate::RedisReductionCacheBuilder;

/// A [`ReductionCache`] on Redis or Redis Cluster, through the [`fred`] client.
///
/// - Keys are `{key_prefix}:{aggregate}:v{version}:{log_id}` ([`redis_key`](Self::redis_key)).
/// - `put` is one Lua compare-and-set on the entry header's `through_index`, with the
///   optional TTL; `get` is one Lua script, one round trip, that reads at most
///   `max_entry_bytes + 1` bytes (`GETRANGE`) and tells a missing key (a miss) from an empty
///   value or a key of another type (an unusable entry, replaced by the next write),
///   atomically; `delete` is `DEL`. Scripts run by hash (`EVALSHA`) and are resent only when
///   a server does not know them. Every command touches one key, so Redis Cluster works.
/// - Every call has a deadline ([`RedisCacheOptions::timeout`]) and fails fast while Redis
///   is unreachable: [`Error::Timeout`] or [`Error::Unavailable`], both retryable and
///   both a miss for the `LogManager`. The client reconnects by itself.
/// - Counters ([`stats`](Self::stats)) and a tracing span per call
///   (`eventlogs.redis.get`, `eventlogs.redis.put`, `eventlogs.redis.delete`).
///
/// Cloning is cheap and shares the connections and counters. Connections the cache opened
/// itself are closed when the last clone is dropped.
///
/// ```no_run
/// # async fn demo() -> eventlogs_core::Result<()> {
/// use std::time::Duration;
/// use eventlogs_redis::RedisReductionCache;
///
/// let cache = RedisReductionCache::builder("redis://127.0.0.1:6379")
///     .key_prefix("billing")
///     .ttl(Some(Duration::from_secs(7 * 24 * 3600)))
///     .timeout(Duration::from_millis(50))
///     .build()
///     .await?;
/// let cluster = RedisReductionCache::cluster_builder(["10.0.0.1:7000", "10.0.0.2:7000"])
///     .build()
///     .await?;
/// # let _ = (cache, cluster);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisReductionCache {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    options: RedisCacheOptions,
    /// Per-command fred options: the deadline, fail fast, no replay after a reconnection.
    command: Options,
    /// `GETRANGE` end offset, as sent.
    read_end: Value,
    /// TTL in milliseconds as sent (`"0"`: none).
    ttl: Value,
    counters: Counters,
    /// Where the cache connects, without credentials.
    target: String,
    /// Whether the cache opened the pool (and so closes it).
    owned: bool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            runtime.spawn(async move {
                let _ = pool.quit().await;
            });
        }
    }
}

/// The operation names used in errors, spans and events.
const GET: &str = "redis get";
const PUT: &str = "redis put";
const DELETE: &str = "redis delete";
const PING: &str = "redis ping";

impl RedisReductionCache {
    /// Configures a cache for the server(s) at `url` (see
    /// [`RedisServers::Url`](crate::RedisServers::Url); `redis-cluster://` for a cluster).
    pub fn builder(url: impl Into<String>) -> RedisReductionCacheBuilder {
        RedisReductionCacheBuilder::from(RedisCacheConfig::new(url))
    }

    /// Configures a cache for the Redis Cluster with these masters (`host:port`).
    pub fn cluster_builder<I, S>(nodes: I) -> RedisReductionCacheBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisReductionCacheBuilder::from(RedisCacheConfig::cluster(nodes))
    }

    /// Connects as `config` says (see [`RedisReductionCacheBuilder::build`]).
    pub(crate) async fn connect(config: RedisCacheConfig) -> Result<Self> {
        let pool = crate::connect::connect(&config).await?;
        Ok(Self::new(
            pool,
            config.cache,
            config.servers.to_string(),
            true,
        ))
    }

    /// Starts building a cache on an existing fred client, which the caller connects (`init`)
    /// and configures; only the builder's cache settings apply.
    ///
    /// The cache applies its own per-command deadline and fail-fast options, so calls stay
    /// bounded whatever the client's settings; for a restarted Redis to be used again the
    /// client needs a reconnect policy (a warning is logged without one). The client is not
    /// closed when the cache is dropped.
    pub fn from_client(client: Client) -> RedisReductionCacheBuilder {
        // fred refuses only an empty list of clients.
        let pool = Pool::from_clients(vec![client]).expect("a pool of one client always forms");
        RedisReductionCacheBuilder::on_pool(pool)
    }

    /// Starts building a cache on an existing fred pool; see [`from_client`](Self::from_client).
    pub fn from_pool(pool: Pool) -> RedisReductionCacheBuilder {
        RedisReductionCacheBuilder::on_pool(pool)
    }

    /// A cache on an existing pool with `options`, validated.
    pub(crate) fn on_pool(pool: Pool, options: RedisCacheOptions) -> Result<Self> {
        options.validate()?;
        if pool
            .clients()
            .iter()
            .any(|c| c.client_reconnect_policy().is_none())
        {
            tracing::warn!("fred client without a reconnect policy: the redis cache stays unavailable after a disconnection");
        }
        let target = format!("fred pool of {} client(s)", pool.size());
        Ok(Self::new(pool, options, target, false))
    }

    fn new(pool: Pool, options: RedisCacheOptions, target: String, owned: bool) -> Self {
        let command = Options {
            timeout: Some(options.timeout),
            fail_fast: true,
            max_attempts: Some(1),
            ..Options::default()
        };
        let read_end = Value::from(options.max_entry_bytes.to_string());
        let ttl = Value::from(options.ttl_millis().to_string());
        Self {
            inner: Arc::new(Inner {
                pool,
                options,
                command,
                read_end,
                ttl,
                counters: Counters::default(),
                target,
                owned,
            }),
        }
    }

    /// The Redis key of `key`: `{key_prefix}:{key}`.
    #[must_use]
    pub fn redis_key(&self, key: &CacheKey) -> String {
        format!("{}:{}", self.inner.options.key_prefix, key.as_str())
    }

    /// The cache's settings.
    #[must_use]
    pub fn options(&self) -> &RedisCacheOptions {
        &self.inner.options
    }

    /// The counters since the cache was built.
    #[must_use]
    pub fn stats(&self) -> RedisCacheStats {
        self.inner.counters.snapshot()
    }

    /// The fred pool the cache sends commands through.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Sends `PING` within the cache timeout: a readiness check. Not counted in the stats.
    pub async fn ping(&self) -> Result<()> {
        let after = self.inner.options.timeout;
        let client = self.inner.pool.with_options(&self.inner.command);
        match tokio::time::timeout(after, client.ping::<Value>(None)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(from_fred(PING, after, error)),
            Err(_) => Err(timeout(PING, after)),
        }
    }

    /// Runs one Redis call under the cache deadline, counting and logging failures.
    async fn call<T, F>(&self, operation: &'static str, call: F) -> Result<T>
    where
        F: Future<Output = std::result::Result<T, fred::error::Error>>,
    {
        let after = self.inner.options.timeout;
        let result = match tokio::time::timeout(after, call).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => from_fred(operation, after, error),
            Err(_) => timeout(operation, after),
        };
        let counters = &self.inner.counters;
        if matches!(result, Error::Timeout { .. }) {
            bump(&counters.timeouts);
            tracing::debug!(operation, timeout = ?after, "redis call timed out");
        } else {
            bump(&counters.errors);
            let source = std::error::Error::source(&result)
                .map(ToString::to_string)
                .unwrap_or_default();
            tracing::warn!(operation, error = %result, %source, "redis call failed");
        }
        Err(result)
    }
}

#[async_trait]
impl ReductionCache for RedisReductionCache {
    fn max_entry_bytes(&self) -> usize {
        self.inner.options.max_entry_bytes
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let redis_key = self.redis_key(key);
        let span = tracing::debug_span!("eventlogs.redis.get", key = %redis_key);
        async {
            let inner = &*self.inner;
            let client = inner.pool.with_options(&inner.command);
            // One round trip whatever the key holds: the script reads at most
            // `max_entry_bytes + 1` bytes and tells a missing key from an empty or foreign one.
            let read = GET_SCRIPT.run(&client, &redis_key, std::slice::from_ref(&inner.read_end));
            let reply = self.call(GET, read).await?;
            let found = read_reply(GET, reply, inner.options.max_entry_bytes)
                .inspect_err(|_| bump(&inner.counters.errors))?;
            match found {
                Some(bytes) => {
                    bump(&inner.counters.hits);
                    tracing::debug!(size = bytes.len(), "found");
                    Ok(Some(bytes))
                }
                None => {
                    bump(&inner.counters.misses);
                    tracing::debug!("no entry");
                    Ok(None)
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn put(&self, key: &CacheKey, through_index: u32, entry: &[u8]) -> Result<bool> {
        let redis_key = self.redis_key(key);
        let span = tracing::debug_span!("eventlogs.redis.put", key = %redis_key, through_index, size = entry.len());
        async {
            let inner = &*self.inner;
            let client = inner.pool.with_options(&inner.command);
            let args = [
                Value::from(through_index.to_string()),
                Value::Bytes(entry.to_vec().into()),
                inner.ttl.clone(),
            ];
            let reply = self
                .call(PUT, PUT_SCRIPT.run(&client, &redis_key, &args))
                .await?;
            match reply {
                Value::Integer(1) => {
                    bump(&inner.counters.writes);
                    Ok(true)
                }
                Value::Integer(0) => {
                    bump(&inner.counters.writes_superseded);
                    tracing::debug!("redis holds an entry at least as new; not stored");
                    Ok(false)
                }
                other => {
                    bump(&inner.counters.errors);
                    Err(unexpected_reply(PUT, &other))
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn delete(&self, key: &CacheKey) -> Result<()> {
        let redis_key = self.redis_key(key);
        let span = tracing::debug_span!("eventlogs.redis.delete", key = %redis_key);
        async {
            let inner = &*self.inner;
            let client = inner.pool.with_options(&inner.command);
            self.call(DELETE, client.del::<i64, _>(redis_key.as_str()))
                .await?;
            bump(&inner.counters.deletes);
            Ok(())
        }
        .instrument(span)
        .await
    }
}

impl fmt::Debug for RedisReductionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisReductionCache")
            .field("target", &inner.target)
            .field("pool_size", &inner.pool.size())
            .field("options", &inner.options)
            .field("stats", &inner.counters.snapshot())
            .finish()
    }
}
