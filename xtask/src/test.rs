//! `cargo xtask test`: provisions PostgreSQL, Redis and Citus, then runs every test of the
//! workspace against them, including README and doc examples.

use std::process::Command;

use crate::services::Services;
use crate::util::{cargo, has_cargo_subcommand, run as run_command};

/// Runs the whole suite; `args` go to the test runner (for example a name filter).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    // Fail in seconds, before compiling, when there is nothing to test against.
    crate::services::source()?;
    // Build first, so servers are not kept waiting through a compile.
    run_command(cargo_with(
        &[
            "test",
            "--workspace",
            "--all-features",
            "--no-run",
            "--quiet",
        ],
        &Services::default(),
    ))?;
    let services = Services::provision()?;
    let result = run_suites(args, &services);
    drop(services);
    result
}

fn cargo_with(args: &[&str], services: &Services) -> Command {
    let mut command = cargo();
    command.args(args);
    for (name, value) in &services.env {
        command.env(name, value);
    }
    command
}

fn run_suites(args: &[String], services: &Services) -> Result<(), String> {
    if has_cargo_subcommand("nextest") {
        let mut nextest = cargo_with(&[], services);
        nextest.args([
            "nextest",
            "run",
            "--workspace",
            "--all-features",
            "--no-fail-fast",
        ]);
        nextest.args(args);
        run_command(nextest)?;
    } else {
        println!("xtask: cargo-nextest not found; using cargo test");
        let mut test = cargo_with(&[], services);
        test.args([
            "test",
            "--workspace",
            "--all-features",
            "--all-targets",
            "--no-fail-fast",
            "--",
        ]);
        test.args(args);
        run_command(test)?;
    }
    // nextest does not run doctests; they include the README's examples. Runner options (such
    // as nextest's `-E`) mean nothing to them, so they only get plain name filters.
    // A run narrowed by a filter expression (`-E …`) selects nextest tests only.
    if args.iter().all(|a| !a.starts_with('-')) {
        let mut doc = cargo_with(&[], services);
        doc.args(["test", "--workspace", "--all-features", "--doc", "--"]);
        doc.args(args);
        run_command(doc)?;
    } else {
        println!("xtask: doc tests skipped (they take plain name filters, not runner options)");
    }
    if args.is_empty() {
        // The examples run against the servers too, as a user would run them.
        for example in [
            "quickstart",
            "projection",
            "group_append",
            "metrics",
            "lifecycle",
        ] {
            let mut run = cargo_with(
                &[
                    "run",
                    "--quiet",
                    "-p",
                    "eventlogs",
                    "--all-features",
                    "--example",
                    example,
                ],
                services,
            );
            run.env("RUST_LOG", "warn");
            run_command(run)?;
            println!("xtask: example {example} passed");
        }
        // A short smoke run keeps the benchmark harness compiling and working (`cargo xtask
        // bench` is the real, release-mode measurement).
        let mut bench = cargo_with(&["run", "--quiet", "-p", "eventlogs-bench", "--"], services);
        bench.args(["--seconds", "0.2", "--big-log", "5000"]);
        run_command(bench)?;
        println!("xtask: benchmark smoke run passed");
    }
    Ok(())
}
