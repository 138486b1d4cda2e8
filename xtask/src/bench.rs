//! `cargo xtask bench`: release-mode benchmarks against fresh servers, written to bench-results/.

use std::fmt::Write as _;
use std::process::Command;

use eventlogs_testkit::servers::{
    citus_available, postgres_bin_dir, provider, requested_provider, CitusCluster, PostgresOptions,
    PostgresServer, Provider, RedisServer, CITUS_URL_VAR, DATABASE_URL_VAR, REDIS_URL_VAR,
    TEST_SERVERS_VAR,
};

use crate::util::{cargo, root, run as run_command};

fn capture(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The workers of the benchmark's Citus cluster.
const CITUS_WORKERS: usize = 2;

/// The Citus cluster the Citus rows run on, and the results' line about it.
struct Citus {
    /// `EVENTLOGS_CITUS_URL` for the bench binary; `None` when the rows are skipped.
    url: Option<String>,
    /// Kept alive for the run; dropping it stops every node.
    _cluster: Option<CitusCluster>,
    line: String,
}

/// The version of the local Citus extension, from its control file.
fn local_citus_version() -> Option<String> {
    let pg_config = postgres_bin_dir()?.join("pg_config");
    let share = capture(&pg_config.to_string_lossy(), &["--sharedir"]);
    let control =
        std::fs::read_to_string(format!("{share}/extension/citus.control")).unwrap_or_default();
    control.lines().find_map(|l| {
        let value = l.strip_prefix("default_version")?;
        Some(
            value
                .trim_start_matches([' ', '='])
                .trim_matches('\'')
                .to_owned(),
        )
    })
}

/// `EVENTLOGS_CITUS_URL` when set; else a coordinator and two workers (fsync on) from the
/// provider, when it has Citus; else no Citus rows, saying why.
fn citus(args: &[String]) -> Result<Citus, String> {
    let skipped = |why: String| {
        println!("xtask: {why}: the Citus rows are skipped");
        Ok(Citus {
            url: None,
            _cluster: None,
            line: format!("- Citus: rows skipped, {why}"),
        })
    };
    if let Some(only) = args.windows(2).find(|w| w[0] == "--only").map(|w| &w[1]) {
        if only != "citus" {
            return skipped(format!("--only {only}"));
        }
    }
    match std::env::var(CITUS_URL_VAR) {
        Ok(url) if url == "skip" => return skipped(format!("{CITUS_URL_VAR}=skip")),
        Ok(url) if !url.is_empty() => {
            println!("xtask: Citus from {CITUS_URL_VAR}");
            return Ok(Citus {
                url: Some(url),
                _cluster: None,
                line: format!("- Citus: the coordinator at {CITUS_URL_VAR} (not started here)"),
            });
        }
        _ => {}
    }
    if !citus_available() {
        return skipped(
            "no Citus here (install Citus for the local PostgreSQL, or build the \
             citusdata/citus:13.2 image and set EVENTLOGS_TEST_SERVERS=docker)"
                .to_owned(),
        );
    }
    // Durable commits on every node, as on the single-node server.
    let cluster = CitusCluster::start_with(CITUS_WORKERS, &PostgresOptions::default().fsync(true))
        .map_err(|e| format!("cannot start a Citus cluster: {e}"))?;
    println!(
        "xtask: Citus cluster (fsync on) started: coordinator on port {}, {CITUS_WORKERS} workers",
        cluster.coordinator().port()
    );
    let version = match provider() {
        Ok(Provider::Docker) => "citusdata/citus:13.2 containers".to_owned(),
        _ => local_citus_version().map_or("local binaries".into(), |v| format!("Citus {v}")),
    };
    Ok(Citus {
        url: Some(cluster.url()),
        line: format!(
            "- Citus: coordinator + {CITUS_WORKERS} workers ({version}, fsync on), on the same {} \
             cores as the bench, the single-node PostgreSQL and Redis",
            capture("nproc", &[])
        ),
        _cluster: Some(cluster),
    })
}

/// What the numbers were measured on.
fn machine(fsync: bool, citus: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{} GiB", kb / 1024 / 1024));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "- machine: {} cores ({cpu}), {memory} memory",
        capture("nproc", &[])
    );
    let _ = writeln!(
        out,
        "- PostgreSQL: {} (fsync {})",
        capture("postgres", &["--version"]),
        if fsync { "on" } else { "off" }
    );
    let _ = writeln!(out, "- Redis: {}", capture("redis-server", &["--version"]));
    let _ = writeln!(out, "{citus}");
    let _ = writeln!(
        out,
        "- date: {}",
        capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    out
}

/// Builds and runs the bench binary in release mode; `args` go to it (e.g. `--seconds 2`).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    run_command({
        let mut build = cargo();
        build.args(["build", "--release", "-p", "eventlogs-bench", "--quiet"]);
        build
    })?;
    // Figures are comparable from run to run on local servers (a container on a copy-on-write
    // storage driver measures the driver); `EVENTLOGS_TEST_SERVERS=docker` still picks Docker.
    if requested_provider().map_err(|e| e.to_string())?.is_none() && Provider::Local.available() {
        std::env::set_var(TEST_SERVERS_VAR, "local");
    }
    let mut env = Vec::new();
    let mut _servers: (Option<PostgresServer>, Option<RedisServer>) = (None, None);
    let mut fsync = true;
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.is_empty() => {
            println!("xtask: PostgreSQL from {DATABASE_URL_VAR}");
            fsync = false;
            env.push((DATABASE_URL_VAR, url));
        }
        _ => {
            // Durable commits, as in production: the WAL flush is the physical limit measured.
            let server = PostgresServer::start_with(&PostgresOptions::default().fsync(true))
                .map_err(|e| e.to_string())?;
            println!(
                "xtask: PostgreSQL (fsync on) started on port {}",
                server.port()
            );
            env.push((DATABASE_URL_VAR, server.url()));
            _servers.0 = Some(server);
        }
    }
    match std::env::var(REDIS_URL_VAR) {
        Ok(url) if !url.is_empty() => env.push((REDIS_URL_VAR, url)),
        _ => {
            let server = RedisServer::start().map_err(|e| e.to_string())?;
            env.push((REDIS_URL_VAR, server.url()));
            _servers.1 = Some(server);
        }
    }
    let citus = citus(args)?;
    // `skip` rather than nothing, so that a value in xtask's own environment is not inherited.
    env.push((
        CITUS_URL_VAR,
        citus.url.clone().unwrap_or_else(|| "skip".into()),
    ));
    let dir = root().join("bench-results");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let table = dir.join("table.tmp");
    let mut bench = Command::new(root().join("target/release/eventlogs-bench"));
    bench.args(["--out"]).arg(&table).args(args).envs(env);
    run_command(bench)?;
    let results = std::fs::read_to_string(&table).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&table);
    let report = format!(
        "# Benchmark results\n\nProduced by `cargo xtask bench {}`.\n\n{}\n{results}",
        args.join(" "),
        machine(fsync, &citus.line)
    );
    let latest = dir.join("latest.md");
    std::fs::write(&latest, report).map_err(|e| e.to_string())?;
    println!("xtask: results written to {}", latest.display());
    Ok(())
}
