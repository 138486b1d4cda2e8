//! `Timestamp`: a UTC instant with microsecond precision, as PostgreSQL stores it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant in microseconds since the Unix epoch.
///
/// Timestamps of events come from the store (the database clock) and are informational:
/// order within a log is by index. It serializes as an RFC 3339 string such as
/// `2026-11-29T12:00:00.123456Z`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const UNIX_EPOCH: Self = Self(0);

    /// The current time of this machine.
    #[must_use]
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// The timestamp this many microseconds after (or, when negative, before) the epoch.
    #[must_use]
    pub const fn from_unix_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub const fn as_unix_micros(&self) -> i64 {
        self.0
    }

    /// Converts a `SystemTime`, truncating to microseconds and saturating far outside ±290,000 years.
    #[must_use]
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)),
            Err(before) => Self(
                i64::try_from(before.duration().as_micros())
                    .map(|m| -m)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    /// The same instant as a `SystemTime`.
    #[must_use]
    pub fn to_system_time(&self) -> SystemTime {
        let magnitude = Duration::from_micros(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }

    /// Time elapsed from this instant to `later` (zero when `later` is earlier).
    #[must_use]
    pub fn elapsed_until(&self, later: Timestamp) -> Duration {
        Duration::from_micros(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        Self::from_system_time(time)
    }
}

impl From<Timestamp> for SystemTime {
    fn from(ts: Timestamp) -> Self {
        ts.to_system_time()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 0 {
            write!(
                f,
                "{}",
                humantime::format_rfc3339_micros(self.to_system_time())
            )
        } else {
            write!(f, "{}µs before 1970-01-01T00:00:00Z", self.0.unsigned_abs())
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            humantime::parse_rfc3339(&s)
                .map(Self::from_system_time)
                .map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(deserializer).map(Self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339_and_binary() {
        let ts = Timestamp::from_unix_micros(1_764_417_600_123_456);
        assert_eq!(ts.to_string(), "2025-11-29T12:00:00.123456Z");
        let json = serde_json::to_string(&ts).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), ts);
        let bytes = postcard::to_allocvec(&ts).unwrap();
        assert_eq!(postcard::from_bytes::<Timestamp>(&bytes).unwrap(), ts);
        assert_eq!(Timestamp::from(ts.to_system_time()), ts);
    }

    #[test]
    fn negative_instants_convert() {
        let ts = Timestamp::from_unix_micros(-5);
        assert_eq!(Timestamp::from(ts.to_system_time()), ts);
        assert_eq!(
            ts.elapsed_until(Timestamp::UNIX_EPOCH),
            Duration::from_micros(5)
        );
        assert_eq!(Timestamp::UNIX_EPOCH.elapsed_until(ts), Duration::ZERO);
    }
}
