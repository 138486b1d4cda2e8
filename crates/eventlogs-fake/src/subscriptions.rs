//! Subscriptions on the in-memory store: checkpoints, one consumer per name, wake-ups on
//! every commit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eventlogs_core::{
    backend::{SubscriptionClaim, SubscriptionStore},
    FeedPosition, Lag, Result, SubscriptionName, Timestamp,
};
use tokio::sync::watch;

use crate::store::{lock, State};
use crate::FakeEventStore;

#[async_trait]
impl SubscriptionStore for FakeEventStore {
    type Claim = FakeClaim;

    async fn claim(&self, name: &SubscriptionName) -> Result<Option<FakeClaim>> {
        if !self.lock().claimed.insert(name.clone()) {
            return Ok(None);
        }
        Ok(Some(FakeClaim {
            state: Arc::clone(&self.state),
            name: name.clone(),
            commits: self.commits.subscribe(),
        }))
    }

    async fn checkpoint(&self, name: &SubscriptionName) -> Result<FeedPosition> {
        Ok(self
            .lock()
            .checkpoints
            .get(name)
            .copied()
            .unwrap_or_default())
    }

    async fn lag(&self, name: &SubscriptionName) -> Result<Lag> {
        let state = self.lock();
        let checkpoint = state.checkpoints.get(name).copied().unwrap_or_default();
        let start = state.feed.partition_point(|(p, _, _)| *p <= checkpoint);
        let behind = state.feed.get(start).and_then(|(position, log_id, index)| {
            let event = state.feed_event(*position, *log_id, *index)?;
            Some(event.event.recorded_at.elapsed_until(Timestamp::now()))
        });
        Ok(Lag {
            checkpoint,
            events: (state.feed.len() - start) as u64,
            estimated: false,
            behind: behind.unwrap_or_default(),
        })
    }
}

/// The claim on one subscription of a [`FakeEventStore`]; dropping it releases the name.
#[derive(Debug)]
pub struct FakeClaim {
    state: Arc<Mutex<State>>,
    name: SubscriptionName,
    commits: watch::Receiver<u64>,
}

#[async_trait]
impl SubscriptionClaim for FakeClaim {
    async fn checkpoint(&mut self) -> Result<FeedPosition> {
        Ok(lock(&self.state)
            .checkpoints
            .get(&self.name)
            .copied()
            .unwrap_or_default())
    }

    async fn save(&mut self, position: FeedPosition) -> Result<()> {
        lock(&self.state)
            .checkpoints
            .insert(self.name.clone(), position);
        Ok(())
    }

    async fn wait(&mut self, timeout: Duration) -> Result<bool> {
        // The store outlives its claims in practice; a closed channel just means polling.
        Ok(
            match tokio::time::timeout(timeout, self.commits.changed()).await {
                Ok(Ok(())) => true,
                Ok(Err(_)) => {
                    tokio::time::sleep(timeout).await;
                    false
                }
                Err(_) => {
                    tracing::debug!("no commit announced; polling the feed");
                    false
                }
            },
        )
    }
}

impl Drop for FakeClaim {
    fn drop(&mut self) {
        lock(&self.state).claimed.remove(&self.name);
    }
}
