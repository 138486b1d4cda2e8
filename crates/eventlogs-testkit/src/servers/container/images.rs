//! The container requests: PostgreSQL 15, Redis 7 and Citus 13.2 from their official images,
//! published on a fixed port of 127.0.0.1 so that a restart keeps the URL.

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::{ContainerRequest, GenericImage, ImageExt};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::redis::Redis;

/// The tags used; the same as `docker-compose.yml`.
const POSTGRES_TAG: &str = "15";
const REDIS_TAG: &str = "7";
/// The Citus image, as `name:tag`.
pub(crate) const CITUS_IMAGE: &str = "citusdata/citus:13.2";

/// How long an image may take to become ready (the first container of an image on a slow
/// storage driver copies the whole image).
const STARTUP: Duration = Duration::from_secs(120);

/// Publishes `container_port` on `127.0.0.1:host_port` only (testcontainers would publish
/// every exposed port on all interfaces, at random host ports that change on restart).
fn loopback(container_port: u16, host_port: u16) -> impl Fn(&mut HostConfig) + Send + Sync {
    move |config| {
        config.publish_all_ports = Some(false);
        config.port_bindings = Some(HashMap::from([(
            format!("{container_port}/tcp"),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: Some(host_port.to_string()),
            }]),
        )]));
    }
}

/// PostgreSQL on `127.0.0.1:port` with trust authentication, database `eventlogs` and the
/// server `settings` (`name=value`) as `-c` arguments.
pub(crate) fn postgres(port: u16, settings: &[String]) -> ContainerRequest<Postgres> {
    Postgres::default()
        .with_host_auth()
        .with_db_name("eventlogs")
        .with_tag(POSTGRES_TAG)
        .with_cmd(postgres_command(settings))
        .with_startup_timeout(STARTUP)
        .with_mapped_port(port, 5432.tcp())
        .with_host_config_modifier(loopback(5432, port))
}

/// `postgres` with the server `settings` (`name=value`) as `-c` arguments.
fn postgres_command(settings: &[String]) -> Vec<String> {
    let mut command = vec!["postgres".to_owned()];
    for setting in settings {
        command.push("-c".to_owned());
        command.push(setting.clone());
    }
    command
}

/// A Citus node on `127.0.0.1:port`, in a container named `name` on `network`, where the other
/// nodes reach it as `name:5432`. Trust authentication, database `eventlogs` (the image
/// preloads Citus and creates the extension in it) and the server `settings` as `-c`
/// arguments. Ready, as for the `Postgres` module, once the server logged that it accepts
/// connections after the image's initialisation.
pub(crate) fn citus_node(
    port: u16,
    name: &str,
    network: &str,
    settings: &[String],
) -> ContainerRequest<GenericImage> {
    let (image, tag) = CITUS_IMAGE
        .split_once(':')
        .unwrap_or((CITUS_IMAGE, "latest"));
    let ready = "database system is ready to accept connections";
    GenericImage::new(image, tag)
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::message_on_stderr(ready))
        .with_wait_for(WaitFor::message_on_stdout(ready))
        .with_network(network)
        .with_container_name(name)
        .with_env_var("POSTGRES_PASSWORD", "postgres")
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .with_env_var("POSTGRES_DB", "eventlogs")
        .with_cmd(postgres_command(settings))
        .with_startup_timeout(STARTUP)
        .with_mapped_port(port, 5432.tcp())
        .with_host_config_modifier(loopback(5432, port))
}

/// The arguments every Redis gets: no persistence, reachable through the published port.
fn redis_command(extra: &[&str]) -> Vec<String> {
    let mut command: Vec<String> = [
        "redis-server",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    command.extend(extra.iter().map(|s| (*s).to_owned()));
    command
}

/// Redis on `127.0.0.1:port` with the extra `redis-server` arguments.
pub(crate) fn redis(port: u16, extra: &[&str]) -> ContainerRequest<Redis> {
    Redis::default()
        .with_tag(REDIS_TAG)
        .with_cmd(redis_command(extra))
        .with_startup_timeout(STARTUP)
        .with_mapped_port(port, 6379.tcp())
        .with_host_config_modifier(loopback(6379, port))
}

/// A Redis Cluster node listening on `127.0.0.1:port` of the host's network. Cluster nodes
/// announce their address to clients and to each other, so they need one address that both
/// the host and the other nodes reach: host networking gives them exactly the local setup's
/// `127.0.0.1:port`. (Linux engines; Docker Desktop needs host networking enabled.)
pub(crate) fn redis_cluster_node(port: u16, extra: &[&str]) -> ContainerRequest<Redis> {
    let port_text = port.to_string();
    let mut args = vec!["--port", port_text.as_str(), "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    Redis::default()
        .with_tag(REDIS_TAG)
        .with_cmd(redis_command(&args))
        .with_startup_timeout(STARTUP)
        .with_network("host")
}
