//! The `EventStore` trait and the append request every store receives.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::{Error, InvalidInput, Limits, LogId, LogState, NewEvent, RawEvent, Result, Timestamp};

/// One atomic write: events for one log at an expected index, with an optional idempotency key.
///
/// Build it with [`AppendRequest::new`], which computes the request hash that tells a retry
/// (same request) from a conflicting reuse of a key (different request).
#[derive(Debug, Clone)]
pub struct AppendRequest {
    log_id: LogId,
    expected_index: u64,
    events: Vec<NewEvent>,
    metadata: Option<NewEvent>,
    idempotency_key: Option<String>,
    request_hash: u64,
    event_version: u32,
}

impl AppendRequest {
    /// A write of `events` to the log of `state`, at `state.next_index()`.
    ///
    /// The request hash covers what the request writes (the events and the metadata), not
    /// where: the log id and index are compared separately when a key turns out to be used
    /// (see [`key_already_used`](Self::key_already_used)), so one request is recognised
    /// whichever form each attempt took.
    #[must_use]
    pub fn new(
        state: LogState,
        events: Vec<NewEvent>,
        metadata: Option<NewEvent>,
        idempotency_key: Option<String>,
    ) -> Self {
        let request_hash = content_hash(None, &events, metadata.as_ref());
        Self {
            log_id: state.log_id(),
            expected_index: state.next_index(),
            events,
            metadata,
            idempotency_key,
            request_hash,
            event_version: 1,
        }
    }

    /// The same request with its events stored at schema version `version` (see
    /// [`Upcasters`](crate::Upcasters); 1 by default, and 0 is taken as 1).
    #[must_use]
    pub fn with_event_version(mut self, version: u32) -> Self {
        self.event_version = version.max(1);
        self
    }

    /// The schema version the events are stored at.
    #[must_use]
    pub fn event_version(&self) -> u32 {
        self.event_version
    }

    /// The log written to.
    #[must_use]
    pub fn log_id(&self) -> LogId {
        self.log_id
    }

    /// The index the first event must take; the log must have exactly this many events.
    #[must_use]
    pub fn expected_index(&self) -> u64 {
        self.expected_index
    }

    /// The events, in order.
    #[must_use]
    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    /// Metadata stored with every event, as JSON.
    #[must_use]
    pub fn metadata(&self) -> Option<&str> {
        self.metadata.as_ref().map(NewEvent::json)
    }

    /// The idempotency key, if any.
    #[must_use]
    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// A stable 64-bit hash of what the request writes, stored with its idempotency key.
    #[must_use]
    pub fn request_hash(&self) -> u64 {
        self.request_hash
    }

    /// Checks the request against `limits` and the index range; every store calls this before
    /// it sends or writes anything.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        check_count(self.events.len(), limits)?;
        let mut total = 0usize;
        for (position, event) in self.events.iter().enumerate() {
            let size = event.json().len();
            check_event(position, event.json(), limits)?;
            total = total.saturating_add(size);
        }
        if total > limits.max_batch_bytes() {
            return Err(InvalidInput::BatchTooManyBytes {
                size: total,
                max: limits.max_batch_bytes(),
            }
            .into());
        }
        if let Some(m) = &self.metadata {
            check_metadata(m.json(), limits)?;
        }
        if let Some(key) = &self.idempotency_key {
            check_idempotency_key(key, limits)?;
        }
        // `expected_index` may come from a deserialized, hostile `LogState`: never overflow.
        let last = self
            .expected_index
            .saturating_add(self.events.len() as u64 - 1);
        if last > u64::from(u32::MAX) {
            return Err(Error::LogFull {
                log_id: self.log_id,
                next_index: self.expected_index,
                count: self.events.len() as u64,
            });
        }
        Ok(())
    }

    /// The answer to this request when its idempotency key is already stored as `stored`.
    /// Every store answers through this, so the rule is the same everywhere:
    ///
    /// - [`Error::IdempotentReplay`], naming the original write, when the request writes the
    ///   same events and metadata (same [`request_hash`](Self::request_hash)) **and** it
    ///   either names the log the key wrote to, or creates a log (`expected_index() == 0`):
    ///   a retried `create` may have drawn a fresh log id, and a `create` whose reply was lost
    ///   may be retried as an `append` to the log it created. The expected index is not
    ///   compared, since a retry's state may have moved on.
    /// - [`Error::IdempotencyConflict`] otherwise: the key was used for other events or
    ///   metadata, or for another existing log.
    #[must_use]
    pub fn key_already_used(&self, stored: &StoredKey) -> Error {
        let key = self.idempotency_key.clone().unwrap_or_default();
        let same_log = stored.replays_on(self.log_id, self.expected_index == 0);
        let same_content = stored.request_hash == self.request_hash
            || (self.expected_index > 0 && stored.request_hash == self.legacy_hash());
        if same_log && same_content {
            Error::IdempotentReplay {
                key,
                log_id: stored.log_id,
                first_index: u64::from(stored.first_index),
                count: u64::from(stored.count),
            }
        } else {
            Error::IdempotencyConflict { key }
        }
    }

    /// The hash that keys stored by earlier versions of this library carry for appends (`expected_index > 0`):
    /// the content hash seeded with the log id. Accepted on the (rare) path of a used key, so
    /// a retry of such a write still replays.
    fn legacy_hash(&self) -> u64 {
        content_hash(Some(self.log_id), &self.events, self.metadata.as_ref())
    }

    /// The index of the first event, once [`validate`](Self::validate) has passed.
    #[must_use]
    pub fn first_index(&self) -> u32 {
        u32::try_from(self.expected_index).unwrap_or(u32::MAX)
    }
}

