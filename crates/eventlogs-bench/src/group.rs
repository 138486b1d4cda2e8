//! Group append: appends of one event by 1 to 64 writers with grouping on, beside the same
//! appends with one statement each and beside the raw single-statement INSERT, in one run.

use std::time::Duration;

use eventlogs::postgres::AppendGrouping;

use crate::harness::alternate;
use crate::report::{Measure, Row};
use crate::setup::Env;
use crate::writes::{library_appends, raw_inserts};

/// Alternating slices per comparison.
const ROUNDS: u32 = 3;

/// The throughput target of grouped appends over one statement each, by writers.
fn target(concurrency: usize) -> (String, f64) {
    match concurrency {
        64 => ("≥ 3× one each".into(), 3.0),
        16 => ("≥ 2× one each".into(), 2.0),
        _ => ("≥ 0.95× one each".into(), 0.95),
    }
}

/// Grouped appends against one statement each (throughput, and p99 within 1.5×), then
/// against the raw INSERT.
pub(crate) async fn group(env: &Env, seconds: Duration, rows: &mut Vec<Row>) -> Result<(), String> {
    let grouped_env = env.grouping(AppendGrouping::new());
    let single_env = env.grouping(AppendGrouping::off());
    for concurrency in [1, 4, 16, 64] {
        let grouped = library_appends(&grouped_env, concurrency, 1, false).await?;
        let single = library_appends(&single_env, concurrency, 1, false).await?;
        let raw = raw_inserts(env, concurrency, true).await?;
        let (g1, s) = alternate(concurrency, seconds, ROUNDS, &grouped, &single).await;
        let (g2, r) = alternate(concurrency, seconds, ROUNDS, &grouped, &raw).await;
        let p99 = |s: &crate::harness::Sample| s.percentile(0.99).as_secs_f64() * 1e3;
        let (target, bound) = target(concurrency);
        let ratio = g1.ops_per_sec() / s.ops_per_sec().max(1e-9);
        let tail = p99(&g1) / p99(&s).max(1e-9);
        rows.push(Row {
            scenario: "append, grouped, against one statement each".into(),
            concurrency,
            note: format!(
                "p99 {:.1} ms vs {:.1} ms one each ({tail:.2}×, target ≤ 1.5×)",
                p99(&g1),
                p99(&s)
            ),
            library: g1,
            raw: Some(s),
            measure: Measure::Ops,
            verdict: Some(ratio >= bound && tail <= 1.5),
            target: Some((format!("{target}, p99 ≤ 1.5×"), bound)),
        });
        rows.push(Row {
            scenario: "append, grouped, against a raw single-statement INSERT".into(),
            concurrency,
            library: g2,
            raw: Some(r),
            measure: Measure::Ops,
            target: None,
            note: String::new(),
            verdict: None,
        });
    }
    Ok(())
}
