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
    // `cargo run` gives xtask its own package's variables. Build scripts that watch one of them
    // (ring watches CARGO_MANIFEST_DIR) would otherwise rebuild everything above them whenever
    // a plain `cargo` command and `cargo xtask` take turns on the same target directory.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            command.env_remove(name.as_ref());
        }
    }
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

/// Runs a command to completion; an error names it when it fails. The command is shown by its
/// program and arguments only: its environment holds server URLs, which may carry passwords.
pub(crate) fn run(mut command: Command) -> Result<(), String> {
    let words: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let shown = format!("`{}`", words.join(" "));
    let started = std::time::Instant::now();
    let status = command
        .status()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if status.success() {
        // Where the time of a run goes, phase by phase.
        println!(
            "xtask: {shown} took {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}
