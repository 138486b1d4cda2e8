//! The type name of an event, read from its JSON the way serde writes enum variants.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

use crate::RawEvent;

impl RawEvent {
    /// The event's type name as serde wrote it, without deserializing the whole payload:
    ///
    /// - an object with a string field `"type"` (`#[serde(tag = "type")]`) gives that field;
    /// - otherwise an object with exactly one key (serde's default for enums) gives the key;
    /// - a JSON string (a unit variant) gives the string.
    ///
    /// Anything else has no type name.
    ///
    /// ```
    /// # use eventlogs_core::{backend::RawEvent, Timestamp};
    /// let event = |payload: &str| RawEvent {
    ///     index: 0,
    ///     recorded_at: Timestamp::from_unix_micros(0),
    ///     idempotency_key: None,
    ///     metadata: None,
    ///     payload: payload.into(),
    ///     version: 1,
    /// };
    /// assert_eq!(event(r#"{"type":"Deposited","amount":5}"#).event_type().as_deref(), Some("Deposited"));
    /// assert_eq!(event(r#"{"Deposited":{"amount":5}}"#).event_type().as_deref(), Some("Deposited"));
    /// assert_eq!(event(r#""Closed""#).event_type().as_deref(), Some("Closed"));
    /// assert_eq!(event("42").event_type(), None);
    /// ```
    #[must_use]
    pub fn event_type(&self) -> Option<String> {
        let mut json = serde_json::Deserializer::from_str(&self.payload);
        json.deserialize_any(TypeName).ok().flatten()
    }
}

/// Reads the type name and skips everything else.
struct TypeName;

impl<'de> Visitor<'de> for TypeName {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON event")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut keys, mut only_key, mut tag) = (0usize, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            keys += 1;
            if key == "type" {
                tag = map
                    .next_value::<serde_json::Value>()?
                    .as_str()
                    .map(str::to_owned);
            } else {
                map.next_value::<IgnoredAny>()?;
                if keys == 1 {
                    only_key = Some(key.into_owned());
                }
            }
        }
        Ok(tag.or(if keys == 1 { only_key } else { None }))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}
