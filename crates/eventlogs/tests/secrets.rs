//! Passwords in connection URLs appear in no log line (everything at trace level, the drivers'
//! `log` records included) and in no `Debug` or `Display` output, also of errors, whatever
//! their shape: holding `/`, `@`, `?` or `#`, percent-encoded, in a query string, or quoted
//! with a space in a key-value connection string.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventlogs::postgres::tokio_postgres::config::{Config as PgConfig, Host};
use eventlogs::postgres::PostgresEventStore;
use eventlogs::redis::{RedisCacheConfig, RedisReductionCache, RedisReductionCacheBuilder};
use eventlogs::{
    backend::CacheKey, Aggregate, Error, EventRecord, EventStore, InvalidInput, LogId, LogManager,
    ReductionCache,
};
use eventlogs_testkit::servers::{database_url, redis_url};
use serde::{Deserialize, Serialize};

const SECRET: &str = "s3cr3t-Hunter2";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Count(u64);

impl Aggregate for Count {
    type Event = u64;
    const NAME: &'static str = "secrets_count";
    const VERSION: u32 = 1;
    fn apply(&mut self, _: &EventRecord<u64>) {
        self.0 += 1;
    }
}

/// Captures every trace event, the drivers' `log` records included, until the guard drops.
fn capture_traces() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let _ = tracing_log::LogTracer::init();
    (captured, guard)
}

/// No captured log line and no `shown` output holds any of `secrets`.
fn assert_never_shown(captured: &Captured, shown: &[String], secrets: &[&str]) {
    let logs_text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs_text.lines().count() > 10,
        "trace output was captured:\n{logs_text}"
    );
    for line in logs_text.lines().chain(shown.iter().map(String::as_str)) {
        for secret in secrets {
            assert!(!line.contains(secret), "password leaked: {line}");
        }
    }
    eprintln!(
        "{} log lines and {} Debug/Display outputs checked",
        logs_text.lines().count(),
        shown.len()
    );
}

/// `scheme://user@host…` becomes `scheme://user:SECRET@host…`.
fn with_password(url: &str, user: &str) -> String {
    with_raw_password(url, user, SECRET)
}

