//! The throwaway-server handles work on either provider: restart keeps data, kill and pause
//! break clients until restart and resume, the cluster spans all slots, and nothing is left
//! behind (no process or file locally, no container on Docker, also when the owner is killed).
//! A Citus cluster spreads a distributed table over its workers, and a killed or paused worker
//! fails or holds only the writes to its own shards.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use eventlogs_testkit::servers::resp::{command, Reply};
use eventlogs_testkit::servers::{
    citus_available, leftover_containers, local_binaries_available, own_servers, provider,
    run_locally, session_id, CitusCluster, PostgresServer, Provider, RedisCluster, RedisServer,
};

/// Whether to run a test of the handles: a provider exists, or fail when xtask says one must.
fn servers() -> bool {
    own_servers()
}

/// Whether to run a test of local processes and files.
fn local() -> bool {
    run_locally(
        local_binaries_available(),
        "the PostgreSQL and Redis binaries are",
        "this test checks local processes and temp dirs (the docker_* tests check containers)",
    )
}

/// Whether to run a test of containers: only on the Docker provider.
fn docker() -> bool {
    let on_docker = matches!(provider(), Ok(Provider::Docker));
    if !on_docker {
        eprintln!("skipping: this test checks containers (EVENTLOGS_TEST_SERVERS=docker)");
    }
    on_docker
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn pid_of(dir: &std::path::Path) -> u32 {
    std::fs::read_to_string(dir.join(".pgid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn redis_cmd(addr: &str, args: &[&str]) -> std::io::Result<Reply> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    command(addr, &args, Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_and_kill_keep_committed_data() {
    if !servers() {
        return;
    }
    let mut pg = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let client = connect(&pg.url()).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    assert!(
        client.query_one("SELECT 1", &[]).await.is_err(),
        "the old connection is gone"
    );
    let client = connect(&pg.url()).await.unwrap();
    client
        .execute("INSERT INTO t VALUES (2)", &[])
        .await
        .unwrap();

    pg.kill();
    assert!(
        client.query_one("SELECT 1", &[]).await.is_err(),
        "a killed server answers nothing"
    );
    assert!(
        connect(&pg.url()).await.is_err(),
        "a killed server accepts nothing"
    );
    pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    let client = connect(&pg.url()).await.unwrap();
    let rows: Vec<i32> = client
        .query("SELECT v FROM t ORDER BY v", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, [1, 2], "committed rows survive restart and SIGKILL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pause_hangs_clients_until_resume() {
    if !servers() {
        return;
    }
    let pg = tokio::task::spawn_blocking(PostgresServer::start)
        .await
        .unwrap()
        .unwrap();
    let client = connect(&pg.url()).await.unwrap();
    pg.pause();
    let query = client.query_one("SELECT 41 + 1", &[]);
    tokio::pin!(query);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut query)
            .await
            .is_err(),
        "paused: no answer"
    );
    pg.resume();
    let row = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        42,
        "resumed: the same query completes"
    );
}

#[test]
fn redis_kill_pause_and_restart() {
    if !servers() {
        return;
    }
    let mut redis = RedisServer::start().unwrap();
    let addr = redis.addr();
    assert_eq!(
        redis_cmd(&addr, &["SET", "k", "v"]).unwrap(),
        Reply::Status("OK".into())
    );
    redis.pause();
    assert!(
        redis_cmd(&addr, &["GET", "k"]).is_err(),
        "paused: the command times out"
    );
    redis.resume();
    assert_eq!(
        redis_cmd(&addr, &["GET", "k"]).unwrap(),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    redis.kill();
    assert!(
        redis_cmd(&addr, &["PING"]).is_err(),
        "killed: connection refused"
    );
    redis.restart().unwrap();
    assert_eq!(redis.addr(), addr, "same port after restart");
    assert_eq!(
        redis_cmd(&addr, &["GET", "k"]).unwrap(),
        Reply::Bulk(None),
        "no persistence"
    );
    assert_eq!(
        redis_cmd(&addr, &["SET", "k", "w"]).unwrap(),
        Reply::Status("OK".into())
    );
}

#[test]
fn redis_cluster_accepts_keys_in_all_three_slot_ranges() {
    if !servers() {
        return;
    }
    let cluster = RedisCluster::start().unwrap();
    let addrs = cluster.addrs();
    let mut owners = std::collections::HashSet::new();
    for i in 0..30 {
        let key = format!("key-{i}");
        let mut addr = addrs[0].clone();
        for _hop in 0..2 {
            match redis_cmd(&addr, &["SET", &key, "x"]).unwrap() {
                Reply::Status(ok) if ok == "OK" => {
                    owners.insert(addr.clone());
                    break;
                }
                Reply::Error(moved) if moved.starts_with("MOVED") => {
                    addr = moved.split(' ').nth(2).unwrap().to_owned();
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            redis_cmd(&addr, &["GET", &key]).unwrap(),
            Reply::Bulk(Some(b"x".to_vec()))
        );
    }
    assert_eq!(
        owners.len(),
        3,
        "keys landed on all three masters: {owners:?}"
    );
}

#[test]
fn dropping_a_handle_leaves_no_process_or_file() {
    if !local() {
        return;
    }
    let redis = RedisServer::start().unwrap();
    let dir = redis.dir().unwrap().to_path_buf();
    let pid = pid_of(&dir);
    let pg = PostgresServer::start().unwrap();
    let pg_dir = pg.dir().unwrap().to_path_buf();
    let pg_pid = pid_of(&pg_dir);
    assert!(alive(pid) && alive(pg_pid) && dir.exists() && pg_dir.exists());
    drop(redis);
    drop(pg);
    assert!(!alive(pid) && !alive(pg_pid), "servers stopped");
    assert!(!dir.exists() && !pg_dir.exists(), "files removed");
}

/// Run by the test below in a child process: starts servers, reports them, and exits without
/// running any destructor, as a crash or Ctrl-C would.
#[test]
fn abandoned_servers_child() {
    let Some(report) = std::env::var_os("EVENTLOGS_ABANDON_REPORT") else {
        return;
    };
    let redis = RedisServer::start().unwrap();
    let pg = PostgresServer::start().unwrap();
    let (redis_dir, pg_dir) = (redis.dir().unwrap(), pg.dir().unwrap());
    let lines = format!(
        "{}\n{}\n{}\n{}\n",
        redis_dir.display(),
        pg_dir.display(),
        pid_of(redis_dir),
        pid_of(pg_dir)
    );
    std::fs::write(report, lines).unwrap();
    std::process::exit(0);
}

#[test]
fn servers_of_a_process_that_dies_are_cleaned_up() {
    if !local() {
        return;
    }
    let report = std::env::temp_dir().join(format!("eventlogs-abandon-{}", std::process::id()));
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "abandoned_servers_child", "--nocapture"])
        .env("EVENTLOGS_ABANDON_REPORT", &report)
        .status()
        .unwrap();
    assert!(status.success());
    let lines: Vec<String> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_file(&report);
    assert_eq!(lines.len(), 4);
    let dirs: Vec<PathBuf> = lines[..2].iter().map(PathBuf::from).collect();
    let pids: Vec<u32> = lines[2..].iter().map(|l| l.parse().unwrap()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let gone = || dirs.iter().all(|d| !d.exists()) && pids.iter().all(|p| !alive(*p));
    while !gone() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        dirs.iter().all(|d| !d.exists()),
        "the watchdog removed {dirs:?}"
    );
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "the watchdog stopped {pids:?}"
    );
}

#[test]
fn docker_dropping_a_handle_removes_its_container() {
    if !docker() {
        return;
    }
    let redis = RedisServer::start().unwrap();
    let pg = PostgresServer::start().unwrap();
    assert_eq!(
        (redis.provider(), pg.provider()),
        (Provider::Docker, Provider::Docker)
    );
    let ours = || leftover_containers(&session_id()).unwrap();
    let ids = [redis.container_id().unwrap(), pg.container_id().unwrap()].map(str::to_owned);
    assert!(
        ids.iter().all(|id| ours().contains(id)),
        "both run: {:?}",
        ours()
    );
    drop(redis);
    drop(pg);
    let left = ours();
    assert!(
        ids.iter().all(|id| !left.contains(id)),
        "both removed: {left:?}"
    );
}

/// Run by the test below in a child process: starts containers, reports its session, then
/// waits to be SIGKILLed, so no destructor of it ever runs.
#[test]
fn docker_killed_owner_child() {
    let Some(report) = std::env::var_os("EVENTLOGS_KILLED_OWNER_REPORT") else {
        return;
    };
    let redis = RedisServer::start().unwrap();
    let pg = PostgresServer::start().unwrap();
    let ids = [redis.container_id().unwrap(), pg.container_id().unwrap()];
    std::fs::write(
        format!("{}.tmp", report.to_string_lossy()),
        format!("{}\n{}\n{}\n", session_id(), ids[0], ids[1]),
    )
    .unwrap();
    std::fs::rename(format!("{}.tmp", report.to_string_lossy()), &report).unwrap();
    loop {
        std::thread::park();
    }
}

#[test]
fn docker_containers_of_a_sigkilled_test_process_are_removed_within_30_s() {
    if !docker() {
        return;
    }
    let report =
        std::env::temp_dir().join(format!("eventlogs-killed-owner-{}", std::process::id()));
    let _ = std::fs::remove_file(&report);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "docker_killed_owner_child", "--nocapture"])
        .env("EVENTLOGS_KILLED_OWNER_REPORT", &report)
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !report.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the child did not start its containers"
        );
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    let lines: Vec<String> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = std::fs::remove_file(&report);
    let session = lines[0].clone();
    let running = leftover_containers(&session).unwrap();
    assert!(
        lines[1..].iter().all(|id| running.contains(id)),
        "the child's containers run: {running:?}"
    );
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let killed = std::time::Instant::now();
    let mut left = running;
    while !left.is_empty() && killed.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
        left = leftover_containers(&session).unwrap();
    }
    assert!(
        left.is_empty(),
        "containers of the SIGKILLed process still there after 30 s: {left:?}"
    );
    eprintln!(
        "containers removed {:?} after the SIGKILL",
        killed.elapsed()
    );
}

