//! `LogId`: the ULID-based identity of one log, written `log_<ULID>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ulid::Ulid;

use crate::Timestamp;

/// The prefix of every log id's string form.
pub const LOG_ID_PREFIX: &str = "log_";

/// Length of a log id's string form: the prefix and a 26-character ULID.
pub const LOG_ID_LEN: usize = LOG_ID_PREFIX.len() + 26;

/// The identity of one log: a ULID, so ids sort by creation time and carry it.
///
/// Its string form is `log_` followed by the ULID in Crockford base32, for example
/// `log_01JDQ5Z8X4M3V6N9P2R7S8T0AB`. Parsing accepts upper or lower case and
/// rejects anything else with a [`ParseLogIdError`].
///
/// ```
/// use eventlogs_core::LogId;
/// let id = LogId::new();
/// let parsed: LogId = id.to_string().parse().unwrap();
/// assert_eq!(id, parsed);
/// assert!("log_not-a-ulid".parse::<LogId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogId(Ulid);

impl LogId {
    /// A new, unique log id stamped with the current time.
    #[must_use]
    pub fn new() -> Self {
        Self(Ulid::new())
    }

    /// Wraps an existing ULID.
    #[must_use]
    pub const fn from_ulid(ulid: Ulid) -> Self {
        Self(ulid)
    }

    /// The ULID inside.
    #[must_use]
    pub const fn ulid(&self) -> Ulid {
        self.0
    }

    /// The 128-bit value of the ULID (what a database may store).
    #[must_use]
    pub const fn to_u128(&self) -> u128 {
        self.0 .0
    }

    /// The log id with this 128-bit ULID value.
    #[must_use]
    pub const fn from_u128(value: u128) -> Self {
        Self(Ulid(value))
    }

    /// The time part of the ULID (milliseconds). Meaningful only for ids made by
    /// [`LogId::new`]; an id converted from a random UUID or an arbitrary `u128` carries no
    /// time. The library never relies on it: a log's age is the time of its first event
    /// ([`Reduction::created_at`](crate::Reduction::created_at)).
    #[must_use]
    pub fn ulid_timestamp(&self) -> Timestamp {
        Timestamp::from_unix_micros(
            i64::try_from(self.0.timestamp_ms()).unwrap_or(i64::MAX / 1000) * 1000,
        )
    }
}

/// A UUID becomes the log id with the same 128 bits (and back), so a service that keys its
/// entities by UUID uses them as log ids as they are. The string forms differ (`log_…` in
/// Crockford base32 here); the stored id is the same 128-bit value.
///
/// ```
/// # #[cfg(feature = "uuid")] {
/// use eventlogs_core::LogId;
/// let order = uuid::Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_002a);
/// let log = LogId::from(order);
/// assert_eq!(uuid::Uuid::from(log), order);
/// # }
/// ```
#[cfg(feature = "uuid")]
#[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
impl From<uuid::Uuid> for LogId {
    fn from(uuid: uuid::Uuid) -> Self {
        Self::from_u128(uuid.as_u128())
    }
}

#[cfg(feature = "uuid")]
#[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
impl From<LogId> for uuid::Uuid {
    fn from(log_id: LogId) -> Self {
        uuid::Uuid::from_u128(log_id.to_u128())
    }
}

impl Default for LogId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{LOG_ID_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId({self})")
    }
}

/// Why a string is not a log id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseLogIdError {
    /// The string does not start with `log_`.
    #[error("a log id starts with `log_`")]
    MissingPrefix,
    /// The string has the wrong length (it must be 30 characters).
    #[error("a log id is {LOG_ID_LEN} characters long, not {0}")]
    WrongLength(usize),
    /// The part after the prefix is not a ULID.
    #[error("a log id ends with a 26-character ULID in Crockford base32")]
    InvalidUlid,
}

impl FromStr for LogId {
    type Err = ParseLogIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != LOG_ID_LEN {
            return Err(ParseLogIdError::WrongLength(s.len()));
        }
        let Some(ulid) = s.strip_prefix(LOG_ID_PREFIX) else {
            return Err(ParseLogIdError::MissingPrefix);
        };
        // Only the canonical alphabet, so one id has exactly one spelling (up to case).
        let canonical = ulid.bytes().all(|b| {
            let b = b.to_ascii_uppercase();
            b.is_ascii_digit()
                || (b.is_ascii_uppercase() && !matches!(b, b'I' | b'L' | b'O' | b'U'))
        });
        if !canonical || ulid.as_bytes()[0] > b'7' {
            return Err(ParseLogIdError::InvalidUlid);
        }
        Ulid::from_string(ulid)
            .map(Self)
            .map_err(|_| ParseLogIdError::InvalidUlid)
    }
}

impl From<Ulid> for LogId {
    fn from(ulid: Ulid) -> Self {
        Self(ulid)
    }
}

impl Serialize for LogId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LogId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log id such as log_01JDQ5Z8X4M3V6N9P2R7S8T0AB")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LogId, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_through_string_and_serde() {
        let id = LogId::new();
        let s = id.to_string();
        assert_eq!(s.len(), LOG_ID_LEN);
        assert!(s.starts_with("log_"));
        assert_eq!(s.parse::<LogId>().unwrap(), id);
        assert_eq!(s.to_lowercase().parse::<LogId>().unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<LogId>(&json).unwrap(), id);
    }

    #[test]
    fn rejects_malformed_ids_with_a_typed_error() {
        assert_eq!("".parse::<LogId>(), Err(ParseLogIdError::WrongLength(0)));
        assert_eq!(
            "xyz_01JDQ5Z8X4M3V6N9P2R7S8T0AB".parse::<LogId>(),
            Err(ParseLogIdError::MissingPrefix)
        );
        assert_eq!(
            "log_01JDQ5Z8X4M3V6N9P2R7S8T0A!".parse::<LogId>(),
            Err(ParseLogIdError::InvalidUlid)
        );
        // 'U' is not in Crockford base32.
        assert_eq!(
            "log_01JDQ5Z8X4M3V6N9P2R7S8T0AU".parse::<LogId>(),
            Err(ParseLogIdError::InvalidUlid)
        );
        // A ULID whose first character overflows 128 bits.
        assert_eq!(
            "log_81JDQ5Z8X4M3V6N9P2R7S8T0AB".parse::<LogId>(),
            Err(ParseLogIdError::InvalidUlid)
        );
        assert!(serde_json::from_str::<LogId>("\"log_'; drop table events;--\"").is_err());
        assert!(serde_json::from_str::<LogId>("42").is_err());
    }

    #[test]
    fn ulid_timestamp_is_the_ulid_time() {
        let before = Timestamp::now().as_unix_micros() / 1000 * 1000;
        let id = LogId::new();
        let after = Timestamp::now().as_unix_micros();
        let at = id.ulid_timestamp().as_unix_micros();
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_accepts_only_canonical_ids(s in "\\PC{0,40}") {
            if let Ok(id) = s.parse::<LogId>() {
                prop_assert_eq!(id.to_string(), s.to_uppercase().replacen("LOG_", "log_", 1));
            }
        }

        #[test]
        fn every_u128_round_trips(v in any::<u128>()) {
            let id = LogId::from_u128(v);
            prop_assert_eq!(id.to_string().parse::<LogId>().unwrap(), id);
        }
    }
}
