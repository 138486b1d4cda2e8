//! `cache stats` on the `snapshots` table (`PostgresSnapshotCache`), and opening it.

use eventlogs::postgres::PostgresSnapshotCache;

use crate::args::Cli;
use crate::connect;
use crate::failure::Failure;
use crate::output::Output;

use super::Counts;

/// The schema version that created the `snapshots` table.
const SNAPSHOTS_SINCE: i32 = 8;

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
