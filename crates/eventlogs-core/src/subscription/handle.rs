//! `SubscriptionHandle`: a subscription running in the background — wait until it is live,
//! stop it, or join it.

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::{Error, Result, SubscriptionName};

/// A subscription running in a background task, from
/// [`Subscription::spawn`](crate::Subscription::spawn).
///
/// Dropping the handle stops the subscription (between batches), without waiting for it.
#[derive(Debug)]
#[must_use = "dropping the handle stops the subscription"]
pub struct SubscriptionHandle {
    name: SubscriptionName,
    stop: Option<oneshot::Sender<()>>,
    live: watch::Receiver<bool>,
    task: JoinHandle<Result<()>>,
    /// How it ended, once `live` saw it end.
    ended: Option<Result<()>>,
}

impl SubscriptionHandle {
    pub(crate) fn new(
        name: SubscriptionName,
        stop: oneshot::Sender<()>,
        live: watch::Receiver<bool>,
        task: JoinHandle<Result<()>>,
    ) -> Self {
        Self {
            name,
            stop: Some(stop),
            live,
            task,
            ended: None,
        }
    }

    /// The subscription's name.
    #[must_use]
    pub fn name(&self) -> &SubscriptionName {
        &self.name
    }

    /// Whether the subscription holds its name and reads the feed now.
    #[must_use]
    pub fn is_live(&self) -> bool {
        *self.live.borrow()
    }

    /// Waits until the subscription holds its name and reads the feed (it may stand by first
    /// while another consumer holds the name). `false` when it ended before going live:
    /// [`join`](Self::join) says why.
    pub async fn live(&mut self) -> bool {
        if self.ended.is_some() {
            return false;
        }
        tokio::select! {
            live = self.live.wait_for(|live| *live) => live.is_ok(),
            ended = &mut self.task => {
                self.ended = Some(outcome(ended));
                false
            }
        }
    }

    /// Stops the subscription (a batch being handled is finished and checkpointed first) and
    /// waits for it to end. The error is the one that ended it before, if any.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.join().await
    }

    /// Waits for the subscription to end on its own: an error that retrying would not fix
    /// (a failing handler, an unusable store), or a stop from elsewhere.
    pub async fn join(mut self) -> Result<()> {
        match self.ended.take() {
            Some(ended) => ended,
            None => outcome((&mut self.task).await),
        }
    }
}

/// How the subscription's task ended.
fn outcome(ended: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    ended.unwrap_or_else(|join_error| {
        Err(Error::Backend {
            service: "subscription",
            source: format!("the subscription task ended abnormally: {join_error}").into(),
        })
    })
}
