//! `Subscription`: claims a name, catches up from its checkpoint, then follows the feed live.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::watch;
use tracing::Instrument;

use super::{Delivery, SubscriptionClaim, SubscriptionHandle, SubscriptionStore};
use crate::telemetry;
use crate::{
    AtLeastOnce, FeedPage, FeedPosition, Handler, Lag, Result, SubscriptionName,
    SubscriptionOptions,
};

/// How often a catching-up subscription reads its lag for [`telemetry::SUBSCRIPTION_LAG`].
const LAG_EVERY: Duration = Duration::from_secs(1);

/// A named, resumable reader of the global feed that keeps a read model up to date.
///
/// [`run`](Self::run) claims the name (one active consumer per name, whichever process),
/// reads on from the stored checkpoint in batches, hands each batch to the handler, stores
/// the checkpoint, and when caught up waits for a wake-up or the poll interval. A consumer
/// that finds the name taken retries every `claim_interval` and takes over when the holder
/// stops or dies. Retryable store errors release the claim and claim again after a backoff.
///
/// [`spawn`](Self::spawn) runs it in the background and returns a [`SubscriptionHandle`];
/// [`run`](Self::run) runs it in the caller's task until a shutdown future completes.
///
/// ```no_run
/// # async fn demo<S: eventlogs_core::backend::SubscriptionStore>(store: S) -> eventlogs_core::Result<()> {
/// use eventlogs_core::{FeedEvent, FeedFilter, Subscription, SubscriptionOptions};
///
/// let options = SubscriptionOptions::default()
///     .with_batch_size(200)
///     .with_filter(FeedFilter::all().with_event_types(["Deposited"]));
/// let deposits = Subscription::new(store, "deposits", options)?;
/// let mut running = deposits.spawn(|events: Vec<FeedEvent>| async move {
///     println!("{} deposits", events.len());
///     Ok(())
/// });
/// running.live().await; // it holds its name and reads the feed
/// // ...
/// running.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Subscription<S: SubscriptionStore> {
    store: Arc<S>,
    name: SubscriptionName,
    options: SubscriptionOptions,
}

/// The shutdown signal, pollable again after it fired.
type Stop<'a> = Shared<BoxFuture<'a, ()>>;

impl<S: SubscriptionStore> Subscription<S> {
    /// A subscription called `name` on `store` (a store, a clone of one, or an `Arc` of one).
    /// Fails on an invalid name or options.
    pub fn new(store: S, name: &str, options: SubscriptionOptions) -> Result<Self> {
        options.validate()?;
        Ok(Self {
            store: Arc::new(store),
            name: SubscriptionName::new(name)?,
            options,
        })
    }

