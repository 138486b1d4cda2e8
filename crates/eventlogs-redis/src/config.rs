//! Configuration as data: what the cache stores ([`RedisCacheOptions`]) and how it connects ([`RedisCacheConfig`]).

use std::fmt;
use std::time::Duration;

use eventlogs_core::{
    backend::{redact_connection_string as redact_url, CACHE_HEADER_LEN},
    Error, InvalidInput, Result,
};

/// Redis refuses strings over 512 MiB; a read asks for one byte more than the entry limit.
const REDIS_MAX_STRING: usize = 512 * 1024 * 1024;
/// The longest accepted key prefix, in bytes.
const MAX_PREFIX_BYTES: usize = 128;
/// The longest accepted TTL: 100 years.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What the cache stores and how long it waits: the settings every constructor takes.
///
/// `#[non_exhaustive]`: start from [`Default`] and change fields or use the chainable setters.
///
/// ```
/// use std::time::Duration;
/// use eventlogs_redis::RedisCacheOptions;
///
/// let options = RedisCacheOptions::default()
///     .with_key_prefix("billing")
///     .with_ttl(Some(Duration::from_secs(24 * 3600)));
/// assert_eq!(options.timeout, Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisCacheOptions {
    /// Prepended to every key as `{key_prefix}:{aggregate}:v{version}:{log_id}`. Non-empty, at
    /// most 128 bytes, without whitespace, control characters, `{` or `}` (braces would make a
    /// Redis Cluster hash tag). Default: `"eventlogs"`.
    pub key_prefix: String,
    /// Expiry set on every entry written (`SET … PX`), or `None` to keep entries until they
    /// are evicted (configure a `maxmemory-policy` such as `allkeys-lru`). Between 1 ms and
    /// 100 years; sub-millisecond parts are rounded down. Default: `None`.
    pub ttl: Option<Duration>,
    /// The deadline of each `get`, `put` and `delete`, including a script reload. A call that
    /// passes it fails with [`Error::Timeout`]. Default: 50 ms.
    pub timeout: Duration,
    /// The largest entry read, in bytes: `get` never reads more than `max_entry_bytes + 1`
    /// bytes, so an oversized stored value is rejected by the decoder without being read
    /// whole. The `LogManager` takes its entry limit from the cache, so this is the only place
    /// it is set. At least
    /// the 44-byte entry header and below 512 MiB. Default: 1 MiB.
    pub max_entry_bytes: usize,
}

impl Default for RedisCacheOptions {
    fn default() -> Self {
        Self {
            key_prefix: "eventlogs".to_owned(),
            ttl: None,
            timeout: Duration::from_millis(50),
            max_entry_bytes: 1024 * 1024,
        }
    }
}

fn config_error(message: String) -> Error {
    Error::InvalidInput(InvalidInput::Config(message))
}

/// Checks a key prefix: non-empty, short, no whitespace, control characters or braces.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let bad = |why: &str| config_error(format!("redis key prefix {prefix:?} {why}"));
    if prefix.is_empty() {
        return Err(bad("is empty"));
    }
    if prefix.len() > MAX_PREFIX_BYTES {
        return Err(bad("is longer than 128 bytes"));
    }
    if prefix
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '{' || c == '}')
    {
        return Err(bad(
            "holds whitespace, a control character, '{' or '}' (a Redis Cluster hash tag)",
        ));
    }
    Ok(())
}

