//! This process's container session: labels on every container and network, a watchdog that
//! removes them when the process dies however it dies, and a sweep of those whose owner is gone.
//!
//! Dropping a handle removes its container. For everything else (a SIGKILL, `process::exit`, a
//! handle leaked in a static) the first container of a process spawns a small `sh` watchdog in
//! its own process group whose stdin is a pipe this process holds open for its whole life.
//! When the process ends, the kernel closes the pipe, `cat` returns and the watchdog removes
//! every container labelled with the session. If the watchdog itself was killed too, the next
//! process's sweep removes containers whose owning process (pid and start time) no longer runs.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use testcontainers::bollard::models::NetworkCreateRequest;
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use testcontainers::core::client::docker_client_instance;
use testcontainers::{ContainerRequest, Image, ImageExt};

use super::super::{ServerError, ServerResult};

/// The label naming the session (`{pid}-{nanos}`) a container belongs to.
pub const SESSION_LABEL: &str = "eventlogs.testkit.session";
/// The label holding the owning process's pid.
const PID_LABEL: &str = "eventlogs.testkit.owner-pid";
/// The label holding the owning process's start time (so a reused pid is not taken for it).
const START_LABEL: &str = "eventlogs.testkit.owner-start";

/// Waits for the owner's end (EOF on stdin), then removes the session's containers.
const WATCHDOG: &str = r#"cat >/dev/null 2>&1
ids=$(docker ps -aq --filter "label=$LABEL=$SESSION")
[ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1
nets=$(docker network ls -q --filter "label=$LABEL=$SESSION")
[ -z "$nets" ] || docker network rm $nets >/dev/null 2>&1
exit 0"#;

struct Session {
    id: String,
    /// The write end of the watchdog's stdin, open until this process ends.
    _pipe: Option<Mutex<ChildStdin>>,
}

/// The start time of process `pid` in clock ticks since boot (field 22 of `/proc/pid/stat`).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)
        .map(str::to_owned)
}

fn session() -> &'static Session {
    static SESSION: OnceLock<Session> = OnceLock::new();
    SESSION.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!("{}-{nanos:x}", std::process::id());
        let watchdog = Command::new("sh")
            .args(["-c", WATCHDOG])
            .env("LABEL", SESSION_LABEL)
            .env("SESSION", &id)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        let pipe = match watchdog {
            // The child is not waited for: it outlives this process on purpose.
            Ok(mut child) => child.stdin.take().map(Mutex::new),
            Err(e) => {
                eprintln!(
                    "testkit: no container watchdog ({e}); containers of a killed test process \
                     are removed by the next run's sweep"
                );
                None
            }
        };
        Session { id, _pipe: pipe }
    })
}

/// The labels of this process's session, starting the watchdog on first use.
fn labels() -> ServerResult<HashMap<String, String>> {
    let pid = std::process::id();
    let started = start_time(pid)
        .ok_or_else(|| ServerError("cannot read this process's start time".into()))?;
    Ok(HashMap::from([
        (SESSION_LABEL.to_owned(), session().id.clone()),
        (PID_LABEL.to_owned(), pid.to_string()),
        (START_LABEL.to_owned(), started),
    ]))
}

/// Labels `request` with this process's session, starting the watchdog on first use.
pub(super) fn label<I: Image>(request: ContainerRequest<I>) -> ServerResult<ContainerRequest<I>> {
    Ok(labels()?
        .into_iter()
        .fold(request, |request, (key, value)| {
            request.with_label(key, value)
        }))
}

/// Whether the process that labelled a container or network no longer runs.
fn owner_gone(labels: &HashMap<String, String>) -> bool {
    let owner: u32 = labels
        .get(PID_LABEL)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    owner == 0 || start_time(owner).as_ref() != labels.get(START_LABEL)
}

