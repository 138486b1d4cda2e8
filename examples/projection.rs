//! Projection: keeps a PostgreSQL table of accounts and balances up to date from the
//! quickstart's account events, exactly once, and asks it which accounts are overdrawn.
//!
//! Run with `EVENTLOGS_DATABASE_URL=postgres://… cargo run --example projection`. It uses (and
//! first resets) the schema `projection_example` for both the events and the read model.
//! `RUST_LOG=eventlogs=debug` shows the subscription's batches and wake-ups.

use std::time::Duration;

use eventlogs::postgres::tokio_postgres::Transaction;
use eventlogs::postgres::{PostgresEventStore, Transactional, TransactionalHandler};
use eventlogs::{
    Aggregate, AppendOptions, BoxError, EventRecord, FeedEvent, FeedFilter, LogId, LogManager,
    Subscription, SubscriptionOptions,
};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "projection_example";

/// What can happen to an account (the quickstart's events).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrew { amount: u64 },
}

/// The write side's aggregate; the projection does not need it, the writers below do.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    balance: i64,
}

impl Aggregate for Account {
    type Event = AccountEvent;
    const NAME: &'static str = "account";
    const VERSION: u32 = 1;

    fn apply(&mut self, record: &EventRecord<AccountEvent>) {
        match &record.event {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount } => self.balance += *amount as i64,
            AccountEvent::Withdrew { amount } => self.balance -= *amount as i64,
        }
    }
}

/// Applies account events to `projection_example.accounts`, in the transaction that also
/// stores the subscription's checkpoint.
struct Balances;

#[eventlogs::backend::async_trait]
impl TransactionalHandler for Balances {
    async fn handle(
        &mut self,
        tx: &Transaction<'_>,
        events: Vec<FeedEvent>,
    ) -> Result<(), BoxError> {
        for e in events {
            let id = e.log_id.to_string();
            match e.decode::<AccountEvent>()?.event {
                AccountEvent::Opened { owner } => {
                    tx.execute(
                        "INSERT INTO projection_example.accounts (id, owner, balance) VALUES ($1, $2, 0)",
                        &[&id, &owner],
                    )
                    .await?;
                }
                AccountEvent::Deposited { amount } | AccountEvent::Withdrew { amount } => {
                    let sign = if e.event_type().as_deref() == Some("Deposited") {
                        1
                    } else {
                        -1
                    };
                    tx.execute(
                        "UPDATE projection_example.accounts SET balance = balance + $2 WHERE id = $1",
                        &[&id, &(sign * amount as i64)],
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let Some(url) = std::env::var("EVENTLOGS_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("set EVENTLOGS_DATABASE_URL to a PostgreSQL database, for example");
        eprintln!("  EVENTLOGS_DATABASE_URL=postgres://postgres@127.0.0.1/postgres cargo run --example projection");
        std::process::exit(2);
    };

    // Events and read model in one database, so the projection can commit both together.
    let store = PostgresEventStore::builder(url).schema(SCHEMA).build()?;
    let admin = store.pool().get().await?;
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .await?;
    store.migrate().await?;
    admin
        .batch_execute(
            "CREATE TABLE projection_example.accounts (
                 id      text   PRIMARY KEY,
                 owner   text   NOT NULL,
                 balance bigint NOT NULL
             );
             CREATE INDEX accounts_overdrawn ON projection_example.accounts (balance) WHERE balance < 0;",
        )
        .await?;

    // The projection runs in the background for as long as the service lives.
    let options = SubscriptionOptions::default()
        .with_batch_size(200)
        .with_filter(FeedFilter::all().with_event_types(["Opened", "Deposited", "Withdrew"]));
    let projection = Subscription::new(store.clone(), "account-balances", options)?;
    let mut running = projection.spawn_with(Transactional(Balances));
    running.live().await;

    // The write side: card payments may overdraw an account.
    let logs = LogManager::<Account>::new(store.clone());
    let people = [
        ("alice", 100, 30),
        ("bob", 50, 80),
        ("carol", 20, 20),
        ("dave", 0, 15),
    ];
    for (owner, deposit, spent) in people {
        let id = LogId::new();
        let mut events = vec![AccountEvent::Opened {
            owner: owner.into(),
        }];
        if deposit > 0 {
            events.push(AccountEvent::Deposited { amount: deposit });
        }
        logs.create_with(&id, &events, &AppendOptions::new())
            .await?;
        // A card payment is a command: it may overdraw, so it never refuses.
        logs.execute(&id, &AppendOptions::new(), |_: Option<&Account>| {
            Ok::<_, eventlogs::Error>(vec![AccountEvent::Withdrew { amount: spent }])
        })
        .await?;
    }
    println!("wrote {} accounts' events", people.len());

    // Wait until the projection has caught up; `lag` can be read at any time, anywhere.
    let lag = loop {
        let lag = projection.lag().await?;
        if lag.is_caught_up() {
            break lag;
        }
        println!(
            "projection is {} events ({:?}) behind",
            lag.events, lag.behind
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("projection caught up at {}", lag.checkpoint);

    // The read model answers with plain SQL.
    let overdrawn = admin
        .query(
            "SELECT owner, balance FROM projection_example.accounts WHERE balance < 0 ORDER BY balance",
            &[],
        )
        .await?;
    println!("overdrawn accounts:");
    for row in &overdrawn {
        println!(
            "  {:<6} {:>5}",
            row.get::<_, String>(0),
            row.get::<_, i64>(1)
        );
    }
    let owners: Vec<String> = overdrawn.iter().map(|r| r.get(0)).collect();
    assert_eq!(owners, ["bob", "dave"]);

    running.stop().await?;
    Ok(())
}
