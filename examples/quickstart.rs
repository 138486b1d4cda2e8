//! Quickstart: bank accounts as event logs — idempotent create, reduce, a guarded debit,
//! a reduce served from the cache, a concurrent append handled, and paging.
//!
//! Run with `cargo run --example quickstart`: it uses the in-memory store and cache, or
//! PostgreSQL when `EVENTLOGS_DATABASE_URL` is set and Redis when `EVENTLOGS_REDIS_URL` is set.
//! `RUST_LOG=eventlogs=debug` shows the library's spans and events.

use std::sync::Arc;

use eventlogs::fake::{FakeEventStore, FakeReductionCache};
use eventlogs::{
    Aggregate, AppendOptions, CacheOutcome, Error, EventRecord, EventStore, LogId, LogManager,
    ReductionCache,
};
use serde::{Deserialize, Serialize};

/// What can happen to an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum AccountEvent {
    Opened { owner: String },
    Deposited { amount: u64 },
    Withdrew { amount: u64 },
}

/// The current state of an account, folded from its events.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
}

impl Aggregate for Account {
    type Event = AccountEvent;
    const NAME: &'static str = "account";
    const VERSION: u32 = 1;

    fn apply(&mut self, record: &EventRecord<AccountEvent>) {
        match &record.event {
            AccountEvent::Opened { owner } => self.owner.clone_from(owner),
            AccountEvent::Deposited { amount } => self.balance += *amount as i64,
            AccountEvent::Withdrew { amount } => self.balance -= *amount as i64,
        }
    }
}

/// Withdraws only when the balance covers it, retrying when another writer got in first.
async fn withdraw(logs: &LogManager<Account>, id: &LogId, amount: u64) -> Result<bool, Error> {
    loop {
        let account = logs.reduce(id).await?;
        if account.aggregate.balance < amount as i64 {
            return Ok(false);
        }
        let event = AccountEvent::Withdrew { amount };
        match logs
            .append(id, &account.state(), &event, &AppendOptions::default())
            .await
        {
            Ok(_) => return Ok(true),
            Err(e) if e.is_conflict() => continue, // someone appended first: reduce again
            Err(e) => return Err(e),
        }
    }
}

/// PostgreSQL when `EVENTLOGS_DATABASE_URL` is set, else the in-memory store.
async fn store() -> Result<Arc<dyn EventStore>, Error> {
    match std::env::var("EVENTLOGS_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let store = eventlogs::postgres::PostgresEventStore::builder(url).build()?;
            store.migrate().await?;
            println!("store: PostgreSQL at {}", store.config().url_redacted());
            Ok(Arc::new(store))
        }
        _ => {
            println!("store: in memory (set EVENTLOGS_DATABASE_URL to use PostgreSQL)");
            Ok(Arc::new(FakeEventStore::new()))
        }
    }
}

/// Redis when `EVENTLOGS_REDIS_URL` is set, else the in-memory cache.
async fn cache() -> Result<Arc<dyn ReductionCache>, Error> {
    match std::env::var("EVENTLOGS_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let cache = eventlogs::redis::RedisReductionCache::builder(url)
                .key_prefix("quickstart")
                .build()
                .await?;
            println!("cache: Redis ({cache:?})");
            Ok(Arc::new(cache))
        }
        _ => {
            println!("cache: in memory (set EVENTLOGS_REDIS_URL to use Redis)");
            Ok(Arc::new(FakeReductionCache::new()))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let (store, cache) = (store().await?, cache().await?);
    let logs = LogManager::<Account>::builder(store).cache(cache).build();

    // 1. Create an account idempotently: the retry (say, after a timeout) writes nothing.
    // The key identifies the request; a real service takes it from the client's request.
    let request_id = LogId::new().ulid();
    let open = AppendOptions::default().idempotency_key(format!("open-account-{request_id}"));
    let id = LogId::new();
    let state = logs
        .create(
            &id,
            &AccountEvent::Opened {
                owner: "alice".into(),
            },
            &open,
        )
        .await?;
    println!("created {id} (next index {})", state.next_index());
    match logs
        .create(
            &LogId::new(),
            &AccountEvent::Opened {
                owner: "alice".into(),
            },
            &open,
        )
        .await
    {
        Err(Error::IdempotentReplay {
            log_id,
            first_index,
            ..
        }) => {
            println!("retried create replayed: the account is still {log_id}, index {first_index}")
        }
        other => panic!("expected a replay, got {other:?}"),
    }

    // 2. Deposit, then reduce to the current balance.
    let state = logs
        .append(
            &id,
            &state,
            &AccountEvent::Deposited { amount: 100 },
            &AppendOptions::default(),
        )
        .await?;
    logs.append(
        &id,
        &state,
        &AccountEvent::Deposited { amount: 50 },
        &AppendOptions::default(),
    )
    .await?;
    let account = logs.reduce(&id).await?;
    println!(
        "{} has {} after {} events ({} read from the store)",
        account.aggregate.owner,
        account.aggregate.balance,
        account.len(),
        account.events_read
    );

    // 3. A guarded debit: allowed while the balance covers it.
    println!(
        "withdraw 120: {}",
        if withdraw(&logs, &id, 120).await? {
            "done"
        } else {
            "refused"
        }
    );
    println!(
        "withdraw 120 again: {}",
        if withdraw(&logs, &id, 120).await? {
            "done"
        } else {
            "refused: insufficient funds"
        }
    );

    // 4. Reductions are cached in the background; the next reduce reads only newer events.
    logs.flush().await;
    let cached = logs.reduce(&id).await?;
    assert_eq!(cached.cache, CacheOutcome::Hit);
    println!(
        "reduce from the cache: balance {}, {} event read to confirm the cached value",
        cached.aggregate.balance, cached.events_read
    );

    // 5. Two writers with the same state: one wins, the other gets ConcurrentAppend.
    let stale = cached.state();
    logs.append(
        &id,
        &stale,
        &AccountEvent::Deposited { amount: 5 },
        &AppendOptions::default(),
    )
    .await?;
    match logs
        .append(
            &id,
            &stale,
            &AccountEvent::Deposited { amount: 7 },
            &AppendOptions::default(),
        )
        .await
    {
        Err(Error::ConcurrentAppend { index, .. }) => {
            println!("second writer lost the race for index {index}; reducing and retrying");
            let fresh = logs.reduce(&id).await?;
            logs.append(
                &id,
                &fresh.state(),
                &AccountEvent::Deposited { amount: 7 },
                &AppendOptions::default(),
            )
            .await?;
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // 6. Page through the history, two events at a time.
    let mut from = 0;
    loop {
        let page = logs.load(&id, from, 2).await?;
        let Some(last) = page.last() else { break };
        for record in &page {
            println!(
                "  #{} {}",
                record.index,
                serde_json::to_string(&record.event).unwrap_or_default()
            );
        }
        from = last.index + 1;
    }
    let account = logs.reduce(&id).await?;
    println!("final balance: {}", account.aggregate.balance);
    println!("cache: {:?}", logs.cache_stats());
    Ok(())
}
