//! `RedisServer` (one node, no persistence) and `RedisCluster` (three masters).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{make_temp_dir, wait_until, ServerProcess, Spec};
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

/// A private Redis server. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct RedisServer {
    process: ServerProcess,
    port: u16,
}

impl RedisServer {
    /// Starts a Redis with no persistence on a free port of 127.0.0.1.
    pub fn start() -> ServerResult<Self> {
        Self::start_with_args(&[])
    }

    /// Starts a Redis with extra `redis-server` arguments (for example `--maxmemory 1mb`).
    pub fn start_with_args(extra: &[&str]) -> ServerResult<Self> {
        let Some(program) = find("redis-server") else {
            return err("redis-server not found on PATH");
        };
        let dir = make_temp_dir("redis")?;
        let port = free_port()?;
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
        let mut server = Self {
            process: ServerProcess::start(spec, dir)?,
            port,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> ServerResult<()> {
        let port = self.port;
        wait_until(&mut self.process, "Redis", Duration::from_secs(30), || {
            ping(port)
        })
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

    /// The server's directory (holds `redis.log`).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// Graceful shutdown (SIGTERM).
    pub fn stop(&mut self) {
        self.process.shut_down();
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOP: connections stay open and nothing answers.
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.process.resume();
    }

    /// Starts again on the same port (empty: Redis keeps nothing on disk here).
    pub fn restart(&mut self) -> ServerResult<()> {
        self.process.restart()?;
        self.wait_ready()
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
        let nodes = (0..3)
            .map(|_| RedisServer::start_with_args(&args))
            .collect::<ServerResult<Vec<_>>>()?;
        let cli =
            find("redis-cli").ok_or_else(|| ServerError("redis-cli not found on PATH".into()))?;
        let output = Command::new(cli)
            .args(["--cluster", "create"])
            .args(nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| ServerError(format!("cannot run redis-cli: {e}")))?;
        if !output.status.success() {
            return err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
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
