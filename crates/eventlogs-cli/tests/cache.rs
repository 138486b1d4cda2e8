//! `eventlogs cache` end to end on both caches (Redis and the snapshot table): counting,
//! checking (confirmed, behind, stale, unusable, unauthenticated, upcast keys) and purging.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::sync::Arc;

use common::{eventlogs, schema, stderr, stdout_json, store};
use eventlogs::backend::{CacheEntry, CacheKey};
use eventlogs::postgres::{PostgresEventStore, PostgresSnapshotCache};
use eventlogs::{
    AppendOptions, CacheKeys, CacheReads, LogId, LogManager, ReductionCache, Timestamp, Upcast,
    Upcasters,
};
use eventlogs_testkit::servers::{database_url, redis_url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Account {
    Opened { owner: String },
    Deposited { amount: i64 },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Balance(i64);

impl eventlogs::Aggregate for Balance {
    type Event = Account;
    const NAME: &'static str = "cli-balance";
    const VERSION: u32 = 2;

    fn apply(&mut self, record: &eventlogs::EventRecord<Account>) {
        if let Account::Deposited { amount } = record.event {
            self.0 += amount;
        }
    }
}

const KEY: [u8; 32] = [0x5a; 32];
const OLD_KEY: [u8; 32] = [0x11; 32];

fn hex(key: &[u8; 32]) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The command line of one cache: the database, the cache's own flags, `--json`.
#[derive(Clone)]
struct Cli {
    url: String,
    schema: String,
    cache_args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_eventlogs"))
            .env("EVENTLOGS_DATABASE_URL", &self.url)
            .env_remove("EVENTLOGS_REDIS_URL")
            .env_remove("EVENTLOGS_CACHE_KEY")
            .env_remove("EVENTLOGS_CACHE_PREVIOUS_KEYS")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["--schema", &self.schema, "--json", "cache"])
            .args(&self.cache_args)
            .args(args)
            .output()
            .unwrap()
    }

    /// The same command line with `env` set as well.
    fn with_env(&self, env: &[(&'static str, String)]) -> Self {
        Self {
            url: self.url.clone(),
            schema: self.schema.clone(),
            cache_args: self.cache_args.clone(),
            env: self.env.iter().chain(env).cloned().collect(),
        }
    }

    fn check(&self, id: &LogId, version: &str) -> Output {
        self.run(&[
            "check",
            &id.to_string(),
            "--aggregate",
            "cli-balance",
            "--version",
            version,
        ])
    }
}

/// An account with two events, reduced (so cached once the manager flushes).
async fn account(logs: &LogManager<Balance>) -> LogId {
    let id = LogId::new();
    let opened = logs
        .create(
            &id,
            &Account::Opened {
                owner: "ada".into(),
            },
        )
        .await
        .unwrap();
    logs.append(&opened, &Account::Deposited { amount: 4 })
        .await
        .unwrap();
    logs.reduce(&id).await.unwrap();
    id
}

/// Three accounts with two events each, reduced (so cached) through `cache`.
async fn accounts<C: ReductionCache + Clone + 'static>(
    store: &Arc<PostgresEventStore>,
    cache: &C,
    keys: Option<CacheKeys>,
) -> (LogManager<Balance>, Vec<LogId>) {
    let mut builder = LogManager::builder(Arc::clone(store))
        .cache(cache.clone())
        .cache_reads(CacheReads::Always)
        .min_events_per_write(1);
    if let Some(keys) = keys {
        builder = builder.cache_keys(keys);
    }
    let logs = builder.build();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(account(&logs).await);
    }
    logs.flush().await;
    (logs, ids)
}

