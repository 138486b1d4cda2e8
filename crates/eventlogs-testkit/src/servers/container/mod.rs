//! Servers in Docker containers through the `testcontainers` crate, behind a blocking handle.
//!
//! testcontainers is async, while the server handles (and xtask) are plain blocking code that
//! tests call from inside their own runtimes. So each container lives on a thread of its own
//! with a current-thread runtime: the handle sends it commands and waits for the answer, and
//! dropping the handle removes the container on that thread before it ends. Every container
//! is labelled with this process's session, so a watchdog removes it if the process dies
//! without dropping it (see `session`); so is a [`Network`] that containers share.

mod images;
mod session;

use std::fmt;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use testcontainers::bollard::query_parameters::KillContainerOptionsBuilder;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::ExecCommand;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, Image};
use tokio::sync::mpsc;

pub(crate) use images::{citus_node, postgres, redis, redis_cluster_node, CITUS_IMAGE};
pub use session::{docker_available, leftover_containers, session_id, SESSION_LABEL};

use super::{err, ServerError, ServerResult};

/// Whether the engine has `image` (`name:tag`) already; nothing is pulled.
pub(crate) fn image_present(image: &str) -> bool {
    docker_available() && session::image_present(image)
}

/// A bridge network of its own for containers that reach each other by name (Docker's DNS
/// answers container names on user-defined networks only), labelled with the session like
/// the containers. Dropping it removes it: drop the containers on it first.
#[derive(Debug)]
pub(crate) struct Network {
    name: String,
}

impl Network {
    /// Creates the network `name`.
    pub(crate) fn create(name: String) -> ServerResult<Self> {
        session::create_network(&name)?;
        Ok(Self { name })
    }

    /// Its name, for `ImageExt::with_network` (testcontainers then uses it as it is).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        session::remove_network(&self.name);
    }
}

/// What the container's thread is asked to do.
#[derive(Debug)]
enum Command {
    /// SIGKILL to the container's processes; waits until it has stopped.
    Kill,
    /// Sends `signal`, waits up to `grace` for the container to stop, then kills it.
    Stop {
        signal: &'static str,
        grace: Duration,
    },
    /// Starts a stopped container again (same ports, same writable layer).
    Start,
    /// Freezes every process of the container.
    Pause,
    /// Thaws it.
    Unpause,
    /// Runs a command in the container and returns its stdout (fails on a non-zero exit).
    Exec(Vec<String>),
}

type Reply = std_mpsc::Sender<ServerResult<String>>;

/// A running container on a thread of its own. Dropping it removes the container.
pub(crate) struct ContainerServer {
    id: String,
    image: String,
    commands: Option<mpsc::UnboundedSender<(Command, Reply)>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for ContainerServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerServer")
            .field("id", &self.id)
            .field("image", &self.image)
            .finish()
    }
}

fn docker_error(what: &str, error: impl fmt::Display) -> ServerError {
    ServerError(format!("docker: {what}: {error}"))
}

impl ContainerServer {
    /// Starts `request` (labelled with this process's session) and waits until the image's
    /// readiness conditions hold.
    pub(crate) fn start<I: Image + 'static>(request: ContainerRequest<I>) -> ServerResult<Self> {
        let image = format!("{}:{}", request.image().name(), request.image().tag());
        let request = session::label(request)?;
        let (commands, receiver) = mpsc::unbounded_channel();
        let (started, start_result) = std_mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("container {image}"))
            .spawn(move || run(request, receiver, started))
            .map_err(|e| ServerError(format!("cannot start a thread: {e}")))?;
        match start_result.recv() {
            Ok(Ok(id)) => Ok(Self {
                id,
                image,
                commands: Some(commands),
                thread: Some(thread),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(ServerError(format!("cannot start {image}: {}", error.0)))
            }
            Err(_) => {
                let _ = thread.join();
                err(format!(
                    "the thread of container {image} ended while starting"
                ))
            }
        }
    }

    /// The container's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    fn ask(&self, command: Command) -> ServerResult<String> {
        let (reply, answer) = std_mpsc::channel();
        self.commands
            .as_ref()
            .ok_or_else(|| ServerError("the container was removed".into()))?
            .send((command, reply))
            .map_err(|_| ServerError("the container's thread has ended".into()))?;
        answer
            .recv()
            .map_err(|_| ServerError("the container's thread has ended".into()))?
    }

    /// SIGKILL, as a crash would; returns once the container has stopped.
    pub(crate) fn kill(&self) -> ServerResult<()> {
        self.ask(Command::Kill).map(drop)
    }

    /// Sends `signal` (for example `SIGINT`, PostgreSQL's fast shutdown) and waits up to
    /// `grace` for the container to stop, killing it after that.
    pub(crate) fn stop(&self, signal: &'static str, grace: Duration) -> ServerResult<()> {
        self.ask(Command::Stop { signal, grace }).map(drop)
    }

    /// Starts the stopped container again; the caller waits for readiness.
    pub(crate) fn start_again(&self) -> ServerResult<()> {
        self.ask(Command::Start).map(drop)
    }

    /// Freezes the container (`docker pause`): connections stay open and nothing answers.
    pub(crate) fn pause(&self) -> ServerResult<()> {
        self.ask(Command::Pause).map(drop)
    }

    /// Thaws it (`docker unpause`).
    pub(crate) fn unpause(&self) -> ServerResult<()> {
        self.ask(Command::Unpause).map(drop)
    }

    /// Runs `command` in the container; its stdout.
    pub(crate) fn exec(&self, command: &[&str]) -> ServerResult<String> {
        self.ask(Command::Exec(
            command.iter().map(|s| (*s).to_owned()).collect(),
        ))
    }
}

