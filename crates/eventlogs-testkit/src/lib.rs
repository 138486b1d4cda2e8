//! Conformance suites every eventlogs backend runs, the aggregates they fold, and throwaway servers.
//!
//! Each behaviour is a plain `pub async fn` taking the backend under test; the macros
//! [`event_store_suite!`], [`reduction_cache_suite!`], [`log_manager_suite!`] and the rest
//! expand them into one named `#[tokio::test]` each, so a backend runs a whole suite with one
//! line:
//!
//! ```ignore
//! eventlogs_testkit::event_store_suite!(my_store());
//! ```
//!
//! The argument is a future of `Option<Arc<dyn EventStore>>` (or cache, or both): `None`
//! skips the test, which is how server-backed suites skip without a server. Tests isolate
//! by fresh log ids and keys, so they run in parallel against one shared server.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[cfg(feature = "suites")]
pub mod aggregates;
#[cfg(feature = "suites")]
pub mod cache_cost_suite;
#[cfg(feature = "suites")]
pub mod cache_keys_suite;
#[cfg(feature = "suites")]
pub mod cache_suite;
#[cfg(feature = "suites")]
pub mod command_suite;
#[cfg(feature = "suites")]
pub mod damage;
#[cfg(feature = "suites")]
pub mod delete_suite;
#[cfg(feature = "suites")]
pub mod feed_suite;
#[cfg(feature = "suites")]
pub mod manager_suite;
#[cfg(feature = "suites")]
pub mod model;
pub mod servers;
#[cfg(feature = "suites")]
pub mod store_suite;
#[cfg(feature = "suites")]
pub mod subscription_suite;
#[cfg(feature = "suites")]
mod support;
#[cfg(feature = "suites")]
pub mod upcast_suite;

#[cfg(feature = "suites")]
pub use support::{assert_dense, fold_from_store, reduce_checked, unique_key};

/// Expands the `EventStore` conformance suite into one `#[tokio::test]` per behaviour.
#[macro_export]
macro_rules! event_store_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, store_suite;
            append_and_load_round_trip,
            stream_reads_from_index_in_order,
            load_pages_through_a_log,
            stale_index_is_a_concurrent_append,
            index_past_the_end_is_refused,
            racing_appends_have_one_winner,
            batch_is_atomic,
            create_replays_with_a_fresh_log_id,
            append_replays_after_the_state_moved,
            reused_key_with_another_request_conflicts,
            racing_creates_with_one_key_write_once,
            refused_write_does_not_consume_its_key,
            a_create_retried_as_an_append_is_a_replay,
            limits_are_enforced_before_writing,
            last_index_is_u32_max,
            hostile_states_get_typed_errors_never_a_panic,
            keys_and_metadata_round_trip,
        );
    };
}

/// Expands the `ReductionCache` conformance suite into one `#[tokio::test]` per behaviour.
#[macro_export]
macro_rules! reduction_cache_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, cache_suite;
            get_of_a_missing_key_is_none,
            put_then_get_returns_the_bytes,
            put_only_replaces_a_lower_through_index,
            put_replaces_an_unreadable_entry,
            delete_removes_the_entry,
            keys_are_isolated,
            racing_puts_keep_the_maximum,
        );
    };
}

/// Expands the authenticated-entry checks ([`CacheKeys`](eventlogs_core::CacheKeys)) over a
/// store and a cache. The factory yields `Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)>`.
#[macro_export]
macro_rules! cache_keys_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, cache_keys_suite;
            forged_cache_entries_are_refused_with_keys,
            cache_keys_rotate_without_trusting_dropped_keys,
        );
    };
}

/// Expands the `LogManager` behaviour suite (a store and a cache together) into one
/// `#[tokio::test]` per behaviour. The factory yields `Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)>`.
#[macro_export]
macro_rules! log_manager_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, manager_suite;
            reduce_of_an_empty_log_is_not_found,
            reduce_folds_every_event,
            reduce_reads_only_newer_events_after_a_cached_one,
            cached_reduction_without_new_events_keeps_its_index,
            entry_ahead_of_the_log_is_refolded,
            entry_with_a_rewritten_last_event_is_refolded,
            entries_of_other_versions_and_aggregates_are_never_used,
            damaged_entries_are_refolded_and_replaced,
            caching_policy_decides_what_is_written,
            default_writes_pay_for_themselves,
            default_reads_stop_when_they_do_not_pay,
            racing_appenders_have_one_winner,
            idempotent_retries_write_once,
            batches_are_atomic,
            log_full_at_the_u32_edge,
            reduce_and_retry_writers_lose_nothing,
            load_pages_and_stream_agree,
            model_based_operation_sequences,
            execute_creates_then_appends_and_returns_what_reduce_returns,
            execute_passes_domain_errors_through_typed_and_writes_nothing,
            execute_replays_a_repeated_key_without_deciding_again,
            execute_retries_lost_races_with_fresh_state,
            execute_gives_up_with_contended_after_its_attempts,
            execute_with_one_key_from_many_tasks_writes_once,
            execute_serves_services_without_an_aggregate,
            reductions_from_the_cache_equal_fresh_ones_and_keep_the_log_age,
        );
    };
}

