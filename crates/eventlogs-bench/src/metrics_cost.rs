//! What metrics cost: appends and warm reduces with the Prometheus recorder recording, beside
//! the same work with no recorder, alternating in one run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::cpu;
use crate::harness::{median, run_workload, workload, Sample, Workload};
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

/// Alternating slices per comparison: the verdict is the median of their paired ratios.
const ROUNDS: u32 = 8;

/// Recorded against bare runs of `op`, in paired slices: the merged samples, the paired
/// ratios' median, low and high, and this process's CPU per operation on each side.
async fn compare(
    op: &Workload,
    concurrency: usize,
    seconds: Duration,
) -> (Sample, Sample, [f64; 5]) {
    let (on, off) = (
        switched(Arc::clone(op), true),
        switched(Arc::clone(op), false),
    );
    let slice = seconds * 2 / ROUNDS;
    let (mut recorded, mut bare) = (Sample::default(), Sample::default());
    let (mut cpu_on, mut cpu_off) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let measure = |op: &Workload| {
            let op = Arc::clone(op);
            async move {
                let before = cpu::this_process();
                let sample = run_workload(concurrency, slice, &op).await;
                (sample, cpu::this_process().saturating_sub(before))
            }
        };
        // Alternate which side goes first as well.
        let ((a, a_cpu), (b, b_cpu)) = if round % 2 == 0 {
            let first = measure(&on).await;
            (first, measure(&off).await)
        } else {
            let second = measure(&off).await;
            (measure(&on).await, second)
        };
        ratios.push(a.ops_per_sec() / b.ops_per_sec().max(1e-9));
        (cpu_on, cpu_off) = (cpu_on + a_cpu, cpu_off + b_cpu);
        recorded.merge(a);
        bare.merge(b);
    }
    let per_op = |cpu: Duration, s: &Sample| cpu.as_secs_f64() * 1e6 / s.ops.max(1) as f64;
    let (low, high) = ratios
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
    let cpu = [per_op(cpu_on, &recorded), per_op(cpu_off, &bare)];
    (recorded, bare, [median(&ratios), low, high, cpu[0], cpu[1]])
}

/// Appends at 1 and 16 writers, and warm reduces, with and without a recorder.
pub(crate) async fn metrics_cost(
    env: &Env,
    seconds: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    install()?;
    let per_append = per_append_ns();
    let mut push = |scenario: &str,
                    concurrency,
                    (recorded, bare, [paired, low, high, cpu_on, cpu_off]): (
        Sample,
        Sample,
        [f64; 5],
    )| {
        rows.push(Row {
            scenario: format!("{scenario}, with a Prometheus recorder against none"),
            concurrency,
            library: recorded,
            raw: Some(bare),
            measure: Measure::Ops,
            target: Some((
                format!("≥ 0.97× without (median of {ROUNDS} paired slices)"),
                0.97,
            )),
            note: format!(
                "baseline: the same calls with no recorder installed; median of the paired \
                 slices' ratios {paired:.2}× ({low:.2}–{high:.2}×); client CPU per call \
                 {cpu_on:.1} µs recorded, {cpu_off:.1} µs bare; an append's metrics cost \
                 {per_append:.0} ns in a loop on one core"
            ),
            verdict: Some(paired >= 0.97),
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
    ON.store(false, Ordering::Relaxed);
    Ok(())
}
