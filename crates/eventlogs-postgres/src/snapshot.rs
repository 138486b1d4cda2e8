//! `PostgresSnapshotCache`: the reduction cache in a table of the store's schema, for teams
//! that run no Redis.

use std::fmt;

use async_trait::async_trait;
use eventlogs_core::{
    backend::{
        CacheKey, CACHE_FORMAT, CACHE_HEADER_LEN, DEFAULT_MAX_ENTRY_BYTES, THROUGH_INDEX_OFFSET,
    },
    Error, InvalidInput, ReductionCache, Result,
};
use tracing::Instrument;

use crate::error::query_error;
use crate::store::PostgresEventStore;

/// Cached reductions in the `snapshots` table of a [`PostgresEventStore`]'s schema, through the
/// store's connection pool and statement deadline.
///
/// It keeps the [`ReductionCache`] contract exactly as the Redis cache does: `put` is one
/// statement that replaces a row only when the entry stored there has no readable header or a
/// lower `through_index` (read from the stored bytes, so a row damaged by hand is replaced,
/// not trusted), and `get` reads at most the entry limit plus one byte, which the decoder
/// refuses. The [`LogManager`](eventlogs_core::LogManager) writes in the background and turns
/// every error into a miss, so a slow or failing table never fails a command.
///
/// ```no_run
/// # async fn demo() -> eventlogs_core::Result<()> {
/// use eventlogs_postgres::{PostgresEventStore, PostgresSnapshotCache};
/// let store = PostgresEventStore::builder("postgres://app@db/app").build()?;
/// store.migrate().await?;
/// let cache = PostgresSnapshotCache::new(&store);
/// # #[derive(Default, serde::Serialize, serde::Deserialize)] struct Account;
/// # impl eventlogs_core::Aggregate for Account {
/// #     type Event = u64; const NAME: &'static str = "account"; const VERSION: u32 = 1;
/// #     fn apply(&mut self, _: &eventlogs_core::EventRecord<u64>) {}
/// # }
/// let logs = eventlogs_core::LogManager::<Account>::builder(store).cache(cache).build();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresSnapshotCache {
    store: PostgresEventStore,
    max_entry_bytes: usize,
    get: String,
    put: String,
    delete: String,
    remove: String,
}

/// Rows looked at per statement of [`PostgresSnapshotCache::remove_older_than`] and
/// [`remove_aggregate`](PostgresSnapshotCache::remove_aggregate).
const REMOVE_PAGE: i64 = 5_000;

impl PostgresSnapshotCache {
    /// The cache of `store`'s schema (run `store.migrate()` first), sharing its pool.
    #[must_use]
    pub fn new(store: &PostgresEventStore) -> Self {
        let schema = store.quoted_schema();
        let magic: String = b"ELR"
            .iter()
            .chain(&[CACHE_FORMAT])
            .map(|b| format!("{b:02x}"))
            .collect();
        let at = THROUGH_INDEX_OFFSET;
        // The stored entry's `through_index`, or NULL when it has no readable header.
        let stored_index = format!(
            "(CASE WHEN octet_length(s.entry) >= {CACHE_HEADER_LEN} \
                    AND substring(s.entry FROM 1 FOR 4) = '\\x{magic}'::bytea \
               THEN (get_byte(s.entry, {at})::bigint << 24) | (get_byte(s.entry, {})::bigint << 16) \
                  | (get_byte(s.entry, {})::bigint << 8) | get_byte(s.entry, {})::bigint END)",
            at + 1,
            at + 2,
            at + 3
        );
        Self {
            store: store.clone(),
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            get: format!(
                "SELECT substring(entry FROM 1 FOR $2::integer) FROM {schema}.snapshots WHERE key = $1"
            ),
            put: format!(
                "INSERT INTO {schema}.snapshots AS s (key, entry) VALUES ($1, $3) \
                 ON CONFLICT (key) DO UPDATE SET entry = EXCLUDED.entry, updated_at = now() \
                 WHERE {stored_index} IS NULL OR {stored_index} < $2::bigint \
                 RETURNING 1"
            ),
            delete: format!("DELETE FROM {schema}.snapshots WHERE key = $1"),
            // Deletes, among the next page of keys after $1, those starting with $3 or $4
            // and (unless $5 is NULL) last written more than $5 seconds ago.
            remove: format!(
                "WITH page AS (SELECT key FROM {schema}.snapshots WHERE key > $1 ORDER BY key LIMIT $2), \
                      gone AS (DELETE FROM {schema}.snapshots s USING page \
                               WHERE s.key = page.key \
                                 AND (starts_with(page.key, $3) OR starts_with(page.key, $4)) \
                                 AND ($5::float8 IS NULL \
                                      OR s.updated_at < now() - make_interval(secs => $5)) \
                               RETURNING 1) \
                 SELECT (SELECT max(key) FROM page), (SELECT count(*) FROM gone)"
            ),
        }
    }

