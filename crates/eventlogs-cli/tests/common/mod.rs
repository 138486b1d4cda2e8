//! Running the `eventlogs` binary against a schema of a test's own.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Output};
use std::sync::Arc;

use eventlogs::postgres::PostgresEventStore;
use serde_json::Value;

/// A schema of the test's own, migrated through the binary.
pub(crate) fn schema(test: &str) -> String {
    format!("cli_{test}_{}", std::process::id())
}

/// Runs the binary with `args` on `schema` of the database at `url`.
pub(crate) fn eventlogs(url: &str, schema: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_eventlogs"))
        .env("EVENTLOGS_DATABASE_URL", url)
        .args(["--schema", schema])
        .args(args)
        .output()
        .unwrap()
}

/// The JSON a successful run printed.
pub(crate) fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The schema migrated by the binary, and a store on it.
pub(crate) async fn store(url: &str, schema: &str) -> Arc<PostgresEventStore> {
    let out = eventlogs(url, schema, &["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    Arc::new(
        PostgresEventStore::builder(url)
            .schema(schema)
            .build()
            .unwrap(),
    )
}
