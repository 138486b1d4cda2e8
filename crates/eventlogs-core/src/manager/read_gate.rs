//! When `reduce` asks the cache: always, or only while recent reads spared more than they cost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::CacheReads;

/// While reads do not pay, one reduce in this many still reads, so the estimate follows the
/// workload (and a cache that fills up is noticed).
pub(crate) const PROBE_EVERY: u64 = 16;

/// The estimate is a moving average of the events each read spared, in 1/256 of an event.
const SCALE: u64 = 256;

/// Each read moves the average by 1/`WEIGHT` of the difference.
const WEIGHT: u64 = 16;

/// A fresh manager reads as though its reads had spared this many times the break-even, so it
/// reads the cache for its first few dozen reduces whatever they find (about 43 misses in a row
/// bring the average under the break-even).
const START: u64 = 16;

/// Decides, per reduce, whether to ask the cache.
#[derive(Debug)]
pub(crate) struct ReadGate {
    mode: CacheReads,
    /// A read pays when it spares at least this many events (scaled).
    break_even: u64,
    /// Moving average of the events a read spared (scaled): the cached entry's `through_index`
    /// on a confirmed hit, 0 otherwise.
    spared: AtomicU64,
    /// Reduces that found reads not paying, for the probes.
    unpaid: AtomicU64,
    /// Whether reads were last found not paying (to log each change once).
    skipping: AtomicBool,
}

impl ReadGate {
    /// A gate for `mode`, where a read pays when it spares at least `break_even` events.
    pub(crate) fn new(mode: CacheReads, break_even: u64) -> Self {
        let break_even = break_even.max(1).saturating_mul(SCALE);
        Self {
            mode,
            break_even,
            spared: AtomicU64::new(break_even.saturating_mul(START)),
            unpaid: AtomicU64::new(0),
            skipping: AtomicBool::new(false),
        }
    }

    /// Whether this reduce should ask the cache.
    pub(crate) fn should_read(&self) -> bool {
        if self.mode == CacheReads::Always {
            return true;
        }
        let spared = self.spared.load(Ordering::Relaxed);
        let pays = spared >= self.break_even;
        // Written only when the verdict changes, so reduces do not contend on the flag.
        if self.skipping.load(Ordering::Relaxed) == pays
            && self.skipping.swap(!pays, Ordering::Relaxed) == pays
        {
            let (spared_per_read, break_even) = (spared / SCALE, self.break_even / SCALE);
            if pays {
                tracing::info!(
                    spared_per_read,
                    break_even,
                    "cache reads pay again; reading the cache on every reduce"
                );
            } else {
                tracing::info!(
                    spared_per_read,
                    break_even,
                    probe_every = PROBE_EVERY,
                    "cache reads spare fewer events than they cost; reading the cache on one reduce in probe_every"
                );
            }
        }
        pays || self.unpaid.fetch_add(1, Ordering::Relaxed) % PROBE_EVERY == 0
    }

    /// Records what a read spared: the cached `through_index` on a confirmed hit, else 0.
    pub(crate) fn record(&self, spared_events: u64) {
        if self.mode == CacheReads::Always {
            return;
        }
        // Bounded so the arithmetic cannot overflow: any log this long pays anyway.
        let sample = spared_events.min(1 << 40) * SCALE;
        let _ = self
            .spared
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(old - old / WEIGHT + sample / WEIGHT)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads_of(gate: &ReadGate, reduces: u64) -> u64 {
        (0..reduces).filter(|_| gate.should_read()).count() as u64
    }

    #[test]
    fn always_reads_whatever_reads_find() {
        let gate = ReadGate::new(CacheReads::Always, 32);
        for _ in 0..1_000 {
            gate.record(0);
        }
        assert_eq!(reads_of(&gate, 100), 100);
    }

    #[test]
    fn reads_that_find_nothing_become_probes_and_hits_bring_reads_back() {
        let gate = ReadGate::new(CacheReads::Adaptive, 32);
        // A fresh manager reads, and keeps reading through its first misses.
        for _ in 0..40 {
            assert!(gate.should_read());
            gate.record(0);
        }
        for _ in 0..20 {
            gate.record(0);
        }
        // Now one reduce in 16 reads.
        assert_eq!(reads_of(&gate, 160), 10);
        // One probe that spares a long log's worth of events makes reads pay again.
        gate.record(1_000);
        assert_eq!(reads_of(&gate, 100), 100);
    }

    #[test]
    fn hits_on_short_entries_do_not_pay() {
        let gate = ReadGate::new(CacheReads::Adaptive, 32);
        for _ in 0..200 {
            gate.record(9);
        }
        assert!(reads_of(&gate, 64) <= 4);
        for _ in 0..200 {
            gate.record(40);
        }
        assert_eq!(reads_of(&gate, 64), 64);
    }

    #[test]
    fn huge_logs_do_not_overflow() {
        let gate = ReadGate::new(CacheReads::Adaptive, u64::MAX);
        gate.record(u64::MAX);
        gate.record(u64::MAX);
        assert!(gate.should_read());
    }
}
