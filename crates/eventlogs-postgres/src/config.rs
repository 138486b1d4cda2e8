//! `PostgresConfig` and its builder: URL or pool, schema, pool size, timeouts and limits.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use eventlogs_core::{InvalidInput, Limits, Result};

use crate::connect::{Connector, Tls};
use crate::group_config::AppendGrouping;
use crate::schema::valid_identifier;
use crate::store::PostgresEventStore;
use crate::watermark::FeedWatermark;

/// The URL with any password replaced by `***`, for logs and `Debug` (the one helper of core).
pub(crate) use eventlogs_core::backend::redact_connection_string as redact;

/// Settings of a [`PostgresEventStore`]. Every field has a documented default.
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// Connection URL (`postgres://user:password@host:port/db?sslmode=…`) or key-value string.
    /// Never printed: `Debug` shows it with the password replaced.
    pub url: String,
    /// Schema holding the tables (default `eventlogs`); a plain identifier `[a-z_][a-z0-9_]*`.
    pub schema: String,
    /// Maximum connections in the pool (default 16; on small servers more is slower, not faster).
    pub pool_size: usize,
    /// How long a call waits for a free connection before [`Error::Timeout`](eventlogs_core::Error::Timeout) (default 5 s).
    pub checkout_timeout: Duration,
    /// How long opening a connection may take (default 5 s).
    pub connect_timeout: Duration,
    /// Deadline of each statement, and of each row of a stream (default 10 s). A statement that
    /// passes it fails with a retryable timeout and its connection is discarded.
    pub statement_timeout: Duration,
    /// Bounds on requests (default [`Limits::default`]).
    pub limits: Limits,
    /// PEM certificates of the CA that signed the server's certificate, for `sslmode=require`
    /// against a private CA (feature `tls`). Default: the webpki roots.
    pub tls_root_certificates: Option<Vec<u8>>,
    /// How often, at most, the store announces its appends to live subscriptions with one
    /// `NOTIFY` sent after the appends committed, outside their transactions (default 20 ms;
    /// `None` sends none and subscriptions rely on polling).
    pub notify_interval: Option<Duration>,
    /// Distribute the schema over a Citus cluster in [`migrate`](PostgresEventStore::migrate)
    /// (default `false`): connect to the coordinator. A store finds out by itself whether a
    /// schema is distributed; this only decides whether `migrate` distributes it.
    pub distributed: bool,
    /// On a distributed schema, how long a keyed write may hold its key's claim before another
    /// request with the same key voids it and writes instead (default 2 s). Voiding is always
    /// safe (the voided write can no longer commit); a shorter grace gets retries of a write
    /// whose writer died through sooner, a longer one spares slow writers a retry.
    pub key_claim_grace: Duration,
    /// Which transactions the global feed waits for (default
    /// [`FeedWatermark::EventWriters`]: only those writing events).
    pub feed_watermark: FeedWatermark,
    /// Whether concurrent appends to different logs share one statement and one commit, and
    /// how many (default [`AppendGrouping::new`]: on).
    pub append_grouping: AppendGrouping,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            schema: "eventlogs".to_owned(),
            pool_size: 16,
            checkout_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            tls_root_certificates: None,
            notify_interval: Some(Duration::from_millis(20)),
            distributed: false,
            key_claim_grace: Duration::from_secs(2),
            feed_watermark: FeedWatermark::EventWriters,
            append_grouping: AppendGrouping::new(),
        }
    }
}

impl PostgresConfig {
    /// The URL with its password replaced by `***`, safe to log.
    #[must_use]
    pub fn url_redacted(&self) -> String {
        redact(&self.url)
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("checkout_timeout", &self.checkout_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("limits", &self.limits)
            .field(
                "tls_root_certificates",
                &self.tls_root_certificates.as_ref().map(Vec::len),
            )
            .field("notify_interval", &self.notify_interval)
            .field("distributed", &self.distributed)
            .field("key_claim_grace", &self.key_claim_grace)
            .field("feed_watermark", &self.feed_watermark)
            .field("append_grouping", &self.append_grouping)
            .finish()
    }
}

/// Builds a [`PostgresEventStore`] from a URL or an existing pool.
#[derive(Debug)]
#[must_use]
pub struct PostgresEventStoreBuilder {
    config: PostgresConfig,
    pool: Option<PoolDebug>,
}

/// An existing pool; deadpool's `Pool` has no `Debug` worth printing.
struct PoolDebug(Pool);

impl fmt::Debug for PoolDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pool { .. }")
    }
}

impl PostgresEventStoreBuilder {
    pub(crate) fn from_url(url: String) -> Self {
        Self {
            config: PostgresConfig {
                url,
                ..PostgresConfig::default()
            },
            pool: None,
        }
    }

    pub(crate) fn from_pool(pool: Pool) -> Self {
        Self {
            config: PostgresConfig::default(),
            pool: Some(PoolDebug(pool)),
        }
    }

    /// Starts from a complete configuration.
    pub fn config(mut self, config: PostgresConfig) -> Self {
        self.config = config;
        self
    }

