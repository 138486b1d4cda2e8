//! Exactly-once delivery: the handler writes its read model in the same PostgreSQL
//! transaction that stores the checkpoint.

use async_trait::async_trait;
use eventlogs_core::{
    backend::{handler_failed, Delivery, SubscriptionClaim},
    BoxError, FeedEvent, FeedPosition, Result, SubscriptionName,
};
use tokio_postgres::Transaction;

use crate::error::{classify, query_error, statement_timeout, Failure};
use crate::rows;
use crate::subscription::PostgresClaim;

/// Handles a batch inside the transaction that also stores the checkpoint.
///
/// Everything the handler writes through `transaction` commits together with the checkpoint
/// or not at all, so each event takes effect exactly once even across crashes and handovers.
/// The read model must live in the same database as the events.
#[async_trait]
pub trait TransactionalHandler: Send {
    /// Applies `events`, in feed order, through `transaction`. Never called with an empty batch.
    ///
    /// Returning a retryable `tokio_postgres::Error` (a lost connection, a serialization
    /// failure) makes the subscription claim again and retry the batch; any other error stops
    /// it with [`Error::Handler`](eventlogs_core::Error::Handler).
    async fn handle(
        &mut self,
        transaction: &Transaction<'_>,
        events: Vec<FeedEvent>,
    ) -> Result<(), BoxError>;
}

/// The transactional delivery mode, for
/// [`Subscription::run_with`](eventlogs_core::Subscription::run_with) on a
/// [`PostgresEventStore`](crate::PostgresEventStore).
///
/// ```no_run
/// # async fn demo(store: eventlogs_postgres::PostgresEventStore) -> eventlogs_core::Result<()> {
/// use eventlogs_core::{BoxError, FeedEvent, Subscription, SubscriptionOptions};
/// use eventlogs_postgres::{Transactional, TransactionalHandler};
/// use eventlogs_postgres::tokio_postgres::Transaction;
///
/// struct Counter;
///
/// #[eventlogs_core::backend::async_trait]
/// impl TransactionalHandler for Counter {
///     async fn handle(&mut self, tx: &Transaction<'_>, events: Vec<FeedEvent>) -> Result<(), BoxError> {
///         tx.execute("UPDATE event_count SET n = n + $1", &[&(events.len() as i64)]).await?;
///         Ok(())
///     }
/// }
///
/// let subscription = Subscription::new(store, "event-count", SubscriptionOptions::default())?;
/// let running = subscription.spawn_with(Transactional(Counter));
/// // ...
/// running.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Transactional<H>(pub H);

#[async_trait]
impl<H: TransactionalHandler> Delivery<PostgresClaim> for Transactional<H> {
    async fn deliver(
        &mut self,
        name: &SubscriptionName,
        claim: &mut PostgresClaim,
        events: Vec<FeedEvent>,
        through: FeedPosition,
    ) -> Result<()> {
        if events.is_empty() {
            return claim.save(through).await;
        }
        let (client, store, _) = claim.parts();
        let save = &store.subscription_statements().save;
        let (transaction, sequence) = rows::position_params(through);
        let after = store.config().statement_timeout;
        // Every statement of ours has the store's deadline; a server that stops answering
        // ends in a retryable timeout (the runner then drops the claim and its connection).
        let deadline = |_: tokio::time::error::Elapsed| statement_timeout(after);
        let tx = tokio::time::timeout(after, client.transaction())
            .await
            .map_err(deadline)?
            .map_err(query_error)?;
        if let Err(source) = self.0.handle(&tx, events).await {
            return Err(match source.downcast::<tokio_postgres::Error>() {
                Ok(error) => match classify(*error) {
                    Failure::Other(error) if error.is_retryable() => error,
                    Failure::Other(error) => handler_failed(name, through, error.into()),
                    Failure::IndexTaken | Failure::KeyTaken | Failure::PreviousMissing => {
                        handler_failed(
                            name,
                            through,
                            "the handler hit an eventlogs constraint".into(),
                        )
                    }
                },
                Err(source) => handler_failed(name, through, source),
            });
        }
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&name.as_str(), &transaction, &sequence];
        tokio::time::timeout(after, tx.execute(save, &params))
            .await
            .map_err(deadline)?
            .map_err(query_error)?;
        tokio::time::timeout(after, tx.commit())
            .await
            .map_err(deadline)?
            .map_err(query_error)
    }
}
