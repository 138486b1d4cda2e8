//! Aggregates the suites fold: a tally that notices skipped or repeated events, and relatives
//! with other names and versions to test cache isolation.

use eventlogs_core::{Aggregate, EventRecord};
use serde::{Deserialize, Serialize};

/// An event carrying an amount and a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub amount: i64,
    #[serde(default)]
    pub note: String,
}

impl Entry {
    #[must_use]
    pub fn of(amount: i64) -> Self {
        Self {
            amount,
            note: String::new(),
        }
    }
}

/// Sums amounts, counts events and counts any event whose index is not the next one
/// expected, so a skipped or folded-twice event changes the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub sum: i64,
    pub out_of_order: u64,
    /// Order-sensitive digest of every (index, amount).
    pub digest: u64,
}

impl Tally {
    fn fold(&mut self, record: &EventRecord<Entry>) {
        if record.index != self.count {
            self.out_of_order += 1;
        }
        self.count += 1;
        self.sum += record.event.amount;
        self.digest = self
            .digest
            .wrapping_mul(0x100_0000_01b3)
            .wrapping_add(record.index ^ (record.event.amount as u64).rotate_left(17));
    }
}

impl Aggregate for Tally {
    type Event = Entry;
    const NAME: &'static str = "tally";
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<Entry>) {
        self.fold(record);
    }
}

/// [`Tally`] at schema version 2: same name, another cache key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TallyV2(pub Tally);

impl Aggregate for TallyV2 {
    type Event = Entry;
    const NAME: &'static str = "tally";
    const VERSION: u32 = 2;
    fn apply(&mut self, record: &EventRecord<Entry>) {
        self.0.fold(record);
    }
}

/// Another aggregate over the same events whose serialized form decodes as a `Tally`'s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary(pub Tally);

impl Aggregate for Summary {
    type Event = Entry;
    const NAME: &'static str = "summary";
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<Entry>) {
        self.0.fold(record);
        self.0.sum += 1_000;
    }
}

/// One record as [`Trail`] keeps it: index, amount, commit time in microseconds, key, and
/// metadata as JSON text.
pub type TrailRecord = (u64, i64, i64, Option<String>, Option<String>);

/// Keeps every record's place, commit time, key and metadata, so a fold that got any of
/// them wrong (a command's locally folded result, say) differs from one read from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trail {
    pub records: Vec<TrailRecord>,
}

impl Trail {
    /// The sum of the amounts.
    #[must_use]
    pub fn sum(&self) -> i64 {
        self.records.iter().map(|r| r.1).sum()
    }
}

impl Aggregate for Trail {
    type Event = Entry;
    const NAME: &'static str = "trail";
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<Entry>) {
        self.records.push((
            record.index,
            record.event.amount,
            record.recorded_at.as_unix_micros(),
            record.idempotency_key.clone(),
            record.metadata.as_ref().map(ToString::to_string),
        ));
    }
}
