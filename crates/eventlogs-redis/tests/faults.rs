//! Redis killed, paused, out of memory, raced or poisoned under a `LogManager`: `reduce` stays
//! correct and bounded, failures are counted, and the cache is used again once Redis is back.
//!
//! Each test starts its own throwaway Redis, in a container or from local binaries (skipped
//! without either, failing when `EVENTLOGS_OWN_SERVERS=1`).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventlogs_core::{
    backend::{CacheEntry, CacheKey},
    AppendOptions, CacheOutcome, Error, InvalidInput, LogId, LogManager, LogState, ReductionCache,
};
use eventlogs_fake::FakeEventStore;
use eventlogs_redis::RedisReductionCache;
use eventlogs_testkit::aggregates::{Entry, Tally};
use eventlogs_testkit::damage::assert_refolded_and_replaced;
use eventlogs_testkit::reduce_checked;
use eventlogs_testkit::servers::resp::{command, Reply};
use eventlogs_testkit::servers::{own_servers, RedisCluster, RedisServer};

/// The cache's default deadline, which these tests keep.
const TIMEOUT: Duration = Duration::from_millis(50);
/// How long a test waits for the cache to be used again after Redis comes back.
const RECOVERY: Duration = Duration::from_secs(15);

/// Whether to run: a source of servers (Docker or local binaries) exists, or fail when xtask
/// says one must.
fn local() -> bool {
    own_servers()
}

/// A throwaway Redis, or `None` (skip) without local binaries.
async fn server(args: &'static [&'static str]) -> Option<RedisServer> {
    if !local() {
        return None;
    }
    Some(
        tokio::task::spawn_blocking(move || RedisServer::start_with_args(args))
            .await
            .unwrap()
            .unwrap(),
    )
}

/// Runs a blocking server operation (kill, restart, …) without stalling the runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn prefix() -> String {
    format!("faults-{}", LogId::new())
}

async fn cache_for(server: &RedisServer) -> RedisReductionCache {
    RedisReductionCache::builder(server.url())
        .key_prefix(prefix())
        .build()
        .await
        .unwrap()
}

fn manager(cache: &RedisReductionCache) -> LogManager<Tally> {
    LogManager::builder(FakeEventStore::new())
        .cache(cache.clone())
        .cache_timeout(TIMEOUT)
        .min_events_per_write(1)
        .cache_reads(eventlogs_core::CacheReads::Always)
        .build()
}

fn none() -> AppendOptions {
    AppendOptions::default()
}

async fn log_of(logs: &LogManager<Tally>, amounts: &[i64]) -> (LogId, LogState) {
    let log = LogId::new();
    let events: Vec<Entry> = amounts.iter().copied().map(Entry::of).collect();
    let state = logs.create_with(&log, &events, &none()).await.unwrap();
    (log, state)
}

