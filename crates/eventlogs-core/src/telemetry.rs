//! Metrics: the names eventlogs emits through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! Nothing is exported unless the application installs a recorder (for example
//! `metrics-exporter-prometheus`); without one every call is a no-op. Names and labels follow
//! Prometheus conventions: `snake_case`, a unit suffix (`_seconds`, `_events`), `_total` on
//! counters. Label values come from a fixed set (an operation, an outcome, a cache result) or
//! from a subscription name; log ids and keys are never labels.
//!
//! | Name | Kind | Labels |
//! |---|---|---|
//! | [`APPEND_DURATION`] | histogram | `op` (`create`, `append`, `execute`), `outcome` |
//! | [`APPENDED_EVENTS`] | counter | `op` |
//! | [`REDUCE_DURATION`] | histogram | `cache` |
//! | [`REDUCE_ERRORS`] | counter | `kind` |
//! | [`REDUCE_EVENTS_READ`] | counter | — |
//! | [`CACHE_READS`] | counter | `outcome` (`hit`, `miss`, `skipped`, `stale`, `corrupt`, `error`, `timeout`) |
//! | [`CACHE_WRITES`] | counter | `outcome` (`written`, `superseded`, `error`, `dropped`) |
//! | [`CACHE_WRITE_QUEUE`] | gauge | — |
//! | [`SUBSCRIPTION_BATCHES`] | counter | `subscription` |
//! | [`SUBSCRIPTION_EVENTS`] | counter | `subscription` |
//! | [`SUBSCRIPTION_HANDLER_DURATION`] | histogram | `subscription` |
//! | [`SUBSCRIPTION_LAG`] | gauge | `subscription` |
//! | [`SUBSCRIPTION_CLAIMS`] | counter | `subscription` |
//! | [`SUBSCRIPTION_HANDOVERS`] | counter | `subscription` |
//!
//! A histogram's count is the number of operations it timed, so writes and reduces are counted
//! by their histograms (`_count` in Prometheus) rather than by a second metric. An `outcome` is
//! `ok` or the [`ErrorKind`](crate::ErrorKind) of the error, and a `kind` the kind, as
//! [`ErrorKind::as_str`](crate::ErrorKind::as_str) spells it (`concurrent_append`,
//! `idempotent_replay`, `timeout`, …).

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::{CacheOutcome, Error};

/// Seconds each write (`create`, `append`, each attempt of `execute`) took, by operation and
/// outcome; its count is the number of writes.
pub const APPEND_DURATION: &str = "eventlogs_append_duration_seconds";
/// Events written by successful writes, by operation.
pub const APPENDED_EVENTS: &str = "eventlogs_appended_events_total";
/// Seconds each successful `reduce` took, by what the cache did (`hit`, `miss`, `disabled`, …);
/// its count is the number of successful reduces.
pub const REDUCE_DURATION: &str = "eventlogs_reduce_duration_seconds";
/// `reduce` calls that failed, by error kind.
pub const REDUCE_ERRORS: &str = "eventlogs_reduce_errors_total";
/// Events read from the store by successful `reduce` calls.
pub const REDUCE_EVENTS_READ: &str = "eventlogs_reduce_events_read_total";
/// Cache reads of `reduce`, by outcome (`skipped`: not asked, see `CacheReads::Adaptive`).
pub const CACHE_READS: &str = "eventlogs_cache_reads_total";
/// Background cache writes, by outcome (`superseded`: the cache held a newer entry;
/// `dropped`: the queue was full or no runtime ran the writer).
pub const CACHE_WRITES: &str = "eventlogs_cache_writes_total";
/// Cache writes queued or in flight.
pub const CACHE_WRITE_QUEUE: &str = "eventlogs_cache_write_queue_depth";
/// Batches a subscription delivered (and checkpointed).
pub const SUBSCRIPTION_BATCHES: &str = "eventlogs_subscription_batches_total";
/// Events a subscription delivered.
pub const SUBSCRIPTION_EVENTS: &str = "eventlogs_subscription_events_total";
/// Seconds the handler (with the checkpoint) took per batch.
pub const SUBSCRIPTION_HANDLER_DURATION: &str = "eventlogs_subscription_handler_duration_seconds";
/// Events between a subscription's checkpoint and the head of the feed, as last seen by its
/// runner (0 once caught up).
pub const SUBSCRIPTION_LAG: &str = "eventlogs_subscription_lag_events";
/// Times this process claimed a subscription.
pub const SUBSCRIPTION_CLAIMS: &str = "eventlogs_subscription_claims_total";
/// Times this process gave a claim up after an interruption (a lost connection, a retryable
/// error), for whichever consumer claims next.
pub const SUBSCRIPTION_HANDOVERS: &str = "eventlogs_subscription_handovers_total";

