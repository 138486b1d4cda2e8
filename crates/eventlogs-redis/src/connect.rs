//! Turning a [`RedisCacheConfig`] into a connected fred pool: timeouts, reconnection, fail-fast.
//!
//! The choices, and why:
//!
//! - **Reconnect forever** with exponential backoff from 10 ms to
//!   [`reconnect_max_delay`](RedisCacheConfig::reconnect_max_delay), so a restarted Redis is
//!   used again within about that long, without anyone calling anything.
//! - **Unresponsive connections are dropped** after
//!   [`unresponsive_timeout`](RedisCacheConfig::unresponsive_timeout): a paused or partitioned
//!   server keeps TCP open and never answers; closing the connection frees the commands
//!   waiting on it and starts reconnecting.
//! - **Commands never queue behind a reconnection.** The cache sends each command with
//!   fred's per-command options `fail_fast` (fail at once while disconnected),
//!   `max_attempts = 1` (never replayed after a reconnection: a late cache answer is useless)
//!   and `timeout` = the cache timeout; the pool also has that timeout as its
//!   `default_command_timeout`, and every call is wrapped in a Tokio timeout as well.
//! - **Connecting is bounded** by [`connect_timeout`](RedisCacheConfig::connect_timeout) (TCP,
//!   TLS, `AUTH`, cluster discovery). The first connection fails fast unless
//!   [`lazy_connect`](RedisCacheConfig::lazy_connect), so a wrong URL or password is reported
//!   by `build` instead of being retried in the background forever.
//! - `TCP_NODELAY`: cache calls are small and latency-bound.

use std::time::Duration;

use eventlogs_core::{Error, InvalidInput, Result};
use fred::clients::Pool;
use fred::interfaces::ClientLike;
use fred::types::config::{Config as FredConfig, ReconnectPolicy, ServerConfig};
use fred::types::Builder;

use crate::config::{parse_node, RedisCacheConfig, RedisServers};
use crate::error::{from_fred, timeout, CONNECT};

/// First reconnection delay; doubles up to `reconnect_max_delay`.
const RECONNECT_MIN_DELAY_MS: u32 = 10;

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
}

/// The fred client configuration: servers, credentials, TLS, first-connection behaviour.
fn fred_config(config: &RedisCacheConfig) -> Result<FredConfig> {
    let mut fred = match &config.servers {
        RedisServers::Url(url) => {
            FredConfig::from_url(url).map_err(|e| from_fred(CONNECT, config.connect_timeout, e))?
        }
        RedisServers::Cluster(nodes) => {
            let hosts = nodes
                .iter()
                .map(|n| parse_node(n))
                .collect::<Result<Vec<_>>>()?;
            FredConfig {
                server: ServerConfig::new_clustered(hosts),
                ..FredConfig::default()
            }
        }
    };
    if let Some(username) = &config.username {
        fred.username = Some(username.clone());
    }
    if let Some(password) = &config.password {
        fred.password = Some(password.clone());
    }
    fred.fail_fast = !config.lazy_connect;
    #[cfg(feature = "tls")]
    if config.tls && fred.tls.is_none() {
        let connector = fred::types::config::TlsConnector::default_rustls()
            .map_err(|e| from_fred(CONNECT, config.connect_timeout, e))?;
        fred.tls = Some(connector.into());
    }
    Ok(fred)
}

/// A fred pool for `config`, not yet connected.
fn pool(config: &RedisCacheConfig) -> Result<Pool> {
    let mut policy = ReconnectPolicy::new_exponential(
        0, // forever
        RECONNECT_MIN_DELAY_MS,
        millis(config.reconnect_max_delay).max(RECONNECT_MIN_DELAY_MS),
        2,
    );
    policy.set_jitter(millis(config.reconnect_max_delay).min(50));
    let mut builder = Builder::from_config(fred_config(config)?);
    builder
        .set_policy(policy)
        .with_connection_config(|c| {
            c.connection_timeout = config.connect_timeout;
            c.internal_command_timeout = config.connect_timeout;
            c.max_command_attempts = 1;
            c.unresponsive.max_timeout = Some(config.unresponsive_timeout);
            c.unresponsive.interval =
                (config.unresponsive_timeout / 4).max(Duration::from_millis(10));
            c.tcp.nodelay = Some(true);
        })
        .with_performance_config(|p| {
            p.default_command_timeout = config.cache.timeout;
        });
    builder
        .build_pool(config.pool_size)
        .map_err(|e| from_fred(CONNECT, config.connect_timeout, e))
}

/// Builds the pool and connects it: waits for the first connection (at most
/// `connect_timeout` plus a little), or with `lazy_connect` starts connecting in the background.
pub(crate) async fn connect(config: &RedisCacheConfig) -> Result<Pool> {
    config.validate()?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::InvalidInput(InvalidInput::Config(
            "the redis cache must be built inside a Tokio runtime".into(),
        )));
    }
    let pool = pool(config)?;
    if config.lazy_connect {
        drop(pool.connect());
        return Ok(pool);
    }
    // fred bounds each step by connect_timeout; this bounds them all (a cluster takes several).
    let deadline = config.connect_timeout * 3;
    match tokio::time::timeout(deadline, pool.init()).await {
        Ok(Ok(_task)) => Ok(pool),
        Ok(Err(error)) => {
            tracing::warn!(servers = %config.servers, %error, "cannot connect to redis");
            Err(from_fred(CONNECT, config.connect_timeout, error))
        }
        Err(_) => {
            tracing::warn!(servers = %config.servers, ?deadline, "connecting to redis timed out");
            tokio::spawn(async move {
                let _ = pool.quit().await;
            });
            Err(timeout(CONNECT, deadline))
        }
    }
}
