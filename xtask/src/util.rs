//! Helpers for xtask commands: the repository root and running cargo.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root (the parent of this crate's directory).
pub(crate) fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// A `cargo` command (the one running xtask, through `$CARGO`) in the workspace root.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.current_dir(root());
    command
}

/// Whether `cargo <subcommand>` is installed.
pub(crate) fn has_cargo_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a command to completion; an error names it when it fails.
pub(crate) fn run(mut command: Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let started = std::time::Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        // Where the time of a run goes, phase by phase (the program and its first arguments).
        let brief: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args().take(4))
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        println!(
            "xtask: `{}` took {:.0} s",
            brief.join(" "),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}