/// Reduces, flushes the cache writes and repeats until a reduce is a cache hit.
async fn wait_for_hit(logs: &LogManager<Tally>, log: &LogId) {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let r = reduce_checked(logs, log).await;
        if r.cache == CacheOutcome::Hit {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cache was not used again within {RECOVERY:?}: {:?}",
            logs.cache_stats()
        );
        logs.flush().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn raw(server: &RedisServer, args: &[&[u8]]) -> Reply {
    command(&server.addr(), args, Duration::from_secs(5)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_redis_costs_only_speed_and_is_used_again_after_restart() {
    let Some(mut server) = server(&[]).await else {
        return;
    };
    let cache = cache_for(&server).await;
    let logs = manager(&cache);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (logs, stop) = (logs.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let (log, mut state) = log_of(&logs, &[w]).await;
                let mut rounds = 0;
                while !stop.load(Ordering::Relaxed) || rounds < 5 {
                    state = logs.append(&state, &Entry::of(rounds)).await.unwrap();
                    let r = reduce_checked(&logs, &log).await;
                    assert_eq!(r.state(), state);
                    rounds += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                log
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    blocking(|| server.kill());
    tokio::time::sleep(Duration::from_millis(700)).await;
    blocking(|| server.restart()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs_written = Vec::new();
    for worker in workers {
        logs_written.push(worker.await.unwrap());
    }
    logs.flush().await;
    let stats = logs.cache_stats();
    assert!(
        stats.write_errors > 0,
        "failed cache writes are counted: {stats:?}"
    );
    assert!(
        stats.errors + stats.timeouts > 0,
        "failed reads are counted: {stats:?}"
    );
    let redis = cache.stats();
    assert!(redis.errors + redis.timeouts > 0, "{redis:?}");
    // The restarted Redis is empty and used again without anyone reconnecting by hand.
    for log in &logs_written {
        wait_for_hit(&logs, log).await;
    }
}

/// Scheduling allowance on top of the cache timeout for a reduce while Redis is paused.
const PAUSE_MARGIN: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_redis_delays_reduce_by_at_most_the_timeout() {
    let Some(server) = server(&[]).await else {
        return;
    };
    let cache = cache_for(&server).await;
    assert_eq!(cache.options().timeout, TIMEOUT, "the default deadline");
    let logs = manager(&cache);
    let (log, mut state) = log_of(&logs, &[1, 2, 3, 4, 5]).await;
    wait_for_hit(&logs, &log).await;
    server.pause();
    let paused = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut reduces = 0;
    // Longer than the unresponsive-connection timeout (2 s), so reconnection attempts to the
    // paused server are covered too.
    while paused.elapsed() < Duration::from_secs(3) {
        state = logs.append(&state, &Entry::of(reduces)).await.unwrap();
        let started = Instant::now();
        let r = reduce_checked(&logs, &log).await;
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert_eq!(r.cache, CacheOutcome::Failed);
        // The promise: a paused cache costs at most its timeout. The margin absorbs scheduling
        // on a loaded 2-core CI machine; what it rules out is waiting for Redis (a hang) or
        // for the 2 s unresponsive-connection reconnect. Typical figures are in the output.
        assert!(
            took < TIMEOUT + PAUSE_MARGIN,
            "reduce {reduces} took {took:?} with Redis paused (bound: {TIMEOUT:?} + {PAUSE_MARGIN:?})"
        );
        reduces += 1;
    }
    server.resume();
    eprintln!("{reduces} reduces with Redis paused, slowest {slowest:?} (bound {TIMEOUT:?} + {PAUSE_MARGIN:?})");
    assert!(cache.stats().timeouts > 0, "{:?}", cache.stats());
    wait_for_hit(&logs, &log).await;
    let stats = logs.cache_stats();
    // Each reduce missed; a deadline is counted as a timeout whichever layer noticed it first
    // (the cache's own deadline equals the manager's and usually fires first).
    assert!(stats.timeouts > 0, "{stats:?}");
    assert!(stats.timeouts + stats.errors >= reduces as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_puts_of_one_key_keep_the_maximum() {
    let Some(server) = server(&[]).await else {
        return;
    };
    let cache: Arc<dyn ReductionCache> = Arc::new(cache_for(&server).await);
    let mut seed = LogId::new().to_u128() as u64 | 1;
    for _ in 0..5 {
        let key = CacheKey::new("race", 1, LogId::new());
        let indexes: Vec<u32> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 100_000) as u32
            })
            .collect();
        let tasks: Vec<_> = indexes
            .iter()
            .map(|&i| {
                let (cache, key) = (Arc::clone(&cache), key.clone());
                tokio::spawn(async move {
                    let bytes = eventlogs_testkit::cache_suite::entry(&key, i);
                    cache.put(&key, i, &bytes).await.unwrap()
                })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            stored += usize::from(task.await.unwrap());
        }
        let max = *indexes.iter().max().unwrap();
        let bytes = cache.get(&key).await.unwrap().unwrap();
        assert_eq!(CacheEntry::<()>::peek_through_index(&bytes), Some(max));
        assert_eq!(
            CacheEntry::<u32>::decode(&key, &bytes, 1 << 20)
                .unwrap()
                .aggregate,
            max
        );
        assert!(stored >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poisoned_entries_are_refolded_and_replaced() {
    let Some(server) = server(&[]).await else {
        return;
    };
    let cache = cache_for(&server).await;
    let logs = manager(&cache);
    let (log, _) = log_of(&logs, &[5, 6, 7, 8]).await;
    let key = CacheKey::of::<Tally>(log);
    let redis_key = cache.redis_key(&key);
    assert_eq!(
        redis_key,
        format!("{}:tally:v1:{log}", cache.options().key_prefix)
    );
    wait_for_hit(&logs, &log).await;
    let good = cache.get(&key).await.unwrap().unwrap();
    let damages = eventlogs_testkit::damage::damaged_entries(&good, log);
    for (what, bytes) in damages {
        assert_eq!(
            raw(&server, &[b"SET", redis_key.as_bytes(), &bytes]),
            Reply::Status("OK".into()),
            "{what}"
        );
        assert_refolded_and_replaced(&logs, &log, what).await;
    }
    // A key of another type under the cache's name reads as unusable and is overwritten.
    raw(&server, &[b"DEL", redis_key.as_bytes()]);
    raw(&server, &[b"RPUSH", redis_key.as_bytes(), b"a", b"b"]);
    let r = reduce_checked(&logs, &log).await;
    assert_eq!(r.cache, CacheOutcome::Corrupt, "a list under the key");
    logs.flush().await;
    assert_eq!(reduce_checked(&logs, &log).await.cache, CacheOutcome::Hit);
    assert!(logs.cache_stats().corrupt >= 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_entries_are_read_bounded() {
    let Some(server) = server(&[]).await else {
        return;
    };
    for max in [4096, 1 << 20] {
        let cache = RedisReductionCache::builder(server.url())
            .key_prefix(prefix())
            .max_entry_bytes(max)
            .build()
            .await
            .unwrap();
        let key = CacheKey::new("big", 1, LogId::new());
        let big = vec![7u8; 3 * 1024 * 1024];
        raw(&server, &[b"SET", cache.redis_key(&key).as_bytes(), &big]);
        let read = cache.get(&key).await.unwrap().unwrap();
        assert_eq!(read.len(), max + 1, "reads at most max + 1 bytes");
        assert!(CacheEntry::<u32>::decode(&key, &read, max).is_err());
        // An entry of exactly the limit is read whole.
        let exact = vec![1u8; max];
        raw(&server, &[b"SET", cache.redis_key(&key).as_bytes(), &exact]);
        assert_eq!(cache.get(&key).await.unwrap().unwrap(), exact);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debug_never_shows_the_password() {
    let Some(server) = server(&["--user", "app", "on", ">secret", "~*", "+@all"]).await else {
        return;
    };
    let url = format!("redis://app:secret@{}", server.addr());
    let builder = RedisReductionCache::builder(&url).key_prefix(prefix());
    let shown = format!("{builder:?} {:?}", builder.config());
    assert!(!shown.contains("secret"), "{shown}");
    let cache = builder.build().await.unwrap();
    let key = CacheKey::new("auth", 1, LogId::new());
    let bytes = eventlogs_testkit::cache_suite::entry(&key, 1);
    assert!(cache.put(&key, 1, &bytes).await.unwrap(), "authenticated");
    assert_eq!(cache.get(&key).await.unwrap(), Some(bytes));
    let shown = format!("{cache:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains(&server.addr()), "{shown}");

    let wrong = format!("redis://app:badpass123@{}", server.addr());
    let err = RedisReductionCache::builder(&wrong)
        .build()
        .await
        .unwrap_err();
    // Retrying cannot fix a wrong password: a configuration error that says what to check.
    assert!(
        matches!(err, Error::InvalidInput(InvalidInput::Config(_))) && !err.is_retryable(),
        "{err:?}"
    );
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains("badpass123"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connecting_fails_fast_or_waits_in_the_background() {
    let Some(mut server) = server(&[]).await else {
        return;
    };
    blocking(|| server.kill());
    let started = Instant::now();
    let err = RedisReductionCache::builder(server.url())
        .build()
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let started = Instant::now();
    let cache = RedisReductionCache::builder(server.url())
        .key_prefix(prefix())
        .lazy_connect(true)
        .reconnect_max_delay(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
    let key = CacheKey::new("lazy", 1, LogId::new());
    for _ in 0..5 {
        let started = Instant::now();
        let err = cache.get(&key).await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        assert!(started.elapsed() < TIMEOUT + Duration::from_millis(300));
    }
    blocking(|| server.restart()).unwrap();
    let deadline = Instant::now() + RECOVERY;
    while cache.get(&key).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "never connected: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(cache
        .put(&key, 0, &eventlogs_testkit::cache_suite::entry(&key, 0))
        .await
        .unwrap());
    cache.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_memory_redis_fails_writes_not_reduces() {
    let Some(server) = server(&["--maxmemory-policy", "noeviction"]).await else {
        return;
    };
    let cache = cache_for(&server).await;
    let logs = manager(&cache);
    // Some data, then a memory limit below what is used: every write is refused with OOM.
    let chunk = vec![b'm'; 256 * 1024];
    for i in 0..8 {
        raw(&server, &[b"SET", format!("filler-{i}").as_bytes(), &chunk]);
    }
    assert_eq!(
        raw(&server, &[b"CONFIG", b"SET", b"maxmemory", b"1mb"]),
        Reply::Status("OK".into())
    );
    assert!(
        matches!(raw(&server, &[b"SET", b"probe", b"x"]), Reply::Error(e) if e.starts_with("OOM")),
        "Redis is not out of memory"
    );
    let (log, mut state) = log_of(&logs, &[1, 2, 3]).await;
    for i in 0..5 {
        state = logs.append(&state, &Entry::of(i)).await.unwrap();
        let r = reduce_checked(&logs, &log).await;
        assert_eq!(r.cache, CacheOutcome::Miss, "reads still work");
        logs.flush().await;
    }
    let stats = logs.cache_stats();
    assert!(stats.write_errors >= 5, "{stats:?}");
    assert_eq!(stats.writes, 0, "{stats:?}");
    assert!(cache.stats().errors >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn evicting_redis_costs_hits_never_correctness() {
    let Some(server) = server(&["--maxmemory-policy", "allkeys-lru", "--maxmemory", "2mb"]).await
    else {
        return;
    };
    let cache = cache_for(&server).await;
    let logs = manager(&cache);
    // Far more cached reductions than fit: Redis evicts while the run goes on.
    let mut logs_and_states = Vec::new();
    for i in 0..40 {
        logs_and_states.push(log_of(&logs, &[i, 1, 2]).await);
    }
    let filler = vec![b'f'; 64 * 1024];
    for round in 0..3 {
        for (i, (log, state)) in logs_and_states.iter_mut().enumerate() {
            *state = logs.append(state, &Entry::of(round)).await.unwrap();
            reduce_checked(&logs, log).await;
            raw(
                &server,
                &[b"SET", format!("filler-{round}-{i}").as_bytes(), &filler],
            );
        }
        logs.flush().await;
    }
    for (log, _) in &logs_and_states {
        reduce_checked(&logs, log).await;
    }
    let evicted = match raw(&server, &[b"INFO", b"stats"]) {
        Reply::Bulk(Some(info)) => String::from_utf8_lossy(&info)
            .lines()
            .find_map(|l| {
                l.strip_prefix("evicted_keys:")
                    .map(|v| v.trim().parse::<u64>().unwrap_or(0))
            })
            .unwrap_or(0),
        _ => 0,
    };
    assert!(evicted > 0, "Redis evicted nothing");
    eprintln!(
        "allkeys-lru: {evicted} keys evicted, every reduction correct, {:?}",
        logs.cache_stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flushed_script_cache_is_refilled() {
    let Some(mut server) = server(&[]).await else {
        return;
    };
    let cache = cache_for(&server).await;
    let key = CacheKey::new("script", 1, LogId::new());
    let entry = |i| eventlogs_testkit::cache_suite::entry(&key, i);
    assert!(cache.put(&key, 1, &entry(1)).await.unwrap());
    assert_eq!(
        raw(&server, &[b"SCRIPT", b"FLUSH"]),
        Reply::Status("OK".into())
    );
    assert!(cache.get(&key).await.unwrap().is_some());
    assert!(cache.put(&key, 2, &entry(2)).await.unwrap());
    assert!(!cache.put(&key, 2, &entry(2)).await.unwrap());
    // After a restart the server knows no scripts and holds no entries.
    blocking(|| server.restart()).unwrap();
    let deadline = Instant::now() + RECOVERY;
    while cache.ping().await.is_err() {
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cache.get(&key).await.unwrap(), None);
    assert!(cache.put(&key, 1, &entry(1)).await.unwrap());
    assert_eq!(cache.stats().errors, 0, "{:?}", cache.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_cluster_node_costs_only_its_own_keys() {
    if !local() {
        return;
    }
    let cluster = tokio::task::spawn_blocking(RedisCluster::start)
        .await
        .unwrap()
        .unwrap();
    let cache = RedisReductionCache::cluster_builder(cluster.addrs())
        .key_prefix(prefix())
        .build()
        .await
        .unwrap();
    let logs = manager(&cache);
    let mut all = Vec::new();
    for i in 0..40 {
        all.push(log_of(&logs, &[i, 1]).await.0);
    }
    for log in &all {
        wait_for_hit(&logs, log).await;
    }
    let paused = &cluster.nodes()[0];
    paused.pause();
    let started = Instant::now();
    let (mut hits, mut failed) = (0, 0);
    // Past the unresponsive-connection timeout (2 s) too.
    while started.elapsed() < Duration::from_secs(3) {
        for log in &all {
            let t = Instant::now();
            let r = reduce_checked(&logs, log).await;
            let took = t.elapsed();
            assert!(took < TIMEOUT + Duration::from_millis(300), "{took:?}");
            match r.cache {
                CacheOutcome::Hit => hits += 1,
                CacheOutcome::Failed => failed += 1,
                other => panic!("{other:?}"),
            }
        }
    }
    paused.resume();
    eprintln!("one of three masters paused: {hits} hits, {failed} failed reads");
    assert!(hits > 0 && failed > 0, "{hits} hits, {failed} failed");
    for log in &all {
        wait_for_hit(&logs, log).await;
    }
}