    /// Runs with at-least-once delivery in a background task, until the handle stops it (or
    /// is dropped) or an error that retrying will not fix. Needs a Tokio runtime. The
    /// subscription stays usable here for [`lag`](Self::lag) and
    /// [`checkpoint`](Self::checkpoint); the handle says whether it is live.
    pub fn spawn<H: Handler + 'static>(&self, handler: H) -> SubscriptionHandle {
        self.spawn_with(AtLeastOnce(handler))
    }

    /// Runs with the given delivery mode in a background task, like [`spawn`](Self::spawn).
    pub fn spawn_with<D: Delivery<S::Claim> + 'static>(&self, delivery: D) -> SubscriptionHandle {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (live, watch_live) = watch::channel(false);
        let name = self.name.clone();
        let this = Self {
            store: Arc::clone(&self.store),
            name: self.name.clone(),
            options: self.options.clone(),
        };
        let task = tokio::spawn(async move {
            // A dropped handle stops the subscription too.
            let shutdown = async move {
                let _ = stopped.await;
            };
            this.run_inner(delivery, shutdown, Some(&live)).await
        });
        SubscriptionHandle::new(name, stop, watch_live, task)
    }

    /// The subscription's name.
    #[must_use]
    pub fn name(&self) -> &SubscriptionName {
        &self.name
    }

    /// The store it reads.
    #[must_use]
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The stored checkpoint.
    pub async fn checkpoint(&self) -> Result<FeedPosition> {
        self.store.checkpoint(&self.name).await
    }

    /// How far the subscription is behind the feed.
    pub async fn lag(&self) -> Result<Lag> {
        self.store.lag(&self.name).await
    }

    /// Moves the checkpoint to `position`: [`FeedPosition::START`] replays the whole feed (to
    /// rebuild a read model after clearing it), an event's position resumes after that event.
    /// Refused with [`Error::SubscriptionRunning`](crate::Error::SubscriptionRunning),
    /// changing nothing, while a consumer (in any process) is running the subscription.
    pub async fn reset(&self, position: FeedPosition) -> Result<()> {
        let span = tracing::info_span!("eventlogs.subscription.reset", subscription = %self.name, %position);
        async {
            let Some(mut claim) = self.store.claim(&self.name).await? else {
                tracing::info!("subscription is running elsewhere; reset refused");
                return Err(crate::Error::SubscriptionRunning {
                    subscription: self.name.as_str().to_owned(),
                });
            };
            let saved = claim.save(position).await;
            claim.release().await;
            saved?;
            tracing::info!("subscription checkpoint reset");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Runs with at-least-once delivery until `shutdown` completes (between batches; a batch
    /// being handled is finished first) or an error that retrying will not fix.
    pub async fn run<H: Handler>(
        &self,
        handler: H,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        self.run_with(AtLeastOnce(handler), shutdown).await
    }

    /// Runs with the given delivery mode, like [`run`](Self::run).
    pub async fn run_with<D: Delivery<S::Claim>>(
        &self,
        delivery: D,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        self.run_inner(delivery, shutdown, None).await
    }

    /// Runs until shutdown or a fatal error, reporting on `live` whether it holds the name.
    async fn run_inner<D: Delivery<S::Claim>>(
        &self,
        mut delivery: D,
        shutdown: impl Future<Output = ()> + Send,
        live: Option<&watch::Sender<bool>>,
    ) -> Result<()> {
        let set_live = |value: bool| {
            if let Some(live) = live {
                live.send_replace(value);
            }
        };
        let stop: Stop<'_> = shutdown.boxed().shared();
        let span = tracing::info_span!("eventlogs.subscription", subscription = %self.name);
        async move {
            loop {
                let Some(mut claim) = self.claim(&stop).await? else {
                    return Ok(());
                };
                set_live(true);
                let consumed = self.consume(&mut claim, &mut delivery, &stop).await;
                set_live(false);
                match consumed {
                    Ok(()) => {
                        claim.release().await;
                        tracing::info!("subscription stopped");
                        return Ok(());
                    }
                    Err(error) if error.is_retryable() => {
                        tracing::warn!(%error, "subscription interrupted; releasing and claiming again");
                        telemetry::subscription_handover(self.name.as_str());
                        drop(claim);
                        if self.pause(&stop, self.options.retry_backoff).await {
                            return Ok(());
                        }
                    }
                    Err(error) => {
                        claim.release().await;
                        tracing::error!(%error, kind = error.kind().as_str(), "subscription failed");
                        return Err(error);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Claims the name, waiting while another consumer holds it. `None` on shutdown.
    async fn claim(&self, stop: &Stop<'_>) -> Result<Option<S::Claim>> {
        let mut waiting = false;
        loop {
            let attempt = tokio::select! {
                biased;
                () = stop.clone() => return Ok(None),
                attempt = self.store.claim(&self.name) => attempt,
            };
            let pause = match attempt {
                Ok(Some(claim)) => {
                    tracing::info!("subscription claimed");
                    telemetry::subscription_claim(self.name.as_str());
                    return Ok(Some(claim));
                }
                Ok(None) => {
                    if !waiting {
                        tracing::info!("subscription held by another consumer; standing by");
                        waiting = true;
                    }
                    self.options.claim_interval
                }
                Err(error) if error.is_retryable() => {
                    tracing::warn!(%error, "claiming the subscription failed; retrying");
                    self.options.retry_backoff
                }
                Err(error) => return Err(error),
            };
            if self.pause(stop, pause).await {
                return Ok(None);
            }
        }
    }

    /// Sleeps for `how_long`; true when shutdown came first.
    async fn pause(&self, stop: &Stop<'_>, how_long: Duration) -> bool {
        tokio::select! {
            biased;
            () = stop.clone() => true,
            () = tokio::time::sleep(how_long) => false,
        }
    }

    /// Waits for a wake-up or `timeout`; `Ok(true)` when woken. Shutdown ends it early too.
    async fn wait(&self, claim: &mut S::Claim, stop: &Stop<'_>, timeout: Duration) -> Result<bool> {
        tokio::select! {
            biased;
            () = stop.clone() => Ok(false),
            woken = claim.wait(timeout) => woken,
        }
    }

    /// Catches up and follows the feed while the claim holds. `Ok` on shutdown.
    async fn consume<D: Delivery<S::Claim>>(
        &self,
        claim: &mut S::Claim,
        delivery: &mut D,
        stop: &Stop<'_>,
    ) -> Result<()> {
        let mut after = claim.checkpoint().await?;
        tracing::info!(checkpoint = %after, "subscription resumed from its checkpoint");
        let upcasters = &self.options.upcasters;
        let stored_filter = upcasters.stored_filter(&self.options.filter);
        let filter = &stored_filter;
        let poll = self.options.poll_interval;
        // Announced events can still be held back when read (an older transaction is open
        // somewhere), and no second announcement comes when that transaction ends. So after
        // a wake-up or a batch, an empty read is retried soon, backing off to the poll
        // interval, instead of waiting for the next announcement.
        let mut held_back: Option<Duration> = None;
        let mut active = false;
        // While catching up, the next batch is read while the current one is delivered.
        let mut prefetched: Option<Result<FeedPage>> = None;
        let batch_size = self.options.batch_size;
        let mut lag_seen: Option<Instant> = None;
        loop {
            let page = match prefetched.take() {
                Some(page) => page?,
                None => tokio::select! {
                    biased;
                    () = stop.clone() => return Ok(()),
                    page = self.store.read_page(after, batch_size, filter) => page?,
                },
            };
            let Some(through) = page.scanned_through else {
                // Nothing more to read now: caught up with what the feed shows.
                telemetry::subscription_lag(self.name.as_str(), 0);
                if active || held_back.is_some() {
                    let first = self.options.held_back_retry;
                    held_back = Some(held_back.map_or(first, |d| d * 2).min(poll));
                }
                active = self.wait(claim, stop, held_back.unwrap_or(poll)).await?;
                continue;
            };
            let page = upcasters.upcast_page(&self.options.filter, page)?;
            let more = page.more;
            let span = tracing::debug_span!(
                "eventlogs.subscription.batch",
                delivered = page.events.len(),
                through = %through
            );
            let events = page.events.len();
            let deliver = async {
                let started = Instant::now();
                let delivered = delivery
                    .deliver(&self.name, claim, page.events, through)
                    .instrument(span)
                    .await;
                if delivered.is_ok() {
                    telemetry::subscription_batch(self.name.as_str(), events, started.elapsed());
                }
                delivered
            };
            if more && stop.clone().now_or_never().is_none() {
                let (delivered, next) =
                    tokio::join!(deliver, self.store.read_page(through, batch_size, filter));
                delivered?;
                prefetched = Some(next);
            } else {
                deliver.await?;
            }
            after = through;
            if more {
                // Catching up: read on at once, reporting the lag now and then.
                if lag_seen.is_none_or(|seen| seen.elapsed() >= LAG_EVERY) {
                    lag_seen = Some(Instant::now());
                    match self.store.lag(&self.name).await {
                        Ok(lag) => telemetry::subscription_lag(self.name.as_str(), lag.events),
                        Err(error) => tracing::debug!(%error, "subscription lag not read"),
                    }
                }
                (held_back, active) = (None, true);
                continue;
            }
            telemetry::subscription_lag(self.name.as_str(), 0);
            // At the head of the feed: the next events come with the next wake-up. Reading
            // again at once would deliver (and checkpoint) a few events at a time, costing
            // the writers a commit per handful of events. Re-read after a short pause in case
            // part of what was announced is still held back.
            let pause = self.options.head_pause.min(poll);
            held_back = Some(pause);
            active = self.wait(claim, stop, pause).await?;
        }
    }
}
