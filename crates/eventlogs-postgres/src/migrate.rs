//! `migrate`: versioned migrations applied in one transaction under an advisory lock, and on a
//! Citus coordinator with `distributed(true)`, the distribution of the tables.

use tracing::Instrument;

use eventlogs_core::Result;

use crate::error::query_error;
use crate::schema::{MIGRATIONS, MIGRATIONS_TABLE};
use crate::store::PostgresEventStore;

impl PostgresEventStore {
    /// Creates or upgrades the schema: applies every pending [`MIGRATIONS`] entry in one
    /// transaction under an advisory lock, so concurrent calls from several processes are safe
    /// and a second call does nothing.
    pub async fn migrate(&self) -> Result<()> {
        let span =
            tracing::info_span!("eventlogs.postgres.migrate", schema = %self.config().schema);
        self.try_migrate().instrument(span).await
    }

    async fn try_migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let schema = self.quoted_schema();
        let tx = client.transaction().await.map_err(query_error)?;
        let lock = format!("eventlogs.migrate.{}", self.config().schema);
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock])
            .await
            .map_err(query_error)?;
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(query_error)?;
        tx.batch_execute(&MIGRATIONS_TABLE.replace("{schema}", schema))
            .await
            .map_err(query_error)?;
        let current: Option<i32> = tx
            .query_one(
                &format!("SELECT max(version) FROM {schema}.schema_migrations"),
                &[],
            )
            .await
            .map_err(query_error)?
            .get(0);
        for migration in MIGRATIONS.iter().filter(|m| Some(m.version) > current) {
            tx.batch_execute(&migration.sql.replace("{schema}", schema))
                .await
                .map_err(query_error)?;
            tx.execute(
                &format!(
                    "INSERT INTO {schema}.schema_migrations (version, description) VALUES ($1, $2)"
                ),
                &[&migration.version, &migration.description],
            )
            .await
            .map_err(query_error)?;
            tracing::info!(version = migration.version, "applied migration");
        }
        if self.config().distributed {
            crate::citus::distribute(&tx, schema).await?;
        }
        tx.commit().await.map_err(query_error)?;
        // The layout may have changed: find it out again on next use.
        self.forget_layout();
        Ok(())
    }
}
