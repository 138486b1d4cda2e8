//! `create`, `append` and `append_batch`: one atomic, optimistic, optionally idempotent write.

use tracing::Instrument;

use super::LogManager;
use crate::{Aggregate, AppendOptions, AppendRequest, Error, LogId, LogState, NewEvent, Result};

impl<A: Aggregate> LogManager<A> {
    /// Creates the log `log_id` with its first event (index 0).
    ///
    /// With an idempotency key, a retry returns [`Error::IdempotentReplay`] naming the log the
    /// first call created, even when the retry passes a fresh log id.
    pub async fn create(
        &self,
        log_id: &LogId,
        event: &A::Event,
        options: &AppendOptions,
    ) -> Result<LogState> {
        self.write(
            *log_id,
            LogState::empty(*log_id),
            std::slice::from_ref(event),
            options,
            "create",
        )
        .await
    }

    /// Creates the log `log_id` with a batch of events, atomically.
    pub async fn create_batch(
        &self,
        log_id: &LogId,
        events: &[A::Event],
        options: &AppendOptions,
    ) -> Result<LogState> {
        self.write(
            *log_id,
            LogState::empty(*log_id),
            events,
            options,
            "create_batch",
        )
        .await
    }

    /// Appends one event at `state.next_index()`.
    ///
    /// Fails with [`Error::ConcurrentAppend`] when another write took that index (reduce and
    /// retry), and with [`Error::WrongLog`] when `state` belongs to another log.
    pub async fn append(
        &self,
        log_id: &LogId,
        state: &LogState,
        event: &A::Event,
        options: &AppendOptions,
    ) -> Result<LogState> {
        self.write(
            *log_id,
            *state,
            std::slice::from_ref(event),
            options,
            "append",
        )
        .await
    }

    /// Appends events atomically from `state.next_index()`: all are written or none. The
    /// batch shares one idempotency key and one metadata value.
    pub async fn append_batch(
        &self,
        log_id: &LogId,
        state: &LogState,
        events: &[A::Event],
        options: &AppendOptions,
    ) -> Result<LogState> {
        self.write(*log_id, *state, events, options, "append_batch")
            .await
    }

    async fn write(
        &self,
        log_id: LogId,
        state: LogState,
        events: &[A::Event],
        options: &AppendOptions,
        operation: &'static str,
    ) -> Result<LogState> {
        let span = tracing::info_span!(
            "eventlogs.append",
            op = operation,
            log_id = %log_id,
            index = state.next_index(),
            events = events.len(),
        );
        async {
            let result = self.try_write(log_id, state, events, options).await;
            match &result {
                Ok(next) => tracing::debug!(next_index = next.next_index(), "appended"),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "append failed with a retryable error")
                }
                Err(e) => tracing::debug!(error = %e, kind = e.kind(), "append refused"),
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn try_write(
        &self,
        log_id: LogId,
        state: LogState,
        events: &[A::Event],
        options: &AppendOptions,
    ) -> Result<LogState> {
        if state.log_id() != log_id {
            return Err(Error::WrongLog {
                log_id,
                state_log_id: state.log_id(),
            });
        }
        // An over-long batch is refused before anything is serialized; sizes and contents are
        // checked once, by the store's `AppendRequest::validate`.
        crate::store::check_count(events.len(), self.inner.store.limits())?;
        let new_events = events
            .iter()
            .map(NewEvent::new)
            .collect::<Result<Vec<_>>>()?;
        let metadata = options.meta().map(NewEvent::new).transpose()?;
        let request = AppendRequest::new(
            state,
            new_events,
            metadata,
            options.key().map(str::to_owned),
        );
        let appended = self.inner.store.append(&request).await?;
        Ok(appended.state())
    }
}