/// A stable hash of the events and metadata (and, for the legacy form, a log id first).
fn content_hash(log_id: Option<LogId>, events: &[NewEvent], metadata: Option<&NewEvent>) -> u64 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    if let Some(log_id) = log_id {
        hasher.update(&log_id.to_u128().to_le_bytes());
    }
    hasher.update(&(events.len() as u64).to_le_bytes());
    for event in events {
        hasher.update(&(event.json().len() as u64).to_le_bytes());
        hasher.update(event.json().as_bytes());
    }
    if let Some(m) = metadata {
        hasher.update(m.json().as_bytes());
    }
    hasher.digest()
}

/// Refuses an empty or oversized batch.
pub(crate) fn check_count(count: usize, limits: &Limits) -> Result<()> {
    if count == 0 {
        return Err(InvalidInput::EmptyBatch.into());
    }
    if count > limits.max_batch_events() {
        return Err(InvalidInput::BatchTooLarge {
            count,
            max: limits.max_batch_events(),
        }
        .into());
    }
    Ok(())
}

/// Refuses an oversized event, or one holding a NUL character (no database stores it in JSON).
pub(crate) fn check_event(position: usize, json: &str, limits: &Limits) -> Result<()> {
    if json.len() > limits.max_event_bytes() {
        return Err(InvalidInput::EventTooLarge {
            position,
            size: json.len(),
            max: limits.max_event_bytes(),
        }
        .into());
    }
    check_no_nul(json)
}

/// Refuses oversized metadata, or metadata holding a NUL character.
pub(crate) fn check_metadata(json: &str, limits: &Limits) -> Result<()> {
    if json.len() > limits.max_metadata_bytes() {
        return Err(InvalidInput::MetadataTooLarge {
            size: json.len(),
            max: limits.max_metadata_bytes(),
        }
        .into());
    }
    check_no_nul(json)
}

/// Refuses an empty or overlong key, or one with a NUL character.
pub fn check_idempotency_key(key: &str, limits: &Limits) -> Result<()> {
    let reason = if key.is_empty() {
        "must not be empty"
    } else if key.len() > limits.max_idempotency_key_bytes() {
        "is longer than the limit"
    } else if key.contains('\0') {
        "must not contain NUL"
    } else {
        return Ok(());
    };
    Err(InvalidInput::IdempotencyKey { reason }.into())
}

/// JSON text holds a NUL character only as the escape `\u0000` behind an even run of backslashes.
fn check_no_nul(json: &str) -> Result<()> {
    let bytes = json.as_bytes();
    let mut search = 0;
    while let Some(found) = json[search..].find("u0000") {
        let at = search + found;
        let backslashes = bytes[..at]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            return Err(InvalidInput::Serialize(
                "the JSON holds a NUL character (\\u0000), which cannot be stored".into(),
            )
            .into());
        }
        search = at + 5;
    }
    Ok(())
}

/// What a store keeps of an idempotency key: the write it was used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredKey {
    /// The log written to.
    pub log_id: LogId,
    /// The index of the first event written.
    pub first_index: u32,
    /// How many events were written.
    pub count: u32,
    /// [`AppendRequest::request_hash`] of the write.
    pub request_hash: u64,
}

impl StoredKey {
    /// The log half of the replay rule: a request with this key replays the stored write
    /// only when it names the same log, or when it creates a log (`creates`: a create may be
    /// retried under a fresh id). The content half is the request hash, compared by
    /// [`AppendRequest::key_already_used`].
    #[must_use]
    pub fn replays_on(&self, log_id: LogId, creates: bool) -> bool {
        creates || self.log_id == log_id
    }
}

