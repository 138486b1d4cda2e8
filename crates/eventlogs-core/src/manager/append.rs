//! `create`, `append` and their `_with` forms: one atomic, optimistic, optionally idempotent write.

use tracing::Instrument;

use super::LogManager;
use crate::store::{AppendRequest, Appended};
use crate::{Aggregate, AppendOptions, LogId, LogState, Result};

impl<A: Aggregate> LogManager<A> {
    /// Creates the log `log_id` with its first event (index 0).
    ///
    /// Fails with [`Error::ConcurrentAppend`](crate::Error::ConcurrentAppend) when the log
    /// already exists.
    pub async fn create(&self, log_id: &LogId, event: &A::Event) -> Result<LogState> {
        self.create_with(log_id, std::slice::from_ref(event), &AppendOptions::new())
            .await
    }

    /// Creates the log `log_id` with a batch of events, atomically, with options.
    ///
    /// With an idempotency key, a retry returns
    /// [`Error::IdempotentReplay`](crate::Error::IdempotentReplay) naming the log the first
    /// call created, even when the retry passes a fresh log id.
    pub async fn create_with(
        &self,
        log_id: &LogId,
        events: &[A::Event],
        options: &AppendOptions,
    ) -> Result<LogState> {
        let appended = self
            .write(LogState::empty(*log_id), events, options, "create")
            .await?;
        Ok(appended.state())
    }

    /// Appends one event at `state.next_index()` of the log `state` belongs to.
    ///
    /// Fails with [`Error::ConcurrentAppend`](crate::Error::ConcurrentAppend) when another
    /// write took that index: reduce and retry, or let [`execute`](Self::execute) do it.
    pub async fn append(&self, state: &LogState, event: &A::Event) -> Result<LogState> {
        self.append_with(state, std::slice::from_ref(event), &AppendOptions::new())
            .await
    }

    /// Appends events atomically from `state.next_index()`, with options: all are written or
    /// none. The batch shares one idempotency key and one metadata value.
    pub async fn append_with(
        &self,
        state: &LogState,
        events: &[A::Event],
        options: &AppendOptions,
    ) -> Result<LogState> {
        let appended = self.write(*state, events, options, "append").await?;
        Ok(appended.state())
    }

    async fn write(
        &self,
        state: LogState,
        events: &[A::Event],
        options: &AppendOptions,
        operation: &'static str,
    ) -> Result<Appended> {
        let request = self.request(state, events, options)?;
        self.send(&request, operation).await
    }

    /// Sends a prepared request in an `eventlogs.append` span.
    pub(super) async fn send(
        &self,
        request: &AppendRequest,
        operation: &'static str,
    ) -> Result<Appended> {
        let span = tracing::info_span!(
            "eventlogs.append",
            op = operation,
            log_id = %request.log_id(),
            index = request.expected_index(),
            events = request.events().len(),
        );
        let started = std::time::Instant::now();
        let result = self
            .inner
            .store
            .append(request)
            .instrument(span.clone())
            .await;
        crate::telemetry::write(
            operation,
            &result,
            started.elapsed(),
            request.events().len(),
        );
        span.in_scope(|| match &result {
            Ok(_) => tracing::debug!("appended"),
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "append failed with a retryable error")
            }
            Err(e) => tracing::debug!(error = %e, kind = e.kind().as_str(), "append refused"),
        });
        result
    }
}
