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

/// The aggregate of a service that only writes and reads events: it folds nothing but the
/// count, so `LogManager<EventsOnly<E>>` gives `execute`, `create`, `append`, `load` and
/// `stream` of events `E` without inventing a state type.
///
/// ```
/// use eventlogs_core::{EventsOnly, LogManager};
/// # fn demo(store: impl eventlogs_core::EventStore) {
/// let audit = LogManager::<EventsOnly<String>>::new(store);
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(bound = "")]
pub struct EventsOnly<E> {
    /// How many events the log holds.
    pub count: u64,
    #[serde(skip)]
    _events: std::marker::PhantomData<fn() -> E>,
}

impl<E> Default for EventsOnly<E> {
    fn default() -> Self {
        Self {
            count: 0,
            _events: std::marker::PhantomData,
        }
    }
}

impl<E> Aggregate for EventsOnly<E>
where
    E: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    type Event = E;
    const NAME: &'static str = "eventlogs.events-only";
    const VERSION: u32 = 1;

    fn apply(&mut self, _: &EventRecord<E>) {
        self.count += 1;
    }
}
