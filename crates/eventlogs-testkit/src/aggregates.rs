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
        if u64::from(record.index) != self.count {
            self.out_of_order += 1;
        }
        self.count += 1;
        self.sum += record.event.amount;
        self.digest = self
            .digest
            .wrapping_mul(0x100_0000_01b3)
            .wrapping_add(u64::from(record.index) ^ (record.event.amount as u64).rotate_left(17));
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
