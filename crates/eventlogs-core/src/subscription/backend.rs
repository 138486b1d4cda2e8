//! The traits a store implements to run subscriptions: checkpoints, the one-consumer claim,
//! wake-ups and lag.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{EventFeed, FeedPosition, Lag, Result, SubscriptionName};

/// A feed that also keeps subscription checkpoints and hands out exclusive claims.
#[async_trait]
pub trait SubscriptionStore: EventFeed {
    /// The right to run one subscription, held until dropped.
    type Claim: SubscriptionClaim;

    /// Tries to become the only active consumer of `name`. `Ok(None)` when another consumer
    /// holds it. The claim ends when it is dropped or when the process holding it dies.
    async fn claim(&self, name: &SubscriptionName) -> Result<Option<Self::Claim>>;

    /// The stored checkpoint of `name`, or [`FeedPosition::START`] if it never ran.
    async fn checkpoint(&self, name: &SubscriptionName) -> Result<FeedPosition>;

    /// How far `name` is behind the feed: committed events after its checkpoint and the age
    /// of the oldest.
    async fn lag(&self, name: &SubscriptionName) -> Result<Lag>;
}

/// A shared store subscribes like the store itself, so `Subscription::new(Arc::clone(&store), …)`
/// works as `Subscription::new(store.clone(), …)` does.
#[async_trait]
impl<T: SubscriptionStore> SubscriptionStore for Arc<T> {
    type Claim = T::Claim;

    async fn claim(&self, name: &SubscriptionName) -> Result<Option<Self::Claim>> {
        (**self).claim(name).await
    }

    async fn checkpoint(&self, name: &SubscriptionName) -> Result<FeedPosition> {
        (**self).checkpoint(name).await
    }

    async fn lag(&self, name: &SubscriptionName) -> Result<Lag> {
        (**self).lag(name).await
    }
}

/// The exclusive right to consume one subscription. Dropping it hands the subscription over.
#[async_trait]
pub trait SubscriptionClaim: Send + 'static {
    /// The stored checkpoint: the position of the last event handled.
    async fn checkpoint(&mut self) -> Result<FeedPosition>;

    /// Stores `position` as the checkpoint. Fails (and stores nothing) when the claim was lost,
    /// for example because its connection broke.
    async fn save(&mut self, position: FeedPosition) -> Result<()>;

    /// Returns when new events may have been committed (`true`: a commit was announced), or
    /// after `timeout` (`false`). Errors mean the claim is no longer safe to use.
    async fn wait(&mut self, timeout: Duration) -> Result<bool>;

    /// Releases the claim and returns once another consumer can take it. Dropping a claim
    /// releases it too, but possibly a moment later (a connection still closing).
    async fn release(self)
    where
        Self: Sized,
    {
    }
}
