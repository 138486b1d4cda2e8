//! Event upcasting: rewriting events stored at older schema versions into the current shape
//! before they are deserialized.
//!
//! Every write stores the schema version its events were written at (1 for events written
//! before versions were stored). [`Upcasters`] is the chain from version 1 to the current
//! version: step *n* rewrites an event of version *n* into version *n + 1*, so an event is
//! read through every step after the version it was written at, then deserialized.
//!
//! Upcasting is one event to one event: splitting a stored event into several would give the
//! log different indexes on read than on write, and indexes are what optimistic concurrency
//! ([`LogState`](crate::LogState)), idempotent replays (first index and count) and cached
//! reductions (`through_index`) agree on. Merge or split facts in the aggregate's `apply`
//! instead.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, EventRecord, FeedEvent, FeedFilter, FeedPage, LogId, RawEvent, Result};

/// A rewrite of an event's JSON; `Err` says why the event cannot be upcast.
type Rewrite = Arc<dyn Fn(Value) -> std::result::Result<Value, String> + Send + Sync>;

/// What one step does to an event, in order.
#[derive(Clone)]
enum Rule {
    /// Events whose type name is `from` take the name `to`.
    Rename { from: String, to: String },
    /// Events of the type `only` (every event when `None`) are rewritten.
    Map {
        only: Option<String>,
        rewrite: Rewrite,
    },
}

/// One step of an event schema: what changed from one version to the next.
///
/// Rules run in the order they are added; a rule naming a type sees the name the rules before
/// it left. Type names are read the way serde writes them (the `"type"` field of an internally
/// tagged enum, the single key of an externally tagged one, or a unit variant's string).
///
/// ```
/// use eventlogs_core::Upcast;
///
/// // Version 2 renamed `Deposited` to `Credited` and gave it a currency.
/// let step = Upcast::new("credited")
///     .rename("Deposited", "Credited")
///     .map("Credited", |mut event| {
///         event["currency"] = "EUR".into();
///         Ok(event)
///     });
/// # let _ = step;
/// ```
#[derive(Clone)]
pub struct Upcast {
    name: String,
    rules: Vec<Rule>,
}

impl Upcast {
    /// A step that changes nothing yet. `name` identifies it: it goes into
    /// [`Upcasters::fingerprint`] (so a cached reduction folded under another chain is not
    /// trusted) and into the error when a rewrite fails. Rename a step whenever its rewrite
    /// changes.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            rules: Vec::new(),
        }
    }

    /// Events of type `from` are of type `to` from this version on.
    #[must_use]
    pub fn rename(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.rules.push(Rule::Rename {
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Rewrites the JSON of every event of type `type_name` (the whole event, tag included).
    ///
    /// The rewrite may change the event's shape, even how its type is tagged, but not its type
    /// name: an event whose name comes out different is refused ([`Error::Corrupt`] when read).
    /// Names change with [`rename`](Self::rename), which feed and subscription type filters
    /// follow.
    #[must_use]
    pub fn map<F>(mut self, type_name: impl Into<String>, rewrite: F) -> Self
    where
        F: Fn(Value) -> std::result::Result<Value, String> + Send + Sync + 'static,
    {
        self.rules.push(Rule::Map {
            only: Some(type_name.into()),
            rewrite: Arc::new(rewrite),
        });
        self
    }

    /// Rewrites the JSON of every event of this version (keeping each event's type name, as
    /// [`map`](Self::map) does).
    #[must_use]
    pub fn map_all<F>(mut self, rewrite: F) -> Self
    where
        F: Fn(Value) -> std::result::Result<Value, String> + Send + Sync + 'static,
    {
        self.rules.push(Rule::Map {
            only: None,
            rewrite: Arc::new(rewrite),
        });
        self
    }

    fn apply(&self, mut event: Value) -> std::result::Result<Value, String> {
        for rule in &self.rules {
            event = match rule {
                Rule::Rename { from, to } => {
                    rename(&mut event, from, to);
                    event
                }
                Rule::Map { only, rewrite } => {
                    if only.as_deref().is_none_or(|t| type_name(&event) == Some(t)) {
                        let before = type_name(&event).map(str::to_owned);
                        let after = rewrite(event)?;
                        // Only `rename` changes type names: it is what feed and subscription
                        // filters follow (`Upcasters::stored_filter`).
                        if type_name(&after) != before.as_deref() {
                            return Err(format!(
                                "a map must keep the event's type name {before:?}, and it \
                                 returned {:?}: change type names with `rename`",
                                type_name(&after)
                            ));
                        }
                        after
                    } else {
                        event
                    }
                }
            };
        }
        Ok(event)
    }
}

impl fmt::Debug for Upcast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcast")
            .field("name", &self.name)
            .field("rules", &self.rules.len())
            .finish()
    }
}

