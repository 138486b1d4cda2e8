//! The results table: one row per scenario and concurrency, with the raw baseline beside it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::harness::Sample;

/// Which number of a sample the target compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Measure {
    /// Operations per second, higher is better.
    Ops,
    /// Events per second, higher is better.
    Events,
    /// Median latency, lower is better.
    Median,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) concurrency: usize,
    pub(crate) library: Sample,
    pub(crate) raw: Option<Sample>,
    pub(crate) measure: Measure,
    /// `(description, bound)`: for throughput the ratio must be at least `bound`, for latency at most.
    pub(crate) target: Option<(String, f64)>,
    pub(crate) note: String,
    /// A verdict decided outside the ratio (for example a memory bound).
    pub(crate) verdict: Option<bool>,
}

fn throughput(s: &Sample, m: Measure) -> String {
    match m {
        Measure::Events => format!("{:.0} ev/s", s.events_per_sec()),
        _ => format!("{:.0} op/s", s.ops_per_sec()),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

impl Row {
    /// Library relative to raw: throughput ratio, or median latency ratio.
    pub(crate) fn ratio(&self) -> Option<f64> {
        let raw = self.raw.as_ref()?;
        Some(match self.measure {
            Measure::Ops => self.library.ops_per_sec() / raw.ops_per_sec().max(1e-9),
            Measure::Events => self.library.events_per_sec() / raw.events_per_sec().max(1e-9),
            Measure::Median => {
                self.library.percentile(0.5).as_secs_f64()
                    / raw.percentile(0.5).as_secs_f64().max(1e-9)
            }
        })
    }

    /// Whether the target is met, when there is one.
    pub(crate) fn met(&self) -> Option<bool> {
        if self.verdict.is_some() {
            return self.verdict;
        }
        let (_, bound) = self.target.as_ref()?;
        let ratio = self.ratio()?;
        Some(match self.measure {
            Measure::Median => ratio <= *bound,
            _ => ratio >= *bound,
        })
    }
}

/// The markdown table of all rows.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| Scenario | Conc. | eventlogs | p50 | p99 | raw baseline | raw p50 | ratio | target | met |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
    );
    for r in rows {
        let raw = r.raw.as_ref();
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            if r.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.note)
            },
            r.concurrency,
            throughput(&r.library, r.measure),
            ms(r.library.percentile(0.5)),
            ms(r.library.percentile(0.99)),
            raw.map_or("–".into(), |s| throughput(s, r.measure)),
            raw.map_or("–".into(), |s| ms(s.percentile(0.5))),
            r.ratio().map_or("–".into(), |x| format!("{x:.2}×")),
            r.target
                .as_ref()
                .map_or("report".into(), |(t, _)| t.clone()),
            match r.met() {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "–",
            },
        );
    }
    out
}
