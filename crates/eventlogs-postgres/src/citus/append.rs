//! Appends without a key on a distributed schema: one single-shard statement each.

use std::time::SystemTime;

use eventlogs_core::{
    backend::{AppendRequest, Appended},
    Error, Result,
};

use crate::append::appended;
use crate::error::{classify, Failure};
use crate::rows;
use crate::store::PostgresEventStore;

impl PostgresEventStore {
    /// Appends on a distributed schema; the request is validated. Keyed writes go through the
    /// claim protocol (`keyed`).
    pub(crate) async fn append_distributed(&self, request: &AppendRequest) -> Result<Appended> {
        if let Some(key) = request.idempotency_key() {
            return self.append_keyed_distributed(request, key).await;
        }
        let sql = self.citus_statements();
        let uuid = rows::uuid(&request.log_id());
        let expected = i64::try_from(request.expected_index()).unwrap_or(i64::MAX);
        let metadata = request.metadata();
        let payloads: Vec<&str> = request.events().iter().map(|e| e.json()).collect();
        let written: Result<Option<(u32, SystemTime)>, tokio_postgres::Error> =
            if let [payload] = payloads.as_slice() {
                // A router `INSERT … VALUES`; the foreign key to the previous event refuses
                // a gap.
                self.rows(&sql.append_one, &[&uuid, &expected, payload, &metadata])
                    .await?
                    .and_then(|rows| {
                        rows.first()
                            .map(|r| r.try_get(0).map(|at| (1, at)))
                            .transpose()
                    })
            } else {
                // A batch: delegated to the log's worker, which checks the previous event.
                self.rows(
                    &sql.append_events,
                    &[&uuid, &expected, &payloads, &metadata],
                )
                .await?
                .and_then(|rows| match rows.first() {
                    Some(row) => {
                        let count: i64 = row.try_get(0)?;
                        let at: Option<SystemTime> = row.try_get(1)?;
                        Ok(at
                            .filter(|_| count > 0)
                            .map(|at| (u32::try_from(count).unwrap_or(u32::MAX), at)))
                    }
                    None => Ok(None),
                })
            };
        match written {
            Ok(Some((count, recorded_at))) => Ok(appended(request, count, recorded_at)),
            Ok(None) => Err(self.previous_missing(request).await),
            Err(error) => Err(match classify(error) {
                Failure::IndexTaken => Error::ConcurrentAppend {
                    log_id: request.log_id(),
                    index: request.expected_index(),
                },
                Failure::PreviousMissing => self.previous_missing(request).await,
                Failure::KeyTaken => Error::Backend {
                    service: "postgres",
                    source: "unexpected key violation on an append without a key".into(),
                },
                Failure::Other(error) => error,
            }),
        }
    }
}