impl RedisCacheOptions {
    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`max_entry_bytes`](Self::max_entry_bytes).
    #[must_use]
    pub fn with_max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// Checks every field, returning [`InvalidInput::Config`] for the first bad one.
    pub fn validate(&self) -> Result<()> {
        validate_prefix(&self.key_prefix)?;
        if self.timeout.is_zero() {
            return Err(config_error(
                "redis cache timeout must be above zero".into(),
            ));
        }
        if let Some(ttl) = self.ttl {
            if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
                return Err(config_error(format!(
                    "redis cache ttl {ttl:?} is not between 1 ms and 100 years"
                )));
            }
        }
        if self.max_entry_bytes < CACHE_HEADER_LEN || self.max_entry_bytes >= REDIS_MAX_STRING {
            return Err(config_error(format!(
                "redis cache max_entry_bytes {} is not between {CACHE_HEADER_LEN} and {}",
                self.max_entry_bytes,
                REDIS_MAX_STRING - 1
            )));
        }
        Ok(())
    }

    /// The TTL in whole milliseconds, 0 for none (after [`validate`](Self::validate)).
    pub(crate) fn ttl_millis(&self) -> u64 {
        self.ttl
            .map_or(0, |ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Where the Redis servers are.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisServers {
    /// A URL: `redis://[[user]:password@]host[:port][/db]` for one server,
    /// `redis-cluster://[[user]:password@]host:port[?node=host:port&node=…]` for a cluster, and
    /// `rediss://` / `rediss-cluster://` for TLS (crate feature `tls`).
    Url(String),
    /// Some masters of a Redis Cluster as `host:port` (IPv6 as `[addr]:port`); the rest are
    /// discovered.
    Cluster(Vec<String>),
}

impl fmt::Debug for RedisServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(url) => f.debug_tuple("Url").field(&redact_url(url)).finish(),
            Self::Cluster(nodes) => f.debug_tuple("Cluster").field(nodes).finish(),
        }
    }
}

impl fmt::Display for RedisServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(url) => f.write_str(&redact_url(url)),
            Self::Cluster(nodes) => write!(f, "redis-cluster {}", nodes.join(",")),
        }
    }
}

/// Everything needed to connect to Redis and run the cache, as data.
///
/// `#[non_exhaustive]`: start from [`RedisCacheConfig::new`] or [`RedisCacheConfig::cluster`]
/// and change fields, or use [`RedisReductionCache::builder`](crate::RedisReductionCache::builder).
/// `Debug` never shows a password.
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisCacheConfig {
    /// Where the servers are.
    pub servers: RedisServers,
    /// ACL user name; overrides one in the URL. Default: `None`.
    pub username: Option<String>,
    /// Password; overrides one in the URL. Default: `None`.
    pub password: Option<String>,
    /// Number of multiplexed connections (per node in a cluster), 1 to 64. Default: 2.
    pub pool_size: usize,
    /// Deadline of each step of connecting (TCP, TLS, `AUTH`, cluster discovery);
    /// [`build`](crate::RedisReductionCacheBuilder::build) waits at most three times this for the
    /// first connection. Default: 1 s.
    pub connect_timeout: Duration,
    /// Longest pause between reconnection attempts. After a connection drops the client
    /// reconnects forever, first after 10 ms, doubling up to this (plus up to 50 ms jitter),
    /// so a restarted Redis is used again within about this long. Default: 1 s.
    pub reconnect_max_delay: Duration,
    /// A connection with a command unanswered this long is closed and reconnected (a paused
    /// or partitioned server). Commands fail fast while it reconnects. Default: 2 s.
    pub unresponsive_timeout: Duration,
    /// `false`: [`build`](crate::RedisReductionCacheBuilder::build) waits for the first connection and
    /// fails if Redis cannot be reached. `true`: it returns at once and connects in the
    /// background; until then every call fails fast with [`Error::Unavailable`] (a miss for
    /// the `LogManager`). Default: `false`.
    pub lazy_connect: bool,
    /// Connect with TLS (rustls, system roots) even when the URL scheme does not say so;
    /// needed for a [`RedisServers::Cluster`] node list. Default: `false`.
    #[cfg(feature = "tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
    pub tls: bool,
    /// What the cache stores and how long each call may take.
    pub cache: RedisCacheOptions,
}