/// Expands the global feed suite. The factory yields `Option<(Arc<dyn EventStore>, Arc<dyn EventFeed>)>`
/// over a store whose feed is empty.
#[macro_export]
macro_rules! event_feed_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, feed_suite;
            feed_delivers_every_event_once_in_commit_order,
            concurrent_writers_are_read_once_each,
            head_is_the_last_readable_position,
            read_page_filters_and_says_how_far_it_looked,
        );
    };
}

/// Expands the subscription suite. The factory yields `Option<Arc<S>>` where `S` is both an
/// `EventStore` and a `SubscriptionStore`, over an empty feed.
#[macro_export]
macro_rules! subscription_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, subscription_suite;
            catches_up_then_follows_live,
            resumes_from_its_checkpoint,
            one_consumer_per_name_then_handover,
            filters_by_event_type_and_log,
            lag_counts_what_is_waiting,
            a_failing_handler_stops_and_its_batch_is_redelivered,
            batches_respect_the_batch_size,
            bad_names_and_options_are_refused,
            reset_replays_from_a_position_only_while_nobody_runs_it,
            a_reset_to_the_head_skips_history,
            a_dropped_handle_stops_the_subscription,
        );
    };
}

/// Expands the upcasting suite: logs written by older code read through [`Upcasters`] by newer
/// code, and the other way round. The factory yields
/// `Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)>`.
///
/// [`Upcasters`]: eventlogs_core::Upcasters
#[macro_export]
macro_rules! upcast_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, upcast_suite;
            v2_code_upcasts_v1_logs_in_reduce_load_stream_and_execute,
            v3_code_upcasts_v1_logs_through_the_chained_steps,
            writes_are_stored_at_the_upcast_chain_version_and_not_upcast_again,
            events_newer_than_the_upcast_chain_are_corrupt,
            a_refused_upcast_is_corrupt_and_names_the_step,
            cached_reductions_are_keyed_by_the_upcast_chain,
            upcast_v1_facts_reduce_like_fresh_v3_facts,
        );
    };
}

/// Expands the upcasting checks of subscriptions and the feed. The factory yields
/// `Option<Arc<S>>` where `S` is both an `EventStore` and a `SubscriptionStore`.
#[macro_export]
macro_rules! upcast_subscription_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, upcast_suite;
            subscriptions_hand_over_upcast_events,
            upcast_feed_reads_upcast_events_and_renamed_types,
        );
    };
}

/// Expands the `delete` suite over a store and a cache. The factory yields
/// `Option<(Arc<dyn EventStore>, Arc<dyn ReductionCache>)>` over a store no other test uses
/// meanwhile: one test removes every idempotency key.
#[macro_export]
macro_rules! delete_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, delete_suite;
            delete_removes_the_log_and_refuses_every_later_write,
            delete_leaves_other_logs_and_their_cache_entries_alone,
            delete_turns_replays_of_its_keys_into_log_deleted,
            delete_many_deletes_each_log_and_counts_every_event,
            remove_idempotency_keys_deletes_keys_by_age,
            delete_racing_cached_writers_leaves_nothing_readable,
        );
    };
}

/// Expands the `delete` checks of the feed and subscriptions. The factory yields
/// `Option<Arc<S>>` where `S` is both an `EventStore` and a `SubscriptionStore`.
#[macro_export]
macro_rules! delete_feed_suite {
    ($factory:expr) => {
        $crate::__tests!($factory, delete_suite;
            delete_leaves_one_marker_in_the_feed_after_what_came_before,
            delete_racing_appends_keeps_the_whole_log_or_none,
            delete_markers_reach_subscriptions_through_event_type_filters,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __tests {
    ($factory:expr, $suite:ident; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let Some(subject) = $factory.await else { return };
                $crate::$suite::$name(subject).await;
            }
        )*
    };
}