/// Makes `role` a login role of the test server whose password is `password`, allowed to
/// create schemas and to read `read_schema` (if any), through the test URL `admin` (a
/// superuser). So the tests pass on a server with trust authentication and on one that
/// checks passwords (`docker-compose.yml`). Called before logs are captured: the driver logs
/// the statements, passwords included.
async fn role_with_password(admin: &str, role: &str, password: &str, read_schema: Option<&str>) {
    let (client, connection) = eventlogs::postgres::tokio_postgres::connect(
        admin,
        eventlogs::postgres::tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    // The statements are built by the server's format() with identifier and literal quoting.
    let row = client
        .query_one(
            "SELECT format('DO $do$ BEGIN CREATE ROLE %I LOGIN; EXCEPTION \
                 WHEN duplicate_object OR unique_violation THEN NULL; END $do$; \
                 ALTER ROLE %I PASSWORD %L; GRANT CONNECT, CREATE ON DATABASE %I TO %I', \
                 $1::text, $1::text, $2::text, current_database(), $1::text) \
                 || CASE WHEN $3::text IS NULL THEN '' ELSE format('; GRANT USAGE ON SCHEMA \
                 %I TO %I; GRANT SELECT ON ALL TABLES IN SCHEMA %I TO %I', $3::text, $1::text, \
                 $3::text, $1::text) END",
            &[&role, &password, &read_schema],
        )
        .await
        .unwrap();
    let statements: String = row.get(0);
    client.batch_execute(&statements).await.unwrap();
    drop(client);
    let _ = connection.await;
}

#[tokio::test]
async fn passwords_never_reach_logs_or_debug_output() {
    let (Some(db), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    role_with_password(&db, "eventlogs_secrets_plain", SECRET, None).await;
    let (captured, _guard) = capture_traces();

    let mut shown = Vec::new();
    let store = PostgresEventStore::builder(with_password(&db, "eventlogs_secrets_plain"))
        .schema("secrets_plain")
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    shown.push(format!("{store:?} {:?}", store.config()));
    let cache = RedisReductionCache::builder(with_password(&redis, "default"))
        .build()
        .await;
    let cache = match cache {
        Ok(cache) => cache,
        // A server without that user refuses it: the error must not show the password either.
        Err(e) => {
            shown.push(format!("{e} {e:?}"));
            RedisReductionCache::builder(redis.clone())
                .password(SECRET)
                .build()
                .await
                .unwrap_or_else(|e| {
                    shown.push(format!("{e} {e:?}"));
                    panic!("no cache")
                })
        }
    };
    shown.push(format!("{cache:?}"));
    let logs: LogManager<Count> = LogManager::builder(store).cache(cache).build();
    let log = LogId::new();
    let state = logs.create(&log, &1).await.unwrap();
    logs.append(&state, &2).await.unwrap();
    logs.reduce(&log).await.unwrap();
    logs.flush().await;
    logs.reduce(&log).await.unwrap();
    shown.push(format!("{logs:?}"));

    // Failures carry the URL's context too: unreachable servers with passwords.
    let dead = PostgresEventStore::builder(format!("postgres://app:{SECRET}@127.0.0.1:1/db"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = dead.load(&log, 0, 1).await.unwrap_err();
    shown.push(format!("{err} {err:?} {dead:?}"));
    let err = RedisReductionCache::builder(format!("redis://app:{SECRET}@127.0.0.1:1"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap_err();
    shown.push(format!("{err} {err:?}"));

    assert_never_shown(&captured, &shown, &[SECRET]);
}

/// Every hostile password holds both words; a line holding either shows (part of) one.
const WORDS: [&str; 2] = ["Hunter2", "s3cr3t"];

/// Password shapes as written in a URL's user information: (name, as written, decoded).
const HOSTILE: [(&str, &str, &str); 4] = [
    ("slash", "Hunter2/s3cr3t", "Hunter2/s3cr3t"),
    ("at", "Hunter2@s3cr3t", "Hunter2@s3cr3t"),
    ("query and fragment", "Hunter2?s3cr3t#x", "Hunter2?s3cr3t#x"),
    (
        "percent-encoded",
        "Hunter2%2Fs3cr3t%40x%3F",
        "Hunter2/s3cr3t@x?",
    ),
];

/// `scheme://…@host…` with `user:password` as its user information, written as is.
fn with_raw_password(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{rest}")
}

/// The key-value form of the PostgreSQL URL `db` for `user`, with a quoted password holding a
/// space and an escaped quote (`Hunter2 s3cr3t'x`).
fn key_value_with_password(db: &str, user: &str) -> String {
    let pg: PgConfig = db.parse().unwrap();
    let host = match &pg.get_hosts()[0] {
        Host::Tcp(host) => host.clone(),
        Host::Unix(path) => path.display().to_string(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let dbname = pg.get_dbname().or(pg.get_user()).unwrap();
    format!(r"host={host} port={port} user={user} dbname={dbname} password='Hunter2 s3cr3t\'x'")
}

/// The error, its `Debug`, and every source in its chain, as a log line would show them.
fn error_text(error: &Error) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(" / {cause} {cause:?}"));
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn hostile_password_shapes_never_reach_logs_or_debug_output() {
    let (Some(db), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    let fast = Duration::from_millis(200);
    let log = LogId::new();
    let mut shown = Vec::new();

    // PostgreSQL, reached with each shape tokio-postgres reads as a password (one role of the
    // test's own per shape, made before logs are captured), then unreachable with every shape.
    const SCHEMA: &str = "secrets_hostile";
    let owner = "eventlogs_secrets_owner";
    role_with_password(&db, owner, "Hunter2 s3cr3t'x", None).await;
    let own = PostgresEventStore::builder(key_value_with_password(&db, owner))
        .schema(SCHEMA)
        .build()
        .unwrap();
    own.migrate().await.unwrap();
    drop(own);
    let (scheme, rest) = db.split_once("://").unwrap();
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let separator = if db.contains('?') { "&" } else { "?" };
    let mut live = vec![(key_value_with_password(&db, owner), "Hunter2 s3cr3t'x")];
    let query_role = "eventlogs_secrets_query";
    live.push((
        format!("{scheme}://{query_role}@{host_and_db}{separator}password=Hunter2%26s3cr3t"),
        "Hunter2&s3cr3t",
    ));
    role_with_password(&db, query_role, "Hunter2&s3cr3t", Some(SCHEMA)).await;
    for (name, written, decoded) in HOSTILE {
        // An unencoded `@` ends tokio-postgres's user information early: only unreachable.
        if name != "at" {
            let role = format!("eventlogs_secrets_{}", name.replace(' ', "_"));
            role_with_password(&db, &role, decoded, Some(SCHEMA)).await;
            live.push((with_raw_password(&db, &role, written), decoded));
        }
    }
    let (captured, _guard) = capture_traces();
    for (url, _) in &live {
        let store = PostgresEventStore::builder(url.clone())
            .schema(SCHEMA)
            .build()
            .unwrap();
        let loaded = store.load(&log, 0, 1).await;
        assert!(loaded.is_ok(), "the password shape is read: {loaded:?}");
        shown.push(format!(
            "{store:?} {:?} {}",
            store.config(),
            store.config().url_redacted()
        ));
    }
    let mut dead: Vec<String> = HOSTILE
        .iter()
        .map(|(_, written, _)| format!("postgres://app:{written}@127.0.0.1:1/db"))
        .collect();
    dead.push(r"host=127.0.0.1 port=1 user=app dbname=db password='Hunter2 s3cr3t\'x'".into());
    dead.push("postgres://app@127.0.0.1:1/db?sslmode=disable&password=Hunter2%26s3cr3t".into());
    for url in &dead {
        let store = PostgresEventStore::builder(url.clone())
            .connect_timeout(fast)
            .build()
            .unwrap();
        let err = store.load(&log, 0, 1).await.unwrap_err();
        assert!(err.is_retryable(), "unreachable: {err:?}");
        shown.push(format!(
            "{} {store:?} {:?}",
            error_text(&err),
            store.config()
        ));
    }

    // Redis (the default user has no password, so any is accepted), reached with each shape
    // the URL parser reads as a password, refused as a bad URL otherwise, unreachable with
    // every shape.
    for (name, written, decoded) in HOSTILE {
        let url = with_raw_password(&redis, "default", written);
        match RedisReductionCache::builder(url.clone())
            .connect_timeout(fast)
            .build()
            .await
        {
            Ok(cache) => {
                let key = CacheKey::new("secrets", 1, log);
                assert_eq!(cache.get(&key).await.unwrap(), None);
                shown.push(format!("{cache:?}"));
            }
            // `/`, `?` and `#` end a URL's authority: the URL does not parse.
            Err(err) => {
                assert!(
                    matches!(err, Error::InvalidInput(InvalidInput::Config(_))),
                    "{name}: {err:?}"
                );
                shown.push(error_text(&err));
            }
        }
        let config = RedisCacheConfig::new(url);
        shown.push(format!("{config:?} {}", config.servers));
        let cache = RedisReductionCache::builder(redis.clone())
            .username("default")
            .password(decoded)
            .build()
            .await
            .unwrap();
        shown.push(format!("{cache:?}"));
        let err = RedisReductionCache::builder(format!("redis://app:{written}@127.0.0.1:1"))
            .connect_timeout(fast)
            .build()
            .await
            .unwrap_err();
        shown.push(error_text(&err));
    }
    // A password Redis refuses: a configuration error naming what to fix, not the password.
    let err = RedisReductionCache::builder(with_raw_password(
        &redis,
        "eventlogs-no-such-user",
        "Hunter2%40s3cr3t",
    ))
    .connect_timeout(fast)
    .build()
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(InvalidInput::Config(m)) if m.contains("password")),
        "{err:?}"
    );
    assert!(!err.is_retryable(), "{err:?}");
    shown.push(error_text(&err));
    let config = RedisCacheConfig::new(r"host=h password='Hunter2 s3cr3t\'x'");
    shown.push(format!("{config:?} {}", config.servers));
    let err = RedisReductionCacheBuilder::from(config)
        .build()
        .await
        .unwrap_err();
    shown.push(error_text(&err));

    assert_never_shown(&captured, &shown, &WORDS);
}
