//! `cargo xtask`: project automation. This file only dispatches to one module per command.

mod bench;
mod services;
mod test;
#[cfg(test)]
mod tidy;
mod util;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  bench [args...]  benchmarks in release mode against fresh servers (fsync on), beside raw
                   tokio-postgres/fred baselines; writes bench-results/latest.md
                   (args: --seconds N per scenario, default 5; --big-log N events, default 1000000)
  test [args...]   provision PostgreSQL, Redis and Citus, then run every test of the workspace
                   against them (args go to the test runner, e.g. a name filter)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let result = match command.as_deref() {
        Some("test") => test::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("help" | "-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
