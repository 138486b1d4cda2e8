//! `RedisServer` (one node, no persistence) and `RedisCluster` (three masters), from local
//! binaries or in containers.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::container::{self, ContainerServer};
use super::process::{make_temp_dir, wait_until, ServerProcess, Spec};
use super::provider::{provider, Provider};
use super::resp::{command, Reply};
use super::{err, free_port, ServerError, ServerResult};

fn find(binary: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(binary))
                .find(|p| p.is_file())
        })
        .unwrap_or(None)
}

/// Whether `redis-server` and `redis-cli` are on `PATH`.
#[must_use]
pub fn redis_available() -> bool {
    find("redis-server").is_some() && find("redis-cli").is_some()
}

fn ping(port: u16) -> bool {
    let addr = format!("127.0.0.1:{port}");
    matches!(command(&addr, &[b"PING"], Duration::from_millis(500)), Ok(Reply::Status(s)) if s == "PONG")
}

/// A private Redis server. Dropping it stops the server and removes its files (or its
/// container).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Local(ServerProcess),
    Container(ContainerServer),
}

/// Whether a server is a plain node or a cluster node (which containers run on the host's
/// network, see `container::redis_cluster_node`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Single,
    ClusterNode,
}

impl RedisServer {
    /// Starts a Redis with no persistence on a free port of 127.0.0.1.
    pub fn start() -> ServerResult<Self> {
        Self::start_with_args(&[])
    }

    /// Starts a Redis with extra `redis-server` arguments (for example `--maxmemory 1mb`),
    /// from the [`provider`]: a container of `redis:7`, or `redis-server` on this machine.
    pub fn start_with_args(extra: &[&str]) -> ServerResult<Self> {
        Self::start_as(Role::Single, extra)
    }

    fn start_as(role: Role, extra: &[&str]) -> ServerResult<Self> {
        let port = free_port()?;
        let backend = match provider()? {
            Provider::Local => Backend::Local(Self::spawn_local(port, extra)?),
            Provider::Docker => Backend::Container(ContainerServer::start(match role {
                Role::Single => container::redis(port, extra),
                Role::ClusterNode => container::redis_cluster_node(port, extra),
            })?),
        };
        let mut server = Self { port, backend };
        server.wait_ready()?;
        Ok(server)
    }

    fn spawn_local(port: u16, extra: &[&str]) -> ServerResult<ServerProcess> {
        let Some(program) = find("redis-server") else {
            return err("redis-server not found on PATH");
        };
        let dir = make_temp_dir("redis")?;
        let mut args: Vec<OsString> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        args.push("--dir".into());
        args.push(dir.clone().into_os_string());
        args.extend(extra.iter().map(OsString::from));
        let spec = Spec {
            program,
            args,
            user: None,
            log: dir.join("redis.log"),
            stop_signal: "TERM",
            stop_timeout: Duration::from_secs(10),
        };
        ServerProcess::start(spec, dir)
    }