/// Every `cache` command on one cache, as an operator would use them.
async fn cache_commands<C: ReductionCache + Clone + 'static>(
    store: Arc<PostgresEventStore>,
    cache: C,
    cli: Cli,
) {
    let (logs, ids) = accounts(&store, &cache, None).await;
    let stats = stdout_json(&cli.run(&["stats"]));
    assert_eq!(stats["aggregates"][0]["aggregate"], "cli-balance");
    assert_eq!(stats["aggregates"][0]["version"], "2");
    assert_eq!(stats["aggregates"][0]["entries"], 3);

    let confirmed = stdout_json(&cli.check(&ids[0], "2"));
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(confirmed["through_index"], 1);
    assert_eq!(confirmed["events_behind"], 0);
    assert_eq!(confirmed["signed"], false);
    assert_eq!(confirmed["authenticated"], Value::Null);
    // Two more events: the entry is still confirmed, two behind.
    let state = logs.reduce(&ids[0]).await.unwrap().state();
    logs.append_with(
        &state,
        &[
            Account::Deposited { amount: 1 },
            Account::Deposited { amount: 2 },
        ],
        &AppendOptions::new(),
    )
    .await
    .unwrap();
    assert_eq!(stdout_json(&cli.check(&ids[0], "2"))["events_behind"], 2);

    // An entry whose last event is not the store's: stale. Bytes that are no entry: unusable.
    let key = CacheKey::new("cli-balance", 2, ids[1]);
    let forged = CacheEntry {
        through_index: 1,
        fingerprint: 7,
        reduced_at: Timestamp::now(),
        created_at: Timestamp::now(),
        aggregate: Balance(1_000_000),
    };
    cache.delete(&key).await.unwrap();
    assert!(cache
        .put(&key, 1, &forged.encode(&key).unwrap())
        .await
        .unwrap());
    assert_eq!(stdout_json(&cli.check(&ids[1], "2"))["status"], "stale");
    let key = CacheKey::new("cli-balance", 2, ids[2]);
    cache.delete(&key).await.unwrap();
    cache.put(&key, 0, b"not an entry at all").await.unwrap();
    let unusable = stdout_json(&cli.check(&ids[2], "2"));
    assert_eq!(unusable["status"], "unusable");
    assert_eq!(unusable["reason"], "unknown magic or format version");

    let missing = cli.check(&LogId::new(), "2");
    assert_eq!(missing.status.code(), Some(4), "{}", stderr(&missing));
    let bad_version = cli.check(&ids[0], "2.uzz");
    assert_eq!(
        bad_version.status.code(),
        Some(2),
        "{}",
        stderr(&bad_version)
    );

    let other_version =
        stdout_json(&cli.run(&["purge", "--aggregate", "cli-balance", "--version", "1"]));
    assert_eq!(other_version["deleted"], 0);
    let purged = stdout_json(&cli.run(&["purge", "--aggregate", "cli-balance"]));
    assert_eq!(purged["deleted"], 3);
    assert_eq!(
        stdout_json(&cli.run(&["stats"]))["aggregates"],
        serde_json::json!([])
    );
    let glob = cli.run(&["purge", "--aggregate", "a:*"]);
    assert_eq!(glob.status.code(), Some(2), "{}", stderr(&glob));

    signed_entries(&store, &cache, &cli).await;
    upcast_entries(&store, &cache, &cli).await;
}

/// With keys in the environment, `check` verifies MACs: an entry signed with the current or a
/// previous key is authenticated, an unsigned or differently signed one is not.
async fn signed_entries<C: ReductionCache + Clone + 'static>(
    store: &Arc<PostgresEventStore>,
    cache: &C,
    cli: &Cli,
) {
    let (_, signed) = accounts(store, cache, Some(CacheKeys::new(OLD_KEY))).await;
    let (_, unsigned) = accounts(store, cache, None).await;
    let rotated = cli.with_env(&[
        ("EVENTLOGS_CACHE_KEY", hex(&KEY)),
        (
            "EVENTLOGS_CACHE_PREVIOUS_KEYS",
            format!(" {} ", hex(&OLD_KEY)),
        ),
    ]);
    let ok = stdout_json(&rotated.check(&signed[0], "2"));
    assert_eq!(
        (&ok["status"], &ok["signed"], &ok["authenticated"]),
        (&"confirmed".into(), &true.into(), &true.into())
    );
    // Without keys the MAC is seen but not checked.
    let unchecked = stdout_json(&cli.check(&signed[0], "2"));
    assert_eq!(unchecked["signed"], true);
    assert_eq!(unchecked["authenticated"], Value::Null);

    let new_key_only = cli.with_env(&[("EVENTLOGS_CACHE_KEY", hex(&KEY))]);
    for (id, what) in [
        (signed[1], "signed with a retired key"),
        (unsigned[0], "unsigned"),
    ] {
        let refused = stdout_json(&new_key_only.check(&id, "2"));
        assert_eq!(refused["status"], "unauthenticated", "{what}");
        assert_eq!(refused["authenticated"], false, "{what}");
        assert_eq!(refused["events_behind"], Value::Null, "{what}");
    }
    // A malformed key is a usage error that does not repeat the key.
    let secret = "s3cr3t".repeat(11);
    let bad = cli.with_env(&[("EVENTLOGS_CACHE_KEY", secret.clone())]);
    let out = bad.check(&signed[0], "2");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!stderr(&out).contains("s3cr3t"), "{}", stderr(&out));
    assert!(stderr(&out).contains("EVENTLOGS_CACHE_KEY"));
    stdout_json(&cli.run(&["purge", "--aggregate", "cli-balance"]));
}