/// `ok`, or the kind of the error.
fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.kind().as_str(),
    }
}

/// The label value of a cache outcome.
pub(crate) const fn cache_label(outcome: CacheOutcome) -> &'static str {
    match outcome {
        CacheOutcome::Disabled => "disabled",
        CacheOutcome::Hit => "hit",
        CacheOutcome::Miss => "miss",
        CacheOutcome::Skipped => "skipped",
        CacheOutcome::Failed => "error",
        CacheOutcome::Corrupt => "corrupt",
        CacheOutcome::Stale => "stale",
    }
}

/// Records one write: its duration and, when it succeeded, its events.
pub(crate) fn write<T>(op: &'static str, result: &Result<T, Error>, took: Duration, events: usize) {
    let outcome = outcome(result);
    histogram!(APPEND_DURATION, "op" => op, "outcome" => outcome).record(took);
    if result.is_ok() {
        counter!(APPENDED_EVENTS, "op" => op).increment(events as u64);
    }
}

/// Records one `reduce`: its duration and events read, or its error.
pub(crate) fn reduce(outcome_of: Result<(CacheOutcome, u64), &Error>, took: Duration) {
    match outcome_of {
        Ok((cache, events_read)) => {
            histogram!(REDUCE_DURATION, "cache" => cache_label(cache)).record(took);
            counter!(REDUCE_EVENTS_READ).increment(events_read);
        }
        Err(e) => counter!(REDUCE_ERRORS, "kind" => e.kind().as_str()).increment(1),
    }
}

/// Counts one cache read with `outcome` (a label of [`CACHE_READS`]).
pub(crate) fn cache_read(outcome: &'static str) {
    counter!(CACHE_READS, "outcome" => outcome).increment(1);
}

/// Counts one background cache write with `outcome` (a label of [`CACHE_WRITES`]).
pub(crate) fn cache_write(outcome: &'static str) {
    counter!(CACHE_WRITES, "outcome" => outcome).increment(1);
}

/// Sets the depth of the cache write queue.
pub(crate) fn cache_queue(depth: usize) {
    gauge!(CACHE_WRITE_QUEUE).set(depth as f64);
}

/// Records a delivered batch of `events` that took `took` to handle and checkpoint.
pub(crate) fn subscription_batch(name: &str, events: usize, took: Duration) {
    let name = name.to_owned();
    counter!(SUBSCRIPTION_BATCHES, "subscription" => name.clone()).increment(1);
    counter!(SUBSCRIPTION_EVENTS, "subscription" => name.clone()).increment(events as u64);
    histogram!(SUBSCRIPTION_HANDLER_DURATION, "subscription" => name).record(took);
}

/// Sets how many events a subscription is behind.
pub(crate) fn subscription_lag(name: &str, events: u64) {
    gauge!(SUBSCRIPTION_LAG, "subscription" => name.to_owned()).set(events as f64);
}

/// Counts a claim won.
pub(crate) fn subscription_claim(name: &str) {
    counter!(SUBSCRIPTION_CLAIMS, "subscription" => name.to_owned()).increment(1);
}

/// Counts a claim given up after an interruption.
pub(crate) fn subscription_handover(name: &str) {
    counter!(SUBSCRIPTION_HANDOVERS, "subscription" => name.to_owned()).increment(1);
}
