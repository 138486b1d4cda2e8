//! Helpers shared by the suites: unique keys, folding straight from a store, density checks,
//! reductions checked against that fold.

use std::sync::Arc;

use eventlogs_core::{backend::RawEvent, Aggregate, EventStore, LogId, LogManager, Reduction};
use futures::TryStreamExt;

use crate::aggregates::Tally;

/// A key no other test uses, containing `label`.
#[must_use]
pub fn unique_key(label: &str) -> String {
    format!("{label}-{}", LogId::new())
}

/// Reads the whole log straight from the store and checks indexes are exactly `0..n`.
pub async fn assert_dense(store: &Arc<dyn EventStore>, log_id: &LogId) -> Vec<RawEvent> {
    let events: Vec<RawEvent> = store
        .stream(log_id, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(u64::from(e.index), i as u64, "log {log_id} is not dense");
    }
    events
}

/// Folds every event of the log from index 0, bypassing any cache: the reference result.
pub async fn fold_from_store<A: Aggregate>(store: &Arc<dyn EventStore>, log_id: &LogId) -> A {
    let mut aggregate = A::default();
    for raw in assert_dense(store, log_id).await {
        aggregate.apply(&raw.decode(log_id).unwrap());
    }
    aggregate
}

/// Reduces `log`, and checks the result against a fold of the whole log straight from the
/// store and that it is through the log's last event: whatever the cache held, the answer is
/// right.
pub async fn reduce_checked(logs: &LogManager<Tally>, log: &LogId) -> Reduction<Tally> {
    let r = logs.reduce(log).await.unwrap();
    let reference: Tally = fold_from_store(logs.store(), log).await;
    assert_eq!(
        r.aggregate, reference,
        "reduce differs from a fold from index 0"
    );
    assert_eq!(
        r.len(),
        reference.count,
        "reduce is not through the last event"
    );
    r
}
