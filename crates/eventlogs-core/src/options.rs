//! `AppendOptions`: the idempotency key and metadata of one create or append.

use serde_json::Value;

/// Options of one write: `execute`, `create_with` or `append_with`.
///
/// Like every value type of the API, it is set with `with_*` and read with the bare name.
///
/// ```
/// use eventlogs_core::AppendOptions;
/// use serde_json::json;
/// let opts = AppendOptions::new()
///     .with_idempotency_key("request-7f3a")
///     .with_metadata(json!({"user": "alice"}));
/// assert_eq!(opts.idempotency_key(), Some("request-7f3a"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct AppendOptions {
    idempotency_key: Option<String>,
    metadata: Option<Value>,
}

impl AppendOptions {
    /// Options with nothing set.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the write idempotent: a retry with the same key and the same events writes
    /// nothing and returns [`Error::IdempotentReplay`](crate::Error::IdempotentReplay).
    /// The key must be 1 to [`Limits::max_idempotency_key_bytes`](crate::Limits::max_idempotency_key_bytes)
    /// bytes without NUL characters; that is checked when the write is made.
    #[must_use]
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// JSON metadata stored with every event of the write (who, why, correlation ids).
    #[must_use]
    pub fn with_metadata(mut self, metadata: Value) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The idempotency key, if set.
    #[must_use]
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// The metadata, if set.
    #[must_use]
    pub fn metadata(&self) -> Option<&Value> {
        self.metadata.as_ref()
    }
}
