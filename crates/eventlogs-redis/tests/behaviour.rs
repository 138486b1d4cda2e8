//! Key layout, TTL, counters, constructors and configuration errors, against the shared Redis.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use eventlogs_core::{backend::CacheKey, Error, InvalidInput, LogId, ReductionCache};
use eventlogs_redis::fred::clients::Pool;
use eventlogs_redis::fred::interfaces::ClientLike;
use eventlogs_redis::fred::types::config::{Config, ReconnectPolicy};
use eventlogs_redis::fred::types::Builder;
use eventlogs_redis::{RedisCacheOptions, RedisCacheStats, RedisReductionCache};
use eventlogs_testkit::cache_suite::entry;
use eventlogs_testkit::servers::resp::{command, Reply};
use eventlogs_testkit::servers::{cluster_nodes, redis_url};

fn prefix() -> String {
    format!("behaviour-{}", LogId::new())
}

/// `host:port` of a `redis://host:port[/db]` URL, for the raw client.
fn addr(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split(['/', '?']).next().unwrap().to_owned()
}

fn raw(url: &str, args: &[&[u8]]) -> Reply {
    command(&addr(url), args, Duration::from_secs(5)).unwrap()
}

fn key() -> CacheKey {
    CacheKey::new("behaviour", 3, LogId::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_live_under_the_prefixed_key_with_the_ttl() {
    let Some(url) = redis_url() else { return };
    let p = prefix();
    let cache = RedisReductionCache::builder(&url)
        .key_prefix(&p)
        .ttl(Some(Duration::from_secs(60)))
        .build()
        .await
        .unwrap();
    let k = key();
    let redis_key = format!("{p}:behaviour:v3:{}", k.log_id());
    assert_eq!(cache.redis_key(&k), redis_key);
    assert!(cache.put(&k, 1, &entry(&k, 1)).await.unwrap());
    assert_eq!(
        raw(&url, &[b"EXISTS", redis_key.as_bytes()]),
        Reply::Integer(1)
    );
    let Reply::Integer(pttl) = raw(&url, &[b"PTTL", redis_key.as_bytes()]) else {
        panic!("PTTL")
    };
    assert!(pttl > 50_000 && pttl <= 60_000, "{pttl}");
    // Every stored write sets the TTL again.
    assert!(cache.put(&k, 2, &entry(&k, 2)).await.unwrap());
    let Reply::Integer(pttl) = raw(&url, &[b"PTTL", redis_key.as_bytes()]) else {
        panic!("PTTL")
    };
    assert!(pttl > 50_000, "{pttl}");

    let short = RedisReductionCache::builder(&url)
        .key_prefix(&p)
        .ttl(Some(Duration::from_millis(150)))
        .build()
        .await
        .unwrap();
    let k = key();
    assert!(short.put(&k, 1, &entry(&k, 1)).await.unwrap());
    assert!(short.get(&k).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(short.get(&k).await.unwrap(), None, "expired");

    let forever = RedisReductionCache::builder(&url)
        .key_prefix(&p)
        .build()
        .await
        .unwrap();
    let k = key();
    assert!(forever.put(&k, 1, &entry(&k, 1)).await.unwrap());
    assert_eq!(
        raw(&url, &[b"PTTL", forever.redis_key(&k).as_bytes()]),
        Reply::Integer(-1)
    );
    forever.delete(&k).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_every_call() {
    let Some(url) = redis_url() else { return };
    let cache = RedisReductionCache::builder(&url)
        .key_prefix(prefix())
        .build()
        .await
        .unwrap();
    let k = key();
    assert_eq!(cache.stats(), RedisCacheStats::default());
    assert_eq!(cache.get(&k).await.unwrap(), None);
    assert!(cache.put(&k, 5, &entry(&k, 5)).await.unwrap());
    assert!(!cache.put(&k, 4, &entry(&k, 4)).await.unwrap());
    assert!(cache.get(&k).await.unwrap().is_some());
    cache.delete(&k).await.unwrap();
    let stats = cache.clone().stats();
    assert_eq!(
        (
            stats.hits,
            stats.misses,
            stats.writes,
            stats.writes_superseded,
            stats.deletes,
            stats.errors,
            stats.timeouts
        ),
        (1, 1, 1, 1, 1, 0, 0)
    );
    cache.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_read_tells_every_kind_of_value_apart() {
    let Some(url) = redis_url() else { return };
    const MAX: usize = 64;
    let cache = RedisReductionCache::builder(&url)
        .key_prefix(prefix())
        .max_entry_bytes(MAX)
        .build()
        .await
        .unwrap();
    let at = |k: &CacheKey| cache.redis_key(k).into_bytes();

    // No key: a miss.
    let missing = key();
    assert_eq!(cache.get(&missing).await.unwrap(), None);
    // An empty value: bytes (none), which the decoder refuses, so the entry is replaced.
    let empty = key();
    assert_eq!(
        raw(&url, &[b"SET", &at(&empty), b""]),
        Reply::Status("OK".into())
    );
    assert_eq!(cache.get(&empty).await.unwrap(), Some(Vec::new()));
    // An oversized value: exactly `MAX + 1` bytes read, which the decoder refuses.
    let oversized = key();
    let big: Vec<u8> = (0..10 * MAX).map(|i| i as u8).collect();
    raw(&url, &[b"SET", &at(&oversized), &big]);
    assert_eq!(
        cache.get(&oversized).await.unwrap(),
        Some(big[..=MAX].to_vec())
    );
    // A value of exactly `MAX` bytes is read whole.
    let at_limit = key();
    raw(&url, &[b"SET", &at(&at_limit), &big[..MAX]]);
    assert_eq!(
        cache.get(&at_limit).await.unwrap(),
        Some(big[..MAX].to_vec())
    );
    // A key of another type (a list): no bytes, an unusable entry, not an error.
    let list = key();
    assert_eq!(
        raw(&url, &[b"RPUSH", &at(&list), b"a", b"b"]),
        Reply::Integer(2)
    );
    assert_eq!(cache.get(&list).await.unwrap(), Some(Vec::new()));
    // A stored entry: its bytes.
    let present = key();
    let bytes = entry(&present, 7);
    assert!(cache.put(&present, 7, &bytes).await.unwrap());
    assert_eq!(cache.get(&present).await.unwrap(), Some(bytes));

    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (5, 1, 0));
    // The unusable values are replaced by the next write, whatever their type.
    for k in [&empty, &oversized, &list] {
        let bytes = entry(k, 1);
        assert!(cache.put(k, 1, &bytes).await.unwrap());
        assert_eq!(cache.get(k).await.unwrap(), Some(bytes));
    }
    for k in [&missing, &empty, &oversized, &at_limit, &list, &present] {
        cache.delete(k).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_fred_clients_and_pools_can_be_used() {
    let Some(url) = redis_url() else { return };
    let config = Config::from_url(&url).unwrap();
    let client = Builder::from_config(config.clone())
        .set_policy(ReconnectPolicy::new_constant(0, 100))
        .build()
        .unwrap();
    client.init().await.unwrap();
    let options = RedisCacheOptions::default().with_key_prefix(prefix());
    let cache = RedisReductionCache::from_client(client.clone())
        .options(options.clone())
        .build()
        .await
        .unwrap();
    let k = key();
    let bytes = entry(&k, 1);
    assert!(cache.put(&k, 1, &bytes).await.unwrap());
    assert_eq!(cache.get(&k).await.unwrap(), Some(bytes));
    assert!(format!("{cache:?}").contains("fred pool of 1 client"));
    drop(cache);
    assert!(client.is_connected(), "a borrowed client is not closed");

    let pool = Pool::new(config, None, None, Some(ReconnectPolicy::default()), 3).unwrap();
    pool.init().await.unwrap();
    let cache = RedisReductionCache::from_pool(pool)
        .options(options.clone())
        .build()
        .await
        .unwrap();
    assert!(
        !cache.put(&k, 1, &entry(&k, 1)).await.unwrap(),
        "same prefix, same entry"
    );
    assert_eq!(cache.pool().size(), 3);

    let err = RedisReductionCache::from_client(client)
        .options(options.with_key_prefix("{tag}"))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(InvalidInput::Config(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_settings_fail_before_connecting() {
    // Nothing listens on port 1: only validation can answer this fast with a config error.
    let url = "redis://127.0.0.1:1";
    let builders = [
        RedisReductionCache::builder(url).key_prefix(""),
        RedisReductionCache::builder(url).key_prefix("two words"),
        RedisReductionCache::builder(url).key_prefix("{slot}"),
        RedisReductionCache::builder(url).timeout(Duration::ZERO),
        RedisReductionCache::builder(url).ttl(Some(Duration::ZERO)),
        RedisReductionCache::builder(url).max_entry_bytes(0),
        RedisReductionCache::builder(url).pool_size(0),
        RedisReductionCache::builder("http://127.0.0.1:1"),
        RedisReductionCache::builder("redis://127.0.0.1:notaport"),
        RedisReductionCache::cluster_builder(Vec::<String>::new()),
        RedisReductionCache::cluster_builder(["127.0.0.1"]),
    ];
    for builder in builders {
        let shown = format!("{builder:?}");
        let err = builder.build().await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(InvalidInput::Config(_))),
            "{shown}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    let build = RedisReductionCache::builder("redis://127.0.0.1:1").build();
    let mut build = pin!(build);
    match build.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Err(Error::InvalidInput(InvalidInput::Config(message)))) => {
            assert!(message.contains("Tokio"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_url_connects_to_the_cluster() {
    let Some(nodes) = cluster_nodes() else { return };
    let url = format!(
        "redis-cluster://{}?node={}",
        nodes[0],
        nodes[nodes.len() - 1]
    );
    let cache = RedisReductionCache::builder(&url)
        .key_prefix(prefix())
        .build()
        .await
        .unwrap();
    assert!(cache.pool().is_clustered());
    // Keys of many logs spread over the masters; each is one single-key command.
    for i in 0..32 {
        let k = key();
        let bytes = entry(&k, i);
        assert!(cache.put(&k, i, &bytes).await.unwrap());
        assert_eq!(cache.get(&k).await.unwrap(), Some(bytes));
        cache.delete(&k).await.unwrap();
        assert_eq!(cache.get(&k).await.unwrap(), None);
    }
    assert_eq!(cache.stats().errors, 0);
}
