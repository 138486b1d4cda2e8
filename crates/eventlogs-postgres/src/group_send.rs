//! Sending a group: one statement for many requests, the outcome of each, and the split
//! that keeps a failure caused by some requests from failing the others.

use std::time::SystemTime;

use eventlogs_core::{
    backend::{AppendRequest, Appended},
    Error, Result,
};
use futures::future::BoxFuture;

use crate::append::appended;
use crate::error::query_error;
use crate::group_sql::{all_single_unkeyed, outcome, GroupParams};
use crate::rows;
use crate::store::PostgresEventStore;

impl PostgresEventStore {
    /// Sends `requests` as one statement and returns each one's outcome, in order. A statement
    /// that fails because of some of its requests is split in two and each half sent again.
    pub(crate) fn send_group<'a>(
        &'a self,
        requests: &'a [AppendRequest],
    ) -> BoxFuture<'a, Vec<Result<Appended>>> {
        Box::pin(async move {
            if let [request] = requests {
                return vec![self.append_single(request).await];
            }
            self.groups().count_statement(requests.len() as u64);
            if all_single_unkeyed(requests) {
                return self.send_one_each(requests).await;
            }
            let p = GroupParams::new(requests);
            let rows = self
                .rows(
                    &self.statements().append_group,
                    &[
                        &p.logs,
                        &p.expected,
                        &p.metadata,
                        &p.keys,
                        &p.hashes,
                        &p.counts,
                        &p.event_request,
                        &p.event_step,
                        &p.payloads,
                        &p.versions,
                    ],
                )
                .await;
            match rows {
                Ok(Ok(rows)) if rows.len() == requests.len() => {
                    let outcomes: Vec<_> = requests
                        .iter()
                        .zip(&rows)
                        .map(|(request, row)| outcome(request, row))
                        .collect();
                    if outcomes.iter().any(Result::is_ok) {
                        self.announce();
                    }
                    outcomes
                }
                Ok(Ok(rows)) => {
                    let error = Error::Backend {
                        service: "postgres",
                        source: format!(
                            "group append returned {} rows for {} requests",
                            rows.len(),
                            requests.len()
                        )
                        .into(),
                    };
                    each(&error, requests.len())
                }
                Ok(Err(error)) if concerns_some_requests(&error) => {
                    self.split(requests, &error).await
                }
                Ok(Err(error)) => each(&query_error(error), requests.len()),
                Err(error) => each(&error, requests.len()),
            }
        })
    }

    /// Sends a group of one-event requests without keys with the lean statement. A request
    /// it did not write (its index taken, or its previous index missing) is sent again alone,
    /// which writes nothing more than it would have and names the error exactly.
    async fn send_one_each(&self, requests: &[AppendRequest]) -> Vec<Result<Appended>> {
        let mut logs = Vec::with_capacity(requests.len());
        let mut expected = Vec::with_capacity(requests.len());
        let mut payloads = Vec::with_capacity(requests.len());
        let mut metadata = Vec::with_capacity(requests.len());
        let mut versions = Vec::with_capacity(requests.len());
        for request in requests {
            versions.push(crate::group_sql::version(request));
            logs.push(rows::uuid(&request.log_id()));
            expected.push(i64::try_from(request.expected_index()).unwrap_or(i64::MAX));
            payloads.push(request.events()[0].json());
            metadata.push(request.metadata());
        }
        let sql = &self.statements().append_group_one;
        let written = match self
            .rows(sql, &[&logs, &expected, &payloads, &metadata, &versions])
            .await
        {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) if concerns_some_requests(&error) => {
                return self.split(requests, &error).await;
            }
            Ok(Err(error)) => return each(&query_error(error), requests.len()),
            Err(error) => return each(&error, requests.len()),
        };
        let mut at: Vec<Option<SystemTime>> = vec![None; requests.len()];
        for row in &written {
            let (Ok(log), Ok(time)) = (
                row.try_get::<_, uuid::Uuid>(0),
                row.try_get::<_, SystemTime>(1),
            ) else {
                // Which request it wrote is unknown, so none may be sent again as unwritten.
                let error = Error::Backend {
                    service: "postgres",
                    source: "unreadable group append row".into(),
                };
                return each(&error, requests.len());
            };
            if let Some(i) = logs.iter().position(|l| *l == log) {
                at[i] = Some(time);
            }
        }
        if !written.is_empty() {
            self.announce();
        }
        let outcomes = requests.iter().zip(at).map(|(request, at)| async move {
            match at {
                Some(time) => Ok(appended(request, 1, time)),
                None => self.append_single(request).await,
            }
        });
        futures::future::join_all(outcomes).await
    }

    /// Splits a group whose statement failed because of some of its requests, and sends each
    /// half again.
    async fn split(
        &self,
        requests: &[AppendRequest],
        error: &tokio_postgres::Error,
    ) -> Vec<Result<Appended>> {
        self.groups().count_split();
        tracing::debug!(requests = requests.len(), %error, "group append split");
        let (left, right) = requests.split_at(requests.len() / 2);
        let (mut left, right) = futures::join!(self.send_group(left), self.send_group(right));
        left.extend(right);
        left
    }
}

/// Whether a statement error may concern only some of its requests (a payload the server
/// refuses, a race with a transaction elsewhere on one log or key, a deadlock, a trigger of
/// the user's), rather than the connection or the server, which would fail every request.
fn concerns_some_requests(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_some_and(|db| {
        let class = &db.code().code()[..2];
        matches!(class, "22" | "23" | "40" | "54" | "P0")
    })
}

/// One copy of `error` for each of `n` callers: the same kind, retryable or not alike.
fn each(error: &Error, n: usize) -> Vec<Result<Appended>> {
    (0..n).map(|_| Err(copy(error))).collect()
}

fn copy(error: &Error) -> Error {
    let source = || -> eventlogs_core::BoxError { error.to_string().into() };
    match error {
        Error::Timeout { operation, after } => Error::Timeout {
            operation,
            after: *after,
        },
        Error::Cancelled { service, reason } => Error::Cancelled {
            service,
            reason: reason.clone(),
        },
        Error::Unavailable { service, source: s } => Error::Unavailable {
            service,
            source: format!("{s}").into(),
        },
        Error::InvalidInput(input) => Error::InvalidInput(input.clone()),
        Error::Backend { service, source: s } => Error::Backend {
            service,
            source: format!("{s}").into(),
        },
        _ => Error::Backend {
            service: "postgres",
            source: source(),
        },
    }
}
