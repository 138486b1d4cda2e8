//! Quickstart: bank accounts as event logs — commands that create or append in one call,
//! a guard that refuses with the service's own error, a retried request that replays, racing
//! writers retried for you, a reduce served from the cache, and paging.
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

/// What a client asks of an account.
#[derive(Debug, Clone)]
enum Command {
    Open { owner: String },
    Deposit { amount: u64 },
    Withdraw { amount: u64 },
}

/// The service's own errors: refusals of the domain, and the store's errors.
#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("no such account")]
    NotOpen,
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("insufficient funds: the balance is {balance}")]
    InsufficientFunds { balance: i64 },
    #[error(transparent)]
    Store(#[from] Error),
}

/// The business rules: from the current state (none for a new account) to the events a
/// command records, or a refusal.
fn decide(account: Option<&Account>, command: &Command) -> Result<Vec<AccountEvent>, AccountError> {
    match (account, command) {
        (None, Command::Open { owner }) => Ok(vec![AccountEvent::Opened {
            owner: owner.clone(),
        }]),
        (Some(_), Command::Open { .. }) => Err(AccountError::AlreadyOpen),
        (None, _) => Err(AccountError::NotOpen),
        (Some(_), Command::Deposit { amount }) => {
            Ok(vec![AccountEvent::Deposited { amount: *amount }])
        }
        (Some(a), Command::Withdraw { amount }) if a.balance < *amount as i64 => {
            Err(AccountError::InsufficientFunds { balance: a.balance })
        }
        (Some(_), Command::Withdraw { amount }) => {
            Ok(vec![AccountEvent::Withdrew { amount: *amount }])
        }
    }
}

/// Handles one request: the whole command in one call, idempotent under the request's id.
async fn handle(
    logs: &LogManager<Account>,
    id: &LogId,
    request_id: &str,
    command: Command,
) -> Result<i64, AccountError> {
    let options = AppendOptions::new().with_idempotency_key(request_id);
    let done = logs
        .execute(id, &options, |account: Option<&Account>| {
            decide(account, &command)
        })
        .await?;
    Ok(done.reduction.aggregate.balance)
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
async fn main() -> Result<(), AccountError> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let (store, cache) = (store().await?, cache().await?);
    // Accounts here have a handful of events; the default caches logs from 32 events on, where
    // a cached reduction saves more than it costs. Cache them all, to show the cache at work.
    let logs = LogManager::<Account>::builder(store)
        .cache(cache)
        .min_events_per_write(1)
        .build();
    // Request ids come from the clients; each names one request, whatever its retries.
    let request = |what: &str| format!("{what}-{}", LogId::new().ulid());

    // 1. Open an account. The client's retry (say, after a timeout) is a replay: it writes
    //    nothing and answers for the account the first call opened, even under a fresh id.
    let id = LogId::new();
    let open = request("open");
    let alice = Command::Open {
        owner: "alice".into(),
    };
    handle(&logs, &id, &open, alice.clone()).await?;
    let retry = logs
        .execute(
            &LogId::new(),
            &AppendOptions::new().with_idempotency_key(&open),
            |account: Option<&Account>| decide(account, &alice),
        )
        .await?;
    assert!(retry.replayed && retry.reduction.log_id == id);
    println!("opened {id}; the retried open replayed (no second account)");

    // 2. Deposit and withdraw: each command reduces, decides and appends in one call.
    handle(
        &logs,
        &id,
        &request("deposit"),
        Command::Deposit { amount: 150 },
    )
    .await?;
    let withdrawal = request("withdraw");
    let balance = handle(&logs, &id, &withdrawal, Command::Withdraw { amount: 120 }).await?;
    println!("deposited 150, withdrew 120: balance {balance}");

    // 3. The guard refuses with the service's own error type...
    match handle(
        &logs,
        &id,
        &request("withdraw"),
        Command::Withdraw { amount: 120 },
    )
    .await
    {
        Err(AccountError::InsufficientFunds { balance }) => {
            println!("withdraw 120 again: refused, insufficient funds ({balance})")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // ...but a retry of the withdrawal that succeeded is a replay, not a refusal: the
    // decision is not run again on the lower balance.
    let replayed = handle(&logs, &id, &withdrawal, Command::Withdraw { amount: 120 }).await?;
    println!("the retried withdrawal replayed: balance still {replayed}");

    // 4. Racing writers: 8 deposits at once. Each lost race is decided again on the fresh
    //    state (jittered backoff, bounded attempts); none is lost.
    let deposits: Vec<_> = (0..8)
        .map(|_| {
            let logs = logs.clone();
            tokio::spawn(async move {
                handle(
                    &logs,
                    &id,
                    &request("deposit"),
                    Command::Deposit { amount: 10 },
                )
                .await
            })
        })
        .collect();
    for deposit in deposits {
        deposit.await.expect("the task ran")?;
    }

    // 5. Reductions are cached in the background; the next reduce reads only newer events,
    //    and equals a fold from index 0.
    logs.flush().await;
    let account = logs.reduce(&id).await?;
    assert_eq!(account.cache, CacheOutcome::Hit);
    println!(
        "{} has {} after {} events ({} read from the store, the rest from the cache)",
        account.aggregate.owner,
        account.aggregate.balance,
        account.len(),
        account.events_read
    );

    // 6. Page through the history, four events at a time.
    let mut from = 0;
    loop {
        let page = logs.load(&id, from, 4).await?;
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
    println!("cache: {:?}", logs.cache_stats());
    Ok(())
}
