//! Versioned migrations: the tables, applied under an advisory lock and recorded by version.

/// One schema migration. `sql` uses `{schema}` where the schema name goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version number, applied in increasing order.
    pub version: i32,
    /// What it does.
    pub description: &'static str,
    /// The statements, with `{schema}` for the (validated, quoted) schema name.
    pub sql: &'static str,
}

/// Every migration, in order. [`PostgresEventStore::migrate`](crate::PostgresEventStore::migrate)
/// applies the pending ones; teams that run migrations themselves use [`migration_sql`].
///
/// Every unique constraint includes its table's distribution key (`events` by `log_id`,
/// `idempotency_keys` by `key`), so the schema can be distributed with Citus.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events and idempotency keys",
        sql: r#"
CREATE SEQUENCE {schema}.event_position;

CREATE TABLE {schema}.events (
    log_id          uuid        NOT NULL,
    event_index     bigint      NOT NULL CHECK (event_index BETWEEN 0 AND 4294967295),
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    payload         jsonb       NOT NULL,
    metadata        jsonb,
    idempotency_key text,
    position        bigint      NOT NULL DEFAULT nextval('{schema}.event_position'),
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (log_id, event_index)
);

CREATE TABLE {schema}.idempotency_keys (
    key          text        NOT NULL PRIMARY KEY,
    log_id       uuid        NOT NULL,
    first_index  bigint      NOT NULL,
    event_count  integer     NOT NULL,
    request_hash bigint      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
"#,
    },
    Migration {
        version: 2,
        description: "global feed order",
        sql: r#"
CREATE INDEX events_feed ON {schema}.events (transaction_id, position);
"#,
    },
    Migration {
        version: 3,
        description: "subscription checkpoints",
        sql: r#"
CREATE TABLE {schema}.subscriptions (
    name           text        NOT NULL PRIMARY KEY,
    transaction_id xid8        NOT NULL DEFAULT '0',
    position       bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
"#,
    },
    Migration {
        version: 4,
        description: "keyed writes on a distributed schema: claim attempts and per-log key records",
        sql: r#"
ALTER TABLE {schema}.idempotency_keys ADD COLUMN attempt uuid,
    ADD COLUMN done boolean NOT NULL DEFAULT false;
CREATE TABLE {schema}.log_keys (
    log_id       uuid        NOT NULL,
    key          text        NOT NULL,
    first_index  bigint      NOT NULL,
    event_count  integer     NOT NULL,
    request_hash bigint      NOT NULL,
    attempt      uuid        NOT NULL,
    state        text        NOT NULL CHECK (state IN ('done', 'void')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (log_id, key)
);
"#,
    },
    Migration {
        version: 5,
        description: "events are written first in their transaction, so the feed waits only for event writers",
        // The trigger keeps invariant (G) of the feed's watermark (see `FeedWatermark`): a
        // statement inserting events is refused when its transaction already has an id and
        // has written no events yet. The library's appends never meet it. A schema already
        // distributed over Citus has no global feed and gets no trigger.
        sql: r#"
CREATE FUNCTION {schema}.events_write_order() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    mine xid8 := pg_current_xact_id_if_assigned();
BEGIN
    -- Nested, so the common case (no id yet: every append of the library) costs one test.
    IF mine IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM {schema}.events WHERE transaction_id = mine) THEN
            RAISE EXCEPTION 'events must be the first thing a transaction writes'
                USING ERRCODE = 'EL001',
                      DETAIL = 'This transaction wrote elsewhere before inserting into ' || TG_TABLE_SCHEMA || '.events, so the global feed could not wait for it.',
                      HINT = 'Insert the events before any other write of the transaction, or in a transaction of their own.';
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;
DO $do$
DECLARE
    distributed boolean := false;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1::regclass)'
            INTO distributed USING '{schema}.events';
    END IF;
    IF NOT distributed THEN
        CREATE TRIGGER events_write_order BEFORE INSERT ON {schema}.events
            FOR EACH STATEMENT EXECUTE FUNCTION {schema}.events_write_order();
    END IF;
END
$do$;
"#,
    },
    Migration {
        version: 6,
        description: "the events write-order trigger runs its function only in a transaction that already has an id",
        // Same rule as migration 5, checked first by the trigger's `WHEN`, which PostgreSQL
        // evaluates without calling the function: an append of the library (no id yet) no
        // longer pays for a PL/pgSQL call. A schema without the trigger (distributed) is left
        // as it is.
        sql: r#"
DO $do$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
               WHERE tgname = 'events_write_order' AND tgrelid = '{schema}.events'::regclass) THEN
        DROP TRIGGER events_write_order ON {schema}.events;
        CREATE TRIGGER events_write_order BEFORE INSERT ON {schema}.events
            FOR EACH STATEMENT
            WHEN (pg_catalog.pg_current_xact_id_if_assigned() IS NOT NULL)
            EXECUTE FUNCTION {schema}.events_write_order();
    END IF;
