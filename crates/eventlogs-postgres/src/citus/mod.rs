//! The store on a Citus cluster: finding out whether the schema is distributed, distributing it
//! in `migrate`, and the append paths that keep every statement on one worker.
//!
//! On a distributed schema, `events` and `log_keys` are distributed by log id (co-located) and
//! `idempotency_keys` by key. Every append is a single-shard statement with no two-phase
//! commit: an `INSERT … VALUES` for a create, an `INSERT … SELECT` from the previous event's row
//! for an append, a function delegated to the log's worker for a batch create; a keyed write
//! claims its key on the key's shard first and then writes its events and the log's record of
//! the key together on the log's worker (see `keyed`). The global feed is refused there.

mod append;
mod keyed;
mod sql;

use std::sync::atomic::Ordering;

use deadpool_postgres::Transaction;
use eventlogs_core::{Error, InvalidInput, Result};

pub(crate) use sql::CitusStatements;

use crate::error::query_error;
use crate::store::PostgresEventStore;

/// The layout as kept in the store: not asked yet, single, distributed.
const UNKNOWN: u8 = 0;
const SINGLE: u8 = 1;
const DISTRIBUTED: u8 = 2;

/// How the schema's tables are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Tables on one server (PostgreSQL, or local tables on a Citus coordinator).
    Single,
    /// `events` distributed over a Citus cluster.
    Distributed,
}

/// The error of an operation a distributed schema does not offer.
pub(crate) fn unsupported(operation: &'static str) -> Error {
    Error::Unsupported {
        operation,
        reason: "the schema is distributed over a Citus cluster, where the global feed's order \
                 (transaction ids and positions) exists per worker only, so a reader could skip \
                 events; read logs with reduce/load/stream, or run the feed on an undistributed \
                 schema"
            .into(),
    }
}

/// The error of another operation a distributed schema does not offer, and why.
pub(crate) fn unsupported_here(operation: &'static str, why: &str) -> Error {
    Error::Unsupported {
        operation,
        reason: format!("the schema is distributed over a Citus cluster: {why}"),
    }
}

impl PostgresEventStore {
    /// The schema's layout, asked of the server on first use (and after `migrate`) and then
    /// kept: `Distributed` when the Citus extension is there and `events` is one of its
    /// distributed tables.
    pub(crate) async fn layout(&self) -> Result<Layout> {
        match self.layout_cell().load(Ordering::Acquire) {
            SINGLE => return Ok(Layout::Single),
            DISTRIBUTED => return Ok(Layout::Distributed),
            _ => {}
        }
        let citus = self
            .rows(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')",
                &[],
            )
            .await?
            .map_err(query_error)?;
        let mut layout = Layout::Single;
        if citus.first().is_some_and(|r| r.get::<_, bool>(0)) {
            let events = format!("{}.events", self.quoted_schema());
            let distributed = self
                .rows(
                    "SELECT EXISTS (SELECT 1 FROM pg_dist_partition \
                     WHERE logicalrelid = to_regclass($1::text))",
                    &[&events],
                )
                .await?
                .map_err(query_error)?;
            if distributed.first().is_some_and(|r| r.get::<_, bool>(0)) {
                layout = Layout::Distributed;
            }
        }
        let code = match layout {
            Layout::Single => SINGLE,
            Layout::Distributed => DISTRIBUTED,
        };
        self.layout_cell().store(code, Ordering::Release);
        Ok(layout)
    }

    /// Forgets the layout, so the next call asks again (after `migrate`).
    pub(crate) fn forget_layout(&self) {
        self.layout_cell().store(UNKNOWN, Ordering::Release);
    }

    /// Refuses an operation of the global feed on a distributed schema.
    pub(crate) async fn refuse_on_distributed(&self, operation: &'static str) -> Result<()> {
        match self.layout().await? {
            Layout::Single => Ok(()),
            Layout::Distributed => Err(unsupported(operation)),
        }
    }
}

/// Distributes the migrated tables over the cluster and installs the worker-side functions,
/// in the migration's transaction. Refuses a server without Citus, or a Citus worker.
pub(crate) async fn distribute(tx: &Transaction<'_>, schema: &str) -> Result<()> {
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'citus')",
            &[],
        )
        .await
        .map_err(query_error)?;
    if !row.get::<_, bool>(0) {
        return Err(InvalidInput::Config(
            "distributed(true) needs a Citus coordinator, and this server has no Citus extension \
             (CREATE EXTENSION citus, with citus in shared_preload_libraries)"
                .into(),
        )
        .into());
    }
    let row = tx
        .query_one("SELECT citus_is_coordinator()", &[])
        .await
        .map_err(query_error)?;
    if !row.get::<_, bool>(0) {
        return Err(InvalidInput::Config(
            "distributed(true): this server is a Citus worker; connect to the coordinator".into(),
        )
        .into());
    }
    let events = format!("{schema}.events");
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = $1::text::regclass)",
            &[&events],
        )
        .await
        .map_err(query_error)?;
    // One statement at a time: Citus refuses to pass a multi-statement string on to workers.
    if !row.get::<_, bool>(0) {
        for statement in sql::DISTRIBUTE_TABLES {
            tx.batch_execute(&statement.replace("{schema}", schema))
                .await
                .map_err(query_error)?;
        }
    }
    let function = format!("{schema}.append_keyed(uuid,bigint,text[],text,text,bigint,uuid)");
    let row = tx
        .query_one("SELECT to_regprocedure($1::text) IS NULL", &[&function])
        .await
        .map_err(query_error)?;
    if row.get::<_, bool>(0) {
        for statement in sql::DISTRIBUTE_FUNCTIONS {
            tx.batch_execute(&statement.replace("{schema}", schema))
                .await
                .map_err(query_error)?;
        }
    }
    tracing::info!("schema distributed over the Citus cluster");
    Ok(())
}
