//! Metrics: eventlogs emits through the `metrics` facade; this service installs the Prometheus
//! exporter, does some work, and serves what it counted on `/metrics`.
//!
//! Run with `cargo run --example metrics`: in memory, or on PostgreSQL and Redis when
//! `EVENTLOGS_DATABASE_URL` and `EVENTLOGS_REDIS_URL` are set. It prints the page it serves
//! and exits; `METRICS_SERVE_SECONDS=60` keeps serving on 127.0.0.1:9187 for a minute so
//! Prometheus (or `curl`) can scrape it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use eventlogs::fake::{FakeEventStore, FakeReductionCache};
use eventlogs::{
    Aggregate, AppendOptions, CacheReads, Error, EventRecord, EventStore, LogId, LogManager,
    ReductionCache,
};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Deposited {
    amount: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: u64,
}

impl Aggregate for Account {
    type Event = Deposited;
    const NAME: &'static str = "metrics-example-account";
    const VERSION: u32 = 1;

    fn apply(&mut self, record: &EventRecord<Deposited>) {
        self.balance += record.event.amount;
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn store() -> Result<Arc<dyn EventStore>, Error> {
    Ok(match env("EVENTLOGS_DATABASE_URL") {
        Some(url) => {
            let store = eventlogs::postgres::PostgresEventStore::builder(url).build()?;
            store.migrate().await?;
            Arc::new(store)
        }
        None => Arc::new(FakeEventStore::new()),
    })
}

async fn cache() -> Result<Arc<dyn ReductionCache>, Error> {
    Ok(match env("EVENTLOGS_REDIS_URL") {
        Some(url) => Arc::new(
            eventlogs::redis::RedisReductionCache::builder(url)
                .build()
                .await?,
        ),
        None => Arc::new(FakeReductionCache::new()),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The exporter is the application's choice; eventlogs only speaks to the facade.
    let address: SocketAddr = ([127, 0, 0, 1], 9187).into();
    let serve = env("METRICS_SERVE_SECONDS").and_then(|s| s.parse::<u64>().ok());
    let handle = if serve.is_some() {
        let builder = PrometheusBuilder::new().with_http_listener(address);
        let (recorder, exporter) = builder.build()?;
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)?;
        tokio::spawn(exporter);
        handle
    } else {
        PrometheusBuilder::new().install_recorder()?
    };

    let logs: LogManager<Account> = LogManager::builder(store().await?)
        .cache(cache().await?)
        .cache_reads(CacheReads::Always)
        .min_events_per_write(1)
        .build();
    let id = LogId::new();
    let mut state = logs.create(&id, &Deposited { amount: 10 }).await?;
    for amount in 1..=20 {
        state = logs.append(&state, &Deposited { amount }).await?;
    }
    // A lost race and a retried request: counted by outcome.
    let _ = logs.create(&id, &Deposited { amount: 1 }).await;
    let keyed = AppendOptions::new().with_idempotency_key(format!("bonus-{id}"));
    let after_bonus = logs
        .append_with(&state, &[Deposited { amount: 5 }], &keyed)
        .await?;
    let _ = logs
        .append_with(&state, &[Deposited { amount: 5 }], &keyed)
        .await;
    logs.reduce(&id).await?;
    logs.flush().await;
    let warm = logs.reduce(&id).await?;
    assert_eq!(warm.through_index, after_bonus.next_index() - 1);
    println!(
        "balance {} after {} events",
        warm.aggregate.balance,
        warm.through_index + 1
    );

    println!("--- the page Prometheus scrapes, eventlogs lines ---");
    for line in handle.render().lines() {
        if line.starts_with("eventlogs_") && !line.contains("quantile") {
            println!("{line}");
        }
    }
    if let Some(seconds) = serve {
        println!("serving http://{address}/metrics for {seconds} s");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
    Ok(())
}