    fn wait_ready(&mut self) -> ServerResult<()> {
        let port = self.port;
        match &mut self.backend {
            Backend::Local(process) => {
                wait_until(process, "Redis", Duration::from_secs(30), || ping(port))
            }
            Backend::Container(_) => {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while !ping(port) {
                    if std::time::Instant::now() > deadline {
                        return err(format!(
                            "Redis in a container is not ready on port {port} after 30 s"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                Ok(())
            }
        }
    }

    /// `redis://127.0.0.1:{port}`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:{port}`.
    #[must_use]
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port (kept across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the server runs.
    #[must_use]
    pub fn provider(&self) -> Provider {
        match self.backend {
            Backend::Local(_) => Provider::Local,
            Backend::Container(_) => Provider::Docker,
        }
    }

    /// The server's directory (holds `redis.log`); `None` in a container.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local(process) => Some(process.dir()),
            Backend::Container(_) => None,
        }
    }

    /// The container's id; `None` for a local server.
    #[must_use]
    pub fn container_id(&self) -> Option<&str> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Container(container) => Some(container.id()),
        }
    }

    /// Graceful shutdown (SIGTERM).
    pub fn stop(&mut self) {
        match &mut self.backend {
            Backend::Local(process) => process.shut_down(),
            Backend::Container(container) => container
                .stop("SIGTERM", Duration::from_secs(10))
                .expect("stopping the Redis container"),
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        match &mut self.backend {
            Backend::Local(process) => process.kill(),
            Backend::Container(container) => {
                container.kill().expect("killing the Redis container");
            }
        }
    }

    /// SIGSTOP (`docker pause`): connections stay open and nothing answers.
    pub fn pause(&self) {
        match &self.backend {
            Backend::Local(process) => process.pause(),
            Backend::Container(container) => {
                container.pause().expect("pausing the Redis container");
            }
        }
    }

    /// SIGCONT (`docker unpause`) after [`pause`](Self::pause).
    pub fn resume(&self) {
        match &self.backend {
            Backend::Local(process) => process.resume(),
            Backend::Container(container) => {
                container.unpause().expect("resuming the Redis container");
            }
        }
    }

    /// Starts again on the same port (empty: Redis keeps nothing on disk here).
    pub fn restart(&mut self) -> ServerResult<()> {
        match &mut self.backend {
            Backend::Local(process) => process.restart()?,
            Backend::Container(container) => {
                container.stop("SIGTERM", Duration::from_secs(10))?;
                container.start_again()?;
            }
        }
        self.wait_ready()
    }

    /// Runs `redis-cli` with `args`, on this machine or in the container.
    fn redis_cli(&self, args: &[String]) -> ServerResult<String> {
        match &self.backend {
            Backend::Local(_) => {
                let cli = find("redis-cli")
                    .ok_or_else(|| ServerError("redis-cli not found on PATH".into()))?;
                let output = Command::new(cli)
                    .args(args)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| ServerError(format!("cannot run redis-cli: {e}")))?;
                if !output.status.success() {
                    return err(format!(
                        "redis-cli {} failed: {}",
                        args.join(" "),
                        String::from_utf8_lossy(&output.stdout)
                    ));
                }
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            Backend::Container(container) => {
                let mut command = vec!["redis-cli"];
                command.extend(args.iter().map(String::as_str));
                container.exec(&command)
            }
        }
    }
}

/// Three Redis masters joined into a cluster with `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three cluster-enabled nodes, creates the cluster and waits until it is `ok`.
    pub fn start() -> ServerResult<Self> {
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        // In parallel: a container can take seconds to start.
        let nodes = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..3)
                .map(|_| scope.spawn(|| RedisServer::start_as(Role::ClusterNode, &args)))
                .collect();
            starting
                .into_iter()
                .map(|node| {
                    node.join()
                        .unwrap_or_else(|_| err("a cluster node's start panicked"))
                })
                .collect::<ServerResult<Vec<_>>>()
        })?;
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(nodes.iter().map(RedisServer::addr));
        create.extend(
            ["--cluster-replicas", "0", "--cluster-yes"]
                .iter()
                .map(|s| (*s).to_owned()),
        );
        nodes[0].redis_cli(&create)?;
        let cluster = Self { nodes };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !cluster.is_ok() {
            if std::time::Instant::now() > deadline {
                return err("the Redis Cluster did not reach cluster_state:ok in 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    fn is_ok(&self) -> bool {
        self.nodes.iter().all(|n| {
            matches!(
                command(&n.addr(), &[b"CLUSTER", b"INFO"], Duration::from_millis(500)),
                Ok(Reply::Bulk(Some(info))) if String::from_utf8_lossy(&info).contains("cluster_state:ok")
            )
        })
    }

    /// The masters' `127.0.0.1:port` addresses.
    #[must_use]
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// The nodes, to kill or pause one.
    #[must_use]
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }
}
