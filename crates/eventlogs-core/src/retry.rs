//! `RetryPolicy`: how often, and how patiently, a command retries after losing a race.

use std::time::Duration;

/// How [`LogManager::execute`](crate::LogManager::execute) retries a command that lost the race
/// for the log's next index: at most [`max_attempts`](Self::max_attempts) attempts, with a
/// jittered exponential pause between them ("full jitter": a random pause up to
/// `initial_backoff * 2^retry`, capped at `max_backoff`), so racing writers spread out instead of
/// colliding again. When every attempt loses, the command fails with
/// [`Error::Contended`](crate::Error::Contended).
///
/// Only conflicts are retried. A retryable server error (`Unavailable`, `Timeout`) is returned
/// at once: retry the whole command with the same idempotency key, at the pace your service
/// chooses.
///
/// ```
/// use std::time::Duration;
/// use eventlogs_core::RetryPolicy;
/// let patient = RetryPolicy::default()
///     .with_max_attempts(20)
///     .with_backoff(Duration::from_millis(2), Duration::from_millis(200));
/// assert_eq!(patient.max_attempts(), 20);
/// assert!(patient.backoff(3) <= Duration::from_millis(16));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 attempts, pauses from up to 1 ms growing to at most 100 ms.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(100),
        }
    }
}

impl RetryPolicy {
    /// One attempt: a conflict fails the command at once with `Contended`.
    #[must_use]
    pub fn no_retries() -> Self {
        Self::default().with_max_attempts(1)
    }

    /// Sets how many attempts a command makes in all (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the pause bound before the first retry and the cap of every pause.
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// How many attempts a command makes in all.
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The pause bound before the first retry.
    #[must_use]
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The cap of every pause.
    #[must_use]
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// A random pause before retry number `retry` (0 for the first): uniform in
    /// `0..=min(initial_backoff * 2^retry, max_backoff)`.
    #[must_use]
    pub fn backoff(&self, retry: u32) -> Duration {
        let bound = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(fastrand::u64(0..=micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_within_their_bound_and_are_spread() {
        let policy = RetryPolicy::default()
            .with_backoff(Duration::from_millis(1), Duration::from_millis(40));
        for retry in 0..40 {
            let bound = Duration::from_millis((1u64 << retry.min(10)).min(40));
            let pauses: Vec<_> = (0..200).map(|_| policy.backoff(retry)).collect();
            assert!(pauses.iter().all(|p| *p <= bound), "retry {retry}");
            let distinct: std::collections::HashSet<_> = pauses.iter().collect();
            assert!(distinct.len() > 20, "jittered, not fixed: retry {retry}");
        }
    }

    #[test]
    fn at_least_one_attempt() {
        assert_eq!(
            RetryPolicy::default().with_max_attempts(0).max_attempts(),
            1
        );
        assert_eq!(RetryPolicy::no_retries().max_attempts(), 1);
    }
}
