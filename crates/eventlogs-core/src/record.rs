//! Event records: `EventRecord<E>` as users see them, `RawEvent`/`NewEvent` as stores hold them.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::{Error, LogId, Result, Timestamp};

/// One stored event with its place in the log.
///
/// Serializable whenever `E` is, so a page from [`LogManager::load`](crate::LogManager::load)
/// can be returned from an HTTP handler as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord<E> {
    /// Position in the log, from 0 without gaps.
    pub index: u64,
    /// When the store committed the event (database clock; informational, order is by index).
    pub recorded_at: Timestamp,
    /// The idempotency key of the write that stored the event, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The metadata of the write that stored the event, if it had any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The event.
    pub event: E,
}

/// An event as a store returns it: JSON text not yet deserialized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// Position in the log.
    pub index: u32,
    /// Commit time from the store's clock.
    pub recorded_at: Timestamp,
    /// The idempotency key of the write, if any.
    pub idempotency_key: Option<String>,
    /// The write's metadata as JSON text, if any.
    pub metadata: Option<String>,
    /// The event as JSON text.
    pub payload: String,
    /// The schema version the event was written at (see [`Upcasters`](crate::Upcasters)):
    /// 1 for events written before versions were stored, or without upcasters.
    pub version: u32,
}

impl RawEvent {
    /// Deserializes the payload and metadata into an [`EventRecord`]; a payload that no longer
    /// fits `E` is [`Error::Corrupt`].
    pub fn decode<E: serde::de::DeserializeOwned>(&self, log_id: &LogId) -> Result<EventRecord<E>> {
        let corrupt = |what: &str, e: serde_json::Error| Error::Corrupt {
            log_id: *log_id,
            index: u64::from(self.index),
            reason: format!("{what} does not deserialize: {e}"),
        };
        let event = serde_json::from_str(&self.payload).map_err(|e| corrupt("event", e))?;
        let metadata = match &self.metadata {
            Some(m) => Some(serde_json::from_str(m).map_err(|e| corrupt("metadata", e))?),
            None => None,
        };
        Ok(EventRecord {
            index: u64::from(self.index),
            recorded_at: self.recorded_at,
            idempotency_key: self.idempotency_key.clone(),
            metadata,
            event,
        })
    }

    /// A 64-bit fingerprint of this event's index, commit time and payload.
    ///
    /// A cached reduction stores the fingerprint of the last event it folded; `reduce` uses the
    /// cached value only when the store still returns an event with the same fingerprint at
    /// that index. It is stable across processes and versions of this library.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(&self.index.to_le_bytes());
        hasher.update(&self.recorded_at.as_unix_micros().to_le_bytes());
        hasher.update(self.payload.as_bytes());
        hasher.digest()
    }
}

/// An event to be written: its JSON, already serialized and checked to be valid JSON.
#[derive(Debug, Clone)]
pub struct NewEvent {
    payload: Box<RawValue>,
}

impl NewEvent {
    /// Serializes an event to JSON.
    pub fn new<E: Serialize + ?Sized>(event: &E) -> Result<Self> {
        let payload = serde_json::value::to_raw_value(event)
            .map_err(|e| crate::InvalidInput::Serialize(e.to_string()))?;
        Ok(Self { payload })
    }

    /// Takes JSON text, checking that it is valid JSON.
    pub fn from_json(json: impl Into<String>) -> Result<Self> {
        let payload = RawValue::from_string(json.into())
            .map_err(|e| crate::InvalidInput::Serialize(e.to_string()))?;
        Ok(Self { payload })
    }

    /// The JSON text.
    #[must_use]
    pub fn json(&self) -> &str {
        self.payload.get()
    }
}

impl PartialEq for NewEvent {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl Eq for NewEvent {}
