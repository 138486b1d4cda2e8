//! How a batch reaches the handler and the checkpoint: the `Handler` and `Delivery` traits and
//! the at-least-once mode every store supports.

use std::future::Future;

use async_trait::async_trait;

use super::SubscriptionClaim;

use crate::{BoxError, Error, FeedEvent, FeedPosition, Result, SubscriptionName};

/// Handles a batch of feed events. Implemented for `FnMut(Vec<FeedEvent>) -> impl Future`.
///
/// An error stops the subscription with [`Error::Handler`]; the batch is not checkpointed, so
/// it is delivered again when the subscription runs next.
#[async_trait]
pub trait Handler: Send {
    /// Handles `events`, in feed order. Never called with an empty batch.
    async fn handle(&mut self, events: Vec<FeedEvent>) -> Result<(), BoxError>;
}

#[async_trait]
impl<F, Fut> Handler for F
where
    F: FnMut(Vec<FeedEvent>) -> Fut + Send,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    async fn handle(&mut self, events: Vec<FeedEvent>) -> Result<(), BoxError> {
        self(events).await
    }
}

/// Hands one batch to a handler and stores the checkpoint: the delivery mode.
///
/// [`AtLeastOnce`] works with every store. A store can offer stronger modes; PostgreSQL has a
/// transactional one that writes the read model and the checkpoint in one transaction.
#[async_trait]
pub trait Delivery<C: SubscriptionClaim>: Send {
    /// Handles `events` (filtered, possibly empty) and stores `through`, the position of the
    /// last event read, as the checkpoint.
    async fn deliver(
        &mut self,
        name: &SubscriptionName,
        claim: &mut C,
        events: Vec<FeedEvent>,
        through: FeedPosition,
    ) -> Result<()>;
}

/// At-least-once delivery: the handler runs, then the checkpoint is stored. A crash between
/// the two delivers that batch again, so the handler should be idempotent (for example an
/// upsert keyed by log id and index).
#[derive(Debug)]
pub struct AtLeastOnce<H>(pub H);

#[async_trait]
impl<C: SubscriptionClaim, H: Handler> Delivery<C> for AtLeastOnce<H> {
    async fn deliver(
        &mut self,
        name: &SubscriptionName,
        claim: &mut C,
        events: Vec<FeedEvent>,
        through: FeedPosition,
    ) -> Result<()> {
        if !events.is_empty() {
            self.0
                .handle(events)
                .await
                .map_err(|source| handler_failed(name, through, source))?;
        }
        claim.save(through).await
    }
}

/// The error of a failed handler.
#[must_use]
pub fn handler_failed(name: &SubscriptionName, position: FeedPosition, source: BoxError) -> Error {
    Error::Handler {
        subscription: name.to_string(),
        position,
        source,
    }
}