/// Whether to run a Citus test: a provider is available (or fail as `servers` does) and it can
/// start Citus; skips with a message otherwise.
fn citus() -> bool {
    if !servers() {
        return false;
    }
    let available = citus_available();
    if !available {
        eprintln!(
            "skipping: no Citus on this provider (install Citus for the local PostgreSQL, or \
             build the citusdata/citus:13.2 image for Docker)"
        );
    }
    available
}

async fn start_citus() -> CitusCluster {
    let started = std::time::Instant::now();
    let cluster = tokio::task::spawn_blocking(CitusCluster::start)
        .await
        .unwrap()
        .unwrap();
    eprintln!(
        "Citus cluster ({}, 2 workers) started in {:?}",
        cluster.provider(),
        started.elapsed()
    );
    cluster
}

/// Creates `t (k int PRIMARY KEY, v int)` distributed by `k`, and finds `n` keys whose shard
/// each worker holds (by the node names `citus_shards` reports).
async fn distributed_table(
    client: &tokio_postgres::Client,
    cluster: &CitusCluster,
    n: usize,
) -> Vec<Vec<i32>> {
    client
        .batch_execute(
            "CREATE TABLE t (k int PRIMARY KEY, v int); SELECT create_distributed_table('t', 'k')",
        )
        .await
        .unwrap();
    let names: Vec<(String, u16)> = cluster.workers().iter().map(|w| w.node_name()).collect();
    let mut keys = vec![Vec::new(); names.len()];
    for k in 0..1000 {
        let row = client
            .query_one(
                &format!(
                    "SELECT nodename::text, nodeport::int FROM citus_shards \
                     WHERE shardid = get_shard_id_for_distribution_column('t', {k})"
                ),
                &[],
            )
            .await
            .unwrap();
        let name = (
            row.get::<_, String>(0),
            u16::try_from(row.get::<_, i32>(1)).unwrap(),
        );
        let worker = names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| panic!("{name:?} is not one of the workers {names:?}"));
        if keys[worker].len() < n {
            keys[worker].push(k);
        }
        if keys.iter().all(|k| k.len() == n) {
            break;
        }
    }
    keys
}

