//! Throwaway PostgreSQL and Redis servers from local binaries, for tests, fault tests and xtask.
//!
//! Each server runs on a random free port of 127.0.0.1 with its files in a fresh temp dir, in
//! its own process group so that `kill`, `pause` and `resume` reach every process of it. A
//! small watchdog process removes the server and its files if the process that started it dies
//! without cleaning up (a panic with `panic = "abort"`, a SIGKILL, Ctrl-C of `cargo xtask`).
//! Dropping a handle stops the server and removes its files.
//!
//! This module uses only the standard library, so `xtask` can use it without a runtime.

mod certs;
mod docker;
mod env;
mod postgres;
mod process;
mod proxy;
mod redis;
pub mod resp;

pub use certs::{certificates, openssl_available};
pub use docker::{docker_available, Container};
pub use env::{
    cluster_nodes, database_url, local_servers_required, redis_url, run_locally, services_required,
    CLUSTER_NODES_VAR, DATABASE_URL_VAR, LOCAL_SERVERS_VAR, REDIS_URL_VAR, REQUIRE_SERVICES_VAR,
};
pub use postgres::{give_to_server_user, postgres_bin_dir, PostgresOptions, PostgresServer};
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
