//! The upcasting property: random facts written by version 1 code (or partly by each version)
//! and read through the chain fold to what the same facts written fresh by version 3 code do.

use eventlogs_core::{LogId, LogState, Upcasters};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::schema::{v3_chain, Account, AccountV1, AccountV3, Fact, V3};
use super::{events, manager, write_at};
use crate::manager_suite::Pair;

/// Property: facts written by version 1 code (or partly by each version) and read through the
/// chain fold to what the same facts written fresh by version 3 code fold to.
pub async fn upcast_v1_facts_reduce_like_fresh_v3_facts(pair: Pair) {
    let fact = prop_oneof![
        (0..10_000i64).prop_map(Fact::Deposit),
        (0..10_000i64).prop_map(Fact::Withdraw),
        Just(Fact::Freeze),
    ];
    let case = (
        prop::collection::vec(fact, 1..24),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        1..5usize,
    );
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    tokio::task::block_in_place(|| {
        runner
            .run(&case, |(facts, a, b, batch)| {
                let (a, b) = (a.index(facts.len() + 1), b.index(facts.len() + 1));
                let cuts = (a.min(b), a.max(b));
                handle
                    .block_on(same_as_fresh(&pair, &facts, cuts, batch))
                    .map_err(TestCaseError::fail)
            })
            .unwrap();
    });
}

/// How a log was written: runs of facts, each by code of one schema version.
type Layout<'a> = Vec<(u32, &'a [Fact])>;

async fn same_as_fresh(
    pair: &Pair,
    facts: &[Fact],
    (c1, c2): (usize, usize),
    batch: usize,
) -> std::result::Result<(), String> {
    let (old, fresh, mixed) = (LogId::new(), LogId::new(), LogId::new());
    let layouts: [(LogId, Layout<'_>); 3] = [
        (old, vec![(1, facts)]),
        (fresh, vec![(3, facts)]),
        (
            mixed,
            vec![(1, &facts[..c1]), (2, &facts[c1..c2]), (3, &facts[c2..])],
        ),
    ];
    for (log, parts) in &layouts {
        let mut state = LogState::empty(*log);
        for (version, part) in parts {
            for chunk in part.chunks(batch) {
                state = write_at(&pair.0, state, *version, chunk).await;
            }
        }
    }
    let want = Account::of(facts);
    let v3 = manager::<AccountV3>(pair, v3_chain());
    let want_events: Vec<V3> = facts.iter().map(|f| f.v3()).collect();
    for (log, parts) in &layouts {
        for _ in 0..2 {
            // The second reduce reads the first one's cached entry.
            let got = v3.reduce(log).await.map_err(|e| e.to_string())?.aggregate.0;
            if got != want {
                return Err(format!("{parts:?} reduced to {got:?}, not {want:?}"));
            }
            v3.flush().await;
        }
        let loaded = events(&v3.load(log, 0, 100).await.map_err(|e| e.to_string())?);
        if loaded != want_events {
            return Err(format!("{parts:?} loaded as {loaded:?}"));
        }
    }
    let v1 = manager::<AccountV1>(pair, Upcasters::new());
    let plain = v1
        .reduce(&old)
        .await
        .map_err(|e| e.to_string())?
        .aggregate
        .0;
    if plain != want {
        return Err(format!(
            "version 1 code folds {plain:?}, the model {want:?}"
        ));
    }
    Ok(())
}
