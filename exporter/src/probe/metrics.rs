//! The prober's Prometheus metrics, registered into a registry the caller
//! passes in, named like the blackbox exporter's so existing dashboards and
//! alerts carry over.

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use super::outcome::{FailureReason, ProbeOutcome};
use super::target::ProbeTarget;

const LABELS: [&str; 2] = ["target", "url"];

/// Registering a metric failed (most likely: already registered).
#[derive(Debug, thiserror::Error)]
#[error(
    "could not register the probe metrics in the registry: {0}; register them once per registry"
)]
pub struct MetricsError(#[from] prometheus::Error);

/// Handles on every probe metric.
#[derive(Debug, Clone)]
pub struct ProbeMetrics {
    success: IntGaugeVec,
    duration: GaugeVec,
    status_code: IntGaugeVec,
    cert_expiry: GaugeVec,
    failures: IntCounterVec,
}

impl ProbeMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let success = IntGaugeVec::new(
            Opts::new(
                "probe_success",
                "Whether the last probe met its expectation (1) or not (0).",
            ),
            &LABELS,
        )?;
        let duration = GaugeVec::new(
            Opts::new(
                "probe_duration_seconds",
                "How long the last probe took, from its start (DNS, connect, TLS) until the body was read or the probe failed.",
            ),
            &LABELS,
        )?;
        let status_code = IntGaugeVec::new(
            Opts::new(
                "probe_http_status_code",
                "HTTP status of the last probe's final response; 0 when no response arrived.",
            ),
            &LABELS,
        )?;
        let cert_expiry = GaugeVec::new(
            Opts::new(
                "probe_ssl_earliest_cert_expiry",
                "Earliest notAfter of the certificates the server presented, in unix seconds (HTTPS targets only).",
            ),
            &LABELS,
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "probe_failures_total",
                "Failed probes by reason: timeout, connect, tls, status, expectation.",
            ),
            &["target", "url", "reason"],
        )?;
        registry.register(Box::new(success.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(status_code.clone()))?;
        registry.register(Box::new(cert_expiry.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self {
            success,
            duration,
            status_code,
            cert_expiry,
            failures,
        })
    }

    /// Creates the failure counters of `target` at 0 for every reason, so
    /// `rate()` and `increase()` see the first failure.
    pub fn init_target(&self, target: &ProbeTarget) {
        for reason in FailureReason::ALL {
            self.failures
                .with_label_values(&[target.name.as_str(), target.url.as_str(), reason.as_str()])
                .inc_by(0);
        }
    }

    /// Records the outcome of one probe of `target`.
    pub fn record(&self, target: &ProbeTarget, outcome: &ProbeOutcome) {
        let labels = [target.name.as_str(), target.url.as_str()];
        self.success
            .with_label_values(&labels)
            .set(i64::from(outcome.is_success()));
        self.duration
            .with_label_values(&labels)
            .set(outcome.duration.as_secs_f64());
        self.status_code
            .with_label_values(&labels)
            .set(outcome.status.map_or(0, i64::from));
        match outcome.cert_expiry_unix {
            Some(expiry) => self
                .cert_expiry
                .with_label_values(&labels)
                .set(expiry as f64),
            // No certificate seen this time: drop the series rather than
            // keep exporting a certificate that may have been replaced.
            None => {
                let _absent_is_fine = self.cert_expiry.remove_label_values(&labels);
            }
        }
        if let Some(reason) = outcome.reason() {
            self.failures
                .with_label_values(&[labels[0], labels[1], reason.as_str()])
                .inc();
        }
    }
}
