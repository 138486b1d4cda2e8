//! A server process in its own process group, with a watchdog that cleans up after its owner.

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{err, ServerError, ServerResult};

/// Removes the server if the owning process dies; the server's group id is read from a file.
const WATCHDOG: &str = r#"owner=$1; dir=$2
while kill -0 "$owner" 2>/dev/null; do sleep 0.5; done
pg=$(cat "$dir/.pgid" 2>/dev/null)
if [ -n "$pg" ]; then
  kids=$(pgrep -P "$pg")
  /bin/kill -s STOP $kids 2>/dev/null; /bin/kill -s KILL -- "-$pg" 2>/dev/null
  /bin/kill -s KILL $kids 2>/dev/null; /bin/kill -s CONT $kids 2>/dev/null
fi
rm -rf "$dir""#;

/// A fresh directory under the system temp dir.
pub(crate) fn make_temp_dir(kind: &str) -> ServerResult<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "eventlogs-{kind}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    fs::create_dir_all(&path)
        .map_err(|e| ServerError(format!("cannot create {}: {e}", path.display())))?;
    Ok(path)
}

/// How to (re)start the server.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    /// Run as this (uid, gid), for PostgreSQL started by root.
    pub(crate) user: Option<(u32, u32)>,
    pub(crate) log: PathBuf,
    /// The signal that shuts the server down cleanly, and how long that may take.
    pub(crate) stop_signal: &'static str,
    pub(crate) stop_timeout: Duration,
}

/// The main process and its children. PostgreSQL backends call `setsid`, so they are not in
/// the postmaster's process group: signals go to each of them by pid.
fn tree(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command name: state, ppid, ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            pids.push(child);
        }
    }
    pids
}

/// Sends each signal in turn to the main process, its process group and all its children
/// (found once, before the first signal, so children orphaned by it are still reached).
fn send_tree(signals: &[&str], pid: u32) {
    let pids = tree(pid);
    for signal in signals {
        send(signal, pid, true);
        for p in &pids[1..] {
            send(signal, *p, false);
        }
    }
}

/// A running (or stopped, paused) server and its watchdog.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    spec: Spec,
    dir: PathBuf,
    child: Option<Child>,
    watchdog: Option<Child>,
}

/// Sends `signal` (a name such as `STOP`) to a process, or to a process group when `group`.
fn send(signal: &str, id: u32, group: bool) {
    let target = if group {
        format!("-{id}")
    } else {
        id.to_string()
    };
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl ServerProcess {
    /// Starts the server described by `spec`, owning `dir` (removed when dropped).
    pub(crate) fn start(spec: Spec, dir: PathBuf) -> ServerResult<Self> {
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG, "watchdog"])
            .arg(std::process::id().to_string())
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok();
        let mut process = Self {
            spec,
            dir,
            child: None,
            watchdog,
        };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> ServerResult<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .map_err(|e| ServerError(format!("cannot open {}: {e}", self.spec.log.display())))?;
        let log2 = log.try_clone().map_err(|e| ServerError(e.to_string()))?;
        let mut command = Command::new(&self.spec.program);
        command
            .args(&self.spec.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0);
        if let Some((uid, gid)) = self.spec.user {
            // Not this user's HOME: libpq in the server (Citus connecting to other nodes) fails
            // on a `~/.postgresql` it cannot read.
            command.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        let child = command.spawn().map_err(|e| {
            ServerError(format!("cannot start {}: {e}", self.spec.program.display()))
        })?;
        let _ = fs::write(self.dir.join(".pgid"), child.id().to_string());
        self.child = Some(child);
        Ok(())
    }

    /// The server's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fails with the log's tail when the server has exited.
    pub(crate) fn check_alive(&mut self) -> ServerResult<()> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            _ => err(format!(
                "{} exited; log tail:\n{}",
                self.spec.program.display(),
                self.log_tail()
            )),
        }
    }

    /// The last lines of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.spec.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn group(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL to every process of the server; waits until the main process is gone.
    pub(crate) fn kill(&mut self) {
        if let Some(group) = self.group() {
            // Freeze everything first so no process notices the others dying.
            send_tree(&["STOP", "KILL", "CONT"], group);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the main process and waits up to `timeout` for it to exit, then kills.
    pub(crate) fn stop(&mut self, signal: &str, timeout: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send("CONT", child.id(), true);
        send(signal, child.id(), false);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                // Let any remaining process of the group go too.
                send_tree(&["KILL"], child.id());
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        send_tree(&["KILL"], child.id());
        let _ = child.wait();
    }

    /// SIGSTOP to every process of the server.
    pub(crate) fn pause(&self) {
        if let Some(group) = self.group() {
            send_tree(&["STOP"], group);
        }
    }

    /// SIGCONT to every process of the server.
    pub(crate) fn resume(&self) {
        if let Some(group) = self.group() {
            send_tree(&["CONT"], group);
        }
    }

    /// Starts the server again with the same arguments (it must be stopped or killed).
    pub(crate) fn respawn(&mut self) -> ServerResult<()> {
        if self.child.is_some() {
            return err("the server is still running; stop or kill it first");
        }
        self.spawn()
    }

    /// Shuts the server down with its clean-shutdown signal, killing it if that takes too long.
    pub(crate) fn shut_down(&mut self) {
        self.stop(self.spec.stop_signal, self.spec.stop_timeout);
    }

    /// Stops the server if it runs and starts it again with the same arguments; the caller
    /// waits until it is ready.
    pub(crate) fn restart(&mut self) -> ServerResult<()> {
        if self.child.is_some() {
            self.shut_down();
        }
        self.respawn()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(
            self.spec.stop_signal,
            self.spec.stop_timeout.min(Duration::from_secs(5)),
        );
        if let Some(mut watchdog) = self.watchdog.take() {
            send("KILL", watchdog.id(), true);
            let _ = watchdog.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Polls `ready` every 25 ms until it is true, the process dies, or `timeout` passes.
pub(crate) fn wait_until(
    process: &mut ServerProcess,
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> ServerResult<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        process.check_alive()?;
        if Instant::now() > deadline {
            return err(format!(
                "{what} not ready after {timeout:?}; log tail:\n{}",
                process.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
