//! The environment variables that tell tests which servers to use, and skip-or-fail logic.

/// PostgreSQL URL for server tests (set by `cargo xtask test`).
pub const DATABASE_URL_VAR: &str = "EVENTLOGS_DATABASE_URL";
/// Redis URL for server tests.
pub const REDIS_URL_VAR: &str = "EVENTLOGS_REDIS_URL";
/// Comma-separated `host:port` list of a Redis Cluster's masters.
pub const CLUSTER_NODES_VAR: &str = "EVENTLOGS_REDIS_CLUSTER_NODES";
/// PostgreSQL URL of a Citus cluster's coordinator (database with the `citus` extension).
pub const CITUS_URL_VAR: &str = "EVENTLOGS_CITUS_URL";
/// `1`: a test whose server is missing fails instead of skipping.
pub const REQUIRE_SERVICES_VAR: &str = "EVENTLOGS_REQUIRE_SERVICES";
/// `1`: tests that start their own servers (fault tests) must run: a provider is available.
pub const OWN_SERVERS_VAR: &str = "EVENTLOGS_OWN_SERVERS";

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether missing servers are a failure (`EVENTLOGS_REQUIRE_SERVICES=1`).
#[must_use]
pub fn services_required() -> bool {
    flag(REQUIRE_SERVICES_VAR)
}

/// Whether tests that start their own servers must run (`EVENTLOGS_OWN_SERVERS=1`).
#[must_use]
pub fn own_servers_required() -> bool {
    flag(OWN_SERVERS_VAR)
}

/// Whether a test that starts its own servers (any [`Provider`](super::Provider)) can run:
/// `false` after a one-line skip message when no provider is available, or a panic when
/// `EVENTLOGS_OWN_SERVERS=1` says one must be.
#[must_use]
pub fn own_servers() -> bool {
    match super::provider() {
        Ok(_) => true,
        Err(e) => {
            assert!(!own_servers_required(), "{OWN_SERVERS_VAR}=1 but {e}");
            eprintln!("skipping: {e}");
            false
        }
    }
}

/// Whether a test that needs local server binaries (and `what` else it names, such as
/// openssl) can run. On the Docker provider it skips, saying `why_local`: what the test does
/// that a container cannot. Otherwise it skips when `available` is false, or panics when
/// `EVENTLOGS_OWN_SERVERS=1` says local servers must be there.
#[must_use]
pub fn run_locally(available: bool, what: &str, why_local: &str) -> bool {
    if matches!(super::provider(), Ok(super::Provider::Docker)) {
        eprintln!("skipping on the Docker provider: {why_local}");
        return false;
    }
    if available {
        return true;
    }
    assert!(
        !own_servers_required(),
        "{OWN_SERVERS_VAR}=1 but {what} missing"
    );
    eprintln!("skipping: {what} missing");
    false
}

/// The value of `var`, or `None` after a one-line skip message; panics instead when
/// services are required.
fn service(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                !services_required(),
                "{var} is not set but {REQUIRE_SERVICES_VAR}=1: this test needs {what}"
            );
            eprintln!("skipping: {var} is not set (run `cargo xtask test` to provision {what})");
            None
        }
    }
}

/// The PostgreSQL URL to test against, or `None` (skip).
#[must_use]
pub fn database_url() -> Option<String> {
    service(DATABASE_URL_VAR, "PostgreSQL")
}

/// The Redis URL to test against, or `None` (skip).
#[must_use]
pub fn redis_url() -> Option<String> {
    service(REDIS_URL_VAR, "Redis")
}

/// The Redis Cluster masters to test against, or `None` (skip). The value `skip` skips even
/// when services are required (xtask sets it where it cannot start a cluster).
#[must_use]
pub fn cluster_nodes() -> Option<Vec<String>> {
    if std::env::var(CLUSTER_NODES_VAR).is_ok_and(|v| v == "skip") {
        eprintln!(
            "skipping: no Redis Cluster here (cluster tests need local redis-server binaries)"
        );
        return None;
    }
    service(CLUSTER_NODES_VAR, "a Redis Cluster").map(|v| v.split(',').map(str::to_owned).collect())
}

/// The coordinator URL of the Citus cluster to test against, or `None` (skip). The value
/// `skip` skips even when services are required (xtask sets it, saying why, where it can
/// start no cluster).
#[must_use]
pub fn citus_url() -> Option<String> {
    if std::env::var(CITUS_URL_VAR).is_ok_and(|v| v == "skip") {
        eprintln!(
            "skipping: no Citus cluster here (Citus tests need Citus for the local PostgreSQL \
             or the citusdata/citus:13.2 image)"
        );
        return None;
    }
    service(CITUS_URL_VAR, "a Citus cluster")
}
