//! Living with events for years: a deployment renames an event and changes its shape
//! (upcasting reads the old events as new ones), and a customer's log is deleted on request.
//!
//! Run with `cargo run --example lifecycle`: in memory, or on PostgreSQL and Redis when
//! `EVENTLOGS_DATABASE_URL` and `EVENTLOGS_REDIS_URL` are set.

use std::sync::Arc;
use std::time::Duration;

use eventlogs::fake::{FakeEventStore, FakeReductionCache};
use eventlogs::{
    Aggregate, Error, ErrorKind, EventRecord, EventStore, LogId, LogManager, ReductionCache,
    Upcast, Upcasters,
};
use serde::{Deserialize, Serialize};

/// What the first deployment wrote: whole euros, "deposited".
mod v1 {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub(crate) enum Event {
        Opened { owner: String },
        Deposited { euros: u64 },
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    pub(crate) struct Account(pub(crate) u64);

    impl Aggregate for Account {
        type Event = Event;
        const NAME: &'static str = "lifecycle-account";
        const VERSION: u32 = 1;
        fn apply(&mut self, record: &EventRecord<Event>) {
            if let Event::Deposited { euros } = record.event {
                self.0 += euros;
            }
        }
    }
}

/// Today's events: cents, "credited", with a currency.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Event {
    Opened { owner: String },
    Credited { cents: u64, currency: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    cents: u64,
}

impl Aggregate for Account {
    type Event = Event;
    const NAME: &'static str = "lifecycle-account";
    // The fold changed (cents), so the version changes; the upcasters are keyed separately.
    const VERSION: u32 = 2;
    fn apply(&mut self, record: &EventRecord<Event>) {
        if let Event::Credited { cents, .. } = record.event {
            self.cents += cents;
        }
    }
}

/// Version 1 → 2: `Deposited { euros }` became `Credited { cents, currency }`.
fn upcasters() -> Upcasters {
    Upcasters::new().then(
        Upcast::new("deposited is credited, in cents")
            .rename("Deposited", "Credited")
            .map("Credited", |mut event| {
                let euros = event["euros"].as_u64().ok_or("no euros")?;
                let fields = event.as_object_mut().ok_or("not an object")?;
                fields.remove("euros");
                fields.insert("cents".into(), (euros * 100).into());
                fields.insert("currency".into(), "EUR".into());
                Ok(event)
            }),
    )
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
    let (store, cache) = (store().await?, cache().await?);

    // Last year's code wrote these events.
    let old = LogManager::<v1::Account>::new(Arc::clone(&store));
    let ada = LogId::new();
    let state = old
        .create(
            &ada,
            &v1::Event::Opened {
                owner: "ada".into(),
            },
        )
        .await?;
    old.append(&state, &v1::Event::Deposited { euros: 12 })
        .await?;

    // Today's code reads them through the upcasters, and writes at version 2.
    let logs = LogManager::<Account>::builder(Arc::clone(&store))
        .cache(Arc::clone(&cache))
        .upcasters(upcasters())
        .build();
    let account = logs.reduce(&ada).await?;
    println!(
        "ada's balance, folded from version-1 events: {} cents",
        account.aggregate.cents
    );
    assert_eq!(account.aggregate.cents, 1_200);
    let state = logs
        .append(
            &account.state(),
            &Event::Credited {
                cents: 50,
                currency: "EUR".into(),
            },
        )
        .await?;
    let versions: Vec<u32> = store
        .load(&ada, 0, 10)
        .await?
        .iter()
        .map(|e| e.version)
        .collect();
    println!("stored schema versions of ada's events: {versions:?}");
    assert_eq!(versions, [1, 1, 2]);
    let page = logs.load(&ada, 0, 10).await?;
    println!(
        "as today's code sees them: {:?}",
        page.iter().map(|r| &r.event).collect::<Vec<_>>()
    );

    // Ada asks to be forgotten.
    let removed = logs.delete(&ada).await?;
    println!("deleted ada's log: {removed} events");
    assert_eq!(removed, 3);
    let later = logs
        .append(
            &state,
            &Event::Credited {
                cents: 1,
                currency: "EUR".into(),
            },
        )
        .await;
    match later {
        Err(refused) if refused.kind() == ErrorKind::LogDeleted => {
            println!("a later append: {refused}");
        }
        other => return Err(format!("an append after the delete gave {other:?}").into()),
    }
    match logs.reduce(&ada).await {
        Err(e) if e.kind() == ErrorKind::LogDeleted => println!("a later reduce: {e}"),
        other => return Err(format!("a reduce after the delete gave {other:?}").into()),
    }

    // Idempotency keys are kept until removed: here, every key older than 30 days.
    let keys = logs
        .remove_idempotency_keys(Duration::from_secs(30 * 24 * 3600))
        .await?;
    println!("idempotency keys older than 30 days removed: {keys}");
    Ok(())
}