/// The type name of an event as serde writes it (see [`RawEvent::event_type`]).
fn type_name(event: &Value) -> Option<&str> {
    match event {
        Value::String(s) => Some(s),
        Value::Object(map) => match map.get("type") {
            Some(Value::String(tag)) => Some(tag),
            _ if map.len() == 1 => map.keys().next().map(String::as_str),
            _ => None,
        },
        _ => None,
    }
}

fn rename(event: &mut Value, from: &str, to: &str) {
    match event {
        Value::String(s) if s == from => *s = to.to_owned(),
        Value::Object(map) => {
            if let Some(Value::String(tag)) = map.get_mut("type") {
                if tag == from {
                    *tag = to.to_owned();
                }
            } else if map.len() == 1 {
                if let Some(body) = map.remove(from) {
                    map.insert(to.to_owned(), body);
                }
            }
        }
        _ => {}
    }
}

/// The chain of [`Upcast`] steps from version 1 to the current version of a log's events.
///
/// Register it on the manager with
/// [`LogManagerBuilder::upcasters`](crate::LogManagerBuilder::upcasters): the manager writes
/// new events at [`version`](Self::version) and reads every event (in `reduce`, `execute`,
/// `load` and `stream`) through the steps after the version it was stored at. Subscriptions
/// take the same chain ([`SubscriptionOptions::upcasters`](crate::SubscriptionOptions::upcasters)),
/// and [`upcast_feed_event`](Self::upcast_feed_event) serves readers of the raw feed.
///
/// ```
/// use eventlogs_core::{Upcast, Upcasters};
///
/// let chain = Upcasters::new()
///     .then(Upcast::new("credited").rename("Deposited", "Credited"))
///     .then(Upcast::new("amount in cents").map("Credited", |mut e| {
///         let euros = e["amount"].as_u64().ok_or("no amount")?;
///         e["amount"] = (euros * 100).into();
///         Ok(e)
///     }));
/// assert_eq!(chain.version(), 3);
/// ```
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: Vec<Upcast>,
}

impl Upcasters {
    /// No steps: events are at version 1 and read as stored.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the step from the current version to the next.
    #[must_use]
    pub fn then(mut self, step: Upcast) -> Self {
        self.steps.push(step);
        self
    }

    /// The version new events are written at: 1 plus the number of steps.
    #[must_use]
    pub fn version(&self) -> u32 {
        u32::try_from(self.steps.len())
            .unwrap_or(u32::MAX - 1)
            .saturating_add(1)
    }

