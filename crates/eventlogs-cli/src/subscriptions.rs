//! `subscriptions list` and `subscriptions reset`.

use eventlogs::backend::SubscriptionStore;
use eventlogs::postgres::PostgresEventStore;
use eventlogs::{Subscription, SubscriptionName, SubscriptionOptions};
use serde_json::json;

use crate::args::{Cli, SubscriptionsCommand};
use crate::connect::{self, quoted};
use crate::failure::Failure;
use crate::output::Output;
use crate::position;

/// One subscription as stored, with the session holding its lock, if any.
struct Listed {
    name: String,
    checkpoint: String,
    updated_at: String,
    holder: Option<String>,
    since: Option<String>,
}

/// Every subscription of the schema, with who holds each (see
/// `PostgresEventStore::subscription_lock_prefix`).
async fn listed(store: &PostgresEventStore) -> Result<Vec<Listed>, Failure> {
    let client = connect::client(store).await?;
    connect::version(store, &client).await?;
    let sql = format!(
        "SELECT s.name, s.transaction_id::text || '.' || s.position, s.updated_at::text, \
                a.pid, a.application_name, host(a.client_addr), a.backend_start::text \
         FROM {schema}.subscriptions AS s \
         LEFT JOIN pg_catalog.pg_locks AS l ON l.locktype = 'advisory' AND l.granted \
              AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
              AND ((l.classid::bigint << 32) | l.objid::bigint) \
                  = hashtextextended($1 || s.name, 0) \
         LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = l.pid \
         ORDER BY s.name",
        schema = quoted(store)
    );
    let rows = client
        .query(&sql, &[&store.subscription_lock_prefix()])
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let pid: Option<i32> = r.get(3);
            let app: Option<String> = r.get(4);
            let addr: Option<String> = r.get(5);
            Listed {
                name: r.get(0),
                checkpoint: r.get(1),
                updated_at: r.get(2),
                holder: pid.map(|pid| {
                    let app = app.filter(|a| !a.is_empty()).unwrap_or_else(|| "-".into());
                    let addr = addr.unwrap_or_else(|| "local".into());
                    format!("pid {pid} ({app}, {addr})")
                }),
                since: r.get(6),
            }
        })
        .collect())
}

pub(crate) async fn run(
    cli: &Cli,
    command: &SubscriptionsCommand,
    out: &Output,
) -> Result<(), Failure> {
    let store = connect::store(cli)?;
    match command {
        SubscriptionsCommand::List => list(&store, out).await,
        SubscriptionsCommand::Reset { name, to } => reset(&store, name, to, out).await,
    }
}

async fn list(store: &PostgresEventStore, out: &Output) -> Result<(), Failure> {
    let listed = listed(store).await?;
    let mut lags = Vec::with_capacity(listed.len());
    for s in &listed {
        let name = SubscriptionName::new(&s.name)?;
        lags.push(store.lag(&name).await?);
    }
    if out.json() {
        let all: Vec<_> = listed
            .iter()
            .zip(&lags)
            .map(|(s, lag)| {
                json!({
                    "name": s.name,
                    "checkpoint": s.checkpoint,
                    "checkpoint_saved_at": s.updated_at,
                    "lag_events": lag.events,
                    "lag_estimated": lag.estimated,
                    "behind_seconds": lag.behind.as_secs_f64(),
                    "claimed_by": s.holder,
                    "connected_since": s.since,
                })
            })
            .collect();
        out.document(&serde_json::Value::Array(all));
        return Ok(());
    }
    let mut table = out.table(&[
        "name",
        "checkpoint",
        "lag (events)",
        "behind",
        "claimed by",
        "connected since",
    ]);
    for (s, lag) in listed.iter().zip(&lags) {
        let approx = if lag.estimated { "~" } else { "" };
        table.add_row(vec![
            s.name.clone(),
            s.checkpoint.clone(),
            format!("{approx}{}", lag.events),
            humantime::format_duration(std::time::Duration::from_secs(lag.behind.as_secs()))
                .to_string(),
            s.holder.clone().unwrap_or_else(|| "nobody".into()),
            s.since.clone().unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn reset(
    store: &PostgresEventStore,
    name: &str,
    to: &str,
    out: &Output,
) -> Result<(), Failure> {
    let listed = listed(store).await?;
    let Some(current) = listed.iter().find(|s| s.name == name) else {
        return Err(Failure::NotFound(format!(
            "no subscription named {:?} in schema {} (see `eventlogs subscriptions list`)",
            position::shorten(name),
            store.config().schema
        )));
    };
    if let Some(holder) = &current.holder {
        return Err(Failure::Refused(format!(
            "subscription {name} is running ({holder}, connected since {}): stop it first, then reset",
            current.since.as_deref().unwrap_or("?")
        )));
    }
    let position = position::feed_position(to, store).await?;
    let subscription = Subscription::new(store.clone(), name, SubscriptionOptions::default())?;
    subscription
        .reset(position)
        .await
        .map_err(|e| match Failure::from(e) {
            Failure::Refused(_) => Failure::Refused(format!(
                "subscription {name} started running: stop it first, then reset"
            )),
            other => other,
        })?;
    if out.json() {
        out.document(
            &json!({ "name": name, "from": current.checkpoint, "to": position.to_string() }),
        );
    } else {
        println!(
            "subscription {name}: checkpoint moved from {} to {position}",
            current.checkpoint
        );
    }
    Ok(())
}
