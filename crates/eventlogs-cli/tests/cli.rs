//! The `eventlogs` binary end to end against PostgreSQL: stdout, stderr and exit codes.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{eventlogs, schema, stderr, stdout_json, store};
use eventlogs::{
    AppendOptions, BoxError, EventFeed, EventsOnly, FeedEvent, LogId, LogManager, Subscription,
    SubscriptionOptions,
};
use eventlogs_testkit::servers::database_url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Account {
    Opened { owner: String },
    Deposited { amount: i64 },
}

/// Opens the account `id` for `owner` (its first event).
async fn open<A: eventlogs::Aggregate<Event = Account>>(
    logs: &LogManager<A>,
    id: &LogId,
    owner: &str,
) -> eventlogs::LogState {
    logs.create(
        id,
        &Account::Opened {
            owner: owner.into(),
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn cli_counts_and_shows_what_the_store_holds() {
    let Some(url) = database_url() else { return };
    let schema = schema("status");
    let store = store(&url, &schema).await;
    let again = eventlogs(&url, &schema, &["migrate", "--json"]);
    assert_eq!(
        stdout_json(&again)["from_version"],
        stdout_json(&again)["version"]
    );
    let logs: LogManager<EventsOnly<Account>> = LogManager::new(Arc::clone(&store));
    let id = LogId::new();
    let keyed = AppendOptions::new().with_idempotency_key("open-ada");
    let opened = logs
        .create_with(
            &id,
            &[Account::Opened {
                owner: "ada".into(),
            }],
            &keyed,
        )
        .await
        .unwrap();
    logs.append(&opened, &Account::Deposited { amount: 7 })
        .await
        .unwrap();
    open(&logs, &LogId::new(), "bob").await;

    let status = stdout_json(&eventlogs(&url, &schema, &["status", "--json"]));
    assert_eq!(status["events"], 3);
    assert_eq!(status["logs"], 2);
    assert_eq!(status["idempotency_keys"], 1);
    assert_eq!(status["snapshot_entries"], 0);
    assert_eq!(status["version"], status["latest_version"]);

    let shown = stdout_json(&eventlogs(
        &url,
        &schema,
        &["log", "show", &id.to_string(), "--json"],
    ));
    let events = shown.as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["payload"]["owner"], "ada");
    assert_eq!(events[0]["idempotency_key"], "open-ada");
    assert_eq!(events[1]["index"], 1);
    assert_eq!(events[1]["payload"]["amount"], 7);
    // The UUID PostgreSQL stores names the same log.
    let uuid = uuid::Uuid::from_u128(id.to_u128()).to_string();
    let by_uuid = stdout_json(&eventlogs(
        &url,
        &schema,
        &["log", "show", &uuid, "--from", "1", "--json"],
    ));
    assert_eq!(by_uuid.as_array().unwrap().len(), 1);
    // A table for humans.
    let table = eventlogs(&url, &schema, &["log", "show", &id.to_string()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("\"owner\": \"ada\"") && text.contains("open-ada"),
        "{text}"
    );

    let missing = eventlogs(&url, &schema, &["log", "show", &LogId::new().to_string()]);
    assert_eq!(missing.status.code(), Some(4));
    assert!(stderr(&missing).contains("has no events"));
}

#[tokio::test]
async fn cli_refuses_hostile_input_in_one_line() {
    let Some(url) = database_url() else { return };
    let schema = schema("hostile");
    store(&url, &schema).await;
    for (args, code, says) in [
        (
            vec!["log", "show", "'; DROP TABLE events; --"],
            2,
            "not a log id",
        ),
        (
            vec!["feed", "tail", "--from", "1;2"],
            2,
            "not a feed position",
        ),
        (vec!["feed", "tail", "--filter", "owner=ada"], 2, "--filter"),
        (
            vec!["subscriptions", "reset", "nobody", "--to", "head"],
            4,
            "no subscription named",
        ),
        (vec!["log", "show"], 2, "<ID>"),
    ] {
        let out = eventlogs(&url, &schema, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let sql = eventlogs(&url, "x\"; DROP SCHEMA public; --", &["status"]);
    assert_eq!(sql.status.code(), Some(2));
    assert_eq!(stderr(&sql).lines().count(), 1, "{}", stderr(&sql));
    assert!(stderr(&sql).contains("not a plain identifier"));
    let absent = eventlogs(&url, "cli_never_migrated", &["status"]);
    assert_eq!(absent.status.code(), Some(4));
    assert!(stderr(&absent).contains("eventlogs migrate"));
    // A password in a URL that cannot connect never reaches the output.
    let closed = eventlogs(
        "postgres://app:s3cret-pw@127.0.0.1:1/app",
        &schema,
        &["status"],
    );
    assert_eq!(closed.status.code(), Some(1));
    assert!(
        !stderr(&closed).contains("s3cret-pw"),
        "{}",
        stderr(&closed)
    );
    assert_eq!(stderr(&closed).lines().count(), 1, "{}", stderr(&closed));
    let no_url = Command::new(env!("CARGO_BIN_EXE_eventlogs"))
        .env_remove("EVENTLOGS_DATABASE_URL")
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(no_url.status.code(), Some(2));
    assert!(stderr(&no_url).contains("--database-url"));
}

#[tokio::test]
async fn cli_tails_the_feed_with_filters() {
    let Some(url) = database_url() else { return };
    let schema = schema("feed");
    let store = store(&url, &schema).await;
    let logs: LogManager<EventsOnly<Account>> = LogManager::new(Arc::clone(&store));
    let (ada, bob) = (LogId::new(), LogId::new());
    let opened = open(&logs, &ada, "ada").await;
    open(&logs, &bob, "bob").await;
    logs.append(&opened, &Account::Deposited { amount: 5 })
        .await
        .unwrap();
    let lines = |args: &[&str]| -> Vec<Value> {
        let out = eventlogs(&url, &schema, args);
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = lines(&["feed", "tail", "--json"]);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2]["type"], "Deposited");
    let deposits = lines(&["feed", "tail", "--json", "--filter", "type=Deposited"]);
    assert_eq!(deposits.len(), 1);
    assert_eq!(deposits[0]["payload"]["amount"], 5);
    let of_bob = lines(&["feed", "tail", "--json", "--filter", &format!("log={bob}")]);
    assert_eq!(of_bob.len(), 1);
    assert_eq!(of_bob[0]["log_id"], bob.to_string());
    let after_first = all[0]["position"].as_str().unwrap().to_owned();
    assert_eq!(
        lines(&["feed", "tail", "--json", "--from", &after_first]).len(),
        2
    );
    assert_eq!(lines(&["feed", "tail", "--json", "--limit", "1"]).len(), 1);
    assert!(lines(&["feed", "tail", "--json", "--from", "head"]).is_empty());
}

#[tokio::test]
async fn cli_follows_a_log() {
    let Some(url) = database_url() else { return };
    let schema = schema("follow");
    let store = store(&url, &schema).await;
    let logs: LogManager<EventsOnly<Account>> = LogManager::new(Arc::clone(&store));
    let id = LogId::new();
    let opened = open(&logs, &id, "ada").await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_eventlogs"))
        .env("EVENTLOGS_DATABASE_URL", &url)
        .args([
            "--schema",
            &schema,
            "--json",
            "log",
            "tail",
            &id.to_string(),
            "--follow",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&line).unwrap()["index"], 0);
    logs.append(&opened, &Account::Deposited { amount: 9 })
        .await
        .unwrap();
    // The next line arrives once the tool sees the new event.
    line.clear();
    reader.read_line(&mut line).unwrap();
    let next: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (next["index"].clone(), next["payload"]["amount"].clone()),
        (1.into(), 9.into())
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn cli_resets_a_subscription_only_while_nobody_runs_it() {
    let Some(url) = database_url() else { return };
    let schema = schema("subs");
    let store = store(&url, &schema).await;
    let logs: LogManager<EventsOnly<Account>> = LogManager::new(Arc::clone(&store));
    for owner in ["ada", "bob"] {
        open(&logs, &LogId::new(), owner).await;
    }
    let options = SubscriptionOptions::default().with_poll_interval(Duration::from_millis(50));
    let subscription = Subscription::new(Arc::clone(&store), "balances", options).unwrap();
    let (seen, mut caught_up) = tokio::sync::watch::channel(0usize);
    let mut handle = subscription.spawn(move |events: Vec<FeedEvent>| {
        seen.send_modify(|n| *n += events.len());
        async { Ok::<(), BoxError>(()) }
    });
    assert!(handle.live().await);
    caught_up.wait_for(|n| *n == 2).await.unwrap();

    let listed = stdout_json(&eventlogs(
        &url,
        &schema,
        &["subscriptions", "list", "--json"],
    ));
    let balances = &listed.as_array().unwrap()[0];
    assert_eq!(balances["name"], "balances");
    assert!(balances["claimed_by"].as_str().unwrap().starts_with("pid "));
    let refused = eventlogs(
        &url,
        &schema,
        &["subscriptions", "reset", "balances", "--to", "start"],
    );
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("is running"),
        "{}",
        stderr(&refused)
    );

    handle.stop().await.unwrap();
    // Stopped after both events: its checkpoint is the head of the feed.
    let checkpoint = store.head().await.unwrap().to_string();
    let reset = stdout_json(&eventlogs(
        &url,
        &schema,
        &[
            "subscriptions",
            "reset",
            "balances",
            "--to",
            "start",
            "--json",
        ],
    ));
    assert_eq!(reset["from"], checkpoint.as_str());
    assert_eq!(reset["to"], "0.0");
    let listed = stdout_json(&eventlogs(
        &url,
        &schema,
        &["subscriptions", "list", "--json"],
    ));
    let balances = &listed.as_array().unwrap()[0];
    assert_eq!(balances["checkpoint"], "0.0");
    assert_eq!(balances["claimed_by"], Value::Null);
    assert_eq!(balances["lag_events"], 2);
}