    /// The schema holding the tables (default `eventlogs`).
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.config.schema = schema.into();
        self
    }

    /// Maximum connections (default 16). Ignored with an existing pool.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.config.pool_size = size;
        self
    }

    /// How long to wait for a free connection (default 5 s). Ignored with an existing pool.
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.config.checkout_timeout = timeout;
        self
    }

    /// How long connecting may take (default 5 s). Ignored with an existing pool.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// Deadline of each statement and each streamed row (default 10 s).
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.config.statement_timeout = timeout;
        self
    }

    /// Bounds on requests (default [`Limits::default`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Trusts the CA certificates in `pem` (instead of the webpki roots) for `sslmode=require`.
    /// Needs the `tls` feature.
    pub fn tls_root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.config.tls_root_certificates = Some(pem.into());
        self
    }

    /// How often, at most, appends are announced to live subscriptions (default 20 ms);
    /// `None` turns the announcements off, leaving subscriptions to poll.
    pub fn notify_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.notify_interval = interval;
        self
    }

    /// Which transactions the global feed waits for (default
    /// [`FeedWatermark::EventWriters`]). See the README, "The global feed".
    pub fn feed_watermark(mut self, watermark: FeedWatermark) -> Self {
        self.config.feed_watermark = watermark;
        self
    }

    /// Whether and how concurrent appends to different logs share one statement and one
    /// commit (default [`AppendGrouping::new`]: on). See the README, "Group append".
    pub fn append_grouping(mut self, grouping: AppendGrouping) -> Self {
        self.config.append_grouping = grouping;
        self
    }

    /// Distributes the schema over a Citus cluster when [`migrate`](PostgresEventStore::migrate)
    /// runs (default `false`); the URL names the coordinator. See the README, "Scaling out".
    pub fn distributed(mut self, distributed: bool) -> Self {
        self.config.distributed = distributed;
        self
    }

    /// How long a keyed write may hold its key's claim on a distributed schema before a
    /// request with the same key voids it (default 2 s).
    pub fn key_claim_grace(mut self, grace: Duration) -> Self {
        self.config.key_claim_grace = grace;
        self
    }

    /// Validates the configuration and creates the pool (no connection is opened yet).
    pub fn build(self) -> Result<PostgresEventStore> {
        let config = self.config;
        if !valid_identifier(&config.schema) {
            return Err(InvalidInput::Config(format!(
                "schema {:?} is not a plain identifier ([a-z_][a-z0-9_]{{0,62}})",
                config.schema
            ))
            .into());
        }
        config.append_grouping.check()?;
        if config.pool_size == 0 {
            return Err(InvalidInput::Config("pool_size must be at least 1".into()).into());
        }
        let (pool, connector) = match self.pool {
            Some(PoolDebug(pool)) => (pool, None),
            None => {
                let connector = Connector::new(&config)?;
                (create_pool(&config, &connector)?, Some(connector))
            }
        };
        Ok(PostgresEventStore::new(pool, config, connector))
    }
}

fn create_pool(config: &PostgresConfig, connector: &Connector) -> Result<Pool> {
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let pg = connector.config.clone();
    let manager = match &connector.tls {
        Tls::None => Manager::from_config(pg, tokio_postgres::NoTls, manager_config),
        #[cfg(feature = "tls")]
        Tls::Rustls(tls) => Manager::from_config(pg, tls.clone(), manager_config),
    };
    Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(config.checkout_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| InvalidInput::Config(format!("cannot build the pool: {e}")).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for url in [
            "postgres://app:s3cret@db.example:5432/app",
            "postgres://app:s3cret@db/app?sslmode=require",
            "postgres://app@db/app?password=s3cret&sslmode=require",
            "host=db user=app password=s3cret dbname=app",
            "postgres://app:pa/s3cret@db/app",
            "postgres://app:s3cret@x@db/app",
            "postgres://app:s3cret?#@db/app",
            "postgres://app:%73%33%63%72%65%74@db/app",
            r"host=db user=app password='it\'s s3cret' dbname=app",
        ] {
            let shown = redact(url);
            assert!(
                !shown.contains("s3cret") && !shown.contains("73%33"),
                "{shown}"
            );
            let config = PostgresConfig {
                url: url.to_owned(),
                ..PostgresConfig::default()
            };
            assert!(!format!("{config:?}").contains("s3cret"));
            let err = PostgresEventStore::builder(url)
                .schema("Bad Name")
                .build()
                .unwrap_err();
            assert!(!format!("{err:?} {err}").contains("s3cret"));
        }
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
    }

    #[test]
    fn hostile_schema_names_are_refused_at_build() {
        for schema in ["ev\"; drop table x;--", "", "Upper", "a b"] {
            let err = PostgresEventStore::builder("postgres://u@127.0.0.1/db")
                .schema(schema)
                .build()
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    eventlogs_core::Error::InvalidInput(InvalidInput::Config(_))
                ),
                "{err:?}"
            );
        }
        let err = PostgresEventStore::builder("not a url at all ://")
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            eventlogs_core::Error::InvalidInput(InvalidInput::Config(_))
        ));
    }
}
