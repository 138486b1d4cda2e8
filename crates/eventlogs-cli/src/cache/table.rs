//! `cache stats` and `cache purge` on the `snapshots` table (`PostgresSnapshotCache`).

use eventlogs::postgres::PostgresSnapshotCache;

use crate::args::Cli;
use crate::connect;
use crate::failure::Failure;
use crate::output::Output;

use super::Counts;

/// The schema version that created the `snapshots` table.
const SNAPSHOTS_SINCE: i32 = 8;
/// Rows looked at per `purge` statement, walking the primary key.
const PURGE_PAGE: i64 = 5_000;

/// The snapshot cache of `--schema`, once its table is known to exist.
pub(super) async fn open(cli: &Cli) -> Result<PostgresSnapshotCache, Failure> {
    let store = connect::store(cli)?;
    let client = connect::client(&store).await?;
    let version = connect::version(&store, &client).await?;
    if version < SNAPSHOTS_SINCE {
        return Err(Failure::NotFound(format!(
            "schema {} is at version {version}, before the snapshots table (version \
             {SNAPSHOTS_SINCE}): run `eventlogs migrate`",
            store.config().schema
        )));
    }
    Ok(PostgresSnapshotCache::new(&store))
}

/// Entries by aggregate and version, grouped by the server in one pass over the table.
pub(super) async fn stats(table: &PostgresSnapshotCache, out: &Output) -> Result<Counts, Failure> {
    let store = table.store();
    let client = connect::client(store).await?;
    let bar = out.progress(0, "counting entries");
    // `{name}:v{version}:{log id}`, as `key_group` splits it.
    let sql = format!(
        "SELECT coalesce(m[1], '(not an entry key)'), coalesce(m[2], ''), count(*) \
         FROM (SELECT regexp_match(key, '^(.*):v([^:]*):[^:]*$') AS m FROM {}.snapshots) k \
         GROUP BY 1, 2",
        connect::quoted(store)
    );
    let rows = client.query(&sql, &[]).await?;
    bar.finish_and_clear();
    let mut counts = Counts::new();
    for row in rows {
        let n: i64 = row.get(2);
        counts.insert((row.get(0), row.get(1)), n.unsigned_abs());
    }
    Ok(counts)
}

/// Deletes `name`'s entries (of `version`, or all), a page of the primary key per statement,
/// so a large table is purged with progress and without one long transaction.
pub(super) async fn purge(
    table: &PostgresSnapshotCache,
    name: &str,
    version: Option<u32>,
    out: &Output,
) -> Result<u64, Failure> {
    let store = table.store();
    let client = connect::client(store).await?;
    // A version's keys, with or without an upcaster chain's suffix (`v2:…` and `v2.u…:…`).
    let (plain, upcast) = match version {
        Some(v) => (format!("{name}:v{v}:"), format!("{name}:v{v}.u")),
        None => (format!("{name}:v"), format!("{name}:v")),
    };
    let sql = format!(
        "WITH page AS (SELECT key FROM {schema}.snapshots WHERE key > $1 ORDER BY key LIMIT $2), \
              gone AS (DELETE FROM {schema}.snapshots s USING page \
                       WHERE s.key = page.key \
                         AND (starts_with(page.key, $3) OR starts_with(page.key, $4)) \
                       RETURNING 1) \
         SELECT (SELECT max(key) FROM page), (SELECT count(*) FROM gone)",
        schema = connect::quoted(store)
    );
    let statement = client.prepare(&sql).await?;
    let bar = out.progress(0, "deleting entries");
    let (mut after, mut deleted) = (String::new(), 0u64);
    loop {
        let row = client
            .query_one(&statement, &[&after, &PURGE_PAGE, &plain, &upcast])
            .await?;
        let last: Option<String> = row.get(0);
        let n: i64 = row.get(1);
        deleted += n.unsigned_abs();
        bar.inc(n.unsigned_abs());
        match last {
            Some(last) => after = last,
            None => break,
        }
    }
    bar.finish_and_clear();
    Ok(deleted)
}
