//! `CitusCluster`: a throwaway Citus coordinator and workers, from the local PostgreSQL
//! binaries with the Citus extension, or in `citusdata/citus:13.2` containers on a network of
//! their own.
//!
//! Each node is a [`PostgresServer`] started with Citus preloaded, so it has the same fault
//! handles. The coordinator knows every node by the address under which the nodes reach each
//! other: `127.0.0.1:port` locally, `container-name:5432` on the cluster's Docker network.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::container::{self, ContainerServer, Network, CITUS_IMAGE};
use super::postgres::{postgres_bin_dir, settings, PostgresOptions, PostgresServer};
use super::provider::{provider, Provider};
use super::{err, free_port, ServerError, ServerResult};

/// The workers of [`CitusCluster::start`].
const DEFAULT_WORKERS: usize = 2;

/// What every node runs with besides the options: Citus preloaded, and prepared transactions
/// for its two-phase commits (and their recovery after a crash).
const CITUS_SETTINGS: [&str; 2] = [
    "shared_preload_libraries=citus",
    "max_prepared_transactions=200",
];

/// Whether the [`provider`] can start a Citus cluster: on Docker, the engine has the image
/// `citusdata/citus:13.2` (nothing is pulled); locally, the PostgreSQL binaries are there and
/// `citus.so` is installed for them (in `pg_config --pkglibdir`, for example
/// `/usr/lib/postgresql/15/lib`).
#[must_use]
pub fn citus_available() -> bool {
    match provider() {
        Ok(Provider::Docker) => container::image_present(CITUS_IMAGE),
        Ok(Provider::Local) => citus_library().is_some(),
        Err(_) => false,
    }
}

/// `citus.so` for the local PostgreSQL binaries.
fn citus_library() -> Option<PathBuf> {
    let bin = postgres_bin_dir()?;
    let pg_config = Command::new(bin.join("pg_config"))
        .arg("--pkglibdir")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    pg_config
        .into_iter()
        .chain(bin.parent().map(|dir| dir.join("lib")))
        .map(|dir| dir.join("citus.so"))
        .find(|library| library.is_file())
}

/// Runs `statements` in turn on the server at `127.0.0.1:port`, database `eventlogs`, on a
/// runtime of its own on another thread (callers may be plain code or inside a runtime).
fn run_sql(port: u16, statements: Vec<String>) -> ServerResult<()> {
    let work = move || -> ServerResult<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ServerError(format!("cannot build a runtime: {e}")))?;
        runtime.block_on(async move {
            let config = format!(
                "host=127.0.0.1 port={port} user=postgres dbname=eventlogs connect_timeout=10"
            );
            let failed = |what: &str, e: tokio_postgres::Error| {
                let message = e
                    .as_db_error()
                    .map_or_else(|| e.to_string(), ToString::to_string);
                ServerError(format!("Citus set-up on port {port}: {what}: {message}"))
            };
            let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
                .await
                .map_err(|e| failed("connect", e))?;
            let connection = tokio::spawn(connection);
            for statement in &statements {
                tokio::time::timeout(Duration::from_secs(60), client.batch_execute(statement))
                    .await
                    .map_err(|_| ServerError(format!("`{statement}` took over 60 s")))?
                    .map_err(|e| failed(statement, e))?;
            }
            drop(client);
            let _ = connection.await;
            Ok(())
        })
    };
    std::thread::spawn(work)
        .join()
        .unwrap_or_else(|_| err("the Citus set-up thread panicked"))
}

/// A node of a [`CitusCluster`]: a PostgreSQL server with Citus, and the address under which
/// the coordinator registered it. Dropping it stops it and removes its files (or container).
#[derive(Debug)]
pub struct CitusNode {
    server: PostgresServer,
    host: String,
    node_port: u16,
}

impl CitusNode {
    /// Starts a node from `provider` (in a container named `name` on `network` for Docker),
    /// and creates the extension in `eventlogs`.
    fn start(
        provider: Provider,
        name: &str,
        network: Option<&str>,
        options: &PostgresOptions,
    ) -> ServerResult<Self> {
        let mut options = options.clone();
        options
            .settings
            .extend(CITUS_SETTINGS.iter().map(|s| (*s).to_owned()));
        let node = match (provider, network) {
            (Provider::Local, _) => {
                let server = PostgresServer::start_local(&options)?;
                let node_port = server.port();
                Self {
                    server,
                    host: "127.0.0.1".to_owned(),
                    node_port,
                }
            }
            (Provider::Docker, Some(network)) => {
                let port = free_port()?;
                let request = container::citus_node(port, name, network, &settings(&options));
                Self {
                    server: PostgresServer::in_container(port, ContainerServer::start(request)?)?,
                    host: name.to_owned(),
                    node_port: 5432,
                }
            }
            (Provider::Docker, None) => return err("Citus containers need a network"),
        };
        run_sql(
            node.port(),
            vec!["CREATE EXTENSION IF NOT EXISTS citus".to_owned()],
        )?;
        Ok(node)
    }

    /// The host and port under which the coordinator registered this node, as `pg_dist_node`
    /// and `citus_shards` report them: `("127.0.0.1", port)` locally, `(container name, 5432)`
    /// on Docker.
    #[must_use]
    pub fn node_name(&self) -> (String, u16) {
        (self.host.clone(), self.node_port)
    }

