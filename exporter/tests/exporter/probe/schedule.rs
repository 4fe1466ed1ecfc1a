//! The scheduler on tokio's paused clock: every probe's start and end are
//! recorded by a fake executor, so the assertions are about exact simulated
//! instants, never about wall-clock speed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::Registry;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vigil_exporter::probe::{ProbeExecutor, ProbeOutcome, ProbeTarget, Prober, ProberOptions};

/// One probe as the fake executor saw it, in seconds since the test start.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    start: f64,
    end: Option<f64>,
}

/// Pretends to probe: each target takes the time configured for its name.
#[derive(Debug, Clone)]
struct FakeExecutor {
    origin: Instant,
    durations: Arc<HashMap<String, Duration>>,
    runs: Arc<Mutex<HashMap<String, Vec<Run>>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl FakeExecutor {
    fn new(durations: &[(&str, Duration)]) -> Self {
        Self {
            origin: Instant::now(),
            durations: Arc::new(
                durations
                    .iter()
                    .map(|(name, took)| (name.to_string(), *took))
                    .collect(),
            ),
            runs: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        }
    }

    fn runs(&self, name: &str) -> Vec<Run> {
        self.runs
            .lock()
            .expect("runs lock")
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

/// Marks a run finished or, when dropped early, aborted (end stays None).
struct InFlight<'a> {
    executor: &'a FakeExecutor,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.executor.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ProbeExecutor for FakeExecutor {
    async fn execute(&self, target: &ProbeTarget) -> ProbeOutcome {
        let took = self
            .durations
            .get(&target.name)
            .copied()
            .unwrap_or_default();
        let index = {
            let mut runs = self.runs.lock().expect("runs lock");
            let list = runs.entry(target.name.clone()).or_default();
            list.push(Run {
                start: self.now(),
                end: None,
            });
            list.len() - 1
        };
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight
            .fetch_max(now_in_flight, Ordering::SeqCst);
        let _guard = InFlight { executor: self };
        tokio::time::sleep(took).await;
        let end = self.now();
        if let Some(run) = self
            .runs
            .lock()
            .expect("runs lock")
            .get_mut(&target.name)
            .and_then(|list| list.get_mut(index))
        {
            run.end = Some(end);
        }
        ProbeOutcome {
            failure: None,
            duration: took,
            status: Some(200),
            cert_expiry_unix: None,
        }
    }
}

fn every(name: &str, interval: Duration) -> ProbeTarget {
    let mut target = ProbeTarget::new(name, &format!("http://{name}.test/")).expect("valid url");
    target.interval = interval;
    target
}

/// Runs a prober of `targets` on `executor` for `for_how_long` of simulated
/// time, then cancels it and waits for it to stop.
async fn run_for(executor: &FakeExecutor, targets: Vec<ProbeTarget>, for_how_long: Duration) {
    run_with(executor, targets, ProberOptions::default(), for_how_long).await;
}

/// `run_for` with `options`.
async fn run_with(
    executor: &FakeExecutor,
    targets: Vec<ProbeTarget>,
    options: ProberOptions,
    for_how_long: Duration,
) {
    let prober = Prober::with_executor(targets, &Registry::new(), options, executor.clone())
        .expect("prober");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(prober.run(shutdown.clone()));
    tokio::time::sleep(for_how_long).await;
    shutdown.cancel();
    running.await.expect("prober task did not panic");
}

fn starts(runs: &[Run]) -> Vec<f64> {
    runs.iter().map(|run| run.start).collect()
}

#[tokio::test(start_paused = true)]
async fn slow_target_does_not_delay_a_fast_one() {
    let executor = FakeExecutor::new(&[
        ("fast", Duration::from_millis(10)),
        ("slow", Duration::from_secs(25)),
    ]);
    let targets = vec![
        every("fast", Duration::from_secs(1)),
        every("slow", Duration::from_secs(1)),
    ];
    run_for(&executor, targets, Duration::from_millis(10_500)).await;

    let expected: Vec<f64> = (0..=10).map(f64::from).collect();
    assert_eq!(starts(&executor.runs("fast")), expected);
}

#[tokio::test(start_paused = true)]
async fn overrunning_target_never_overlaps_itself_and_does_not_pile_up() {
    // Takes 2.5s every 1s: it should run back to back, one at a time.
    let executor = FakeExecutor::new(&[("slow", Duration::from_millis(2500))]);
    let targets = vec![every("slow", Duration::from_secs(1))];
    run_for(&executor, targets, Duration::from_millis(8_000)).await;

    let runs = executor.runs("slow");
    assert_eq!(starts(&runs), vec![0.0, 2.5, 5.0, 7.5], "{runs:?}");
    assert_eq!(executor.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn target_keeps_its_interval_measured_from_start_to_start() {
    let executor = FakeExecutor::new(&[("api", Duration::from_millis(300))]);
    let targets = vec![every("api", Duration::from_secs(2))];
    run_for(&executor, targets, Duration::from_millis(7_000)).await;

    assert_eq!(starts(&executor.runs("api")), vec![0.0, 2.0, 4.0, 6.0]);
}

#[tokio::test(start_paused = true)]
async fn concurrency_never_exceeds_max_concurrency() {
    let names = ["a", "b", "c", "d", "e"];
    let durations: Vec<(&str, Duration)> = names
        .iter()
        .map(|name| (*name, Duration::from_secs(1)))
        .collect();
    let executor = FakeExecutor::new(&durations);
    let targets = names
        .iter()
        .map(|name| every(name, Duration::from_secs(10)))
        .collect();
    run_with(
        &executor,
        targets,
        ProberOptions { max_concurrency: 2 },
        Duration::from_millis(5_500),
    )
    .await;

    assert_eq!(executor.max_in_flight.load(Ordering::SeqCst), 2);
    let mut first_starts: Vec<f64> = names
        .iter()
        .map(|name| executor.runs(name)[0].start)
        .collect();
    first_starts.sort_by(f64::total_cmp);
    assert_eq!(first_starts, vec![0.0, 0.0, 1.0, 1.0, 2.0]);
}

#[tokio::test(start_paused = true)]
async fn cancel_aborts_an_in_flight_probe_and_returns_promptly() {
    let executor = FakeExecutor::new(&[("hung", Duration::from_secs(3600))]);
    let origin = Instant::now();
    let targets = vec![every("hung", Duration::from_secs(30))];
    run_for(&executor, targets, Duration::from_secs(1)).await;

    assert_eq!(
        origin.elapsed(),
        Duration::from_secs(1),
        "run() returned at the cancel instant"
    );
    assert_eq!(
        executor.runs("hung"),
        vec![Run {
            start: 0.0,
            end: None
        }]
    );
    assert_eq!(
        executor.in_flight.load(Ordering::SeqCst),
        0,
        "the probe future was dropped"
    );
}

#[test]
fn zero_max_concurrency_is_rejected() {
    let executor = FakeExecutor::new(&[]);
    let error = Prober::with_executor(
        vec![every("a", Duration::from_secs(1))],
        &Registry::new(),
        ProberOptions { max_concurrency: 0 },
        executor,
    )
    .expect_err("zero concurrency");
    assert!(
        error
            .to_string()
            .contains("max_concurrency must be at least 1"),
        "{error}"
    );
}
