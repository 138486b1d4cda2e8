//! The statements of subscriptions: the per-name lock, checkpoints and lag.

/// Subscription statements for one schema.
#[derive(Debug, Clone)]
pub(crate) struct SubscriptionStatements {
    /// `$1` lock name: takes the session-level advisory lock, without waiting.
    pub(crate) try_lock: String,
    /// `$1` name: creates the checkpoint row at the start of the feed.
    pub(crate) ensure: String,
    /// `$1` name: the checkpoint.
    pub(crate) checkpoint: String,
    /// `$1` name, `$2` transaction id (text), `$3` position: stores the checkpoint.
    pub(crate) save: String,
    /// `$1` name: checkpoint, an estimate of the committed events after it (0 exactly when
    /// there are none), seconds since the first of them.
    pub(crate) lag: String,
}

impl SubscriptionStatements {
    pub(crate) fn new(schema: &str) -> Self {
        let checkpoint_or_start = format!(
            "SELECT t, p FROM (\
                 SELECT transaction_id AS t, position AS p, 0 AS o FROM {schema}.subscriptions WHERE name = $1 \
                 UNION ALL SELECT '0'::xid8, 0::bigint, 1) AS c ORDER BY o LIMIT 1"
        );
        Self {
            try_lock: "SELECT pg_try_advisory_lock(hashtextextended($1, 0))".to_owned(),
            ensure: format!(
                "INSERT INTO {schema}.subscriptions (name) VALUES ($1) ON CONFLICT (name) DO NOTHING"
            ),
            checkpoint: format!("SELECT t::text, p FROM ({checkpoint_or_start}) AS cp"),
            save: format!(
                "UPDATE {schema}.subscriptions SET transaction_id = $2::text::xid8, position = $3, \
                 updated_at = now() WHERE name = $1"
            ),
            // One index probe for the first event after the checkpoint (its age, and whether
            // anything waits at all) and the sequence's last value for the count: the cost does
            // not grow with the backlog. The checkpoint goes in as scalar subqueries, so the
            // probe is an index condition rather than a filter on a scan in feed order.
            lag: format!(
                "WITH cp AS ({checkpoint_or_start}), \
                 first AS (SELECT e.recorded_at FROM {schema}.events AS e \
                    WHERE (e.transaction_id, e.position) > ((SELECT t FROM cp), (SELECT p FROM cp)) \
                    ORDER BY e.transaction_id, e.position LIMIT 1) \
                 SELECT cp.t::text, cp.p, \
                   CASE WHEN EXISTS (SELECT 1 FROM first) \
                     THEN greatest(1, (SELECT last_value FROM {schema}.event_position) - cp.p) \
                     ELSE 0 END, \
                   (SELECT greatest(0, extract(epoch FROM now() - first.recorded_at))::float8 FROM first) \
                 FROM cp"
            ),
        }
    }
}

/// The advisory lock name of a subscription: one lock per schema and name.
pub(crate) fn lock_name(schema: &str, name: &str) -> String {
    format!("{}{name}", lock_prefix(schema))
}

/// What every subscription lock name of `schema` starts with; the name follows.
pub(crate) fn lock_prefix(schema: &str) -> String {
    format!("eventlogs.subscription.{schema}.")
}