impl RedisCacheConfig {
    /// A configuration for the server(s) at `url` (see [`RedisServers::Url`]), with defaults.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_servers(RedisServers::Url(url.into()))
    }

    /// A configuration for the Redis Cluster with these masters (`host:port`), with defaults.
    #[must_use]
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_servers(RedisServers::Cluster(
            nodes.into_iter().map(Into::into).collect(),
        ))
    }

    fn with_servers(servers: RedisServers) -> Self {
        Self {
            servers,
            username: None,
            password: None,
            pool_size: 2,
            connect_timeout: Duration::from_secs(1),
            reconnect_max_delay: Duration::from_secs(1),
            unresponsive_timeout: Duration::from_secs(2),
            lazy_connect: false,
            #[cfg(feature = "tls")]
            tls: false,
            cache: RedisCacheOptions::default(),
        }
    }

    /// Checks every field, returning [`InvalidInput::Config`] for the first bad one. The URL
    /// itself is parsed when connecting.
    pub fn validate(&self) -> Result<()> {
        self.cache.validate()?;
        if !(1..=64).contains(&self.pool_size) {
            return Err(config_error(format!(
                "redis pool_size {} is not between 1 and 64",
                self.pool_size
            )));
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("reconnect_max_delay", self.reconnect_max_delay),
            ("unresponsive_timeout", self.unresponsive_timeout),
        ] {
            if value < Duration::from_millis(1) || value > Duration::from_secs(3600) {
                return Err(config_error(format!(
                    "redis {name} {value:?} is not between 1 ms and 1 hour"
                )));
            }
        }
        match &self.servers {
            RedisServers::Url(url) => validate_scheme(url),
            RedisServers::Cluster(nodes) => {
                if nodes.is_empty() {
                    return Err(config_error("redis cluster node list is empty".into()));
                }
                for node in nodes {
                    parse_node(node)?;
                }
                Ok(())
            }
        }
    }
}

