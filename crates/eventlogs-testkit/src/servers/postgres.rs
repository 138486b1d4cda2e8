//! `PostgresServer`: a private PostgreSQL server on a free port, from local binaries (initdb in a
//! temp dir) or in a container.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::container::{self, ContainerServer};
use super::pgwire::postgres_ready;
use super::process::{make_temp_dir, wait_until, ServerProcess, Spec};
use super::provider::{provider, Provider};
use super::{err, free_port, ServerError, ServerResult};

/// Settings of a throwaway PostgreSQL server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Flush WAL to disk on commit (default off: tests need no durability across an OS crash;
    /// a killed server still keeps every committed write). Benchmarks turn it on.
    pub fsync: bool,
    /// `max_connections` (default 200).
    pub max_connections: u32,
    /// Extra `name=value` server settings (for example `ssl=on`).
    pub settings: Vec<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            max_connections: 200,
            settings: Vec::new(),
        }
    }
}

impl PostgresOptions {
    /// Adds a `name=value` server setting.
    #[must_use]
    pub fn setting(mut self, setting: impl Into<String>) -> Self {
        self.settings.push(setting.into());
        self
    }

    /// Sets [`fsync`](Self::fsync).
    #[must_use]
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }
}

/// The directory holding `initdb`, `postgres`, `pg_isready` and `createdb`: on `PATH`, else the
/// newest `/usr/lib/postgresql/*/bin`.
#[must_use]
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "pg_isready", "createdb"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.extend(versions.into_iter().rev());
    candidates
        .into_iter()
        .find(|d| has_all(d))
        .map(|d| d.canonicalize().unwrap_or(d))
}

/// The uid and gid of the `postgres` user, read from `/etc/passwd`.
fn postgres_user() -> ServerResult<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| ServerError(format!("cannot read /etc/passwd: {e}")))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| {
            ServerError("PostgreSQL refuses to run as root and there is no `postgres` user".into())
        })
}

fn is_root() -> bool {
    // /proc/self belongs to this process's effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Gives a file to the user the server runs as (private keys must belong to it), when root.
pub fn give_to_server_user(path: &Path) -> ServerResult<()> {
    if is_root() {
        let (uid, gid) = postgres_user()?;
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| ServerError(format!("chown: {e}")))?;
    }
    Ok(())
}

/// A private PostgreSQL server. Dropping it stops the server and removes its files (or its
/// container).
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Local { process: ServerProcess },
    Container(ContainerServer),
}

/// The server settings every throwaway PostgreSQL gets, then `options.settings`.
pub(crate) fn settings(options: &PostgresOptions) -> Vec<String> {
    let durable = if options.fsync { "on" } else { "off" };
    [
        format!("max_connections={}", options.max_connections),
        format!("fsync={durable}"),
        format!("full_page_writes={durable}"),
        "shared_buffers=128MB".to_owned(),
        // The feed's tests prepare a transaction (two-phase commit) to show it holds the feed.
        "max_prepared_transactions=8".to_owned(),
    ]
    .into_iter()
    .chain(options.settings.iter().cloned())
    .collect()
}

impl PostgresServer {
    /// Starts a server with default options.
    pub fn start() -> ServerResult<Self> {
        Self::start_with(&PostgresOptions::default())
    }

    /// Starts a server from the [`provider`]: a container of `postgres:15`, or a cluster
    /// initialized in a temp dir from local binaries. Either listens on a free port of
    /// 127.0.0.1 with trust authentication and has a database `eventlogs`.
    pub fn start_with(options: &PostgresOptions) -> ServerResult<Self> {
        match provider()? {
            Provider::Docker => Self::start_container(options),
            Provider::Local => Self::start_local(options),
        }
    }

    fn start_container(options: &PostgresOptions) -> ServerResult<Self> {
        let port = free_port()?;
        let container = ContainerServer::start(container::postgres(port, &settings(options)))?;
        Self::in_container(port, container)
    }

