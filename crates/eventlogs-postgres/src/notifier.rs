//! `Notifier`: announces committed appends to live subscriptions with one coalesced `NOTIFY`,
//! sent after the appends, never inside their transactions, and only while someone listens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::sync::Notify;

/// Coalesces appends into at most one `pg_notify` per interval, from a background task.
///
/// An append only sets a flag and wakes the task: it never waits for the notification, and
/// the notification never takes part in the append's transaction (a `NOTIFY` there would
/// serialize every committing writer on PostgreSQL's notification queue lock).
///
/// Listening subscriptions (in any process) hold a shared advisory lock, [`listeners_lock`];
/// the task looks for it at most once per [`PRESENCE_CHECK`] and sends nothing while nobody
/// holds it, so appends with no subscriber cost no statement at all beyond that check.
#[derive(Debug)]
pub(crate) struct Notifier {
    channel: String,
    interval: Duration,
    dirty: AtomicBool,
    running: AtomicBool,
    stopped: AtomicBool,
    wake: Notify,
    /// `eventlogs.listeners.{schema}`: the name of the listeners' advisory lock.
    listeners: String,
}

/// How long the task trusts what it last found out about listeners. A subscription that
/// starts listening gets its first wake-up within this (and polls meanwhile).
pub(crate) const PRESENCE_CHECK: Duration = Duration::from_secs(1);

/// Whether anyone holds the listeners' lock of `$1` in this database.
const PRESENCE_SQL: &str = "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks AS l, \
       (SELECT hashtextextended($1, 0) AS k) AS h \
     WHERE l.locktype = 'advisory' AND l.objsubid = 1 \
       AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
       AND l.classid = ((h.k >> 32) & 4294967295)::oid AND l.objid = (h.k & 4294967295)::oid)";

/// The statement a listening claim runs to say it listens (`$1`: [`listeners_lock`]).
pub(crate) const LISTENING_SQL: &str = "SELECT pg_advisory_lock_shared(hashtextextended($1, 0))";

/// The name of the advisory lock listeners of `schema` hold.
pub(crate) fn listeners_lock(schema: &str) -> String {
    format!("eventlogs.listeners.{schema}")
}

impl Notifier {
    pub(crate) fn new(schema: &str, interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            channel: channel(schema),
            listeners: listeners_lock(schema),
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
    // When the listeners were last looked for, and whether there were any.
    let mut presence: Option<(Instant, bool)> = None;
    loop {
        notifier.wake.notified().await;
        if notifier.stopped.load(Ordering::Acquire) {
            return;
        }
        if !notifier.dirty.swap(false, Ordering::AcqRel) {
            continue;
        }
        let fresh = presence.filter(|(at, _)| at.elapsed() < PRESENCE_CHECK);
        if fresh.is_some_and(|(_, listening)| !listening) {
            // Nobody listened a moment ago: no connection is taken from the appends.
            tokio::time::sleep(notifier.interval).await;
            continue;
        }
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let listening = match fresh {
                Some((_, listening)) => listening,
                None => {
                    let row = client
                        .query_one(PRESENCE_SQL, &[&notifier.listeners])
                        .await
                        .map_err(|e| e.to_string())?;
                    let listening: bool = row.get(0);
                    presence = Some((Instant::now(), listening));
                    listening
                }
            };
            if listening {
                client
                    .execute("SELECT pg_notify($1, '')", &[&notifier.channel])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(listening)
        };
        match tokio::time::timeout(notifier.interval.max(Duration::from_secs(1)), sent).await {
            Ok(Ok(true)) => {
                tracing::trace!(channel = %notifier.channel, "subscription wake-up sent")
            }
            Ok(Ok(false)) => tracing::trace!("no subscription listens; no wake-up sent"),
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
