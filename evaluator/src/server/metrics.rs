//! The evaluator's own metrics, served on its `/metrics`: rule evaluation
//! duration and failures per group, scrape health per target, notification
//! deliveries per receiver (sent, failed, retried), the outbox backlog,
//! notification fields whose template failed, the size of the sample
//! window, and the outcome of the last
//! configuration reload (with its error text, which `/-/ready` shows).
//! (The history's own metrics, database latency and writer backlog, are
//! registered by [`crate::history`].) Registered into a registry passed
//! in, so tests can use a fresh one.

use std::sync::{Arc, RwLock};

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::notify::delivery::DeliveryMetrics;
use crate::scrape::{Health, TargetHandle};

/// Registering a metric failed (a name registered twice).
#[derive(Debug, thiserror::Error)]
#[error("cannot register the evaluator's metrics: {0}; register them once per registry")]
pub struct MetricsError(#[from] prometheus::Error);

/// The evaluator's metrics.
#[derive(Debug, Clone)]
pub struct ServerMetrics {
    pub rule_group_duration: HistogramVec,
    pub rule_group_evaluations: IntCounterVec,
    pub rule_evaluation_failures: IntCounterVec,
    pub target_up: IntGaugeVec,
    pub target_scrape_duration: GaugeVec,
    /// Scrapes failed for a per-scrape limit, per job and limit (the
    /// equivalent of Prometheus' `prometheus_target_scrapes_exceeded_*`).
    pub scrape_limit_exceeded: IntCounterVec,
    pub notifications_sent: IntCounterVec,
    pub notifications_failed: IntCounterVec,
    pub notifications_retried: IntCounterVec,
    pub outbox_pending: IntGauge,
    pub store_series: IntGauge,
    pub config_last_reload_success: IntGauge,
    pub config_last_reload_success_timestamp: IntGauge,
    /// The problems of the last reload when it was rejected.
    last_reload_error: Arc<RwLock<Option<String>>>,
}

impl ServerMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<ServerMetrics, MetricsError> {
        let metrics = ServerMetrics {
            rule_group_duration: HistogramVec::new(
                HistogramOpts::new(
                    "vigil_rule_group_duration_seconds",
                    "Time one evaluation of a rule group took.",
                )
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
                &["rule_group"],
            )?,
            rule_group_evaluations: IntCounterVec::new(
                Opts::new(
                    "vigil_rule_group_evaluations_total",
                    "Evaluations of a rule group.",
                ),
                &["rule_group"],
            )?,
            rule_evaluation_failures: IntCounterVec::new(
                Opts::new(
                    "vigil_rule_evaluation_failures_total",
                    "Rule evaluations that failed (query or store error), per group.",
                ),
                &["rule_group"],
            )?,
            target_up: IntGaugeVec::new(
                Opts::new(
                    "vigil_scrape_target_up",
                    "1 when the last scrape of the target worked, 0 when it failed.",
                ),
                &["job", "instance"],
            )?,
            target_scrape_duration: GaugeVec::new(
                Opts::new(
                    "vigil_scrape_target_duration_seconds",
                    "Duration of the last scrape of the target.",
                ),
                &["job", "instance"],
            )?,
            scrape_limit_exceeded: IntCounterVec::new(
                Opts::new(
                    "vigil_scrape_limit_exceeded_total",
                    "Scrapes failed whole because they broke a limit (sample_limit, body_size_limit, label_limit, label_name_length_limit, label_value_length_limit, or series_limit: the target's share of storage.series_limit).",
                ),
                &["job", "limit"],
            )?,
            notifications_sent: IntCounterVec::new(
                Opts::new(
                    "vigil_notifications_sent_total",
                    "Notifications delivered, per receiver and integration.",
                ),
                &["receiver", "integration"],
            )?,
            notifications_failed: IntCounterVec::new(
                Opts::new(
                    "vigil_notifications_failed_total",
                    "Notifications given up on after retrying, per receiver and integration.",
                ),
                &["receiver", "integration"],
            )?,
            notifications_retried: IntCounterVec::new(
                Opts::new(
                    "vigil_notifications_retried_total",
                    "Delivery attempts after the first (retries), per receiver and integration.",
                ),
                &["receiver", "integration"],
            )?,
            outbox_pending: IntGauge::new(
                "vigil_outbox_pending",
                "Notifications waiting in the outbox (pending in the history database), read when /metrics is scraped.",
            )?,
            store_series: IntGauge::new(
                "vigil_store_series",
                "Series held in the in-memory sample window.",
            )?,
            config_last_reload_success: IntGauge::new(
                "vigil_config_last_reload_successful",
                "1 when the last configuration (re)load worked, 0 when it was rejected.",
            )?,
            config_last_reload_success_timestamp: IntGauge::new(
                "vigil_config_last_reload_success_timestamp_seconds",
                "Unix time of the last configuration (re)load that worked.",
            )?,
            last_reload_error: Arc::new(RwLock::new(None)),
        };
        registry.register(Box::new(
            crate::notify::templates::shared_failure_counter().clone(),
        ))?;
        registry.register(Box::new(metrics.rule_group_duration.clone()))?;
        registry.register(Box::new(metrics.rule_group_evaluations.clone()))?;
        registry.register(Box::new(metrics.rule_evaluation_failures.clone()))?;
        registry.register(Box::new(metrics.target_up.clone()))?;
        registry.register(Box::new(metrics.target_scrape_duration.clone()))?;
        registry.register(Box::new(metrics.scrape_limit_exceeded.clone()))?;
        registry.register(Box::new(metrics.notifications_sent.clone()))?;
        registry.register(Box::new(metrics.notifications_failed.clone()))?;
        registry.register(Box::new(metrics.notifications_retried.clone()))?;
        registry.register(Box::new(metrics.outbox_pending.clone()))?;
        registry.register(Box::new(metrics.store_series.clone()))?;
        registry.register(Box::new(metrics.config_last_reload_success.clone()))?;
        registry.register(Box::new(
            metrics.config_last_reload_success_timestamp.clone(),
        ))?;
        Ok(metrics)
    }

    /// Records the outcome of a configuration (re)load at `now`: the
    /// gauges, and the rendered problems of a rejected one for
    /// [`Self::last_reload_error`].
    pub fn record_reload(&self, result: &Result<(), String>, now: chrono::DateTime<chrono::Utc>) {
        self.config_last_reload_success
            .set(i64::from(result.is_ok()));
        if result.is_ok() {
            // Whole seconds since the epoch; 0 before it.
            self.config_last_reload_success_timestamp
                .set(now.timestamp().max(0));
        }
        *self
            .last_reload_error
            .write()
            .unwrap_or_else(|e| e.into_inner()) = result.as_ref().err().cloned();
    }

    /// The problems of the last reload when it was rejected (the previous
    /// configuration keeps running); `None` after a good one.
    pub fn last_reload_error(&self) -> Option<String> {
        self.last_reload_error
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Refreshes the per-target gauges from the targets' current state
    /// (called when `/metrics` is scraped, so they are never stale).
    pub fn observe_targets(&self, targets: &[TargetHandle]) {
        self.target_up.reset();
        self.target_scrape_duration.reset();
        for t in targets {
            let s = t.snapshot();
            let instance = s.labels.get("instance").unwrap_or("").to_string();
            let values = [s.job.as_str(), instance.as_str()];
            if s.health != Health::Unknown {
                self.target_up
                    .with_label_values(&values)
                    .set(i64::from(s.health == Health::Up));
            }
            if let Some(d) = s.last_scrape_duration {
                self.target_scrape_duration
                    .with_label_values(&values)
                    .set(d.as_secs_f64());
            }
        }
    }
}

impl DeliveryMetrics for ServerMetrics {
    /// Counts one delivery to `receiver`'s `integration` that took
    /// `attempts` tries and ended sent (`delivered`) or given up.
    fn record_delivery(&self, receiver: &str, integration: &str, attempts: u32, delivered: bool) {
        let labels = [receiver, integration];
        // Every counter is touched, so all three series exist (at zero)
        // from the receiver's first delivery on.
        let (sent, failed) = if delivered { (1, 0) } else { (0, 1) };
        self.notifications_sent
            .with_label_values(&labels)
            .inc_by(sent);
        self.notifications_failed
            .with_label_values(&labels)
            .inc_by(failed);
        self.notifications_retried
            .with_label_values(&labels)
            .inc_by(u64::from(attempts.saturating_sub(1)));
    }
}