    /// A stable hash of the chain's step names and renames (0 for no steps). Cached
    /// reductions are keyed with it, so an entry folded under another chain is never read.
    #[must_use]
    pub fn fingerprint(&self) -> u64 {
        if self.steps.is_empty() {
            return 0;
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        for step in &self.steps {
            hasher.update(&(step.name.len() as u64).to_le_bytes());
            hasher.update(step.name.as_bytes());
            for rule in &step.rules {
                match rule {
                    Rule::Rename { from, to } => {
                        hasher.update(b"r");
                        for part in [from, to] {
                            hasher.update(&(part.len() as u64).to_le_bytes());
                            hasher.update(part.as_bytes());
                        }
                    }
                    Rule::Map { only, .. } => {
                        hasher.update(b"m");
                        let only = only.as_deref().unwrap_or("");
                        hasher.update(&(only.len() as u64).to_le_bytes());
                        hasher.update(only.as_bytes());
                    }
                }
            }
        }
        hasher.digest().max(1)
    }

    /// Rewrites `event`'s payload to the current version (and sets its version), or leaves it
    /// as it is when it is current. An event stored at a version this chain does not know (a
    /// newer deployment wrote it), or one a step refuses, is [`Error::Corrupt`].
    pub fn upcast(&self, log_id: &LogId, event: &mut RawEvent) -> Result<()> {
        let current = self.version();
        if event.version == current {
            return Ok(());
        }
        let corrupt = |reason: String| Error::Corrupt {
            log_id: *log_id,
            index: u64::from(event.index),
            reason,
        };
        if event.version == 0 || event.version > current {
            return Err(corrupt(format!(
                "the event is at schema version {}, and this code reads versions 1 to {current}",
                event.version
            )));
        }
        let mut json: Value = serde_json::from_str(&event.payload)
            .map_err(|e| corrupt(format!("the event is not JSON: {e}")))?;
        for (from, step) in (event.version..).zip(&self.steps[event.version as usize - 1..]) {
            json = step.apply(json).map_err(|e| {
                corrupt(format!(
                    "upcast {:?} (version {from} to {}) failed: {e}",
                    step.name,
                    from + 1
                ))
            })?;
        }
        event.payload = json.to_string();
        event.version = current;
        Ok(())
    }

    /// [`upcast`](Self::upcast) for an event of the global feed (a deletion marker is left as
    /// it is).
    pub fn upcast_feed_event(&self, event: &mut FeedEvent) -> Result<()> {
        if event.deleted {
            return Ok(());
        }
        self.upcast(&event.log_id, &mut event.event)
    }

    /// `filter` as it must read stored events: its event types widened with every name a
    /// [`rename`](Upcast::rename) of this chain turns into one of them (a `map` never changes
    /// a type name, so nothing else can). Events read with it are upcast and then filtered
    /// with `filter` itself, so the widening never lets an unwanted event through.
    #[must_use]
    pub fn stored_filter(&self, filter: &FeedFilter) -> FeedFilter {
        let Some(wanted) = filter.event_types() else {
            return filter.clone();
        };
        let mut names: BTreeSet<String> = wanted.clone();
        for step in self.steps.iter().rev() {
            for rule in step.rules.iter().rev() {
                if let Rule::Rename { from, to } = rule {
                    if names.contains(to) {
                        names.insert(from.clone());
                    }
                }
            }
        }
        filter.clone().with_event_types(names)
    }

    /// `page` (read with [`stored_filter`](Self::stored_filter)`(filter)`) with every event
    /// upcast and only the events `filter` lets through.
    pub(crate) fn upcast_page(&self, filter: &FeedFilter, mut page: FeedPage) -> Result<FeedPage> {
        if self.steps.is_empty() {
            return Ok(page);
        }
        for event in &mut page.events {
            self.upcast_feed_event(event)?;
        }
        if !filter.is_all() {
            page.events.retain(|event| filter.matches(event));
        }
        Ok(page)
    }

    /// `raw` upcast and deserialized into an [`EventRecord`].
    pub(crate) fn decode<E: DeserializeOwned>(
        &self,
        log_id: &LogId,
        raw: &RawEvent,
    ) -> Result<EventRecord<E>> {
        if raw.version == self.version() {
            return raw.decode(log_id);
        }
        let mut raw = raw.clone();
        self.upcast(log_id, &mut raw)?;
        raw.decode(log_id)
    }
}

/// Two chains are equal when their versions and [`fingerprint`](Upcasters::fingerprint)s are.
impl PartialEq for Upcasters {
    fn eq(&self, other: &Self) -> bool {
        self.version() == other.version() && self.fingerprint() == other.fingerprint()
    }
}

impl Eq for Upcasters {}

impl fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upcasters")
            .field("version", &self.version())
            .field(
                "steps",
                &self
                    .steps
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