/// What a successful append wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The log written to.
    pub log_id: LogId,
    /// The index of the first event written.
    pub first_index: u32,
    /// How many events were written.
    pub count: u32,
    /// The commit time (store clock).
    pub recorded_at: Timestamp,
}

impl Appended {
    /// The log's state after this write.
    #[must_use]
    pub fn state(&self) -> LogState {
        LogState::new(
            self.log_id,
            u64::from(self.first_index) + u64::from(self.count),
        )
    }
}

/// A stream of stored events in index order.
pub type RawEventStream = BoxStream<'static, Result<RawEvent>>;

/// Durable storage of logs. Implementations enforce the invariants themselves, so a store
/// called directly is as safe as one called through [`LogManager`](crate::LogManager):
///
/// 1. **Dense logs**: an append writes at `expected_index` only when the log has exactly that
///    many events: [`Error::ConcurrentAppend`] when the index is taken, [`Error::IndexGap`]
///    when it is past the end of an existing log, [`Error::LogNotFound`] when the log does not
///    exist and the index is not 0.
/// 2. **One winner**: of racing appends at one index exactly one succeeds.
/// 3. **Idempotency**: a key is stored atomically with its events; a request with a used key
///    returns [`Error::IdempotentReplay`] (same request hash) or
///    [`Error::IdempotencyConflict`] (different hash) and writes nothing. The key is checked
///    before the index, so a retry whose state went stale is still a replay.
///
/// The conformance suite in `eventlogs-testkit` checks all of this for every backend.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug + 'static {
    /// Writes the request's events atomically, or nothing. Calls
    /// [`AppendRequest::validate`] with [`limits`](Self::limits) first.
    async fn append(&self, request: &AppendRequest) -> Result<Appended>;

    /// Reads at most `max_events` events from `from_index` on, in index order. An unknown log
    /// or a start past the end gives an empty page. Calls [`Limits::check_page`] first: more
    /// than [`Limits::max_page_events`] is refused.
    async fn load(&self, log_id: &LogId, from_index: u32, max_events: u32)
        -> Result<Vec<RawEvent>>;

    /// Streams every event from `from_index` on, in index order, holding a bounded number of
    /// events in memory whatever the log's length.
    async fn stream(&self, log_id: &LogId, from_index: u32) -> Result<RawEventStream>;

    /// The committed write an idempotency key was used for, if any. A key whose write may
    /// still be in flight is `None`: only a committed write is ever reported.
    async fn find_idempotency_key(&self, key: &str) -> Result<Option<StoredKey>>;

    /// Deletes a log: removes every event, and leaves a marker that refuses every later write
    /// to its id with [`Error::LogDeleted`], answers reads with the same error, turns the
    /// replay of an idempotency key of one of its writes into that error too, and shows the
    /// deletion in the global feed ([`FeedEvent::deleted`](crate::FeedEvent::deleted)).
    ///
    /// Atomic against racing appends: an append that commits first is deleted with the rest,
    /// one that commits after is refused, and no reader sees part of the log. Returns how
    /// many events were removed; a log already deleted gives `Ok(0)`, an unknown log
    /// [`Error::LogNotFound`].
    ///
    /// The default refuses with [`Error::Unsupported`].
    async fn delete(&self, log_id: &LogId) -> Result<u64> {
        let _ = log_id;
        Err(Error::Unsupported {
            operation: "delete",
            reason: format!("{self:?} does not delete logs"),
        })
    }

    /// Removes idempotency keys stored more than `older_than` ago, at most `max_keys` of them
    /// per call; returns how many it removed (call again while it returns `max_keys`). A
    /// retry with a removed key is no longer recognised: it writes again.
    ///
    /// The default refuses with [`Error::Unsupported`].
    async fn remove_idempotency_keys(&self, older_than: Duration, max_keys: u32) -> Result<u64> {
        let _ = (older_than, max_keys);
        Err(Error::Unsupported {
            operation: "removing idempotency keys",
            reason: format!("{self:?} does not remove idempotency keys"),
        })
    }

    /// The limits this store enforces.
    fn limits(&self) -> &Limits;
}

#[async_trait]
impl<T: EventStore + ?Sized> EventStore for Arc<T> {
    async fn append(&self, request: &AppendRequest) -> Result<Appended> {
        (**self).append(request).await
    }

    async fn load(
        &self,
        log_id: &LogId,
        from_index: u32,
        max_events: u32,
    ) -> Result<Vec<RawEvent>> {
        (**self).load(log_id, from_index, max_events).await
    }

    async fn stream(&self, log_id: &LogId, from_index: u32) -> Result<RawEventStream> {
        (**self).stream(log_id, from_index).await
    }

    async fn find_idempotency_key(&self, key: &str) -> Result<Option<StoredKey>> {
        (**self).find_idempotency_key(key).await
    }

