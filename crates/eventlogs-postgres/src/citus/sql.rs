//! The statements and functions of a schema distributed over a Citus cluster, each of which
//! runs on the one worker that holds the log's (or the key's) shard, with no two-phase commit.
//!
//! Why these shapes (measured on Citus 13.2): a statement that writes two distributed tables
//! on different shards commits with two-phase commit; data-modifying CTEs become one subplan
//! each; `INSERT … SELECT` of constants, or with a `nextval()` default, is pulled through the
//! coordinator; a pushed-down `INSERT … SELECT` is planned in full on every call (a third of
//! the rate of `INSERT … VALUES`, which Citus routes on a fast path). Functions distributed
//! with the log's shards run whole on its worker when called outside a transaction.

/// Statements for a distributed schema, with the (validated, quoted) schema spliced in.
#[derive(Debug)]
pub(crate) struct CitusStatements {
    /// One event without a key, at any index: `$1` log id, `$2` index, `$3` payload, `$4`
    /// metadata. A plain router `INSERT … VALUES`: the primary key admits one winner, and the
    /// foreign key from `previous_index` to the log's previous event (added when the schema is
    /// distributed) refuses a gap or a missing log.
    pub(crate) append_one: String,
    /// A batch without a key (`$1` log id, `$2` first index, `$3` payloads, `$4` metadata),
    /// run by a function delegated to the log's worker.
    pub(crate) append_events: String,
    /// `$1` log id, `$2` index, `$3` payloads, `$4` metadata, `$5` key, `$6` request hash,
    /// `$7` attempt: writes the events and the log's key record in one worker transaction.
    pub(crate) append_keyed: String,
    /// Claims a key on its own shard, or reads the claim that holds it, in one statement:
    /// `$1` key, `$2` log id, `$3` first index, `$4` count, `$5` request hash, `$6` attempt.
    /// Returns whether this attempt took it, then the claim's log id, first index, count,
    /// hash, attempt and whether its write is known to be done. (A claim found is rewritten
    /// unchanged, which is what lets one statement return it.)
    pub(crate) claim: String,
    /// Whether the claim of `$1` key by attempt `$3` is older than `$2` seconds (by the key's
    /// worker's clock); no row when that claim is gone.
    pub(crate) claim_stale: String,
    /// Notes on the claim of `$1` key by attempt `$2` that its write committed, so later
    /// replays need not ask the log's worker.
    pub(crate) mark_done: String,
    /// Drops the claim of `$1` key by attempt `$2`.
    pub(crate) release: String,
    /// The key record of `$1` log id and `$2` key on the log's shard: state, attempt, first
    /// index, count, hash.
    pub(crate) key_state: String,
    /// Voids attempt `$6` of key `$2` on log `$1` (with `$3` first index, `$4` count, `$5`
    /// hash), unless it is recorded as done: its events can then never be written.
    pub(crate) void: String,
    /// The claim of `$1` key: log id, first index, count, hash, attempt, done.
    pub(crate) lookup: String,
}

