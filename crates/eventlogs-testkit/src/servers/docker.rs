//! Containers for PostgreSQL and Redis through the Docker CLI, for machines with a Docker engine
//! but no local server binaries. Removed when dropped, or by a watchdog if the owner dies.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{err, ServerError, ServerResult};

/// Whether a Docker engine answers `docker info` within five seconds.
#[must_use]
pub fn docker_available() -> bool {
    let Ok(mut child) = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// A running container; dropping it removes the container.
#[derive(Debug)]
pub struct Container {
    id: String,
    url: String,
    watchdog: Option<std::process::Child>,
}

fn docker(args: &[&str]) -> ServerResult<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ServerError(format!("cannot run docker: {e}")))?;
    if !output.status.success() {
        return err(format!(
            "docker {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl Container {
    /// PostgreSQL 15 with trust auth and a database `eventlogs`.
    pub fn postgres() -> ServerResult<Self> {
        let id = docker(&[
            "run",
            "-d",
            "--rm",
            "-p",
            "127.0.0.1::5432",
            "-e",
            "POSTGRES_HOST_AUTH_METHOD=trust",
            "-e",
            "POSTGRES_DB=eventlogs",
            "postgres:15",
        ])?;
        let container = Self::adopt(id, "5432/tcp", |addr| {
            format!("postgres://postgres@{addr}/eventlogs")
        })?;
        container.wait(&[
            "pg_isready",
            "-U",
            "postgres",
            "-d",
            "eventlogs",
            "-h",
            "127.0.0.1",
        ])?;
        Ok(container)
    }

    /// Redis 7 without persistence.
    pub fn redis() -> ServerResult<Self> {
        let id = docker(&[
            "run",
            "-d",
            "--rm",
            "-p",
            "127.0.0.1::6379",
            "redis:7",
            "redis-server",
            "--save",
            "",
            "--appendonly",
            "no",
        ])?;
        let container = Self::adopt(id, "6379/tcp", |addr| format!("redis://{addr}"))?;
        container.wait(&["redis-cli", "ping"])?;
        Ok(container)
    }

    fn adopt(id: String, port: &str, url: impl Fn(&str) -> String) -> ServerResult<Self> {
        let watchdog = Command::new("sh")
            .args([
                "-c",
                r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; docker rm -f "$2""#,
                "watchdog",
            ])
            .arg(std::process::id().to_string())
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        let mut container = Self {
            id,
            url: String::new(),
            watchdog,
        };
        let mapped = docker(&["port", &container.id, port])?;
        let addr = mapped.lines().next().unwrap_or_default().to_owned();
        container.url = url(&addr);
        Ok(container)
    }

    fn wait(&self, probe: &[&str]) -> ServerResult<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut args = vec!["exec", self.id.as_str()];
        args.extend_from_slice(probe);
        while docker(&args).is_err() {
            if Instant::now() > deadline {
                return err(format!("container {} not ready after 60 s", self.id));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    /// The URL to connect to.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", &self.id]);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
