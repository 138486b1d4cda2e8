//! Which PostgreSQL, Redis and Citus the tests use: URLs from the environment, else containers
//! when a Docker engine answers (through testcontainers), else throwaway servers from local
//! binaries. `EVENTLOGS_TEST_SERVERS=docker|local` forces the source.

use std::time::Instant;

use eventlogs_testkit::servers::{
    citus_available, provider, requested_provider, CitusCluster, PostgresServer, Provider,
    RedisCluster, RedisServer, CITUS_URL_VAR, CLUSTER_NODES_VAR, DATABASE_URL_VAR, OWN_SERVERS_VAR,
    REDIS_URL_VAR, REQUIRE_SERVICES_VAR, TEST_SERVERS_VAR,
};

/// Servers kept alive for the test run; dropping this stops and removes them.
#[derive(Default)]
pub(crate) struct Services {
    /// Variables to export to the test run.
    pub(crate) env: Vec<(&'static str, String)>,
    postgres: Option<PostgresServer>,
    redis: Option<RedisServer>,
    cluster: Option<RedisCluster>,
    citus: Option<CitusCluster>,
}

fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

const NONE_AVAILABLE: &str = "no PostgreSQL and Redis to test against. Either:
  1. set EVENTLOGS_DATABASE_URL and EVENTLOGS_REDIS_URL to running servers
     (for example `docker compose up -d` and the URLs in docker-compose.yml),
  2. start a Docker engine, so `cargo xtask test` can run containers of postgres:15 and
     redis:7 (through testcontainers), or
  3. install PostgreSQL and Redis (initdb/postgres under /usr/lib/postgresql/*/bin or on PATH,
     redis-server and redis-cli on PATH), so it can start throwaway servers.";

fn describe(provider: Provider) -> &'static str {
    match provider {
        Provider::Docker => "in a Docker container (testcontainers)",
        Provider::Local => "from local binaries",
    }
}

/// Where servers will come from: a provider, or `None` when the URLs cover everything and
/// none is available. Fails, quickly, when a forced source is missing or nothing is there.
pub(crate) fn source() -> Result<Option<Provider>, String> {
    let forced = requested_provider().map_err(|e| e.to_string())?;
    // A forced source must work; otherwise it is only needed for what the URLs leave out and
    // for the fault tests that start servers of their own.
    match provider() {
        Ok(found) => Ok(Some(found)),
        Err(e) if forced.is_some() => Err(e.to_string()),
        Err(_) if from_env(DATABASE_URL_VAR).is_none() || from_env(REDIS_URL_VAR).is_none() => {
            Err(NONE_AVAILABLE.to_owned())
        }
        Err(_) => Ok(None),
    }
}

/// The Citus coordinator's URL (or `skip`), the cluster when one was started, and the line
/// saying where it came from.
type Citus = (String, Option<CitusCluster>, String);

/// `EVENTLOGS_CITUS_URL`, else a coordinator and two workers from `source` when it has Citus,
/// else `skip`.
fn citus(source: Option<Provider>) -> Result<Citus, String> {
    if let Some(url) = from_env(CITUS_URL_VAR) {
        return Ok((url, None, format!("xtask: Citus from {CITUS_URL_VAR}")));
    }
    match source {
        Some(source) if citus_available() => {
            let started = Instant::now();
            let cluster = CitusCluster::start()
                .map_err(|e| format!("cannot start a Citus cluster ({}): {e}", describe(source)))?;
            let line = format!(
                "xtask: Citus cluster (coordinator on port {}, two workers) started in {:.1} s {}",
                cluster.coordinator().port(),
                started.elapsed().as_secs_f64(),
                match source {
                    Provider::Docker => "in Docker containers (testcontainers)",
                    Provider::Local => "from local binaries",
                }
            );
            Ok((cluster.url(), Some(cluster), line))
        }
        _ => Ok((
            "skip".to_owned(),
            None,
            "xtask: no Citus here: Citus tests are skipped; install Citus for PostgreSQL or \
             build the citusdata/citus:13.2 image"
                .to_owned(),
        )),
    }
}

impl Services {
    /// Finds or starts the servers, printing which source each came from. The Citus cluster
    /// (three nodes) starts alongside the others.
    pub(crate) fn provision() -> Result<Self, String> {
        let source = source()?;
        std::thread::scope(|scope| {
            let citus = scope.spawn(|| citus(source));
            let services = Self::provision_servers(source);
            let citus = citus
                .join()
                .unwrap_or_else(|_| Err("starting the Citus cluster panicked".to_owned()));
            let mut services = services?;
            let (url, cluster, line) = citus?;
            println!("{line}");
            services.citus = cluster;
            services.env.push((CITUS_URL_VAR, url));
            match source {
                Some(source) => {
                    println!(
                        "xtask: tests that start their own servers (fault tests) run them {}",
                        describe(source)
                    );
                    services.env.push((TEST_SERVERS_VAR, source.to_string()));
                    services.env.push((OWN_SERVERS_VAR, "1".to_owned()));
                }
                None => println!(
                    "xtask: no Docker engine and no local binaries: fault tests that start their own servers are skipped"
                ),
            }
            Ok(services)
        })
    }

    /// PostgreSQL, Redis and the Redis Cluster.
    fn provision_servers(source: Option<Provider>) -> Result<Self, String> {
        let mut services = Self::default();
        let database = from_env(DATABASE_URL_VAR);
        let redis = from_env(REDIS_URL_VAR);
        let start_error = |what: &str, e: &dyn std::fmt::Display| {
            format!(
                "cannot start {what} ({}): {e}",
                source.map_or("?", describe)
            )
        };
        let database = match (database, source) {
            (Some(url), _) => {
                println!("xtask: PostgreSQL from {DATABASE_URL_VAR}");
                url
            }
            (None, Some(source)) => {
                let server = PostgresServer::start().map_err(|e| start_error("PostgreSQL", &e))?;
                println!(
                    "xtask: PostgreSQL started {} on port {}",
                    describe(source),
                    server.port()
                );
                let url = server.url();
                services.postgres = Some(server);
                url
            }
            (None, None) => return Err(NONE_AVAILABLE.to_owned()),
        };
        let redis = match (redis, source) {
            (Some(url), _) => {
                println!("xtask: Redis from {REDIS_URL_VAR}");
                url
            }
            (None, Some(source)) => {
                let server = RedisServer::start().map_err(|e| start_error("Redis", &e))?;
                println!(
                    "xtask: Redis started {} on port {}",
                    describe(source),
                    server.port()
                );
                let url = server.url();
                services.redis = Some(server);
                url
            }
            (None, None) => return Err(NONE_AVAILABLE.to_owned()),
        };
        let cluster = match (from_env(CLUSTER_NODES_VAR), source) {
            (Some(nodes), _) => {
                println!("xtask: Redis Cluster from {CLUSTER_NODES_VAR}");
                nodes
            }
            (None, Some(source)) => {
                let cluster =
                    RedisCluster::start().map_err(|e| start_error("a Redis Cluster", &e))?;
                println!(
                    "xtask: Redis Cluster of three masters started {}",
                    describe(source)
                );
                let nodes = cluster.addrs().join(",");
                services.cluster = Some(cluster);
                nodes
            }
            (None, None) => {
                println!(
                    "xtask: no Docker engine and no local redis-server, so Redis Cluster tests are skipped"
                );
                "skip".to_owned()
            }
        };
        services.env = vec![
            (DATABASE_URL_VAR, database),
            (REDIS_URL_VAR, redis),
            (CLUSTER_NODES_VAR, cluster),
            (REQUIRE_SERVICES_VAR, "1".to_owned()),
        ];
        Ok(services)
    }
}