END
$do$;
"#,
    },
    Migration {
        version: 7,
        description: "event schema versions and deleted logs",
        // Both columns have constant defaults, so adding them rewrites nothing: every stored
        // event is at version 1 and an event. `deleted`: 0 an event; 1 an event of a deleted
        // log, emptied (index and time only); 2 the marker a delete writes at the index the
        // log would have written next (see `delete`).
        sql: r#"
ALTER TABLE {schema}.events
    ADD COLUMN event_version integer NOT NULL DEFAULT 1,
    ADD COLUMN deleted smallint NOT NULL DEFAULT 0;
"#,
    },
    Migration {
        version: 8,
        description: "cached reductions (PostgresSnapshotCache)",
        // One row per cache key (`{aggregate}:v{version}:{log id}`); the bytes are an
        // `eventlogs_core::backend::CacheEntry`, whose header the compare-and-set reads.
        sql: r#"
CREATE TABLE {schema}.snapshots (
    key        text        NOT NULL PRIMARY KEY,
    entry      bytea       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
"#,
    },
];

/// The bookkeeping table every migration run creates first.
pub(crate) const MIGRATIONS_TABLE: &str = r#"
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version     integer     NOT NULL PRIMARY KEY,
    description text        NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"#;

/// The complete SQL of every migration for `schema`, for teams that apply migrations with
/// their own tooling. Returns `None` when `schema` is not a valid identifier
/// (`[a-z_][a-z0-9_]{0,62}`).
#[must_use]
pub fn migration_sql(schema: &str) -> Option<String> {
    let quoted = quote_schema(schema)?;
    let mut sql = format!("CREATE SCHEMA IF NOT EXISTS {quoted};\n");
    sql.push_str(&MIGRATIONS_TABLE.replace("{schema}", &quoted));
    sql.push_str(";\n");
    for m in MIGRATIONS {
        sql.push_str(&format!("\n-- version {}: {}\n", m.version, m.description));
        sql.push_str(&m.sql.replace("{schema}", &quoted));
        sql.push_str(&format!(
            "INSERT INTO {quoted}.schema_migrations (version, description) VALUES ({}, '{}');\n",
            m.version, m.description
        ));
    }
    Some(sql)
}

/// Whether `name` is a plain lowercase identifier PostgreSQL stores as written.
pub(crate) fn valid_identifier(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
}

/// The schema name in double quotes, once it is known to be a plain identifier.
pub(crate) fn quote_schema(name: &str) -> Option<String> {
    valid_identifier(name).then(|| format!("\"{name}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_schema_names() {
        for good in ["eventlogs", "_x", "app_events_2"] {
            assert!(valid_identifier(good), "{good}");
        }
        for bad in [
            "",
            "Events",
            "ev\"; drop table x;--",
            "1abc",
            "a-b",
            "a b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(!valid_identifier(bad), "{bad}");
        }
        assert!(migration_sql("ev\"; drop table x;--").is_none());
        let sql = migration_sql("app").unwrap();
        assert!(sql.contains("CREATE TABLE \"app\".events"));
        assert!(!sql.contains("{schema}"));
    }
}