async fn insert(client: &tokio_postgres::Client, k: i32) -> Result<u64, tokio_postgres::Error> {
    let insert = format!("INSERT INTO t VALUES ({k}, {k})");
    tokio::time::timeout(
        Duration::from_secs(60),
        client.execute(insert.as_str(), &[]),
    )
    .await
    .expect("an insert through the coordinator answers within 60 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citus_cluster_spreads_a_table_over_both_workers_and_a_paused_worker_holds_its_reads() {
    if !citus() {
        return;
    }
    let cluster = start_citus().await;
    let client = connect(&cluster.url()).await.unwrap();
    let keys = distributed_table(&client, &cluster, 1).await;
    for k in 0..40 {
        insert(&client, k).await.unwrap();
    }
    let placements: std::collections::HashSet<(String, u16)> = client
        .query(
            "SELECT DISTINCT nodename::text, nodeport::int FROM citus_shards \
             WHERE table_name = 't'::regclass",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), u16::try_from(r.get::<_, i32>(1)).unwrap()))
        .collect();
    let workers: std::collections::HashSet<(String, u16)> =
        cluster.workers().iter().map(|w| w.node_name()).collect();
    assert_eq!(placements, workers, "shards are placed on both workers");
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 40);

    {
        let on_first = keys[0][0];
        cluster.workers()[0].pause();
        let query = format!("SELECT v FROM t WHERE k = {on_first}");
        let read = client.query_one(query.as_str(), &[]);
        tokio::pin!(read);
        assert!(
            tokio::time::timeout(Duration::from_millis(500), &mut read)
                .await
                .is_err(),
            "paused worker: the read of its shard hangs"
        );
        cluster.workers()[0].resume();
        let row = tokio::time::timeout(Duration::from_secs(30), read)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            row.get::<_, i32>(0),
            on_first,
            "resumed: the same read completes"
        );
    }

    let dirs: Vec<PathBuf> = (cluster.workers().iter().chain([cluster.coordinator()]))
        .filter_map(|n| n.dir().map(PathBuf::from))
        .collect();
    let ids: Vec<String> = (cluster.workers().iter().chain([cluster.coordinator()]))
        .filter_map(|n| n.container_id().map(str::to_owned))
        .collect();
    let network = cluster.network().map(str::to_owned);
    drop(client);
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .unwrap();
    assert!(dirs.iter().all(|d| !d.exists()), "files removed: {dirs:?}");
    if !ids.is_empty() {
        let left = leftover_containers(&session_id()).unwrap();
        assert!(
            ids.iter().all(|id| !left.contains(id)),
            "containers removed: {left:?}"
        );
    }
    if let Some(network) = network {
        let inspect = Command::new("docker")
            .args(["network", "inspect", &network])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        assert!(
            !inspect.is_ok_and(|s| s.success()),
            "the network {network} was removed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citus_killed_worker_fails_only_its_shards_until_restart() {
    if !citus() {
        return;
    }
    let mut cluster = start_citus().await;
    let client = connect(&cluster.url()).await.unwrap();
    // A dead worker's host may not answer at all (a stopped container's name); fail fast.
    client
        .batch_execute("SET citus.node_connection_timeout = 5000")
        .await
        .unwrap();
    let keys = distributed_table(&client, &cluster, 2).await;
    let (first, second) = (&keys[0], &keys[1]);
    insert(&client, first[0]).await.unwrap();
    insert(&client, second[0]).await.unwrap();

    cluster.worker_mut(0).kill();
    assert!(
        insert(&client, first[1]).await.is_err(),
        "a write to the killed worker's shard fails"
    );
    insert(&client, second[1])
        .await
        .expect("a write to the other worker's shard succeeds");

    tokio::task::block_in_place(|| cluster.worker_mut(0).restart()).unwrap();
    let client = connect(&cluster.url()).await.unwrap();
    insert(&client, first[1])
        .await
        .expect("after restart, the worker's shards take writes again");
    let rows: Vec<i32> = client
        .query("SELECT k FROM t ORDER BY k", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected = vec![first[0], first[1], second[0], second[1]];
    expected.sort_unstable();
    assert_eq!(
        rows, expected,
        "committed rows survive the worker's SIGKILL"
    );
}
