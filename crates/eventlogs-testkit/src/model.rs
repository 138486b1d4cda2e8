//! Model-based test: random sequences of creates, appends, batches, retries, reduces, loads and
//! cache poisoning, checked step by step against a plain in-memory model.

use std::collections::HashMap;
use std::sync::Arc;

use eventlogs_core::{backend::CacheKey, AppendOptions, Error, LogId, LogManager, LogState};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::aggregates::{Entry, Tally};
use crate::manager_suite::Pair;

/// One step of a sequence. Logs and keys are small slots so steps collide often.
#[derive(Debug, Clone)]
pub enum Op {
    /// `append_with` (or `create_with` at index 0) with an optional key; `stale` uses an old state.
    Write {
        slot: usize,
        amounts: Vec<i64>,
        key: Option<usize>,
        stale: bool,
    },
    /// `reduce`, compared with the model.
    Reduce { slot: usize },
    /// `load`, compared with the model.
    Load { slot: usize, from: u32, max: u32 },
    /// Waits for cache writes.
    Flush,
    /// Overwrites the slot's cache entry with damaged bytes of one of four kinds.
    Poison { slot: usize, kind: u8 },
    /// Makes the cache misbehave from now on (see [`FaultInjector`]).
    Fault { kind: u8 },
}

/// Switches a cache fault on: 0 none, 1 every call fails, 2 every call is slower than the cache
/// timeout, 3 reads return damaged bytes, 4 reads return another key's entry.
pub type FaultInjector = Arc<dyn Fn(u8) + Send + Sync>;

fn op(faults: bool) -> BoxedStrategy<Op> {
    let fault_weight = if faults { 2 } else { 0 };
    prop_oneof![
        fault_weight => (0..5u8).prop_map(|kind| Op::Fault { kind }),
        4 => (0..3usize, prop::collection::vec(-50..50i64, 1..4), prop::option::of(0..3usize), any::<bool>())
            .prop_map(|(slot, amounts, key, stale)| Op::Write { slot, amounts, key, stale }),
        3 => (0..3usize).prop_map(|slot| Op::Reduce { slot }),
        1 => (0..3usize, 0..8u32, 0..6u32).prop_map(|(slot, from, max)| Op::Load { slot, from, max }),
        1 => Just(Op::Flush),
        1 => (0..3usize, 0..4u8).prop_map(|(slot, kind)| Op::Poison { slot, kind }),
    ]
    .boxed()
}

/// What a key was first used for: the events it wrote, on which log, from which index.
#[derive(Debug, Clone, PartialEq)]
struct Used {
    amounts: Vec<i64>,
    slot: usize,
    first: u32,
}

impl Used {
    /// The rule of `AppendRequest::key_already_used`: the same events replay when the request
    /// names the same log or creates a log (index 0); anything else conflicts.
    fn replayed_by(&self, slot: usize, at: u64, amounts: &[i64]) -> bool {
        self.amounts == amounts && (at == 0 || self.slot == slot)
    }
}

/// Runs 48 random sequences of up to 40 steps (shrinking a failure to a minimal sequence).
pub async fn check(pair: Pair) {
    check_inner(pair, None).await;
}

/// As [`check`], with steps that switch cache faults on and off through `inject` (and a short
/// cache timeout, so slow answers become misses).
pub async fn check_with_faults(pair: Pair, inject: FaultInjector) {
    check_inner(pair, Some(inject)).await;
}

