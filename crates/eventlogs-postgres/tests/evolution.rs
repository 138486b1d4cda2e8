//! Events stored before schema versions existed are read through upcasters after migration 7,
//! and deletes race appends on both append paths (grouped and one statement each).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use eventlogs_core::{
    Aggregate, AppendOptions, ErrorKind, EventRecord, EventStore, LogId, LogManager, LogState,
    Upcast, Upcasters,
};
use eventlogs_postgres::{AppendGrouping, PostgresEventStore, MIGRATIONS};
use serde::{Deserialize, Serialize};

/// Today's events: amounts in cents, deposits called credits.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Event {
    Credited { cents: u64 },
    Debited { cents: u64 },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Balance(i64);

impl Aggregate for Balance {
    type Event = Event;
    const NAME: &'static str = "evolution-balance";
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<Event>) {
        match record.event {
            Event::Credited { cents } => self.0 += cents as i64,
            Event::Debited { cents } => self.0 -= cents as i64,
        }
    }
}

/// Version 1 stored `Deposited`/`Withdrew` with whole euros in `amount`.
fn chain() -> Upcasters {
    let cents = |mut event: serde_json::Value| {
        let euros = event["amount"].as_u64().ok_or("no amount")?;
        let map = event.as_object_mut().ok_or("not an object")?;
        map.remove("amount");
        map.insert("cents".into(), (euros * 100).into());
        Ok(event)
    };
    Upcasters::new().then(
        Upcast::new("cents")
            .rename("Deposited", "Credited")
            .rename("Withdrew", "Debited")
            .map("Credited", cents)
            .map("Debited", cents),
    )
}

#[tokio::test]
async fn upcast_reads_events_stored_before_migration_seven() {
    let Some(url) = eventlogs_testkit::servers::database_url() else {
        return;
    };
    let schema = format!(
        "evolution_{}",
        LogId::new().ulid().to_string().to_lowercase()
    );
    let store = PostgresEventStore::builder(url)
        .schema(&schema)
        .build()
        .unwrap();
    // The schema as version 6 of the library left it, with events written then.
    let client = store.pool().get().await.unwrap();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.schema_migrations (version integer \
             PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .unwrap();
    for migration in MIGRATIONS.iter().filter(|m| m.version <= 6) {
        client
            .batch_execute(&migration.sql.replace("{schema}", &schema))
            .await
            .unwrap();
        client
            .execute(
                &format!("INSERT INTO {schema}.schema_migrations VALUES ($1, $2)"),
                &[&migration.version, &migration.description],
            )
            .await
            .unwrap();
    }
    let log = LogId::new();
    let uuid = uuid::Uuid::from_u128(log.to_u128());
    for (index, payload) in [
        r#"{"type":"Deposited","amount":7}"#,
        r#"{"type":"Withdrew","amount":2}"#,
    ]
    .into_iter()
    .enumerate()
    {
        client
            .execute(
                &format!(
                    "INSERT INTO {schema}.events (log_id, event_index, payload) VALUES ($1, $2, $3::text::jsonb)"
                ),
                &[&uuid, &(index as i64), &payload],
            )
            .await
            .unwrap();
    }
    drop(client);

    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let stored = store.load(&log, 0, 10).await.unwrap();
    assert!(stored.iter().all(|e| e.version == 1), "{stored:?}");

    // Without the chain the old events do not fit today's type.
    let plain = LogManager::<Balance>::new(Arc::clone(&store));
    assert_eq!(
        plain.reduce(&log).await.unwrap_err().kind(),
        ErrorKind::Corrupt
    );

    let logs = LogManager::<Balance>::builder(Arc::clone(&store))
        .upcasters(chain())
        .build();
    let reduced = logs.reduce(&log).await.unwrap();
    assert_eq!(reduced.aggregate.0, 500);
    let state = logs
        .append(&reduced.state(), &Event::Credited { cents: 25 })
        .await
        .unwrap();
    assert_eq!(state.next_index(), 3);
    let stored = store.load(&log, 0, 10).await.unwrap();
    let versions: Vec<u32> = stored.iter().map(|e| e.version).collect();
    assert_eq!(versions, [1, 1, 2]);
    assert_eq!(logs.reduce(&log).await.unwrap().aggregate.0, 525);
    let page = logs.load(&log, 0, 10).await.unwrap();
    assert!(matches!(page[0].event, Event::Credited { cents: 700 }));
    common::drop_schema(&store).await;
}

/// Writers append to one log as fast as they can while it is deleted: every event
/// acknowledged before the delete is counted by it, and nothing is written after it.
async fn delete_races_appends(store: PostgresEventStore) {
    let store = Arc::new(store);
    let logs = LogManager::<Balance>::new(Arc::clone(&store));
    let log = LogId::new();
    logs.create(&log, &Event::Credited { cents: 1 })
        .await
        .unwrap();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut acknowledged = 0u64;
                loop {
                    let decided = logs
                        .execute(&log, &AppendOptions::new(), |_: Option<&Balance>| {
                            Ok::<_, eventlogs_core::Error>(vec![Event::Credited { cents: 1 }])
                        })
                        .await;
                    match decided {
                        Ok(_) => acknowledged += 1,
                        Err(e) if e.kind() == ErrorKind::LogDeleted => return acknowledged,
                        Err(e) if e.is_retryable() || e.is_conflict() => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    // Let the writers get going: wait until the log has grown.
    while store.load(&log, 20, 1).await.unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let removed = logs.delete(&log).await.unwrap();
    let mut acknowledged = 1;
    for writer in writers {
        acknowledged += writer.await.unwrap();
    }
    if removed != acknowledged {
        let client = store.pool().get().await.unwrap();
        let rows = client
            .query(
                &format!("SELECT event_index, deleted, transaction_id::text, position FROM {}.events WHERE log_id = $1 ORDER BY event_index", store.config().schema),
                &[&uuid::Uuid::from_u128(log.to_u128())],
            )
            .await
            .unwrap();
        let rows: Vec<(i64, bool, String, i64)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        panic!("removed {removed}, acknowledged {acknowledged}: {rows:?}");
    }
    let stale = LogState::new(log, removed);
    for at in [
        LogState::empty(log),
        LogState::new(log, 1),
        stale,
        LogState::new(log, removed + 1),
    ] {
        let refused = logs
            .append(&at, &Event::Credited { cents: 1 })
            .await
            .unwrap_err();
        assert_eq!(
            refused.kind(),
            ErrorKind::LogDeleted,
            "at {}",
            at.next_index()
        );
    }
    assert_eq!(
        store.load(&log, 0, 10).await.unwrap_err().kind(),
        ErrorKind::LogDeleted
    );
    assert_eq!(logs.delete(&log).await.unwrap(), 0);
}

#[tokio::test]
async fn delete_racing_grouped_appends_leaves_all_or_nothing() {
    let Some(url) = eventlogs_testkit::servers::database_url() else {
        return;
    };
    let store = PostgresEventStore::builder(url)
        .schema(common::SCHEMA)
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    delete_races_appends(store).await;
}

#[tokio::test]
async fn delete_racing_single_statement_appends_leaves_all_or_nothing() {
    let Some(url) = eventlogs_testkit::servers::database_url() else {
        return;
    };
    let store = PostgresEventStore::builder(url)
        .schema(common::SCHEMA)
        .append_grouping(AppendGrouping::off())
        .build()
        .unwrap();
    store.migrate().await.unwrap();
    delete_races_appends(store).await;
}
