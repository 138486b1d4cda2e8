//! The rows of a streamed read as events, each row awaited within the statement timeout.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool_postgres::Object;
use eventlogs_core::{backend::RawEvent, LogId, Result};
use futures::Stream;
use tokio::time::{Instant, Sleep};
use tokio_postgres::RowStream;

use crate::error::{query_error, statement_timeout};
use crate::rows;
use crate::store::discard;

/// The deadline of a wait whose timeout does not fit the clock (as Tokio uses: 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The rows of a `stream` query as events, each awaited within the statement timeout.
///
/// The deadline counts from the moment the consumer waits for a row that has not arrived; a
/// row already received is returned without reading the clock or touching a timer. One timer
/// per stream is re-armed when a wait begins (later deadlines only update it in place).
pub(crate) struct Rows {
    log_id: LogId,
    /// The pooled connection; `None` once discarded after a timeout.
    client: Option<Object>,
    rows: Pin<Box<RowStream>>,
    timeout: Duration,
    /// The idle deadline, created at the first wait.
    idle: Option<Pin<Box<Sleep>>>,
    /// Whether `idle` is armed for the current wait.
    waiting: bool,
    done: bool,
}

impl Rows {
    /// The events of `rows`, a query of `log_id` run on `client`, which travels with the
    /// stream and returns to the pool when it ends.
    pub(crate) fn new(log_id: LogId, client: Object, rows: RowStream, timeout: Duration) -> Self {
        Self {
            log_id,
            client: Some(client),
            rows: Box::pin(rows),
            timeout,
            idle: None,
            waiting: false,
            done: false,
        }
    }
}

impl Stream for Rows {
    type Item = Result<RawEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.rows.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(row))) => {
                this.waiting = false;
                Poll::Ready(Some(rows::event(&this.log_id, &row)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(query_error(e))))
            }
            Poll::Ready(None) => {
                this.done = true;
                // Back to the pool as soon as the last row is read.
                this.client = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let now = Instant::now();
                    // As `tokio::time::timeout` does for a deadline past the clock's range.
                    let deadline = now
                        .checked_add(this.timeout)
                        .or_else(|| now.checked_add(FAR_FUTURE))
                        .unwrap_or(now);
                    match &mut this.idle {
                        Some(idle) => idle.as_mut().reset(deadline),
                        None => this.idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let Some(idle) = &mut this.idle else {
                    return Poll::Pending;
                };
                match idle.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        this.done = true;
                        let error = match this.client.take() {
                            Some(object) => discard(object, this.timeout),
                            None => statement_timeout(this.timeout),
                        };
                        Poll::Ready(Some(Err(error)))
                    }
                }
            }
        }
    }
}
