//! `PostgresServer`: a private PostgreSQL cluster (initdb in a temp dir, random port).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{make_temp_dir, wait_until, ServerProcess, Spec};
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

/// A private PostgreSQL server. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct PostgresServer {
    process: ServerProcess,
    port: u16,
    bin: PathBuf,
}

impl PostgresServer {
    /// Starts a server with default options.
    pub fn start() -> ServerResult<Self> {
        Self::start_with(&PostgresOptions::default())
    }

    /// Initializes a cluster in a temp dir, starts it on a free port of 127.0.0.1 and creates
    /// the database `eventlogs`. As root, the server runs as the `postgres` user.
    pub fn start_with(options: &PostgresOptions) -> ServerResult<Self> {
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
            format!("max_connections={}", options.max_connections),
            format!("fsync={}", if options.fsync { "on" } else { "off" }),
            format!(
                "full_page_writes={}",
                if options.fsync { "on" } else { "off" }
            ),
            "shared_buffers=128MB".to_owned(),
        ]
        .into_iter()
        .chain(options.settings.iter().cloned())
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
            process: ServerProcess::start(spec, dir)?,
            port,
            bin,
        };
        server.wait_ready()?;
        let status = Command::new(server.bin.join("createdb"))
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
        let (bin, port) = (self.bin.clone(), self.port.to_string());
        wait_until(
            &mut self.process,
            "PostgreSQL",
            Duration::from_secs(60),
            || {
                Command::new(bin.join("pg_isready"))
                    .args([
                        "-q",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                    ])
                    .status()
                    .is_ok_and(|s| s.success())
            },
        )
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

    /// The directory holding the cluster's files and `postgres.log`.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// Fast shutdown (SIGINT), waiting for it to finish.
    pub fn stop(&mut self) {
        self.process.shut_down();
    }

    /// SIGKILL to the postmaster and every backend at once, as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOP to every process of the server: connections hang, nothing answers.
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        self.process.resume();
    }

    /// Starts the server again on the same port and data (stopping it first if it runs), and
    /// waits until it accepts connections (crash recovery included).
    pub fn restart(&mut self) -> ServerResult<()> {
        self.process.restart()?;
        self.wait_ready()
    }
}
