//! Where throwaway servers come from: Docker containers or local binaries, and how to choose.

use std::fmt;

use super::container::docker_available;
use super::{local_binaries_available, ServerError, ServerResult};

/// `docker` or `local`: forces where servers come from (`cargo xtask test` sets it to what it
/// chose, so tests that start their own servers use the same source).
pub const TEST_SERVERS_VAR: &str = "EVENTLOGS_TEST_SERVERS";

/// A source of throwaway servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Containers of the official images, through the `testcontainers` crate.
    Docker,
    /// Processes from the PostgreSQL and Redis binaries installed on this machine.
    Local,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Docker => "docker",
            Self::Local => "local",
        })
    }
}

impl Provider {
    /// Whether this provider can start servers here.
    #[must_use]
    pub fn available(self) -> bool {
        match self {
            Self::Docker => docker_available(),
            Self::Local => local_binaries_available(),
        }
    }

    /// Why this provider cannot start servers here, and what to do about it.
    #[must_use]
    pub fn missing(self) -> &'static str {
        match self {
            Self::Docker => {
                "no Docker engine answers (start one, or point DOCKER_HOST at it); \
                 the images are postgres:15, redis:7 and citusdata/citus:13.2"
            }
            Self::Local => {
                "PostgreSQL and Redis binaries are not installed (initdb/postgres under \
                 /usr/lib/postgresql/*/bin or on PATH; redis-server and redis-cli on PATH)"
            }
        }
    }
}

/// The provider `EVENTLOGS_TEST_SERVERS` names, if any; an unknown value is an error.
pub fn requested_provider() -> ServerResult<Option<Provider>> {
    match std::env::var(TEST_SERVERS_VAR).ok().as_deref() {
        None | Some("") => Ok(None),
        Some("docker") => Ok(Some(Provider::Docker)),
        Some("local") => Ok(Some(Provider::Local)),
        Some(other) => Err(ServerError(format!(
            "{TEST_SERVERS_VAR}={other:?}: expected `docker` or `local`"
        ))),
    }
}

/// Where servers come from: the provider `EVENTLOGS_TEST_SERVERS` forces (an error when it
/// is not available), else the first available of a Docker engine and local binaries.
pub fn provider() -> ServerResult<Provider> {
    match requested_provider()? {
        Some(forced) if forced.available() => Ok(forced),
        Some(forced) => Err(ServerError(format!(
            "{TEST_SERVERS_VAR}={forced}, but {}",
            forced.missing()
        ))),
        None => [Provider::Docker, Provider::Local]
            .into_iter()
            .find(|p| p.available())
            .ok_or_else(|| {
                ServerError(format!(
                    "no source of test servers: {}; and {}",
                    Provider::Docker.missing(),
                    Provider::Local.missing()
                ))
            }),
    }
}