/// Entries of a manager with upcasters live under `VERSION.uFINGERPRINT`: `stats` shows that
/// version, `check` takes it, and `purge --version` removes them.
async fn upcast_entries<C: ReductionCache + Clone + 'static>(
    store: &Arc<PostgresEventStore>,
    cache: &C,
    cli: &Cli,
) {
    let upcasters =
        Upcasters::new().then(Upcast::new("credited-to-deposited").rename("Credited", "Deposited"));
    let fingerprint = upcasters.fingerprint();
    let logs: LogManager<Balance> = LogManager::builder(Arc::clone(store))
        .cache(cache.clone())
        .cache_reads(CacheReads::Always)
        .min_events_per_write(1)
        .upcasters(upcasters)
        .build();
    let id = account(&logs).await;
    logs.flush().await;
    let version = format!("2.u{fingerprint:016x}");
    let stats = stdout_json(&cli.run(&["stats"]));
    assert_eq!(stats["aggregates"][0]["version"], version.as_str());
    assert_eq!(
        stdout_json(&cli.check(&id, &version))["status"],
        "confirmed"
    );
    assert_eq!(cli.check(&id, "2").status.code(), Some(4));
    let purged = stdout_json(&cli.run(&["purge", "--aggregate", "cli-balance", "--version", "2"]));
    assert_eq!(purged["deleted"], 1);
}

#[tokio::test]
async fn cli_cache_commands_on_redis() {
    let (Some(url), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    let schema = schema("cache_redis");
    let store = store(&url, &schema).await;
    let prefix = format!("cli-{}", LogId::new());
    let cache = eventlogs::redis::RedisReductionCache::builder(redis.clone())
        .key_prefix(&prefix)
        .build()
        .await
        .unwrap();
    let cli = Cli {
        url,
        schema,
        cache_args: vec!["--key-prefix".into(), prefix],
        env: vec![("EVENTLOGS_REDIS_URL", redis)],
    };
    cache_commands(store, cache, cli.clone()).await;

    // Redis entries expire by their TTL: an age is refused, as is a purge of nothing named.
    let aged = cli.run(&["purge", "--older-than", "2d"]);
    assert_eq!(aged.status.code(), Some(2), "{}", stderr(&aged));
    assert!(stderr(&aged).contains("TTL"), "{}", stderr(&aged));
    let nothing = cli.run(&["purge"]);
    assert_eq!(nothing.status.code(), Some(2), "{}", stderr(&nothing));
    let both = cli.run(&["purge", "--aggregate", "x", "--older-than", "1d"]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
}

#[tokio::test]
async fn cli_cache_commands_on_the_snapshot_table() {
    let Some(url) = database_url() else { return };
    let schema = schema("cache_snapshots");
    let store = store(&url, &schema).await;
    let cache = PostgresSnapshotCache::new(&store);
    let cli = Cli {
        url,
        schema: schema.clone(),
        cache_args: vec!["--snapshots".into()],
        env: Vec::new(),
    };
    cache_commands(Arc::clone(&store), cache, cli.clone()).await;

    // Purging walks the table a page of keys at a time: of 12,000 rows over three pages, of
    // two aggregates (one named like the start of the other's name), exactly one's go.
    let client = store.pool().get().await.unwrap();
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.snapshots (key, entry) \
                 SELECT (CASE WHEN n % 2 = 0 THEN 'cli-balance:v3:' ELSE 'cli-balanc:v1:' END) \
                        || lpad(n::text, 6, '0'), '\\x00'::bytea \
                 FROM generate_series(1, 12000) AS n"
            ),
            &[],
        )
        .await
        .unwrap();
    let purged = stdout_json(&cli.run(&["purge", "--aggregate", "cli-balance"]));
    assert_eq!(purged["deleted"], 6_000);
    let stats = stdout_json(&cli.run(&["stats"]));
    assert_eq!(
        stats["aggregates"],
        serde_json::json!([{ "aggregate": "cli-balanc", "version": "1", "entries": 6_000 }])
    );

    // By age: the rows last written before it go, whatever their aggregate.
    client
        .execute(
            &format!(
                "UPDATE {schema}.snapshots SET updated_at = now() - interval '3 days' \
                 WHERE right(key, 1) IN ('1', '3')"
            ),
            &[],
        )
        .await
        .unwrap();
    let aged = stdout_json(&cli.run(&["purge", "--older-than", "2d"]));
    assert_eq!(aged["deleted"], 2_400);
    assert_eq!(aged["older_than_seconds"], 2 * 86_400);
    let stats = stdout_json(&cli.run(&["stats"]));
    assert_eq!(stats["aggregates"][0]["entries"], 3_600);
    for args in [
        &["status", "--json"][..],
        &["status", "--json", "--estimate"],
    ] {
        let status = stdout_json(&eventlogs(&cli.url, &cli.schema, args));
        assert!(status["snapshot_entries"].is_i64(), "{status}");
        if args.len() == 2 {
            assert_eq!(status["snapshot_entries"], 3_600);
        }
    }
}

#[tokio::test]
async fn cli_cache_snapshots_refuses_an_unmigrated_schema() {
    let Some(url) = database_url() else { return };
    let cli = Cli {
        url,
        schema: schema("cache_unmigrated"),
        cache_args: vec!["--snapshots".into()],
        env: Vec::new(),
    };
    let out = cli.run(&["stats"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("eventlogs migrate"),
        "{}",
        stderr(&out)
    );
}