    /// The largest entry stored and read back (default 1 MiB); a larger reduction is not
    /// cached. At most 1 GiB (the largest `bytea`).
    pub fn with_max_entry_bytes(mut self, max: usize) -> Result<Self> {
        if !(CACHE_HEADER_LEN..1 << 30).contains(&max) {
            return Err(InvalidInput::Config(format!(
                "max_entry_bytes must be between {CACHE_HEADER_LEN} and {}",
                (1 << 30) - 1
            ))
            .into());
        }
        self.max_entry_bytes = max;
        Ok(self)
    }

    /// The largest entry stored and read back.
    #[must_use]
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// Removes the entries last written more than `older_than` ago, and returns how many.
    ///
    /// The table has no expiry of its own (Redis has a TTL): run this from a maintenance job so
    /// entries of logs nobody reads any more do not stay forever. It walks the primary key,
    /// 5,000 rows per statement, so it holds no long transaction and a large table is removed
    /// from a bit at a time. The age is since the entry was written, not read: an entry still
    /// in use that is removed misses once, and the next reduce writes it again. A row written
    /// while the walk runs is kept (its age is checked again as it is deleted).
    pub async fn remove_older_than(&self, older_than: std::time::Duration) -> Result<u64> {
        let span = tracing::info_span!(
            "eventlogs.postgres.snapshot.remove_older_than",
            older_than_secs = older_than.as_secs()
        );
        self.remove(("", ""), Some(older_than.as_secs_f64()))
            .instrument(span)
            .await
    }

    /// Removes the entries of the aggregate named `name`, of every version or of `version`
    /// only (with or without an upcaster chain's suffix), and returns how many: after an
    /// aggregate or one of its versions is retired. It walks the table as
    /// [`remove_older_than`](Self::remove_older_than) does.
    pub async fn remove_aggregate(&self, name: &str, version: Option<u32>) -> Result<u64> {
        let span = tracing::info_span!(
            "eventlogs.postgres.snapshot.remove_aggregate",
            name,
            version
        );
        // Keys are `{name}:v{version}:{log}`, or `{name}:v{version}.u{fingerprint}:{log}`.
        let prefixes = match version {
            Some(v) => (format!("{name}:v{v}:"), format!("{name}:v{v}.u")),
            None => (format!("{name}:v"), format!("{name}:v")),
        };
        self.remove((&prefixes.0, &prefixes.1), None)
            .instrument(span)
            .await
    }

    /// Deletes the rows whose key starts with either prefix and, with `older_than_secs`, that
    /// were last written longer ago, walking the primary key a page per statement.
    async fn remove(&self, prefixes: (&str, &str), older_than_secs: Option<f64>) -> Result<u64> {
        let (mut after, mut removed) = (String::new(), 0u64);
        loop {
            let rows = self
                .store
                .rows(
                    &self.remove,
                    &[
                        &after,
                        &REMOVE_PAGE,
                        &prefixes.0,
                        &prefixes.1,
                        &older_than_secs,
                    ],
                )
                .await?
                .map_err(query_error)?;
            let row = rows.first().ok_or_else(|| unreadable(&"no row"))?;
            let last: Option<String> = row.try_get(0).map_err(|e| unreadable(&e))?;
            let gone: i64 = row.try_get(1).map_err(|e| unreadable(&e))?;
            removed += gone.unsigned_abs();
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        tracing::info!(removed, "snapshot entries removed");
        Ok(removed)
    }

    /// The store whose schema and pool the cache uses.
    #[must_use]
    pub fn store(&self) -> &PostgresEventStore {
        &self.store
    }
}

impl fmt::Debug for PostgresSnapshotCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresSnapshotCache")
            .field("store", &self.store)
            .field("max_entry_bytes", &self.max_entry_bytes)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl ReductionCache for PostgresSnapshotCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>> {
        let span = tracing::debug_span!("eventlogs.postgres.snapshot.get", key = %key);
        async {
            // One byte more than the limit, so an oversized entry is seen as one.
            let read = i32::try_from(self.max_entry_bytes + 1).unwrap_or(i32::MAX);
            let rows = self
                .store
                .rows(&self.get, &[&key.as_str(), &read])
                .await?
                .map_err(query_error)?;
            match rows.first() {
                None => Ok(None),
                Some(row) => {
                    let mut bytes: Vec<u8> = row.try_get(0).map_err(|e| unreadable(&e))?;
                    bytes.truncate(self.max_entry_bytes + 1);
                    Ok(Some(bytes))
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn put(&self, key: &CacheKey, through_index: u32, entry: &[u8]) -> Result<bool> {
        let span =
            tracing::debug_span!("eventlogs.postgres.snapshot.put", key = %key, through_index);
        async {
            let index = i64::from(through_index);
            let rows = self
                .store
                .rows(&self.put, &[&key.as_str(), &index, &entry])
                .await?
                .map_err(query_error)?;
            Ok(!rows.is_empty())
        }
        .instrument(span)
        .await
    }

    async fn delete(&self, key: &CacheKey) -> Result<()> {
        self.store
            .rows(&self.delete, &[&key.as_str()])
            .await?
            .map_err(query_error)?;
        Ok(())
    }

    fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }
}

fn unreadable(what: &dyn fmt::Display) -> Error {
    Error::Backend {
        service: "postgres",
        source: format!("unreadable snapshot row: {what}").into(),
    }
}
