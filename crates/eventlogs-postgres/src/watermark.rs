//! The feed's watermark: which transactions the global feed waits for, and why waiting only
//! for event writers never skips an event.

/// How the feed decides which events are safe to hand out.
///
/// The default, [`EventWriters`](Self::EventWriters), waits only for transactions that write
/// events. What follows is the rule and the argument that it never skips an event.
///
/// # The rule
///
/// Every event row carries the id of the transaction that wrote it (`transaction_id`, an
/// `xid8`), and the feed is ordered by that id, then by position. A reader may hand out a row
/// only when no transaction that has not committed yet can still add a row before it.
///
/// A watermark `W` is computed by one statement (snapshot `S₁` taken at its start, the lock
/// table read during it):
///
/// ```text
/// W = min( xmax(S₁),
///          the smallest id in xip(S₁) of a transaction that holds (or awaits) a lock on
///          `events` that permits writing, or is prepared for two-phase commit )
/// ```
///
/// The feed then reads rows with `transaction_id < W` in a **later** statement, whose snapshot
/// `S` is taken after `W` was computed. Once known, `W` stays valid for every later read, so a
/// store keeps the highest it has seen and computes a new one only when a read reaches it.
///
/// # Why no event is skipped
///
/// The rule rests on one invariant, (G): *a transaction that inserts into `events` holds a
/// `RowExclusiveLock` on `events` from before it is assigned a transaction id until it ends.*
///
/// - **Appends of this library** (one event or a batch, with or without an idempotency key,
///   alone or grouped with others into one statement, see `AppendGrouping`) are each one
///   statement in a transaction of its own. PostgreSQL locks every table a
///   statement names before the statement runs (when it is parsed, or when a prepared plan is
///   reused), and a transaction is assigned its id only when it first writes a row (or draws
///   from the position sequence), which happens while the statement runs. So the lock comes
///   first, and relation locks are held until the transaction ends.
/// - **Any other transaction** that inserts into `events` (raw SQL, `COPY`, a handler that
///   writes events through its transaction) passes the `events_write_order` trigger that
///   migration 5 installs: a statement that inserts into `events` is refused (SQLSTATE
///   `EL001`) when its transaction already has an id, unless that transaction already wrote
///   events, in which case, by induction, it holds the lock since before its id. So such a
///   transaction must write its first event before anything else; to write elsewhere first,
///   write the events in a transaction of their own. (Triggers do not fire for a session
///   with `session_replication_role = replica`, as logical replication applies changes; a
///   writer that sets it must keep the rule itself.)
/// - **Subtransactions** change nothing: a savepoint's lock passes to its parent when it is
///   released, and is gone with its rows when it is rolled back, after which the trigger
///   finds no events of the transaction and refuses a later insert.
///
/// Now take a row `r` written by transaction `x`, with `x < W`, that commits at some point,
/// and suppose a read with snapshot `S` does not see it. Since `x < W ≤ xmax(S₁) ≤ xmax(S)`,
/// `x` was running when `S` was taken. And `x < xmax(S₁)` means `x` was assigned before `S₁`
/// (every id below `xmax` was handed out before the snapshot), so `x` was running during the
/// whole of the statement that computed `W`: it is in `xip(S₁)`, and by (G) it held its lock
/// on `events` all that time, so the lock table showed it with its id, and `W ≤ x`. That
/// contradicts `x < W`. So every committed row below `W` is visible to every read after `W`
/// was computed, and every row committed later has an id of at least `W`: ordered by
/// `(transaction_id, position)`, a reader that resumes from its last position never skips a
/// row.
///
/// The lock table is read per backend, not atomically, which the argument does not need:
/// `x` holds both its own id lock and its lock on `events` during the whole statement.
/// Locks are matched to their transaction by virtual transaction id, so a backend that moved
/// on to another transaction is never confused with the one that held the lock.
///
/// # What can still hold the feed back
///
/// Only transactions that hold a write lock on this schema's `events` table: appends in
/// flight (milliseconds), a transaction that wrote events and stays open, a prepared
/// transaction, or a DDL statement (`ALTER TABLE`, `LOCK TABLE`) on `events`. A transaction
/// with an id anywhere else (another table, another schema, another database of the server,
/// a transactional subscriber writing its read model) no longer holds any feed back.
///
/// On a hot standby the lock table does not show the primary's writers, so there the
/// watermark falls back to the oldest running transaction, which is always safe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedWatermark {
    /// Wait only for transactions that hold a write lock on the events table (the default).
    /// Needs migration 5, whose trigger keeps every other writer of events in line.
    #[default]
    EventWriters,
    /// Wait for every transaction with an id anywhere on the server, as earlier versions did:
    /// simpler, and stalled by any long write transaction, related or not. Kept for
    /// comparison and as a fallback.
    OldestTransaction,
}

impl FeedWatermark {
    /// The statement that computes the watermark (one row: the id as text).
    pub(crate) fn sql(self, schema: &str) -> String {
        match self {
            Self::OldestTransaction => {
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text".to_owned()
            }
            Self::EventWriters => format!(
                "WITH s AS (SELECT pg_current_snapshot() AS snap), \
                 locks AS MATERIALIZED ( \
                    SELECT locktype, database, relation, transactionid, virtualtransaction, mode, granted \
                    FROM pg_catalog.pg_locks), \
                 writers AS ( \
                    SELECT t.transactionid AS id FROM locks AS t \
                    WHERE t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted \
                      AND t.virtualtransaction IN ( \
                        SELECT r.virtualtransaction FROM locks AS r \
                        WHERE r.locktype = 'relation' \
                          AND r.relation = '{schema}.events'::regclass \
                          AND r.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
                          AND r.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')) \
                    UNION ALL SELECT transaction FROM pg_catalog.pg_prepared_xacts) \
                 SELECT (CASE WHEN pg_is_in_recovery() THEN pg_snapshot_xmin(s.snap) \
                    ELSE least(pg_snapshot_xmax(s.snap), \
                               (SELECT min(x) FROM pg_snapshot_xip(s.snap) AS x \
                                WHERE xid(x) IN (SELECT id FROM writers))) END)::text \
                 FROM s"
            ),
        }
    }
}
