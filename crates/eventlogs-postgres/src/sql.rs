//! The statements of the store, built once from the validated schema name.

/// Every statement the store prepares, with the schema spliced in (it is validated as a plain
/// identifier first; no other value is ever spliced: everything else is a bind parameter).
#[derive(Debug)]
pub(crate) struct Statements {
    /// With an idempotency key: `$1` log id, `$2` expected index, `$3` payloads (`text[]` of
    /// JSON), `$4` metadata JSON, `$5` key, `$6` request hash. One statement: checks the key,
    /// checks that the previous index exists, inserts the events and the key atomically.
    /// Returns the count inserted, the commit time and the key's stored record, if any.
    pub(crate) append: String,
    /// The common case, one event without a key: `$1` log id, `$2` index, `$3` payload JSON,
    /// `$4` metadata JSON. Inserts only when the previous index exists; returns the commit time,
    /// or no row when it does not.
    pub(crate) append_one: String,
    /// A batch without a key: as `append_one` with `$3` a `text[]` of payloads; one row per event.
    pub(crate) append_many: String,
    /// Many requests for different logs in one statement (see `group_sql`).
    pub(crate) append_group: String,
    /// Many one-event requests without keys for different logs in one statement.
    pub(crate) append_group_one: String,
    /// `$1` log id, `$2` from index, `$3` limit.
    pub(crate) load: String,
    /// `$1` log id, `$2` from index.
    pub(crate) stream: String,
    /// `$1` key.
    pub(crate) key: String,
    /// `$1` log id: index 0's `deleted` flag (no row when the log does not exist).
    pub(crate) log_exists: String,
    /// `$1` log id: deletes the log (see `delete`).
    pub(crate) delete: String,
    /// `$1` age in seconds, `$2` most keys: removes keys stored longer ago.
    pub(crate) remove_keys: String,
}

const COLUMNS: &str =
    "event_index, recorded_at, payload::text, metadata::text, idempotency_key, event_version, deleted";

impl Statements {
    pub(crate) fn new(schema: &str) -> Self {
        let append = format!(
            r#"WITH used AS (
    SELECT log_id, first_index, event_count, request_hash
    FROM {schema}.idempotency_keys WHERE $5::text IS NOT NULL AND key = $5::text
), allowed AS (
    SELECT NOT EXISTS (SELECT 1 FROM used)
       AND ($2::bigint = 0 OR EXISTS (
            SELECT 1 FROM {schema}.events WHERE log_id = $1::uuid AND event_index = $2::bigint - 1
            AND deleted = 0)) AS ok
), inserted AS (
    INSERT INTO {schema}.events (log_id, event_index, payload, metadata, idempotency_key, event_version)
    SELECT $1::uuid, $2::bigint + e.ord - 1, e.payload::jsonb, $4::text::jsonb, $5::text, $7::integer
    FROM unnest($3::text[]) WITH ORDINALITY AS e(payload, ord)
    WHERE (SELECT ok FROM allowed)
    RETURNING recorded_at
), key_row AS (
    INSERT INTO {schema}.idempotency_keys (key, log_id, first_index, event_count, request_hash)
    SELECT $5::text, $1::uuid, $2::bigint, cardinality($3::text[]), $6::bigint
    WHERE $5::text IS NOT NULL AND EXISTS (SELECT 1 FROM inserted)
)
SELECT (SELECT count(*) FROM inserted),
       (SELECT min(recorded_at) FROM inserted),
       u.log_id, u.first_index, u.event_count, u.request_hash
FROM (SELECT 1) AS one LEFT JOIN used AS u ON true"#
        );
        let previous = format!(
            "($2::bigint = 0 OR EXISTS (SELECT 1 FROM {schema}.events WHERE log_id = $1::uuid AND event_index = $2::bigint - 1 AND deleted = 0))"
        );
        Self {
            append,
            append_group: crate::group_sql::group_append_sql(schema),
            append_group_one: crate::group_sql::group_append_one_sql(schema),
            append_one: format!(
                "INSERT INTO {schema}.events (log_id, event_index, payload, metadata, event_version) \
                 SELECT $1::uuid, $2::bigint, $3::text::jsonb, $4::text::jsonb, $5::integer WHERE {previous} \
                 RETURNING recorded_at"
            ),
            append_many: format!(
                "INSERT INTO {schema}.events (log_id, event_index, payload, metadata, event_version) \
                 SELECT $1::uuid, $2::bigint + e.ord - 1, e.payload::jsonb, $4::text::jsonb, $5::integer \
                 FROM unnest($3::text[]) WITH ORDINALITY AS e(payload, ord) WHERE {previous} \
                 RETURNING recorded_at"
            ),
            load: format!(
                "SELECT {COLUMNS} FROM {schema}.events WHERE log_id = $1 AND event_index >= $2 \
                 ORDER BY event_index LIMIT $3"
            ),
            stream: format!(
                "SELECT {COLUMNS} FROM {schema}.events WHERE log_id = $1 AND event_index >= $2 \
                 ORDER BY event_index"
            ),
            key: format!(
                "SELECT log_id, first_index, event_count, request_hash FROM {schema}.idempotency_keys WHERE key = $1"
            ),
            log_exists: format!(
                "SELECT deleted <> 0 FROM {schema}.events WHERE log_id = $1 AND event_index = 0"
            ),
            delete: crate::delete::delete_sql(schema),
            remove_keys: format!(
                "WITH gone AS (DELETE FROM {schema}.idempotency_keys WHERE key IN ( \
                 SELECT key FROM {schema}.idempotency_keys \
                 WHERE created_at < now() - make_interval(secs => $1::float8) LIMIT $2) \
                 RETURNING 1) SELECT count(*) FROM gone"
            ),
        }
    }
}
