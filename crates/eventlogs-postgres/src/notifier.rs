//! `Notifier`: announces committed appends to live subscriptions with one coalesced `NOTIFY`,
//! sent after the appends, never inside their transactions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::Notify;

/// Coalesces appends into at most one `pg_notify` per interval, from a background task.
///
/// An append only sets a flag and wakes the task: it never waits for the notification, and
/// the notification never takes part in the append's transaction (a `NOTIFY` there would
/// serialize every committing writer on PostgreSQL's notification queue lock).
#[derive(Debug)]
pub(crate) struct Notifier {
    channel: String,
    interval: Duration,
    dirty: AtomicBool,
    running: AtomicBool,
    stopped: AtomicBool,
    wake: Notify,
}

impl Notifier {
    pub(crate) fn new(channel: String, interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            channel,
            interval,
            dirty: AtomicBool::new(false),
            running: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    /// Records that an append committed; the task notifies soon.
    pub(crate) fn touch(self: &Arc<Self>, pool: &Pool) {
        self.dirty.store(true, Ordering::Release);
        if !self.running.swap(true, Ordering::AcqRel) {
            tokio::spawn(run(Running(Arc::clone(self)), pool.clone()));
        }
        self.wake.notify_one();
    }

    /// Ends the task (the store was dropped).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// Marks the task gone when it ends, so the next append starts another (for example after
/// the runtime that ran it shut down).
struct Running(Arc<Notifier>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

async fn run(running: Running, pool: Pool) {
    let notifier = &running.0;
    loop {
        notifier.wake.notified().await;
        if notifier.stopped.load(Ordering::Acquire) {
            return;
        }
        if !notifier.dirty.swap(false, Ordering::AcqRel) {
            continue;
        }
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .execute("SELECT pg_notify($1, '')", &[&notifier.channel])
                .await
                .map_err(|e| e.to_string())
        };
        match tokio::time::timeout(notifier.interval.max(Duration::from_secs(1)), sent).await {
            Ok(Ok(_)) => tracing::trace!(channel = %notifier.channel, "subscription wake-up sent"),
            Ok(Err(error)) => {
                tracing::debug!(%error, "subscription wake-up not sent; subscribers will poll");
            }
            Err(_) => tracing::debug!("subscription wake-up timed out; subscribers will poll"),
        }
        tokio::time::sleep(notifier.interval).await;
    }
}

/// The channel subscriptions of `schema` listen on (at most 63 bytes, like an identifier).
pub(crate) fn channel(schema: &str) -> String {
    let mut channel = format!("eventlogs_{schema}");
    channel.truncate(63);
    channel
}
