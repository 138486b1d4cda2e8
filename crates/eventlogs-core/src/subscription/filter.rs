//! `FeedFilter`: which feed events a subscription hands to its handler.

use std::collections::BTreeSet;

use crate::{FeedEvent, LogId};

/// Which events a subscription delivers. The default delivers every event.
///
/// Filtering happens where the feed is read ([`EventFeed::read_page`](crate::EventFeed::read_page):
/// in SQL on PostgreSQL, so only matching events leave the server). Events that do not match
/// are skipped but still checkpointed, so a filtered subscription never revisits what it
/// skipped.
///
/// ```
/// # use eventlogs_core::FeedFilter;
/// let filter = FeedFilter::all().with_event_types(["Deposited", "Withdrew"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    event_types: Option<BTreeSet<String>>,
    logs: Option<BTreeSet<LogId>>,
}

impl FeedFilter {
    /// Every event.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Only events whose [`event_type`](crate::backend::RawEvent::event_type) is one of `types`.
    #[must_use]
    pub fn with_event_types<I, S>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Only events of the logs in `logs`.
    #[must_use]
    pub fn with_logs(mut self, logs: impl IntoIterator<Item = LogId>) -> Self {
        self.logs = Some(logs.into_iter().collect());
        self
    }

    /// The event type names it lets through; `None` for every type.
    #[must_use]
    pub fn event_types(&self) -> Option<&BTreeSet<String>> {
        self.event_types.as_ref()
    }

    /// The logs it lets through; `None` for every log.
    #[must_use]
    pub fn logs(&self) -> Option<&BTreeSet<LogId>> {
        self.logs.as_ref()
    }

    /// Whether every event matches.
    #[must_use]
    pub fn is_all(&self) -> bool {
        self.event_types.is_none() && self.logs.is_none()
    }

    /// Whether `event` passes the filter (both conditions when both are set). A deletion
    /// marker ([`FeedEvent::deleted`]) passes every event-type condition, so a read model
    /// filtered by type still learns that a log is gone.
    #[must_use]
    pub fn matches(&self, event: &FeedEvent) -> bool {
        if let Some(logs) = &self.logs {
            if !logs.contains(&event.log_id) {
                return false;
            }
        }
        match &self.event_types {
            None => true,
            Some(_) if event.deleted => true,
            Some(types) => event
                .event
                .event_type()
                .is_some_and(|name| types.contains(&name)),
        }
    }
}
