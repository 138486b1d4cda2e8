//! The `eventlogs` binary deleting logs and removing old idempotency keys, end to end.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{eventlogs, schema, stdout_json as json, store};
use eventlogs::{AppendOptions, ErrorKind, EventFeed, EventsOnly, FeedPosition, LogId, LogManager};
use eventlogs_testkit::servers::database_url;
use serde_json::Value;

#[tokio::test]
async fn cli_deletes_a_log_only_when_confirmed() {
    let Some(url) = database_url() else { return };
    let schema = schema("delete");
    let store = store(&url, &schema).await;
    let logs: LogManager<EventsOnly<String>> = LogManager::new(Arc::clone(&store));
    let (gone, kept) = (LogId::new(), LogId::new());
    let state = logs.create(&gone, &"opened".to_owned()).await.unwrap();
    logs.append(&state, &"closed".to_owned()).await.unwrap();
    logs.create(&kept, &"opened".to_owned()).await.unwrap();
    let id = gone.to_string();

    // Without --yes nothing happens, and the exit code says it was a usage error.
    let unconfirmed = eventlogs(&url, &schema, &["log", "delete", &id]);
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    assert_eq!(logs.reduce(&gone).await.unwrap().aggregate.count, 2);

    let deleted = json(&eventlogs(
        &url,
        &schema,
        &["--json", "log", "delete", &id, "--yes"],
    ));
    assert_eq!(deleted["events_removed"], 2);
    let again = json(&eventlogs(
        &url,
        &schema,
        &["--json", "log", "delete", &id, "--yes"],
    ));
    assert_eq!(again["events_removed"], 0);
    assert_eq!(
        logs.reduce(&gone).await.unwrap_err().kind(),
        ErrorKind::LogDeleted
    );
    assert_eq!(logs.reduce(&kept).await.unwrap().aggregate.count, 1);

    // `log show` names the deletion (exit 4); the feed shows the marker; status counts it.
    let shown = eventlogs(&url, &schema, &["log", "show", &id]);
    assert_eq!(shown.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&shown.stderr).contains("deleted"));
    let feed = eventlogs(
        &url,
        &schema,
        &["--json", "feed", "tail", "--from", "start"],
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&feed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of_gone: Vec<&Value> = lines
        .iter()
        .filter(|l| l["log_id"] == id.as_str())
        .collect();
    assert_eq!(of_gone.len(), 1, "{lines:?}");
    assert_eq!(of_gone[0]["deleted"], true);
    let status = json(&eventlogs(&url, &schema, &["--json", "status"]));
    assert_eq!(status["logs"], 1);
    assert_eq!(status["deleted_logs"], 1);
    assert_eq!(status["events"], 1);
    assert!(store.head().await.unwrap() > FeedPosition::START);
}

#[tokio::test]
async fn cli_removes_idempotency_keys_by_age() {
    let Some(url) = database_url() else { return };
    let schema = schema("keys");
    let store = store(&url, &schema).await;
    let logs: LogManager<EventsOnly<String>> = LogManager::new(Arc::clone(&store));
    let keyed = AppendOptions::new().with_idempotency_key("open-1");
    logs.create_with(&LogId::new(), &["opened".to_owned()], &keyed)
        .await
        .unwrap();

    let young = json(&eventlogs(
        &url,
        &schema,
        &["--json", "keys", "remove", "--older-than", "1h"],
    ));
    assert_eq!(young["removed"], 0);
    let bad = eventlogs(&url, &schema, &["keys", "remove", "--older-than", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    let all = json(&eventlogs(
        &url,
        &schema,
        &["--json", "keys", "remove", "--older-than", "0s"],
    ));
    assert_eq!(all["removed"], 1);
    // The key is forgotten: the same request writes again, to a new log.
    let retried = logs
        .create_with(&LogId::new(), &["opened".to_owned()], &keyed)
        .await;
    assert!(retried.is_ok(), "{retried:?}");
}
