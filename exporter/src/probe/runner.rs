//! The scheduler: runs every target on its own interval, at most
//! `max_concurrency` probes at a time, until the shutdown token is cancelled.
//!
//! Each target has one task that probes, records, then sleeps until its next
//! start, so a target can never overlap itself and a slow target only holds
//! its own task (and one concurrency slot) while the others keep their pace.

use std::future::Future;
use std::sync::Arc;

use prometheus::Registry;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{probe_once, ClientError, ProbeClients};
use super::metrics::{MetricsError, ProbeMetrics};
use super::outcome::ProbeOutcome;
use super::target::{validate_targets, ProbeTarget, TargetError};

/// Default bound on probes in flight at once.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;

/// Settings of the prober as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProberOptions {
    /// Most probes in flight at once (default 64). A target waiting for a
    /// slot starts late; it never skips.
    pub max_concurrency: usize,
}

impl Default for ProberOptions {
    fn default() -> Self {
        Self {
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }
}

/// Performs one probe. [`HttpExecutor`] is the real one; tests substitute
/// their own to drive the scheduler on simulated time.
pub trait ProbeExecutor: Send + Sync + 'static {
    /// Probes `target` once. Dropping the future must abort the probe.
    fn execute(&self, target: &ProbeTarget) -> impl Future<Output = ProbeOutcome> + Send;
}

/// Probes over HTTP(S) with [`probe_once`].
#[derive(Debug, Clone)]
pub struct HttpExecutor {
    clients: ProbeClients,
}

impl HttpExecutor {
    /// Builds the shared HTTP clients.
    pub fn new() -> Result<Self, ClientError> {
        Ok(Self {
            clients: ProbeClients::new()?,
        })
    }

    /// The clients, e.g. for a readiness check calling [`probe_once`].
    pub fn clients(&self) -> &ProbeClients {
        &self.clients
    }
}

impl ProbeExecutor for HttpExecutor {
    fn execute(&self, target: &ProbeTarget) -> impl Future<Output = ProbeOutcome> + Send {
        probe_once(target, &self.clients)
    }
}

/// Why a prober could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ProberError {
    /// One or more targets are invalid; every problem is listed.
    #[error("{} invalid probe target(s):\n  {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    InvalidTargets(Vec<TargetError>),
    /// `max_concurrency` is 0, which would never probe anything.
    #[error("max_concurrency must be at least 1 (default {DEFAULT_MAX_CONCURRENCY})")]
    ZeroConcurrency,
    /// The metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The HTTP clients could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Runs all targets on their schedules and records the metrics.
#[derive(Debug)]
pub struct Prober<E = HttpExecutor> {
    targets: Vec<Arc<ProbeTarget>>,
    executor: Arc<E>,
    metrics: ProbeMetrics,
    slots: Arc<Semaphore>,
}

impl Prober<HttpExecutor> {
    /// A prober over HTTP with metrics in `registry`. Validates all targets
    /// first and reports every problem.
    pub fn new(
        targets: Vec<ProbeTarget>,
        registry: &Registry,
        options: ProberOptions,
    ) -> Result<Self, ProberError> {
        Self::with_executor(targets, registry, options, HttpExecutor::new()?)
    }
}

impl<E: ProbeExecutor> Prober<E> {
    /// A prober that probes with `executor`.
    pub fn with_executor(
        targets: Vec<ProbeTarget>,
        registry: &Registry,
        options: ProberOptions,
        executor: E,
    ) -> Result<Self, ProberError> {
        let problems = validate_targets(&targets);
        if !problems.is_empty() {
            return Err(ProberError::InvalidTargets(problems));
        }
        if options.max_concurrency == 0 {
            return Err(ProberError::ZeroConcurrency);
        }
        let metrics = ProbeMetrics::register(registry)?;
        for target in &targets {
            metrics.init_target(target);
        }
        Ok(Self {
            targets: targets.into_iter().map(Arc::new).collect(),
            executor: Arc::new(executor),
            metrics,
            slots: Arc::new(Semaphore::new(options.max_concurrency)),
        })
    }

    /// The targets, in configuration order.
    pub fn targets(&self) -> impl Iterator<Item = &ProbeTarget> {
        self.targets.iter().map(AsRef::as_ref)
    }

    /// The executor, e.g. to probe once for readiness.
    pub fn executor(&self) -> &E {
        &self.executor
    }

    /// Probes every target, the first time immediately, until `shutdown` is
    /// cancelled; in-flight probes are dropped (their connections closed)
    /// and this returns once every target task has stopped.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tasks = JoinSet::new();
        for target in &self.targets {
            tasks.spawn(run_target(
                Arc::clone(target),
                Arc::clone(&self.executor),
                self.metrics.clone(),
                Arc::clone(&self.slots),
                shutdown.clone(),
            ));
        }
        while let Some(joined) = tasks.join_next().await {
            if let Err(error) = joined {
                // A panicking executor stops only its own target; say so
                // loudly since that target's metrics are now frozen.
                tracing::error!(%error, "probe task ended abnormally; its target is no longer probed");
            }
        }
    }
}

/// The life of one target: wait for the start time, take a slot, probe,
/// record, schedule the next start.
async fn run_target<E: ProbeExecutor>(
    target: Arc<ProbeTarget>,
    executor: Arc<E>,
    metrics: ProbeMetrics,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let mut next_start = Instant::now();
    let mut was_up: Option<bool> = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next_start) => {}
        }
        let scheduled = next_start;
        let slot = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                // The semaphore is never closed; if it were, stop quietly.
                Err(_closed) => return,
            },
        };
        let outcome = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            outcome = executor.execute(&target) => outcome,
        };
        drop(slot);
        metrics.record(&target, &outcome);
        log_outcome(&target, &outcome, was_up);
        was_up = Some(outcome.is_success());
        // Keep the cadence, but after an overrun start right away once, then
        // re-anchor: no burst of catch-up probes.
        next_start = (scheduled + target.interval).max(Instant::now());
    }
}

fn log_outcome(target: &ProbeTarget, outcome: &ProbeOutcome, was_up: Option<bool>) {
    let url = target.url.as_str();
    let duration_ms = outcome.duration.as_secs_f64() * 1000.0;
    match (&outcome.failure, was_up) {
        (Some(failure), Some(true) | None) => tracing::warn!(
            probe = %target.name, url, reason = %failure.reason, duration_ms,
            message = %failure.message, "probe failed"
        ),
        (Some(failure), Some(false)) => tracing::debug!(
            probe = %target.name, url, reason = %failure.reason, duration_ms,
            message = %failure.message, "probe still failing"
        ),
        (None, Some(false)) => tracing::info!(
            probe = %target.name, url, status = outcome.status, duration_ms, "probe recovered"
        ),
        (None, _) => tracing::debug!(
            probe = %target.name, url, status = outcome.status, duration_ms, "probe succeeded"
        ),
    }
}