    async fn delete(&self, log_id: &LogId) -> Result<u64> {
        (**self).delete(log_id).await
    }

    async fn remove_idempotency_keys(&self, older_than: Duration, max_keys: u32) -> Result<u64> {
        (**self).remove_idempotency_keys(older_than, max_keys).await
    }

    fn limits(&self) -> &Limits {
        (**self).limits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn nul_escapes_are_found_only_when_they_are_escapes() {
        assert!(check_no_nul(r#""a\u0000b""#).is_err());
        assert!(check_no_nul(r#""a\\\u0000b""#).is_err());
        assert!(check_no_nul(r#""a\\u0000b""#).is_ok());
        assert!(check_no_nul(r#""u0000""#).is_ok());
        assert!(check_no_nul(r#"{"k":"\u0001"}"#).is_ok());
    }

    #[test]
    fn one_request_replays_in_either_form_and_conflicts_elsewhere() {
        let ev = vec![NewEvent::from_json("{\"a\":1}").unwrap()];
        let (a, b) = (LogId::new(), LogId::new());
        let req = |state, events: &[NewEvent], meta: Option<&str>| {
            let meta = meta.map(|m| NewEvent::from_json(m).unwrap());
            AppendRequest::new(state, events.to_vec(), meta, Some("k".into()))
        };
        let stored = |original: &AppendRequest| StoredKey {
            log_id: original.log_id(),
            first_index: 0,
            count: 1,
            request_hash: original.request_hash(),
        };
        let replays = |retry: &AppendRequest, original: &AppendRequest| matches!(retry.key_already_used(&stored(original)), Error::IdempotentReplay { log_id, .. } if log_id == original.log_id());
        let create = req(LogState::empty(a), &ev, None);
        // A create retried with a fresh id, or as an append to the log it created.
        assert!(replays(&req(LogState::empty(b), &ev, None), &create));
        assert!(replays(&req(LogState::new(a, 1), &ev, None), &create));
        assert!(replays(&req(LogState::new(a, 9), &ev, None), &create));
        // An append retried at a moved state, or as a create.
        let append = req(LogState::new(a, 3), &ev, None);
        assert!(replays(&req(LogState::new(a, 5), &ev, None), &append));
        assert!(replays(&req(LogState::empty(b), &ev, None), &append));
        // Another existing log, other events or other metadata: a conflict.
        assert!(!replays(&req(LogState::new(b, 1), &ev, None), &create));
        assert!(!replays(&req(LogState::new(a, 1), &[], None), &create));
        assert!(!replays(&req(LogState::empty(b), &ev, Some("{}")), &create));
        assert!(!replays(
            &req(LogState::new(a, 1), &ev, Some("{}")),
            &create
        ));
        // Keys stored with the earlier hash (seeded with the log id for appends) still replay.
        let legacy = StoredKey {
            request_hash: content_hash(Some(a), &ev, None),
            ..stored(&append)
        };
        let retry = req(LogState::new(a, 4), &ev, None);
        assert!(matches!(
            retry.key_already_used(&legacy),
            Error::IdempotentReplay { .. }
        ));
    }

    #[test]
    fn validate_checks_every_limit_and_the_last_index() {
        let limits = Limits::default()
            .with_max_event_bytes(10)
            .with_max_batch_events(2)
            .with_max_idempotency_key_bytes(3);
        let id = LogId::new();
        let small = NewEvent::from_json("1").unwrap();
        let req = |events: Vec<NewEvent>, key: Option<&str>, at: u64| {
            AppendRequest::new(LogState::new(id, at), events, None, key.map(String::from))
                .validate(&limits)
        };
        assert!(req(vec![small.clone()], Some("abc"), 0).is_ok());
        let kind = |r: Result<()>| r.unwrap_err().kind();
        assert_eq!(kind(req(vec![], None, 0)), ErrorKind::InvalidInput);
        assert_eq!(
            kind(req(vec![small.clone(); 3], None, 0)),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(req(
                vec![NewEvent::from_json("\"0123456789\"").unwrap()],
                None,
                0
            )),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(req(vec![small.clone()], Some("abcd"), 0)),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(req(vec![small.clone()], Some(""), 0)),
            ErrorKind::InvalidInput
        );
        assert!(req(vec![small.clone()], None, u64::from(u32::MAX)).is_ok());
        assert_eq!(
            kind(req(vec![small.clone(); 2], None, u64::from(u32::MAX))),
            ErrorKind::LogFull
        );
        assert_eq!(
            kind(req(vec![small], None, u64::from(u32::MAX) + 1)),
            ErrorKind::LogFull
        );
    }
}