impl CitusStatements {
    pub(crate) fn new(schema: &str) -> Self {
        Self {
            append_one: format!(
                "INSERT INTO {schema}.events (log_id, event_index, payload, metadata) \
                 VALUES ($1::uuid, $2::bigint, $3::text::jsonb, $4::text::jsonb) \
                 RETURNING recorded_at"
            ),
            append_events: format!(
                "SELECT inserted, recorded_at FROM {schema}.append_events($1::uuid, $2::bigint, $3::text[], $4::text)"
            ),
            append_keyed: format!(
                "SELECT outcome, inserted, recorded_at, key_first_index, key_event_count, key_request_hash \
                 FROM {schema}.append_keyed($1::uuid, $2::bigint, $3::text[], $4::text, $5::text, $6::bigint, $7::uuid)"
            ),
            claim: format!(
                "INSERT INTO {schema}.idempotency_keys AS k \
                 (key, log_id, first_index, event_count, request_hash, attempt) \
                 VALUES ($1::text, $2::uuid, $3::bigint, $4::integer, $5::bigint, $6::uuid) \
                 ON CONFLICT (key) DO UPDATE SET attempt = k.attempt \
                 RETURNING k.xmax = 0, k.log_id, k.first_index, k.event_count, k.request_hash, \
                 k.attempt, k.done"
            ),
            claim_stale: format!(
                "SELECT created_at < now() - make_interval(secs => $2::float8) \
                 FROM {schema}.idempotency_keys WHERE key = $1::text AND attempt = $3::uuid"
            ),
            mark_done: format!(
                "UPDATE {schema}.idempotency_keys SET done = true \
                 WHERE key = $1::text AND attempt = $2::uuid"
            ),
            release: format!(
                "DELETE FROM {schema}.idempotency_keys WHERE key = $1::text AND attempt = $2::uuid"
            ),
            key_state: format!(
                "SELECT state, attempt, first_index, event_count, request_hash \
                 FROM {schema}.log_keys WHERE log_id = $1::uuid AND key = $2::text"
            ),
            void: format!(
                "INSERT INTO {schema}.log_keys AS k \
                 (log_id, key, first_index, event_count, request_hash, attempt, state) \
                 VALUES ($1::uuid, $2::text, $3::bigint, $4::integer, $5::bigint, $6::uuid, 'void') \
                 ON CONFLICT (log_id, key) DO UPDATE SET state = 'void', attempt = EXCLUDED.attempt \
                 WHERE k.state = 'void' RETURNING k.state"
            ),
            lookup: format!(
                "SELECT log_id, first_index, event_count, request_hash, attempt, done \
                 FROM {schema}.idempotency_keys WHERE key = $1::text"
            ),
        }
    }
}

/// What `distribute` runs, one statement at a time, when `events` is not distributed yet (in
/// the migration's transaction, on a Citus coordinator; `{schema}` is the quoted schema).
pub(crate) const DISTRIBUTE_TABLES: [&str; 7] = [
    // The trigger that orders writes for the feed's watermark: no feed here, and Citus
    // refuses to distribute a table with triggers.
    "DROP TRIGGER IF EXISTS events_write_order ON {schema}.events",
    // The feed's columns are not used on a distributed schema (the feed is refused there),
    // and their volatile defaults would plan every append through the coordinator.
    "ALTER TABLE {schema}.events \
     ALTER COLUMN position DROP DEFAULT, ALTER COLUMN position DROP NOT NULL, \
     ALTER COLUMN transaction_id DROP DEFAULT, ALTER COLUMN transaction_id DROP NOT NULL",
    // Every event but the first references the one before it: an append is then a plain
    // `INSERT … VALUES`, which Citus routes on its fast path, and the database refuses a gap.
    "ALTER TABLE {schema}.events ADD COLUMN previous_index bigint \
     GENERATED ALWAYS AS (CASE WHEN event_index > 0 THEN event_index - 1 END) STORED",
    "ALTER TABLE {schema}.events ADD CONSTRAINT events_previous \
     FOREIGN KEY (log_id, previous_index) REFERENCES {schema}.events (log_id, event_index)",
    "SELECT create_distributed_table('{schema}.events', 'log_id')",
    "SELECT create_distributed_table('{schema}.log_keys', 'log_id', colocate_with => '{schema}.events')",
    "SELECT create_distributed_table('{schema}.idempotency_keys', 'key')",
];