    /// The server in `container` (of a PostgreSQL image: trust authentication, a database
    /// `eventlogs`), published on `127.0.0.1:port`, once it accepts connections.
    pub(crate) fn in_container(port: u16, container: ContainerServer) -> ServerResult<Self> {
        let mut server = Self {
            port,
            backend: Backend::Container(container),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Initializes a cluster in a temp dir, starts it from the local binaries and creates the
    /// database `eventlogs`. As root, the server runs as the `postgres` user.
    pub(crate) fn start_local(options: &PostgresOptions) -> ServerResult<Self> {
        let Some(bin) = postgres_bin_dir() else {
            return err("PostgreSQL binaries (initdb, postgres) not found on PATH or under /usr/lib/postgresql");
        };
        let user = if is_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        let dir = make_temp_dir("postgres")?;
        let data = dir.join("data");
        let sock = dir.join("sock");
        std::fs::create_dir_all(&sock).map_err(|e| ServerError(e.to_string()))?;
        if let Some((uid, gid)) = user {
            for path in [&dir, &sock] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| ServerError(format!("chown: {e}")))?;
            }
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = user {
            initdb.uid(uid).gid(gid);
        }
        let output = initdb
            .output()
            .map_err(|e| ServerError(format!("cannot run initdb: {e}")))?;
        if !output.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            return err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let port = free_port()?;
        let setting = |s: String| [OsString::from("-c"), OsString::from(s)];
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            data.into_os_string(),
            "-p".into(),
            port.to_string().into(),
        ];
        for s in [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("unix_socket_directories={}", sock.display()),
        ]
        .into_iter()
        .chain(settings(options))
        {
            args.extend(setting(s));
        }
        let spec = Spec {
            program: bin.join("postgres"),
            args,
            user,
            log: dir.join("postgres.log"),
            stop_signal: "INT",
            stop_timeout: Duration::from_secs(30),
        };
        let mut server = Self {
            port,
            backend: Backend::Local {
                process: ServerProcess::start(spec, dir)?,
            },
        };
        server.wait_ready()?;
        let status = Command::new(bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "eventlogs",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| ServerError(format!("cannot run createdb: {e}")))?;
        if !status.success() {
            return err("createdb eventlogs failed");
        }
        Ok(server)
    }

    fn wait_ready(&mut self) -> ServerResult<()> {
        let port = self.port;
        let ready = || postgres_ready(port, "postgres", "postgres", Duration::from_secs(2));
        match &mut self.backend {
            Backend::Local { process } => {
                wait_until(process, "PostgreSQL", Duration::from_secs(60), ready)
            }
            Backend::Container(_) => {
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while !ready() {
                    if std::time::Instant::now() > deadline {
                        return err(format!(
                            "PostgreSQL in a container is not ready on port {port} after 60 s"
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                Ok(())
            }
        }
    }

    /// `postgres://postgres@127.0.0.1:{port}/eventlogs`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/eventlogs", self.port)
    }

    /// The port the server listens on (kept across restarts).
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the server runs.
    #[must_use]
    pub fn provider(&self) -> Provider {
        match self.backend {
            Backend::Local { .. } => Provider::Local,
            Backend::Container(_) => Provider::Docker,
        }
    }

    /// The directory holding the cluster's files and `postgres.log`; `None` in a container.
    #[must_use]
    pub fn dir(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local { process } => Some(process.dir()),
            Backend::Container(_) => None,
        }
    }

    /// The container's id; `None` for a local server.
    #[must_use]
    pub fn container_id(&self) -> Option<&str> {
        match &self.backend {
            Backend::Local { .. } => None,
            Backend::Container(container) => Some(container.id()),
        }
    }

    /// Fast shutdown (SIGINT), waiting for it to finish.
    pub fn stop(&mut self) {
        match &mut self.backend {
            Backend::Local { process } => process.shut_down(),
            Backend::Container(container) => container
                .stop("SIGINT", Duration::from_secs(30))
                .expect("stopping the PostgreSQL container"),
        }
    }

    /// SIGKILL to the postmaster and every backend at once, as a crash would.
    pub fn kill(&mut self) {
        match &mut self.backend {
            Backend::Local { process } => process.kill(),
            Backend::Container(container) => {
                container.kill().expect("killing the PostgreSQL container")
            }
        }
    }

    /// SIGSTOP to every process of the server (`docker pause` for a container): connections
    /// hang, nothing answers.
    pub fn pause(&self) {
        match &self.backend {
            Backend::Local { process } => process.pause(),
            Backend::Container(container) => {
                container.pause().expect("pausing the PostgreSQL container")
            }
        }
    }

    /// SIGCONT (`docker unpause`) after [`pause`](Self::pause).
    pub fn resume(&self) {
        match &self.backend {
            Backend::Local { process } => process.resume(),
            Backend::Container(container) => container
                .unpause()
                .expect("resuming the PostgreSQL container"),
        }
    }

    /// Starts the server again on the same port and data (stopping it first if it runs), and
    /// waits until it accepts connections (crash recovery included).
    pub fn restart(&mut self) -> ServerResult<()> {
        match &mut self.backend {
            Backend::Local { process } => process.restart()?,
            Backend::Container(container) => {
                container.stop("SIGINT", Duration::from_secs(30))?;
                container.start_again()?;
            }
        }
        self.wait_ready()
    }
}