    /// The port this node is published on at 127.0.0.1 (kept across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `postgres://postgres@127.0.0.1:{port}/eventlogs`: this node itself.
    #[must_use]
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Where the node runs.
    #[must_use]
    pub fn provider(&self) -> Provider {
        self.server.provider()
    }

    /// The container's id; `None` for a local node.
    #[must_use]
    pub fn container_id(&self) -> Option<&str> {
        self.server.container_id()
    }

    /// The directory holding the node's files and `postgres.log`; `None` in a container.
    #[must_use]
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.server.dir()
    }

    /// Fast shutdown (SIGINT), waiting for it to finish.
    pub fn stop(&mut self) {
        self.server.stop();
    }

    /// SIGKILL to every process of the node (`docker kill` for a container), as a crash would.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// SIGSTOP to every process of the node (`docker pause`): nothing it serves answers.
    pub fn pause(&self) {
        self.server.pause();
    }

    /// SIGCONT (`docker unpause`) after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.server.resume();
    }

    /// Starts the node again on the same port, name and data (stopping it first if it runs),
    /// and waits until it accepts connections.
    pub fn restart(&mut self) -> ServerResult<()> {
        self.server.restart()
    }
}

/// A Citus cluster: a coordinator and workers, started from the [`provider`]. Dropping it
/// stops every node and removes their files, or their containers and network.
#[derive(Debug)]
pub struct CitusCluster {
    /// The coordinator, then the workers.
    nodes: Vec<CitusNode>,
    /// The Docker network of the containers, removed after them (see `Drop`).
    network: Option<Network>,
}

impl CitusCluster {
    /// Starts a coordinator and two workers with default options.
    pub fn start() -> ServerResult<Self> {
        Self::start_with(DEFAULT_WORKERS, &PostgresOptions::default())
    }

    /// Starts a coordinator and `workers` workers (at once), each a PostgreSQL server with
    /// `options` (fsync off by default), Citus preloaded and `max_prepared_transactions=200`,
    /// then registers them with the coordinator (`citus_set_coordinator_host`,
    /// `citus_add_node`). On Docker the nodes are containers of `citusdata/citus:13.2` on a
    /// network of the cluster's own, named `eventlogs-citus-{c|w1|w2…}-{session}-{n}`.
    pub fn start_with(workers: usize, options: &PostgresOptions) -> ServerResult<Self> {
        let provider = provider()?;
        let (names, network) = match provider {
            Provider::Local => (vec![String::new(); workers + 1], None),
            Provider::Docker => {
                static CLUSTERS: AtomicU32 = AtomicU32::new(0);
                let tag = format!(
                    "{}-{}",
                    container::session_id(),
                    CLUSTERS.fetch_add(1, Ordering::Relaxed)
                );
                let names = std::iter::once(format!("eventlogs-citus-c-{tag}"))
                    .chain((1..=workers).map(|i| format!("eventlogs-citus-w{i}-{tag}")))
                    .collect();
                let network = Network::create(format!("eventlogs-citus-net-{tag}"))?;
                (names, Some(network))
            }
        };
        let on = network.as_ref().map(Network::name);
        // In parallel: a container takes seconds to start.
        let nodes = std::thread::scope(|scope| {
            let starting: Vec<_> = names
                .iter()
                .map(|name| scope.spawn(move || CitusNode::start(provider, name, on, options)))
                .collect();
            starting
                .into_iter()
                .map(|node| {
                    node.join()
                        .unwrap_or_else(|_| err("a Citus node's start panicked"))
                })
                .collect::<ServerResult<Vec<_>>>()
        })?;
        let cluster = Self { nodes, network };
        let (host, port) = cluster.coordinator().node_name();
        let mut statements = vec![format!(
            "SELECT citus_set_coordinator_host('{host}', {port})"
        )];
        for worker in cluster.workers() {
            let (host, port) = worker.node_name();
            statements.push(format!("SELECT citus_add_node('{host}', {port})"));
        }
        run_sql(cluster.coordinator().port(), statements)?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:{coordinator port}/eventlogs`.
    #[must_use]
    pub fn url(&self) -> String {
        self.coordinator().url()
    }

    /// The coordinator.
    #[must_use]
    pub fn coordinator(&self) -> &CitusNode {
        &self.nodes[0]
    }

    /// The coordinator, to kill, pause or restart it.
    pub fn coordinator_mut(&mut self) -> &mut CitusNode {
        &mut self.nodes[0]
    }

    /// The workers, in the order they were registered.
    #[must_use]
    pub fn workers(&self) -> &[CitusNode] {
        &self.nodes[1..]
    }

    /// The workers, to kill, pause or restart them.
    pub fn workers_mut(&mut self) -> &mut [CitusNode] {
        &mut self.nodes[1..]
    }

    /// Worker `i` (from 0). Panics when there is no such worker.
    pub fn worker_mut(&mut self, i: usize) -> &mut CitusNode {
        &mut self.workers_mut()[i]
    }

    /// Where the nodes run.
    #[must_use]
    pub fn provider(&self) -> Provider {
        self.coordinator().provider()
    }

    /// The name of the cluster's Docker network; `None` for a local cluster.
    #[must_use]
    pub fn network(&self) -> Option<&str> {
        self.network.as_ref().map(Network::name)
    }
}

impl Drop for CitusCluster {
    fn drop(&mut self) {
        // In parallel (removing a container takes a while), and before the network goes.
        std::thread::scope(|scope| {
            for node in self.nodes.drain(..) {
                scope.spawn(move || drop(node));
            }
        });
    }
}
