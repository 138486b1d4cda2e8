//! `cargo xtask test`: runs every test of the workspace, including README and doc examples.

use crate::util::{cargo, has_cargo_subcommand, run as run_command};

/// Runs the whole suite; `args` go to the test runner (for example a name filter).
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    if has_cargo_subcommand("nextest") {
        let mut nextest = cargo();
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
        let mut test = cargo();
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
    // nextest does not run doctests; they include the README's examples.
    let mut doc = cargo();
    doc.args(["test", "--workspace", "--all-features", "--doc", "--"]);
    doc.args(args);
    run_command(doc)
}
