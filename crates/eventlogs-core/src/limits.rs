//! `Limits`: the bounds on what a request may carry, checked before anything is written.

/// Bounds on events, batches, pages and idempotency keys (invariant 7 of the design).
///
/// A store holds one `Limits` and checks every request against it before sending anything;
/// [`LogManager`](crate::LogManager) checks the same limits while it serializes events, so an
/// oversized event fails early with [`InvalidInput`](crate::InvalidInput).
///
/// ```
/// use eventlogs_core::Limits;
/// let limits = Limits::default().with_max_event_bytes(64 * 1024).with_max_batch_events(500);
/// assert_eq!(limits.max_event_bytes(), 64 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    max_event_bytes: usize,
    max_metadata_bytes: usize,
    max_batch_events: usize,
    max_batch_bytes: usize,
    max_page_events: u32,
    max_idempotency_key_bytes: usize,
}

impl Default for Limits {
    /// 1 MiB per event, 64 KiB of metadata, 1,000 events and 16 MiB per batch, 10,000 events
    /// per page, 512-byte idempotency keys.
    fn default() -> Self {
        Self {
            max_event_bytes: 1024 * 1024,
            max_metadata_bytes: 64 * 1024,
            max_batch_events: 1_000,
            max_batch_bytes: 16 * 1024 * 1024,
            max_page_events: 10_000,
            max_idempotency_key_bytes: 512,
        }
    }
}

macro_rules! limit {
    ($field:ident, $setter:ident, $ty:ty, $doc:literal) => {
        #[doc = concat!("Sets the maximum ", $doc, ".")]
        #[must_use]
        pub fn $setter(mut self, value: $ty) -> Self {
            self.$field = value;
            self
        }

        #[doc = concat!("The maximum ", $doc, ".")]
        #[must_use]
        pub fn $field(&self) -> $ty {
            self.$field
        }
    };
}

impl Limits {
    limit!(
        max_event_bytes,
        with_max_event_bytes,
        usize,
        "size of one event's JSON, in bytes"
    );
    limit!(
        max_metadata_bytes,
        with_max_metadata_bytes,
        usize,
        "size of a request's metadata JSON, in bytes"
    );
    limit!(
        max_batch_events,
        with_max_batch_events,
        usize,
        "number of events in one append"
    );
    limit!(
        max_batch_bytes,
        with_max_batch_bytes,
        usize,
        "total JSON size of one append's events, in bytes"
    );
    limit!(
        max_page_events,
        with_max_page_events,
        u32,
        "number of events one `load` returns"
    );
    limit!(
        max_idempotency_key_bytes,
        with_max_idempotency_key_bytes,
        usize,
        "length of an idempotency key, in bytes"
    );

    /// Refuses a `load` of more than [`max_page_events`](Self::max_page_events) events with
    /// [`InvalidInput::PageTooLarge`](crate::InvalidInput::PageTooLarge). The one page rule:
    /// every store's `load` calls this first, so the manager and a store called directly
    /// answer alike.
    pub fn check_page(&self, max_events: u32) -> crate::Result<()> {
        if max_events > self.max_page_events {
            return Err(crate::InvalidInput::PageTooLarge {
                requested: max_events,
                max: self.max_page_events,
            }
            .into());
        }
        Ok(())
    }
}
