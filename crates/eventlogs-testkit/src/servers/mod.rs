//! Throwaway PostgreSQL and Redis servers and Citus clusters for tests, fault tests and xtask,
//! from a [`Provider`]: Docker containers (through the `testcontainers` crate) or local binaries.
//!
//! Each server listens on a free port of 127.0.0.1 that it keeps across restarts, and has
//! handles to `kill`, `pause`, `resume` and `restart` it, the same on both providers. A local
//! server runs with its files in a fresh temp dir, in its own process group, so that signals
//! reach every process of it; a container is killed, paused and started through the Docker
//! API. Dropping a handle stops the server and removes its files or its container; a watchdog
//! process does the same if the process that started it dies without cleaning up (a panic with
//! `panic = "abort"`, a SIGKILL, Ctrl-C of `cargo xtask`).
//!
//! The handles are blocking, so `xtask` uses them without a runtime and tests call them from
//! inside theirs (containers are driven from a thread of their own).

mod certs;
mod citus;
mod container;
mod env;
mod pgwire;
mod postgres;
mod process;
mod provider;
mod proxy;
mod redis;
pub mod resp;

pub use certs::{certificates, openssl_available};
pub use citus::{citus_available, CitusCluster, CitusNode};
pub use container::{docker_available, leftover_containers, session_id, SESSION_LABEL};
pub use env::{
    citus_url, cluster_nodes, database_url, own_servers, own_servers_required, redis_url,
    run_locally, services_required, CITUS_URL_VAR, CLUSTER_NODES_VAR, DATABASE_URL_VAR,
    OWN_SERVERS_VAR, REDIS_URL_VAR, REQUIRE_SERVICES_VAR,
};
pub use pgwire::postgres_ready;
pub use postgres::{give_to_server_user, postgres_bin_dir, PostgresOptions, PostgresServer};
pub use provider::{provider, requested_provider, Provider, TEST_SERVERS_VAR};
pub use proxy::{ProxyMode, TcpProxy};
pub use redis::{redis_available, RedisCluster, RedisServer};

/// What went wrong starting or controlling a server.
#[derive(Debug)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// Result of server operations.
pub type ServerResult<T> = Result<T, ServerError>;

pub(crate) fn err<T>(message: impl Into<String>) -> ServerResult<T> {
    Err(ServerError(message.into()))
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> ServerResult<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| ServerError(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| ServerError(format!("no free port: {e}")))
}

/// Whether the local PostgreSQL and Redis binaries needed for throwaway servers are installed.
#[must_use]
pub fn local_binaries_available() -> bool {
    postgres_bin_dir().is_some() && redis_available()
}
