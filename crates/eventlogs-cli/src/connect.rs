//! Opening the store the command line names, and checking its schema is there.

use std::time::Duration;

use eventlogs::postgres::deadpool_postgres::Object;
use eventlogs::postgres::PostgresEventStore;

use crate::args::Cli;
use crate::failure::Failure;

/// The store of `--database-url` and `--schema` (validated; no connection opened yet).
pub(crate) fn store(cli: &Cli) -> Result<PostgresEventStore, Failure> {
    let Some(url) = cli.database_url.as_deref().filter(|u| !u.is_empty()) else {
        return Err(Failure::Usage(
            "no database: pass --database-url or set EVENTLOGS_DATABASE_URL".into(),
        ));
    };
    Ok(PostgresEventStore::builder(url)
        .schema(&cli.schema)
        .pool_size(2)
        .connect_timeout(Duration::from_secs(5))
        .checkout_timeout(Duration::from_secs(10))
        .statement_timeout(Duration::from_secs(600))
        .notify_interval(None)
        .build()?)
}

/// A connection of `store`'s pool.
pub(crate) async fn client(store: &PostgresEventStore) -> Result<Object, Failure> {
    store.pool().get().await.map_err(|e| {
        Failure::Query(format!(
            "cannot connect to PostgreSQL at {}: {e} (is the server running and reachable?)",
            store.config().url_redacted()
        ))
    })
}

/// The schema name quoted for SQL. The builder accepted it as a plain identifier
/// (`[a-z_][a-z0-9_]*`), so quoting cannot be escaped.
pub(crate) fn quoted(store: &PostgresEventStore) -> String {
    format!("\"{}\"", store.config().schema)
}

/// The applied schema version; `NotFound` when the schema holds no eventlogs tables.
pub(crate) async fn version(store: &PostgresEventStore, client: &Object) -> Result<i32, Failure> {
    let table = format!("{}.schema_migrations", quoted(store));
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .get(0);
    if !exists {
        return Err(Failure::NotFound(format!(
            "schema {} holds no eventlogs tables: run `eventlogs migrate` (or pass the right --schema)",
            store.config().schema
        )));
    }
    let sql = format!("SELECT coalesce(max(version), 0) FROM {table}");
    Ok(client.query_one(&sql, &[]).await?.get(0))
}
