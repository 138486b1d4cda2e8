//! Passwords in connection URLs appear in no log line (everything at trace level, the drivers'
//! `log` records included) and in no `Debug` or `Display` output, also of errors.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventlogs::postgres::PostgresEventStore;
use eventlogs::redis::RedisReductionCache;
use eventlogs::{Aggregate, AppendOptions, EventRecord, EventStore, LogId, LogManager};
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

/// `scheme://user@host…` becomes `scheme://user:SECRET@host…`.
fn with_password(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{SECRET}@{rest}")
}

#[tokio::test]
async fn passwords_never_reach_logs_or_debug_output() {
    let (Some(db), Some(redis)) = (database_url(), redis_url()) else {
        return;
    };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let _ = tracing_log::LogTracer::init();

    let mut shown = Vec::new();
    let store = PostgresEventStore::builder(with_password(&db, "postgres"))
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
    let state = logs
        .create(&log, &1, &AppendOptions::default())
        .await
        .unwrap();
    logs.append(&log, &state, &2, &AppendOptions::default())
        .await
        .unwrap();
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

    let logs_text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs_text.lines().count() > 10,
        "trace output was captured:\n{logs_text}"
    );
    for line in logs_text.lines().chain(shown.iter().map(String::as_str)) {
        assert!(!line.contains(SECRET), "password leaked: {line}");
    }
    eprintln!(
        "{} log lines and {} Debug/Display outputs checked",
        logs_text.lines().count(),
        shown.len()
    );
}
