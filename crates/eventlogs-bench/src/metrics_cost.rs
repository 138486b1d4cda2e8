//! What metrics cost: appends and warm reduces with the Prometheus recorder recording, beside
//! the same work with no recorder, alternating in one run.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::cpu;
use crate::harness::{run_workload, workload, Sample, Workload};
use crate::reads::{warm_logs, warm_reduces};
use crate::report::{Measure, Row};
use crate::setup::Env;
use crate::writes::library_appends;

/// The Prometheus recorder for calls made inside `RECORDING.scope(true, …)`, and no recorder
/// (the facade's no-op handles) for every other call. Installed once for the process.
struct Switch(PrometheusRecorder);

tokio::task_local! {
    /// Whether the task's current call records.
    static RECORDING: bool;
}

fn recording() -> bool {
    RECORDING.try_with(|on| *on).unwrap_or(false)
}

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
        if recording() {
            self.0.register_counter(key, metadata)
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if recording() {
            self.0.register_gauge(key, metadata)
        } else {
            Gauge::noop()
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if recording() {
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

/// Latencies of the calls made with the recorder on and of those made without it.
#[derive(Default)]
struct Sides {
    on: Mutex<Vec<Duration>>,
    off: Mutex<Vec<Duration>>,
}

impl Sides {
    /// One side as a sample whose throughput is what `concurrency` workers making only such
    /// calls back to back would reach (`concurrency` over the mean latency).
    fn sample(side: &Mutex<Vec<Duration>>, concurrency: usize) -> Sample {
        let mut latencies = std::mem::take(&mut *side.lock().unwrap_or_else(|e| e.into_inner()));
        latencies.sort_unstable();
        let busy: Duration = latencies.iter().sum();
        Sample {
            ops: latencies.len() as u64,
            events: latencies.len() as u64,
            errors: 0,
            elapsed: busy / u32::try_from(concurrency.max(1)).unwrap_or(u32::MAX),
            latencies,
        }
    }
}

/// `op` with every other call of each worker recording, each call timed into its side.
fn interleaved(op: &Workload, sides: &Arc<Sides>) -> Workload {
    let (op, sides) = (Arc::clone(op), Arc::clone(sides));
    workload(move |worker, i| {
        let on = (i + worker as u64) % 2 == 0;
        let (call, sides) = (op(worker, i), Arc::clone(&sides));
        async move {
            let started = Instant::now();
            let result = RECORDING.scope(on, call).await;
            if result.is_ok() {
                let side = if on { &sides.on } else { &sides.off };
                side.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(started.elapsed());
            }
            result
        }
    })
}

/// `op` with the recorder on (`recording`) or off for every call.
fn switched(op: &Workload, recording: bool) -> Workload {
    let op = Arc::clone(op);
    workload(move |worker, i| RECORDING.scope(recording, op(worker, i)))
}

/// Nanoseconds the metrics of one successful append cost with the recorder on, measured in a
/// loop on one core (the same macros and names the library calls).
async fn per_append_ns() -> f64 {
    use eventlogs::telemetry::{APPENDED_EVENTS, APPEND_DURATION};
    const CALLS: u32 = 200_000;
    RECORDING
        .scope(true, async {
            let started = Instant::now();
            for _ in 0..CALLS {
                let took = started.elapsed();
                metrics::histogram!(APPEND_DURATION, "op" => "append", "outcome" => "ok")
                    .record(took);
                metrics::counter!(APPENDED_EVENTS, "op" => "append").increment(1);
            }
            started.elapsed().as_secs_f64() * 1e9 / f64::from(CALLS)
        })
        .await
}

/// What one comparison measured.
struct Compared {
    /// The calls with the recorder and those without, from the interleaved run.
    recorded: Sample,
    bare: Sample,
    /// This process's CPU per call in a short run with the recorder on, and one with it off.
    cpu: (f64, f64),
}

/// `op` interleaved call by call with and without the recorder (each worker alternates, so
/// both sides see the same server, disk and neighbours at the same moments), then a short
/// run of each side alone for the client's CPU per call.
async fn compare(op: &Workload, concurrency: usize, seconds: Duration) -> Compared {
    let sides = Arc::new(Sides::default());
    run_workload(concurrency, seconds * 3 / 2, &interleaved(op, &sides)).await;
    let mut cpu_per_call = Vec::new();
    for recording in [true, false] {
        let before = cpu::this_process();
        let sample = run_workload(concurrency, seconds / 4, &switched(op, recording)).await;
        let used = cpu::this_process().saturating_sub(before);
        cpu_per_call.push(used.as_secs_f64() * 1e6 / sample.ops.max(1) as f64);
    }
    Compared {
        recorded: Sides::sample(&sides.on, concurrency),
        bare: Sides::sample(&sides.off, concurrency),
        cpu: (cpu_per_call[0], cpu_per_call[1]),
    }
}

/// Appends at 1 and 16 writers, and warm reduces, with and without a recorder.
pub(crate) async fn metrics_cost(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    install()?;
    let per_append = per_append_ns().await;
    let mut push = |scenario: &str, concurrency, compared: Compared| {
        let Compared {
            recorded,
            bare,
            cpu: (cpu_on, cpu_off),
        } = compared;
        rows.push(Row {
            scenario: format!("{scenario}, with a Prometheus recorder against none"),
            concurrency,
            library: recorded,
            raw: Some(bare),
            measure: Measure::Ops,
            target: Some(("≥ 0.97× without".to_string(), 0.97)),
            note: format!(
                "every other call of each worker records, so both sides share the same \
                 moments; throughput is the workers over each side's mean latency; client CPU \
                 per call {cpu_on:.1} µs recorded, {cpu_off:.1} µs bare (a short run of each); \
                 an append's metrics cost {per_append:.0} ns in a loop on one core"
            ),
            verdict: None,
        });
    };
    for concurrency in [1, 16] {
        let appends = library_appends(env, concurrency, 1, false).await?;
        push(
            "append",
            concurrency,
            compare(&appends, concurrency, seconds).await,
        );
    }
    let ids = Arc::new(warm_logs(env, 200, 100, 0).await?);
    let reduces = warm_reduces(env, ids, 100).await?;
    push(
        "reduce, warm cache, no new events",
        1,
        compare(&reduces, 1, seconds).await,
    );
    Ok(())
}