async fn check_inner(pair: Pair, inject: Option<FaultInjector>) {
    let handle = tokio::runtime::Handle::current();
    tokio::task::block_in_place(move || {
        let mut runner = TestRunner::new(Config {
            cases: 48,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&prop::collection::vec(op(inject.is_some()), 1..40), |ops| {
                let result = handle.block_on(run(&pair, inject.as_ref(), ops));
                if let Some(inject) = &inject {
                    inject(0);
                }
                result.map_err(TestCaseError::fail)
            })
            .unwrap();
    });
}

async fn run(pair: &Pair, inject: Option<&FaultInjector>, ops: Vec<Op>) -> Result<(), String> {
    let timeout = if inject.is_some() {
        std::time::Duration::from_millis(40)
    } else {
        crate::manager_suite::CACHE_TIMEOUT
    };
    let logs: LogManager<Tally> = LogManager::builder(Arc::clone(&pair.0))
        .cache(Arc::clone(&pair.1))
        .cache_timeout(timeout)
        .min_events_per_write(1)
        .cache_reads(eventlogs_core::CacheReads::Always)
        .build();
    let ids: Vec<LogId> = (0..3).map(|_| LogId::new()).collect();
    let keys: Vec<String> = (0..3)
        .map(|i| crate::unique_key(&format!("model-{i}")))
        .collect();
    let mut model: HashMap<usize, Vec<i64>> = HashMap::new();
    let mut used: HashMap<usize, Used> = HashMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        let fail = |what: String| Err(format!("step {step} ({op:?}): {what}"));
        match &op {
            Op::Write {
                slot,
                amounts,
                key,
                stale,
            } => {
                let log = ids[*slot];
                let len = model.get(slot).map_or(0, Vec::len) as u64;
                let at = if *stale && len > 0 { len - 1 } else { len };
                let mut opts = AppendOptions::default();
                if let Some(k) = key {
                    opts = opts.with_idempotency_key(keys[*k].clone());
                }
                let events: Vec<Entry> = amounts.iter().map(|a| Entry::of(*a)).collect();
                let got = logs
                    .append_with(&LogState::new(log, at), &events, &opts)
                    .await;
                let prior = key.and_then(|k| used.get(&k).cloned());
                match (prior, got) {
                    (
                        Some(u),
                        Err(Error::IdempotentReplay {
                            log_id,
                            first_index,
                            count,
                            ..
                        }),
                    ) if u.replayed_by(*slot, at, amounts) => {
                        if (log_id, first_index, count)
                            != (ids[u.slot], u64::from(u.first), u.amounts.len() as u64)
                        {
                            return fail(format!(
                                "replay names {log_id} {first_index} {count}, model {u:?}"
                            ));
                        }
                    }
                    (Some(u), Err(Error::IdempotencyConflict { .. }))
                        if !u.replayed_by(*slot, at, amounts) => {}
                    (Some(u), got) => return fail(format!("key used by {u:?}, got {got:?}")),
                    (None, Err(Error::ConcurrentAppend { index, .. }))
                        if at < len && index == at => {}
                    (None, Ok(state)) if at == len => {
                        model.entry(*slot).or_default().extend(amounts);
                        if state.next_index() != len + amounts.len() as u64 {
                            return fail(format!("next index {}", state.next_index()));
                        }
                        if let Some(k) = key {
                            used.insert(
                                *k,
                                Used {
                                    amounts: amounts.clone(),
                                    slot: *slot,
                                    first: len as u32,
                                },
                            );
                        }
                    }
                    (None, got) => return fail(format!("model length {len}, got {got:?}")),
                }
            }
            Op::Reduce { slot } => {
                let got = logs.reduce(&ids[*slot]).await;
                match (model.get(slot), got) {
                    (None, Err(Error::LogNotFound { .. })) => {}
                    (Some(events), Ok(r)) => {
                        let sum: i64 = events.iter().sum();
                        let expected = (events.len() as u64, sum, 0, r.through_index + 1);
                        let actual = (
                            r.aggregate.count,
                            r.aggregate.sum,
                            r.aggregate.out_of_order,
                            events.len() as u64,
                        );
                        if expected != actual {
                            return fail(format!(
                                "reduce {actual:?} != model {expected:?} ({:?})",
                                r.cache
                            ));
                        }
                    }
                    (m, got) => return fail(format!("model {m:?}, got {got:?}")),
                }
            }
            Op::Load { slot, from, max } => {
                let got = logs
                    .load(&ids[*slot], u64::from(*from), *max)
                    .await
                    .map_err(|e| e.to_string())?;
                let events = model.get(slot).cloned().unwrap_or_default();
                let from = (*from as usize).min(events.len());
                let want = &events[from..(from + *max as usize).min(events.len())];
                let amounts: Vec<i64> = got.iter().map(|r| r.event.amount).collect();
                if amounts != want {
                    return fail(format!("load {amounts:?} != model {want:?}"));
                }
            }
            Op::Flush => logs.flush().await,
            Op::Fault { kind } => {
                if let Some(inject) = inject {
                    inject(*kind);
                }
            }
            Op::Poison { slot, kind } => {
                let key = CacheKey::of::<Tally>(ids[*slot]);
                // The test's own raw writes; under an injected fault they may fail, like any call.
                let current = pair.1.get(&key).await.ok().flatten().unwrap_or_default();
                let bytes = match kind {
                    0 => b"garbage".to_vec(),
                    1 => current[..current.len() / 2].to_vec(),
                    2 => current
                        .iter()
                        .enumerate()
                        .map(|(i, b)| if i == current.len() / 3 { b ^ 4 } else { *b })
                        .collect(),
                    _ => Vec::new(),
                };
                let _ = pair.1.delete(&key).await;
                let _ = pair.1.put(&key, 0, &bytes).await;
            }
        }
    }
    Ok(())
}
