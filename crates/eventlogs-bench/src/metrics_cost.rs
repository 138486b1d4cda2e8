//! What metrics cost: appends and warm reduces with the Prometheus recorder recording, beside
//! the same work with no recorder, alternating in one run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::harness::{alternate, workload, Workload};
use crate::reads::{warm_logs, warm_reduces};
use crate::report::{Measure, Row};
use crate::setup::Env;
use crate::writes::library_appends;

/// The Prometheus recorder while `ON` is set, and no recorder (the facade's no-op handles)
/// while it is not. Installed once for the process; each workload sets `ON` as it runs.
struct Switch(PrometheusRecorder);

static ON: AtomicBool = AtomicBool::new(false);

impl Recorder for Switch {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.0.describe_counter(key, unit, text);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.0.describe_gauge(key, unit, text);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, text: SharedString) {
        self.0.describe_histogram(key, unit, text);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if ON.load(Ordering::Relaxed) {
            self.0.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if ON.load(Ordering::Relaxed) {
            self.0.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if ON.load(Ordering::Relaxed) {
            self.0.register_histogram(key, metadata)
        } else {
            Histogram::noop()
        }
    }
}

/// Installs the switch once; `Err` if another recorder is installed.
fn install() -> Result<(), String> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            // As an exporter does between scrapes: drain the histograms now and then.
            let handle = recorder.handle();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    handle.run_upkeep();
                }
            });
            metrics::set_global_recorder(Switch(recorder)).map_err(|e| e.to_string())
        })
        .clone()
}

/// `op` with the recorder on (`recording`) or off for the whole of each call.
fn switched(op: Workload, recording: bool) -> Workload {
    workload(move |worker, i| {
        ON.store(recording, Ordering::Relaxed);
        op(worker, i)
    })
}

/// Nanoseconds the metrics of one successful append cost with the recorder on, measured in a
/// loop on one core (the same macros and names the library calls).
fn per_append_ns() -> f64 {
    use eventlogs::telemetry::{APPENDED_EVENTS, APPEND_DURATION};
    const CALLS: u32 = 200_000;
    ON.store(true, Ordering::Relaxed);
    let started = std::time::Instant::now();
    for _ in 0..CALLS {
        let took = started.elapsed();
        metrics::histogram!(APPEND_DURATION, "op" => "append", "outcome" => "ok").record(took);
        metrics::counter!(APPENDED_EVENTS, "op" => "append").increment(1);
    }
    let ns = started.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS);
    ON.store(false, Ordering::Relaxed);
    ns
}

/// Appends at 1 and 16 writers, and warm reduces, with and without a recorder.
pub(crate) async fn metrics_cost(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    install()?;
    let per_append = per_append_ns();
    let mut push = |scenario: &str, concurrency, recorded, bare, measure| {
        rows.push(Row {
            scenario: format!("{scenario}, with a Prometheus recorder against none"),
            concurrency,
            library: recorded,
            raw: Some(bare),
            measure,
            target: Some(("≥ 0.97× without".into(), 0.97)),
            note: format!(
                "baseline: the same calls with no recorder installed; an append's metrics cost \
                 {per_append:.0} ns in a loop on one core"
            ),
            verdict: None,
        });
    };
    for concurrency in [1, 16] {
        let appends = library_appends(env, concurrency, 1, false).await?;
        let (recorded, bare) = alternate(
            concurrency,
            seconds,
            4,
            &switched(Arc::clone(&appends), true),
            &switched(appends, false),
        )
        .await;
        push("append", concurrency, recorded, bare, Measure::Ops);
    }
    let ids = Arc::new(warm_logs(env, 200, 100, 0).await?);
    let reduces = warm_reduces(env, ids, 100).await?;
    let (recorded, bare) = alternate(
        1,
        seconds,
        4,
        &switched(Arc::clone(&reduces), true),
        &switched(reduces, false),
    )
    .await;
    push(
        "reduce, warm cache, no new events",
        1,
        recorded,
        bare,
        Measure::Ops,
    );
    ON.store(false, Ordering::Relaxed);
    Ok(())
}
