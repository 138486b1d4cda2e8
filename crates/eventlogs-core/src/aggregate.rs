//! The `Aggregate` trait: how events fold into current state.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::EventRecord;

/// State computed by folding a log's events in index order.
///
/// `NAME` and `VERSION` are part of every cache key: change `VERSION` whenever the fold or the
/// serialized shape changes, and caches written by older deployments are never read.
///
/// ```
/// use eventlogs_core::{Aggregate, EventRecord};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum Event { Deposited(u64), Withdrew(u64) }
///
/// #[derive(Debug, Default, Serialize, Deserialize)]
/// struct Balance(i64);
///
/// impl Aggregate for Balance {
///     type Event = Event;
///     const NAME: &'static str = "balance";
///     const VERSION: u32 = 1;
///     fn apply(&mut self, record: &EventRecord<Event>) {
///         match record.event {
///             Event::Deposited(n) => self.0 += n as i64,
///             Event::Withdrew(n) => self.0 -= n as i64,
///         }
///     }
/// }
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The events this aggregate folds.
    type Event: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// A stable name, part of the cache key. Keep it short; it must not contain `:`, `{` or `}`.
    const NAME: &'static str;

    /// The schema version of the aggregate, part of the cache key.
    const VERSION: u32;

    /// Folds one event into the state.
    fn apply(&mut self, record: &EventRecord<Self::Event>);
}
