//! `AppendGrouping`: whether and how concurrent appends share one statement and one commit.

use eventlogs_core::{InvalidInput, Result};

/// How a store coalesces concurrent appends to different logs into one statement.
///
/// While an append statement is in flight, appends that arrive wait in a queue in the store;
/// when a statement finishes, everything waiting (up to [`max_requests`](Self::max_requests)
/// requests and [`max_bytes`](Self::max_bytes) of payload) goes to the server together, as
/// one statement and one commit, and each caller gets its own outcome. An append that arrives
/// while nothing waits and fewer than [`max_statements`](Self::max_statements) statements run
/// goes at once, alone, as it would without grouping: grouping adds no wait to a store that
/// is not busy.
///
/// Every guarantee of an append holds per request (see the store's docs): a lost race, a used
/// idempotency key or a missing log is that request's outcome only, and a statement that fails
/// because of one request (a payload the server refuses, a race with another process) is split
/// and run again, so the other requests are not failed by it. Appends to the same log, or with
/// the same idempotency key, never share a statement: one whose log or key is in a statement
/// in flight goes at once, alone, and the database settles the race as without grouping.
///
/// Grouping applies to a schema on one server. On a schema distributed over Citus, each
/// append keeps its own statement.
///
/// ```
/// use eventlogs_postgres::AppendGrouping;
/// let grouping = AppendGrouping::new().with_max_requests(128).with_max_statements(2);
/// assert_eq!(grouping.max_requests(), 128);
/// assert!(grouping.enabled());
/// assert!(!AppendGrouping::off().enabled());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendGrouping {
    enabled: bool,
    max_requests: usize,
    max_bytes: usize,
    max_statements: usize,
}

impl Default for AppendGrouping {
    fn default() -> Self {
        Self::new()
    }
}

impl AppendGrouping {
    /// Grouping on, with the defaults: at most 64 requests and 1 MiB of payload per statement,
    /// and at most 4 statements in flight, 2 of them groups.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            enabled: true,
            max_requests: 64,
            max_bytes: 1 << 20,
            max_statements: 4,
        }
    }

    /// Grouping off: every append is a statement of its own.
    #[must_use]
    pub const fn off() -> Self {
        Self {
            enabled: false,
            ..Self::new()
        }
    }

    /// The most requests one statement carries (at least 1).
    #[must_use]
    pub const fn with_max_requests(mut self, max: usize) -> Self {
        self.max_requests = max;
        self
    }

    /// The most payload bytes (events and metadata as JSON) one statement carries. A single
    /// request larger than this still goes, alone.
    #[must_use]
    pub const fn with_max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// How many append statements may be in flight at once (at least 1). Up to this many
    /// appends go alone at once; once appends wait, they go in groups, with at most half this
    /// many group statements (at least one) in flight, so that under load fewer, larger
    /// groups share the server.
    #[must_use]
    pub const fn with_max_statements(mut self, max: usize) -> Self {
        self.max_statements = max;
        self
    }

    /// Whether appends are grouped.
    #[must_use]
    pub const fn enabled(&self) -> bool {
        self.enabled
    }

    /// The most requests per statement.
    #[must_use]
    pub const fn max_requests(&self) -> usize {
        self.max_requests
    }

    /// The most payload bytes per statement.
    #[must_use]
    pub const fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The most statements in flight.
    #[must_use]
    pub const fn max_statements(&self) -> usize {
        self.max_statements
    }

    /// The most group statements in flight: half of `max_statements`, at least one.
    pub(crate) const fn max_group_statements(&self) -> usize {
        if self.max_statements / 2 > 1 {
            self.max_statements / 2
        } else {
            1
        }
    }

    /// Refuses settings that could never send a request.
    pub(crate) fn check(&self) -> Result<()> {
        if self.enabled && (self.max_requests == 0 || self.max_statements == 0) {
            return Err(InvalidInput::Config(
                "append grouping needs max_requests and max_statements of at least 1".into(),
            )
            .into());
        }
        Ok(())
    }
}
