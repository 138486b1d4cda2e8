//! `migrate` and `status`.

use eventlogs::postgres::deadpool_postgres::Object;
use eventlogs::postgres::{migration_sql, MIGRATIONS};
use serde_json::json;

use crate::args::Cli;
use crate::connect::{self, quoted};
use crate::failure::Failure;
use crate::output::Output;

/// Blocks of a table counted per query, so the progress bar moves (80 MB at 8 kB pages).
const CHUNK_BLOCKS: i64 = 10_000;

/// Applies the pending migrations, or prints them all with `--print`.
pub(crate) async fn migrate(cli: &Cli, print: bool, out: &Output) -> Result<(), Failure> {
    let store = connect::store(cli)?;
    if print {
        // The builder validated the schema name, so this always has SQL.
        let sql = migration_sql(&store.config().schema).unwrap_or_default();
        if out.json() {
            out.document(&json!({ "schema": store.config().schema, "sql": sql }));
        } else {
            println!("{sql}");
        }
        return Ok(());
    }
    let client = connect::client(&store).await?;
    let before = match connect::version(&store, &client).await {
        Ok(version) => version,
        Err(Failure::NotFound(_)) => 0,
        Err(other) => return Err(other),
    };
    drop(client);
    store.migrate().await?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    if out.json() {
        out.document(&json!({
            "schema": store.config().schema,
            "from_version": before,
            "version": latest,
        }));
    } else if before == latest {
        println!(
            "schema {} is up to date (version {latest})",
            store.config().schema
        );
    } else {
        println!(
            "schema {} migrated from version {before} to {latest}",
            store.config().schema
        );
    }
    Ok(())
}

/// Counts the rows of `table` that pass each of `filters`, in block ranges inside
/// `client`'s transaction, moving a progress bar.
async fn count(
    client: &Object,
    table: &str,
    filters: &[&str],
    out: &Output,
    what: &str,
) -> Result<Vec<i64>, Failure> {
    let blocks: i64 = client
        .query_one(
            "SELECT pg_relation_size($1::text::regclass) / current_setting('block_size')::bigint",
            &[&table],
        )
        .await?
        .get(0);
    let bar = out.progress(u64::try_from(blocks).unwrap_or(0), what);
    let columns: Vec<String> = filters
        .iter()
        .map(|f| format!("count(*) FILTER (WHERE {f})"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} \
         WHERE ctid >= format('(%s,0)', $1::bigint)::tid \
           AND ($2::bigint IS NULL OR ctid < format('(%s,0)', $2::bigint)::tid)",
        columns.join(", ")
    );
    let mut counts = vec![0i64; filters.len()];
    let mut from = 0;
    loop {
        // The last range is open, so rows of pages added meanwhile are not missed.
        let to = (from + CHUNK_BLOCKS < blocks).then_some(from + CHUNK_BLOCKS);
        let row = client.query_one(&sql, &[&from, &to]).await?;
        for (i, count) in counts.iter_mut().enumerate() {
            *count += row.get::<_, i64>(i);
        }
        let Some(to) = to else { break };
        bar.set_position(u64::try_from(to).unwrap_or(0));
        from = to;
    }
    bar.finish_and_clear();
    Ok(counts)
}

/// Planner estimates of the rows of `table`.
async fn estimate(client: &Object, table: &str) -> Result<i64, Failure> {
    let rows: f32 = client
        .query_one(
            "SELECT greatest(reltuples, 0)::real FROM pg_class WHERE oid = $1::text::regclass",
            &[&table],
        )
        .await?
        .get(0);
    Ok(rows as i64)
}

/// The schema's version and what it holds.
pub(crate) async fn status(cli: &Cli, estimated: bool, out: &Output) -> Result<(), Failure> {
    let store = connect::store(cli)?;
    let schema = quoted(&store);
    let client = connect::client(&store).await?;
    let version = connect::version(&store, &client).await?;
    let latest = MIGRATIONS.last().map_or(0, |m| m.version);
    let (events_table, keys_table) = (
        format!("{schema}.events"),
        format!("{schema}.idempotency_keys"),
    );
    // The snapshot cache's table exists from schema version 8 on.
    let snapshots_table = (version >= 8).then(|| format!("{schema}.snapshots"));
    let (events, logs, keys, snapshots) = if estimated {
        let events = estimate(&client, &events_table).await?;
        let snapshots = match &snapshots_table {
            Some(table) => Some(estimate(&client, table).await?),
            None => None,
        };
        (
            events,
            None,
            estimate(&client, &keys_table).await?,
            snapshots,
        )
    } else {
        // One snapshot for every count, so they agree with each other.
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        // Deleted logs keep marker rows (from schema version 7 on), counted apart.
        let filters: [&str; 3] = if version >= 7 {
            [
                "deleted = 0",
                "event_index = 0 AND deleted = 0",
                "event_index = 0 AND deleted <> 0",
            ]
        } else {
            ["true", "event_index = 0", "false"]
        };
        let events = count(&client, &events_table, &filters, out, "events").await?;
        let keys = count(&client, &keys_table, &["true"], out, "idempotency keys").await?;
        let snapshots = match &snapshots_table {
            Some(table) => {
                Some(count(&client, table, &["true"], out, "snapshot entries").await?[0])
            }
            None => None,
        };
        client.batch_execute("COMMIT").await?;
        (events[0], Some((events[1], events[2])), keys[0], snapshots)
    };
    let subscriptions: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.subscriptions"), &[])
        .await?
        .get(0);
    if out.json() {
        out.document(&json!({
            "schema": store.config().schema,
            "version": version,
            "latest_version": latest,
            "estimated": estimated,
            "events": events,
            "logs": logs.map(|(live, _)| live),
            "deleted_logs": logs.map(|(_, deleted)| deleted),
            "idempotency_keys": keys,
            "subscriptions": subscriptions,
            "snapshot_entries": snapshots,
        }));
        return Ok(());
    }
    let mut table = out.table(&[]);
    let pending = if version < latest {
        format!(" ({} pending: run `eventlogs migrate`)", latest - version)
    } else {
        String::new()
    };
    let about = if estimated { " (estimate)" } else { "" };
    table.add_row(vec!["schema".to_owned(), store.config().schema.clone()]);
    table.add_row(vec![
        "version".to_owned(),
        format!("{version} of {latest}{pending}"),
    ]);
    table.add_row(vec!["events".to_owned(), format!("{events}{about}")]);
    table.add_row(vec![
        "logs".to_owned(),
        logs.map_or_else(
            || "not counted with --estimate".to_owned(),
            |(live, deleted)| format!("{live} ({deleted} deleted)"),
        ),
    ]);
    table.add_row(vec![
        "idempotency keys".to_owned(),
        format!("{keys}{about}"),
    ]);
    table.add_row(vec!["subscriptions".to_owned(), subscriptions.to_string()]);
    table.add_row(vec![
        "snapshot cache entries".to_owned(),
        snapshots.map_or_else(
            || "no snapshots table before version 8".to_owned(),
            |n| format!("{n}{about}"),
        ),
    ]);
    println!("{table}");
    Ok(())
}
