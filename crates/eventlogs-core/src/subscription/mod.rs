//! Subscriptions: named, resumable consumers of the global feed that keep read models current.

mod backend;
mod delivery;
mod event_type;
mod filter;
mod handle;
mod lag;
mod name;
mod options;
mod runner;

pub use backend::{SubscriptionClaim, SubscriptionStore};
pub use delivery::{handler_failed, AtLeastOnce, Delivery, Handler};
pub use filter::FeedFilter;
pub use handle::SubscriptionHandle;
pub use lag::Lag;
pub use name::{SubscriptionName, MAX_NAME_LEN};
pub use options::{SubscriptionOptions, MAX_BATCH_SIZE};
pub use runner::Subscription;
