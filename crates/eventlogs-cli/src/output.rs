//! Output for humans (tables, progress bars on stderr) or for scripts (`--json`).

use std::io::{IsTerminal, Write};

use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Where results go, and in which form.
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// Prints one JSON document (pretty) on stdout.
    pub(crate) fn document(&self, value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        );
    }

    /// Prints one line of a stream on stdout, flushed at once (so `--follow` shows it now).
    pub(crate) fn line(&self, line: &str) {
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the output; nothing to report.
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    }

    /// A table with `header` (none when empty), for humans.
    pub(crate) fn table(&self, header: &[&str]) -> Table {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !header.is_empty() {
            table.set_header(header.iter().copied());
        }
        table
    }

    /// A progress bar on stderr over `total` units, a counting spinner when `total` is 0 (hidden for `--json` or when stderr is no
    /// terminal, so scripts see clean output).
    pub(crate) fn progress(&self, total: u64, what: &str) -> ProgressBar {
        if self.json || !std::io::stderr().is_terminal() {
            return ProgressBar::hidden();
        }
        // Without a known total (a key scan), a spinner with the count so far.
        let bar = if total == 0 {
            let spinner = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}: {pos}") {
                spinner.set_style(style);
            }
            spinner.enable_steady_tick(std::time::Duration::from_millis(120));
            spinner
        } else {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:30}] {percent}% ({eta} left)")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        };
        bar.set_message(what.to_owned());
        bar
    }
}

/// A payload or metadata text as JSON (as stored: valid JSON), or as a string if not.
pub(crate) fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// A payload or metadata text pretty-printed.
pub(crate) fn pretty(text: &str) -> String {
    serde_json::to_string_pretty(&json_value(text)).unwrap_or_else(|_| text.to_owned())
}