/// Accepts `redis`/`valkey` schemes (TLS `rediss`/`valkeys` only with the `tls` feature),
/// optionally with `-cluster` or `-sentinel`.
fn validate_scheme(url: &str) -> Result<()> {
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(config_error(
            "redis URL has no scheme (expected redis://…)".into(),
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let base = scheme
        .strip_suffix("-cluster")
        .or_else(|| scheme.strip_suffix("-sentinel"))
        .unwrap_or(&scheme);
    match base {
        "redis" | "valkey" => Ok(()),
        "rediss" | "valkeys" if cfg!(feature = "tls") => Ok(()),
        "rediss" | "valkeys" => Err(config_error(format!(
            "redis URL scheme {scheme}:// needs the `tls` feature of eventlogs-redis"
        ))),
        _ => Err(config_error(format!(
            "unsupported redis URL scheme {scheme}:// (expected redis, rediss, redis-cluster \
             or rediss-cluster)"
        ))),
    }
}

/// Splits `host:port` (or `[v6]:port`).
pub(crate) fn parse_node(node: &str) -> Result<(String, u16)> {
    let bad = || config_error(format!("redis cluster node {node:?} is not host:port"));
    let (host, port) = node.trim().rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(['/', '@', ' ']) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

impl fmt::Debug for RedisCacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RedisCacheConfig");
        d.field("servers", &self.servers)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("unresponsive_timeout", &self.unresponsive_timeout)
            .field("lazy_connect", &self.lazy_connect);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls);
        d.field("cache", &self.cache).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented() {
        let options = RedisCacheOptions::default();
        assert_eq!(options.key_prefix, "eventlogs");
        assert_eq!(options.ttl, None);
        assert_eq!(options.timeout, Duration::from_millis(50));
        assert_eq!(options.max_entry_bytes, 1 << 20);
        options.validate().unwrap();
        let config = RedisCacheConfig::new("redis://127.0.0.1:6379");
        assert_eq!(config.pool_size, 2);
        assert_eq!(config.connect_timeout, Duration::from_secs(1));
        assert!(!config.lazy_connect);
        config.validate().unwrap();
        RedisCacheConfig::cluster(["127.0.0.1:7000", "[::1]:7001"])
            .validate()
            .unwrap();
    }

    #[test]
    fn bad_values_are_typed_config_errors() {
        for prefix in [
            "",
            "a b",
            "a{b}",
            "tab\there",
            "new\nline",
            &"x".repeat(129),
        ] {
            let err = RedisCacheOptions::default()
                .with_key_prefix(prefix)
                .validate()
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput(InvalidInput::Config(_))),
                "{prefix:?}: {err:?}"
            );
        }
        RedisCacheOptions::default()
            .with_key_prefix("app:eventlogs.v1")
            .validate()
            .unwrap();
        let bad = [
            RedisCacheOptions::default().with_timeout(Duration::ZERO),
            RedisCacheOptions::default().with_ttl(Some(Duration::from_micros(10))),
            RedisCacheOptions::default().with_ttl(Some(Duration::MAX)),
            RedisCacheOptions::default().with_max_entry_bytes(10),
            RedisCacheOptions::default().with_max_entry_bytes(512 << 20),
        ];
        for options in bad {
            assert!(
                matches!(
                    options.validate(),
                    Err(Error::InvalidInput(InvalidInput::Config(_)))
                ),
                "{options:?}"
            );
        }
        let mut config = RedisCacheConfig::new("redis://h");
        config.pool_size = 0;
        assert!(config.validate().is_err());
        for nodes in [
            vec![],
            vec!["nohost"],
            vec![":7000"],
            vec!["h:x"],
            vec!["h:0"],
        ] {
            assert!(RedisCacheConfig::cluster(nodes).validate().is_err());
        }
        for url in ["http://h:1", "h:1", "redis+unix:///tmp/r.sock"] {
            assert!(RedisCacheConfig::new(url).validate().is_err(), "{url}");
        }
        for url in [
            "redis://h",
            "REDIS://h:1",
            "redis-cluster://h:1?node=h:2",
            "valkey://h",
        ] {
            RedisCacheConfig::new(url).validate().unwrap();
        }
        assert_eq!(
            RedisCacheConfig::new("rediss://h:1").validate().is_ok(),
            cfg!(feature = "tls")
        );
    }

    #[test]
    fn ttl_is_whole_milliseconds() {
        let options = RedisCacheOptions::default().with_ttl(Some(Duration::from_micros(2_500)));
        assert_eq!(options.ttl_millis(), 2);
        assert_eq!(RedisCacheOptions::default().ttl_millis(), 0);
    }

    #[test]
    fn nodes_parse() {
        assert_eq!(
            parse_node("127.0.0.1:7000").unwrap(),
            ("127.0.0.1".into(), 7000)
        );
        assert_eq!(parse_node("[::1]:7001").unwrap(), ("::1".into(), 7001));
        assert_eq!(
            parse_node("redis.local:6379").unwrap(),
            ("redis.local".into(), 6379)
        );
    }

    #[test]
    fn debug_and_display_never_show_a_password() {
        let mut config = RedisCacheConfig::new("redis://user:s3cret@127.0.0.1:6379/0");
        config.password = Some("hunter2".into());
        let shown = format!("{config:?} {}", config.servers);
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("127.0.0.1:6379"), "{shown}");
        for (url, secret) in [
            ("redis://:p@ss@h:1", "p@ss"),
            ("rediss://u:pa/ss@h:1?x=1", "pa/ss"),
            ("redis://u:p?s#s@h:1", "p?s#s"),
            ("redis://u:p%40ss@h:1", "p%40ss"),
            ("redis-cluster://u:pw@h:1?node=h:2", "pw"),
            ("not a url with pw", "pw"),
            ("redis-sentinel://h:1?sentinelPassword=pw2&x=1", "pw2"),
        ] {
            let shown = format!("{:?}", RedisServers::Url(url.into()));
            assert!(!shown.contains(secret), "{url} -> {shown}");
        }
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }
}