/// Removes containers (of any session) whose owning process no longer runs. Called once per
/// process, before its first container starts.
pub(super) async fn sweep_orphans() {
    static SWEPT: Mutex<bool> = Mutex::new(false);
    {
        let Ok(mut swept) = SWEPT.lock() else { return };
        if *swept {
            return;
        }
        *swept = true;
    }
    let Ok(docker) = docker_client_instance().await else {
        return;
    };
    let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![PID_LABEL])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default();
    for container in containers {
        let gone = owner_gone(&container.labels.unwrap_or_default());
        if let (true, Some(id)) = (gone, container.id) {
            let remove = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            if docker.remove_container(&id, Some(remove)).await.is_ok() {
                eprintln!("testkit: removed container {id} left by a process that is gone");
            }
        }
    }
    // Then the networks those containers were on.
    let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
    let networks = docker
        .list_networks(Some(options))
        .await
        .unwrap_or_default();
    for network in networks {
        let gone = owner_gone(&network.labels.unwrap_or_default());
        if let (true, Some(name)) = (gone, network.name) {
            if docker.remove_network(&name).await.is_ok() {
                eprintln!("testkit: removed network {name} left by a process that is gone");
            }
        }
    }
}

/// Creates the bridge network `name`, labelled with this process's session so that the
/// watchdog and the sweep remove it like the session's containers.
pub(super) fn create_network(name: &str) -> ServerResult<()> {
    let request = NetworkCreateRequest {
        name: name.to_owned(),
        labels: Some(labels()?),
        ..NetworkCreateRequest::default()
    };
    blocking(Duration::from_secs(30), async move {
        let result = match docker_client_instance().await {
            Ok(docker) => docker.create_network(request).await.map(drop),
            Err(e) => return Some(Err(e.to_string())),
        };
        Some(result.map_err(|e| e.to_string()))
    })
    .unwrap_or_else(|| Err("no answer within 30 s".to_owned()))
    .map_err(|e| ServerError(format!("docker: network create {name}: {e}")))
}

/// Removes the network `name` (its containers must be gone), reporting a failure on stderr.
pub(super) fn remove_network(name: &str) {
    let owned = name.to_owned();
    let removed = blocking(Duration::from_secs(30), async move {
        let docker = docker_client_instance().await.ok()?;
        docker.remove_network(&owned).await.ok()
    });
    if removed.is_none() {
        eprintln!("testkit: could not remove the network {name}");
    }
}

/// Whether the engine has the image `name:tag` (without pulling it).
pub(super) fn image_present(image: &str) -> bool {
    let image = image.to_owned();
    blocking(Duration::from_secs(10), async move {
        let docker = docker_client_instance().await.ok()?;
        docker.inspect_image(&image).await.ok().map(drop)
    })
    .is_some()
}

/// Runs `work` on a runtime of its own on another thread, so it can be called from anywhere
/// (plain code, or inside a test's runtime), giving up after `within`.
fn blocking<T: Send + 'static>(
    within: Duration,
    work: impl std::future::Future<Output = Option<T>> + Send + 'static,
) -> Option<T> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async { tokio::time::timeout(within, work).await.ok().flatten() })
    })
    .join()
    .ok()
    .flatten()
}

/// Whether a Docker engine answers (through the same client testcontainers uses: `DOCKER_HOST`
/// or the local socket) within five seconds.
#[must_use]
pub fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        blocking(Duration::from_secs(5), async {
            let docker = docker_client_instance().await.ok()?;
            docker.ping().await.ok().map(|_| ())
        })
        .is_some()
    })
}

/// The ids of containers (running or not) labelled with session `session`: what a test of
/// the watchdog expects to see vanish. `None` when the engine cannot be asked.
#[must_use]
pub fn leftover_containers(session: &str) -> Option<Vec<String>> {
    let filter = format!("{SESSION_LABEL}={session}");
    blocking(Duration::from_secs(10), async move {
        let docker = docker_client_instance().await.ok()?;
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![filter.as_str()])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = docker.list_containers(Some(options)).await.ok()?;
        Some(containers.into_iter().filter_map(|c| c.id).collect())
    })
}

/// This process's session id (the value of [`SESSION_LABEL`] on its containers).
#[must_use]
pub fn session_id() -> String {
    session().id.clone()
}
