//! The statements of the global feed: the watermark, reads below it (all events, or filtered
//! in SQL with how far the read looked), and the head.

use crate::watermark::FeedWatermark;

/// Feed statements for one schema.
#[derive(Debug)]
pub(crate) struct FeedStatements {
    /// No parameters: the watermark, as text.
    pub(crate) watermark: String,
    /// `$1` transaction id (text), `$2` position, `$3` limit, `$4` watermark (text): the events
    /// after a position and below the watermark.
    pub(crate) read: String,
    /// As `read`, with `$3` the most rows to look at, `$5` the most to return, `$6` log ids
    /// (`uuid[]`, `NULL` for all), `$7` event types (`text[]`, `NULL` for all). Returns the
    /// matching rows (kind 0), then one row (kind 1) with the position of the last row looked
    /// at and how many were looked at.
    pub(crate) read_filtered: String,
    /// `$1` watermark (text): the last position below it, if any.
    pub(crate) head: String,
}

/// The columns of a feed row: `transaction_id::text, position, log_id`, then the seven of an
/// event.
const FEED_COLUMNS: &str = "e.transaction_id::text, e.position, e.log_id, e.event_index, \
     e.recorded_at, e.payload::text, e.metadata::text, e.idempotency_key, e.event_version, \
     e.deleted";

/// Leaves out the emptied events of deleted logs (they keep the positions of the events they
/// were); the marker at the log's end, written by the delete, is the one readers see.
const NOT_FIRST_MARKER: &str = "e.deleted <> 1";

/// The event type of a `jsonb` payload `p`, exactly as
/// [`RawEvent::event_type`](eventlogs_core::backend::RawEvent::event_type) reads it: a string
/// `"type"` field, else the only key of an object (unless that key is `"type"`), else a JSON
/// string; `NULL` otherwise.
pub(crate) fn event_type_sql(p: &str) -> String {
    format!(
        "(CASE jsonb_typeof({p}) \
           WHEN 'string' THEN {p} #>> '{{}}' \
           WHEN 'object' THEN (CASE WHEN jsonb_typeof({p} -> 'type') = 'string' THEN {p} ->> 'type' \
                                    WHEN NOT ({p} ? 'type') THEN \
                                      (SELECT min(k) FROM jsonb_object_keys({p}) AS k HAVING count(*) = 1) END) \
         END)"
    )
}

impl FeedStatements {
    pub(crate) fn new(schema: &str, watermark: FeedWatermark) -> Self {
        let event_type = event_type_sql("s.payload");
        Self {
            watermark: watermark.sql(schema),
            // Ordered by the xid8 column itself (qualified, so not by the text column of the
            // same name in the output), which the feed index serves in order.
            read: format!(
                "SELECT {FEED_COLUMNS} FROM {schema}.events AS e \
                 WHERE (e.transaction_id, e.position) > ($1::text::xid8, $2::bigint) \
                 AND e.transaction_id < $4::text::xid8 AND {NOT_FIRST_MARKER} \
                 ORDER BY e.transaction_id, e.position LIMIT $3"
            ),
            read_filtered: format!(
                "WITH s AS MATERIALIZED ( \
                    SELECT e.* FROM {schema}.events AS e \
                    WHERE (e.transaction_id, e.position) > ($1::text::xid8, $2::bigint) \
                      AND e.transaction_id < $4::text::xid8 \
                    ORDER BY e.transaction_id, e.position LIMIT $3), \
                 matched AS ( \
                    SELECT s.* FROM s \
                    WHERE ($6::uuid[] IS NULL OR s.log_id = ANY($6::uuid[])) \
                      AND ($7::text[] IS NULL OR s.deleted = 2 OR {event_type} = ANY($7::text[])) \
                      AND s.deleted <> 1 \
                    ORDER BY s.transaction_id, s.position LIMIT $5), \
                 page AS ( \
                    SELECT 0 AS kind, e.transaction_id AS t, {FEED_COLUMNS} FROM matched AS e \
                    UNION ALL \
                    SELECT 1, l.transaction_id, l.transaction_id::text, l.position, NULL, \
                           (SELECT count(*) FROM s), NULL, NULL, NULL, NULL, NULL, NULL \
                    FROM (SELECT * FROM s ORDER BY transaction_id DESC, position DESC LIMIT 1) AS l) \
                 SELECT transaction_id, position, log_id, event_index, recorded_at, payload, \
                        metadata, idempotency_key, event_version, deleted, kind \
                 FROM page ORDER BY kind, t, position"
            ),
            head: format!(
                "SELECT e.transaction_id::text, e.position FROM {schema}.events AS e \
                 WHERE e.transaction_id < $1::text::xid8 \
                 ORDER BY e.transaction_id DESC, e.position DESC LIMIT 1"
            ),
        }
    }
}