impl Drop for ContainerServer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop, which removes the container.
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The container's thread: starts it, answers commands, removes it when the handle is gone.
fn run<I: Image + 'static>(
    request: ContainerRequest<I>,
    mut commands: mpsc::UnboundedReceiver<(Command, Reply)>,
    started: std_mpsc::Sender<ServerResult<String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = started.send(err(format!("cannot build a runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        session::sweep_orphans().await;
        let container = match request.start().await {
            Ok(container) => container,
            Err(e) => {
                let _ = started.send(Err(docker_error("start", e)));
                return;
            }
        };
        let _ = started.send(Ok(container.id().to_owned()));
        while let Some((command, reply)) = commands.recv().await {
            let _ = reply.send(handle(&container, command).await);
        }
        if let Err(e) = container.rm().await {
            eprintln!("testkit: could not remove a container: {e}");
        }
    });
}

async fn handle<I: Image>(container: &ContainerAsync<I>, command: Command) -> ServerResult<String> {
    match command {
        // Killing or stopping a container that is not running (a restart after a kill) is
        // already done.
        Command::Kill | Command::Stop { .. } if !running(container).await? => {}
        Command::Kill => {
            signal(container, "SIGKILL").await?;
            wait_stopped(container, Duration::from_secs(30)).await?;
        }
        Command::Stop {
            signal: name,
            grace,
        } => {
            signal(container, name).await?;
            if wait_stopped(container, grace).await.is_err() {
                signal(container, "SIGKILL").await?;
                wait_stopped(container, Duration::from_secs(30)).await?;
            }
        }
        Command::Start => container
            .start()
            .await
            .map_err(|e| docker_error("start", e))?,
        Command::Pause => container
            .pause()
            .await
            .map_err(|e| docker_error("pause", e))?,
        Command::Unpause => container
            .unpause()
            .await
            .map_err(|e| docker_error("unpause", e))?,
        Command::Exec(command) => {
            let shown = command.join(" ");
            let mut result = container
                .exec(ExecCommand::new(command))
                .await
                .map_err(|e| docker_error(&format!("exec {shown}"), e))?;
            let stdout = result
                .stdout_to_vec()
                .await
                .map_err(|e| docker_error("exec output", e))?;
            let stderr = result.stderr_to_vec().await.unwrap_or_default();
            let code = result
                .exit_code()
                .await
                .map_err(|e| docker_error("exec exit code", e))?;
            if code.unwrap_or(0) != 0 {
                return err(format!(
                    "`{shown}` in the container exited with {code:?}: {}",
                    String::from_utf8_lossy(&stderr)
                ));
            }
            return Ok(String::from_utf8_lossy(&stdout).into_owned());
        }
    }
    Ok(String::new())
}

/// Sends a signal to the container's main process (`docker kill --signal`).
async fn signal<I: Image>(container: &ContainerAsync<I>, name: &str) -> ServerResult<()> {
    let docker = docker_client_instance()
        .await
        .map_err(|e| docker_error("client", e))?;
    docker
        .kill_container(
            container.id(),
            Some(KillContainerOptionsBuilder::new().signal(name).build()),
        )
        .await
        .map_err(|e| docker_error(&format!("kill --signal {name}"), e))
}

async fn running<I: Image>(container: &ContainerAsync<I>) -> ServerResult<bool> {
    container
        .is_running()
        .await
        .map_err(|e| docker_error("inspect", e))
}

/// Waits until the container is no longer running.
async fn wait_stopped<I: Image>(
    container: &ContainerAsync<I>,
    within: Duration,
) -> ServerResult<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if !running(container).await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return err(format!("the container did not stop within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
