//! Which PostgreSQL and Redis the tests use: URLs from the environment, else containers when a
//! Docker engine answers, else throwaway servers from local binaries.

use eventlogs_testkit::servers::{
    docker_available, local_binaries_available, Container, PostgresServer, RedisCluster,
    RedisServer, CLUSTER_NODES_VAR, DATABASE_URL_VAR, LOCAL_SERVERS_VAR, REDIS_URL_VAR,
    REQUIRE_SERVICES_VAR,
};

/// Servers kept alive for the test run; dropping this stops and removes them.
#[derive(Default)]
pub(crate) struct Services {
    /// Variables to export to the test run.
    pub(crate) env: Vec<(&'static str, String)>,
    postgres: Option<PostgresServer>,
    redis: Option<RedisServer>,
    cluster: Option<RedisCluster>,
    containers: Vec<Container>,
}

fn from_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

const NONE_AVAILABLE: &str = "no PostgreSQL and Redis to test against. Either:
  1. set EVENTLOGS_DATABASE_URL and EVENTLOGS_REDIS_URL to running servers
     (for example `docker compose up -d` and the URLs in docker-compose.yml),
  2. start a Docker engine, so `cargo xtask test` can run containers, or
  3. install PostgreSQL and Redis (initdb/postgres under /usr/lib/postgresql/*/bin or on PATH,
     redis-server and redis-cli on PATH), so it can start throwaway servers.";

impl Services {
    /// Finds or starts the servers, printing which source each came from.
    pub(crate) fn provision() -> Result<Self, String> {
        let mut services = Self::default();
        let local = local_binaries_available();
        let database = from_env(DATABASE_URL_VAR);
        let redis = from_env(REDIS_URL_VAR);
        let docker = (database.is_none() || redis.is_none()) && !local && docker_available();
        if (database.is_none() || redis.is_none()) && !local && !docker {
            return Err(NONE_AVAILABLE.to_owned());
        }
        let database = match database {
            Some(url) => {
                println!("xtask: PostgreSQL from {DATABASE_URL_VAR}");
                url
            }
            None if local => {
                let server = PostgresServer::start().map_err(|e| e.to_string())?;
                println!(
                    "xtask: PostgreSQL started from local binaries on port {}",
                    server.port()
                );
                let url = server.url();
                services.postgres = Some(server);
                url
            }
            None => {
                let container = Container::postgres().map_err(|e| e.to_string())?;
                println!("xtask: PostgreSQL started in a Docker container");
                let url = container.url().to_owned();
                services.containers.push(container);
                url
            }
        };
        let redis = match redis {
            Some(url) => {
                println!("xtask: Redis from {REDIS_URL_VAR}");
                url
            }
            None if local => {
                let server = RedisServer::start().map_err(|e| e.to_string())?;
                println!(
                    "xtask: Redis started from local binaries on port {}",
                    server.port()
                );
                let url = server.url();
                services.redis = Some(server);
                url
            }
            None => {
                let container = Container::redis().map_err(|e| e.to_string())?;
                println!("xtask: Redis started in a Docker container");
                let url = container.url().to_owned();
                services.containers.push(container);
                url
            }
        };
        let cluster = match from_env(CLUSTER_NODES_VAR) {
            Some(nodes) => {
                println!("xtask: Redis Cluster from {CLUSTER_NODES_VAR}");
                nodes
            }
            None if local => {
                let cluster = RedisCluster::start().map_err(|e| e.to_string())?;
                println!("xtask: Redis Cluster of three masters started from local binaries");
                let nodes = cluster.addrs().join(",");
                services.cluster = Some(cluster);
                nodes
            }
            None => {
                println!("xtask: no local redis-server, so Redis Cluster tests are skipped");
                "skip".to_owned()
            }
        };
        services.env = vec![
            (DATABASE_URL_VAR, database),
            (REDIS_URL_VAR, redis),
            (CLUSTER_NODES_VAR, cluster),
            (REQUIRE_SERVICES_VAR, "1".to_owned()),
        ];
        if local {
            services.env.push((LOCAL_SERVERS_VAR, "1".to_owned()));
        }
        Ok(services)
    }
}
