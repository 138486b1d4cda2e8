//! The three event schemas the upcast suite evolves through, the chains between them, and the
//! aggregates that fold them into one comparable account.
//!
//! Version 1 is internally tagged with amounts in euros; version 2 renames `Deposited` and
//! `Withdrew` to `Credited` and `Debited` and counts cents; version 3 is externally tagged,
//! adds a currency and renames the unit variant `Frozen` to `Locked` (a bare string).

use eventlogs_core::{Aggregate, EventRecord, Upcast, Upcasters};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The name of the step from version 1 to 2.
pub const CENTS: &str = "v2: renamed, amounts in cents";
/// The name of the step from version 2 to 3.
pub const RETAG: &str = "v3: external tags and a currency";

/// Version 1: whole euros, `{"type":"Deposited","amount":5}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum V1 {
    Deposited { amount: i64 },
    Withdrew { amount: i64 },
    Frozen,
}

/// Version 2: cents, `{"type":"Credited","cents":500}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum V2 {
    Credited { cents: i64 },
    Debited { cents: i64 },
    Frozen,
}

/// Version 3, externally tagged: `{"Credited":{"cents":500,"currency":"EUR"}}` and `"Locked"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum V3 {
    Credited { cents: i64, currency: String },
    Debited { cents: i64, currency: String },
    Locked,
}

/// One business fact, written at any version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// Euros in.
    Deposit(i64),
    /// Euros out.
    Withdraw(i64),
    Freeze,
}

impl Fact {
    #[must_use]
    pub fn v1(self) -> V1 {
        match self {
            Self::Deposit(amount) => V1::Deposited { amount },
            Self::Withdraw(amount) => V1::Withdrew { amount },
            Self::Freeze => V1::Frozen,
        }
    }

    #[must_use]
    pub fn v2(self) -> V2 {
        match self {
            Self::Deposit(euros) => V2::Credited { cents: euros * 100 },
            Self::Withdraw(euros) => V2::Debited { cents: euros * 100 },
            Self::Freeze => V2::Frozen,
        }
    }

    #[must_use]
    pub fn v3(self) -> V3 {
        let currency = "EUR".to_owned();
        match self {
            Self::Deposit(euros) => V3::Credited {
                cents: euros * 100,
                currency,
            },
            Self::Withdraw(euros) => V3::Debited {
                cents: euros * 100,
                currency,
            },
            Self::Freeze => V3::Locked,
        }
    }
}

fn euros_to_cents(mut event: Value) -> Result<Value, String> {
    let map = event.as_object_mut().ok_or("not an object")?;
    let euros = map
        .remove("amount")
        .and_then(|a| a.as_i64())
        .ok_or("no whole amount")?;
    let cents = euros.checked_mul(100).ok_or("amount out of range")?;
    map.insert("cents".into(), cents.into());
    Ok(event)
}

/// `{"type":"T",…}` into `{"T":{…,"currency":"EUR"}}`, and `{"type":"T"}` into `"T"`.
pub fn retag(event: Value) -> Result<Value, String> {
    let Value::Object(mut map) = event else {
        return Err("not an object".into());
    };
    let Some(Value::String(tag)) = map.remove("type") else {
        return Err("no type".into());
    };
    if map.is_empty() {
        return Ok(Value::String(tag));
    }
    map.insert("currency".into(), "EUR".into());
    Ok(Value::Object(Map::from_iter([(tag, Value::Object(map))])))
}

/// The step from version 1 to version 2.
#[must_use]
pub fn to_v2() -> Upcast {
    Upcast::new(CENTS)
        .rename("Deposited", "Credited")
        .rename("Withdrew", "Debited")
        .map("Credited", euros_to_cents)
        .map("Debited", euros_to_cents)
}

/// The step from version 2 to version 3, named `name`.
#[must_use]
pub fn to_v3_named(name: &str) -> Upcast {
    Upcast::new(name).map_all(retag).rename("Frozen", "Locked")
}

/// Version 2 code's chain.
#[must_use]
pub fn v2_chain() -> Upcasters {
    Upcasters::new().then(to_v2())
}

/// Version 3 code's chain.
#[must_use]
pub fn v3_chain() -> Upcasters {
    v2_chain().then(to_v3_named(RETAG))
}

/// What every version's aggregate folds to: the balance in cents and each fact in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub cents: i64,
    pub locked: bool,
    pub history: Vec<String>,
}

impl Account {
    /// The account the facts fold to, the model every reduction is compared with.
    #[must_use]
    pub fn of(facts: &[Fact]) -> Self {
        let mut account = Self::default();
        for (index, fact) in facts.iter().enumerate() {
            account.fold(index as u64, fact.v3());
        }
        account
    }

    fn fold(&mut self, index: u64, event: V3) {
        let line = match event {
            V3::Credited { cents, currency } => {
                self.cents += cents;
                format!("{index}: +{cents} {currency}")
            }
            V3::Debited { cents, currency } => {
                self.cents -= cents;
                format!("{index}: -{cents} {currency}")
            }
            V3::Locked => {
                self.locked = true;
                format!("{index}: locked")
            }
        };
        self.history.push(line);
    }
}

/// The account as version 1 code folds it (converting to cents itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountV1(pub Account);

/// The account as version 2 code folds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountV2(pub Account);

/// The account as version 3 code folds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountV3(pub Account);

// All three share a name and version, as one aggregate evolving in place would: only the
// upcasters' fingerprint tells their cache keys apart.
const ACCOUNT: &str = "upcast-account";

impl Aggregate for AccountV1 {
    type Event = V1;
    const NAME: &'static str = ACCOUNT;
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<V1>) {
        let fact = match record.event {
            V1::Deposited { amount } => Fact::Deposit(amount),
            V1::Withdrew { amount } => Fact::Withdraw(amount),
            V1::Frozen => Fact::Freeze,
        };
        self.0.fold(record.index, fact.v3());
    }
}

impl Aggregate for AccountV2 {
    type Event = V2;
    const NAME: &'static str = ACCOUNT;
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<V2>) {
        let currency = "EUR".to_owned();
        let event = match record.event {
            V2::Credited { cents } => V3::Credited { cents, currency },
            V2::Debited { cents } => V3::Debited { cents, currency },
            V2::Frozen => V3::Locked,
        };
        self.0.fold(record.index, event);
    }
}

impl Aggregate for AccountV3 {
    type Event = V3;
    const NAME: &'static str = ACCOUNT;
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<V3>) {
        self.0.fold(record.index, record.event.clone());
    }
}

/// Keeps every event's JSON as it was handed over: a fold of stored shapes differs from a fold
/// of upcast ones, so a cached entry read under the wrong chain shows in the value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shapes(pub Vec<String>);

impl Aggregate for Shapes {
    type Event = Value;
    const NAME: &'static str = "upcast-shapes";
    const VERSION: u32 = 1;
    fn apply(&mut self, record: &EventRecord<Value>) {
        self.0.push(record.event.to_string());
    }
}