/// The worker-side functions, created (and distributed with the log's shards) once: replacing
/// a distributed function is propagated to the workers in a form they refuse, so a change of
/// a function comes with a migration of its own.
pub(crate) const DISTRIBUTE_FUNCTIONS: [&str; 4] = [
    r#"-- Events of one request, on the log's worker: the previous index must exist.
CREATE OR REPLACE FUNCTION {schema}.append_events(
    p_log_id uuid, p_index bigint, p_payloads text[], p_metadata text,
    OUT inserted bigint, OUT recorded_at timestamptz)
LANGUAGE plpgsql AS $fn$
BEGIN
    inserted := 0;
    IF p_index > 0 AND NOT EXISTS (
        SELECT 1 FROM {schema}.events WHERE log_id = p_log_id AND event_index = p_index - 1) THEN
        RETURN;
    END IF;
    INSERT INTO {schema}.events (log_id, event_index, payload, metadata)
    SELECT p_log_id, p_index + e.ord - 1, e.payload::jsonb, p_metadata::jsonb
    FROM unnest(p_payloads) WITH ORDINALITY AS e(payload, ord);
    GET DIAGNOSTICS inserted = ROW_COUNT;
    recorded_at := now();
END
$fn$"#,
    r#"SELECT create_distributed_function('{schema}.append_events(uuid,bigint,text[],text)',
    distribution_arg_name := 'p_log_id', colocate_with := '{schema}.events')"#,
    r#"-- A keyed write's events and the log's record of its key, in one transaction on the log's
-- worker. outcome: 'written'; 'done' (the key is recorded for this log: its record is
-- returned); 'void' (this attempt was voided by another request that found it too slow);
-- 'missing' (the previous index does not exist). A void record of an older attempt is taken
-- over. The events' primary key raises as usual when the index is taken.
CREATE OR REPLACE FUNCTION {schema}.append_keyed(
    p_log_id uuid, p_index bigint, p_payloads text[], p_metadata text, p_key text,
    p_hash bigint, p_attempt uuid,
    OUT outcome text, OUT inserted bigint, OUT recorded_at timestamptz,
    OUT key_first_index bigint, OUT key_event_count integer, OUT key_request_hash bigint)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_state text;
    v_attempt uuid;
    v_found boolean;
BEGIN
    inserted := 0;
    SELECT k.state, k.attempt, k.first_index, k.event_count, k.request_hash
      INTO v_state, v_attempt, key_first_index, key_event_count, key_request_hash
      FROM {schema}.log_keys AS k WHERE k.log_id = p_log_id AND k.key = p_key FOR UPDATE;
    v_found := FOUND;
    IF v_found AND v_state = 'done' THEN
        outcome := 'done';
        RETURN;
    END IF;
    IF v_found AND v_attempt = p_attempt THEN
        outcome := 'void';
        RETURN;
    END IF;
    key_first_index := NULL; key_event_count := NULL; key_request_hash := NULL;
    IF p_index > 0 AND NOT EXISTS (
        SELECT 1 FROM {schema}.events WHERE log_id = p_log_id AND event_index = p_index - 1) THEN
        outcome := 'missing';
        RETURN;
    END IF;
    IF v_found THEN
        UPDATE {schema}.log_keys SET state = 'done', attempt = p_attempt, first_index = p_index,
            event_count = cardinality(p_payloads), request_hash = p_hash, created_at = now()
        WHERE log_id = p_log_id AND key = p_key;
    ELSE
        INSERT INTO {schema}.log_keys
            (log_id, key, first_index, event_count, request_hash, attempt, state)
        VALUES (p_log_id, p_key, p_index, cardinality(p_payloads), p_hash, p_attempt, 'done')
        ON CONFLICT (log_id, key) DO NOTHING;
        IF NOT FOUND THEN
            -- Voided meanwhile by a request that found this attempt too slow.
            outcome := 'void';
            RETURN;
        END IF;
    END IF;
    INSERT INTO {schema}.events (log_id, event_index, payload, metadata, idempotency_key)
    SELECT p_log_id, p_index + e.ord - 1, e.payload::jsonb, p_metadata::jsonb, p_key
    FROM unnest(p_payloads) WITH ORDINALITY AS e(payload, ord);
    GET DIAGNOSTICS inserted = ROW_COUNT;
    recorded_at := now();
    outcome := 'written';
END
$fn$"#,
    r#"SELECT create_distributed_function(
    '{schema}.append_keyed(uuid,bigint,text[],text,text,bigint,uuid)',
    distribution_arg_name := 'p_log_id', colocate_with := '{schema}.events')"#,
];
