//! The exported metrics: names, labels, initial values, and the Prometheus
//! text format as `promtool` checks it.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;
use vigil_exporter::probe::{
    FailureReason, ProbeFailure, ProbeMetrics, ProbeOutcome, ProbeTarget, Prober, ProberOptions,
};

use crate::support::{closed_addr, metric_value, promtool_check_metrics, serve_http, target};

fn shop() -> ProbeTarget {
    ProbeTarget::new("shop", "https://shop.example/healthz").expect("valid url")
}

fn labels(target: &ProbeTarget) -> [(&str, &str); 2] {
    [
        ("target", target.name.as_str()),
        ("url", target.url.as_str()),
    ]
}

fn failure_labels<'a>(target: &'a ProbeTarget, reason: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("target", target.name.as_str()),
        ("url", target.url.as_str()),
        ("reason", reason),
    ]
}

/// The value of the series `name` of `target`, if exported.
fn value(registry: &Registry, name: &str, target: &ProbeTarget) -> Option<f64> {
    metric_value(registry, name, &labels(target))
}

/// The value of `probe_failures_total` of `target` for `reason`, if exported.
fn failures(registry: &Registry, target: &ProbeTarget, reason: &str) -> Option<f64> {
    metric_value(
        registry,
        "probe_failures_total",
        &failure_labels(target, reason),
    )
}

/// A new registry with the probe metrics registered in it.
fn registered() -> (Registry, ProbeMetrics) {
    let registry = Registry::new();
    let metrics = ProbeMetrics::register(&registry).expect("register");
    (registry, metrics)
}

fn connect_failure() -> ProbeOutcome {
    ProbeOutcome {
        failure: Some(ProbeFailure {
            reason: FailureReason::Connect,
            message: "connection refused".into(),
        }),
        duration: Duration::from_millis(3),
        status: None,
        cert_expiry_unix: None,
    }
}

fn success_with_certificate() -> ProbeOutcome {
    ProbeOutcome {
        failure: None,
        duration: Duration::from_millis(120),
        status: Some(200),
        cert_expiry_unix: Some(1_936_742_400),
    }
}

#[test]
fn failure_counters_start_at_zero_for_every_reason() {
    let (registry, metrics) = registered();
    let target = shop();
    metrics.init_target(&target);
    for reason in ["timeout", "connect", "tls", "status", "expectation"] {
        assert_eq!(
            failures(&registry, &target, reason),
            Some(0.0),
            "reason {reason}"
        );
    }
}

#[test]
fn failed_probe_exports_success_0_status_0_and_counts_its_reason_only() {
    let (registry, metrics) = registered();
    let target = shop();
    metrics.init_target(&target);
    metrics.record(&target, &connect_failure());
    assert_eq!(value(&registry, "probe_success", &target), Some(0.0));
    assert_eq!(
        value(&registry, "probe_http_status_code", &target),
        Some(0.0)
    );
    assert_eq!(
        value(&registry, "probe_duration_seconds", &target),
        Some(0.003)
    );
    assert_eq!(failures(&registry, &target, "connect"), Some(1.0));
    assert_eq!(failures(&registry, &target, "timeout"), Some(0.0));
}

#[test]
fn certificate_expiry_disappears_after_a_probe_that_saw_no_certificate() {
    let (registry, metrics) = registered();
    let target = shop();
    metrics.record(&target, &success_with_certificate());
    assert_eq!(
        value(&registry, "probe_ssl_earliest_cert_expiry", &target),
        Some(1_936_742_400.0)
    );
    metrics.record(&target, &connect_failure());
    assert_eq!(
        value(&registry, "probe_ssl_earliest_cert_expiry", &target),
        None
    );
}

#[test]
fn registering_twice_in_one_registry_is_an_error() {
    let registry = Registry::new();
    let _first = ProbeMetrics::register(&registry).expect("first registration");
    let error = ProbeMetrics::register(&registry).expect_err("duplicate registration");
    assert!(
        error
            .to_string()
            .contains("register them once per registry"),
        "{error}"
    );
}

#[test]
fn exported_text_passes_promtool_check_metrics() {
    let Some(promtool) = vigil_testkit::external_tool("promtool") else {
        return;
    };
    let (registry, metrics) = registered();
    let target = shop();
    metrics.init_target(&target);
    metrics.record(&target, &success_with_certificate());
    metrics.record(&target, &connect_failure());
    metrics.record(&target, &success_with_certificate());
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .expect("encode");

    let (status, complaints) = promtool_check_metrics(&promtool, &text).expect("promtool output");
    assert!(
        status.success() && complaints.is_empty(),
        "{complaints}\n{}",
        String::from_utf8_lossy(&text)
    );
}

#[tokio::test]
async fn prober_exports_the_state_of_each_target_and_stops_on_cancel() {
    let up_addr = serve_http(Router::new().route("/", get(|| async { "ok" }))).await;
    let down_addr = closed_addr().await;
    let mut up = target(&format!("http://{up_addr}/"));
    up.name = "up".into();
    let mut down = target(&format!("http://{down_addr}/"));
    down.name = "down".into();
    let registry = Registry::new();
    let prober = Prober::new(
        vec![up.clone(), down.clone()],
        &registry,
        ProberOptions::default(),
    )
    .expect("prober");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(prober.run(shutdown.clone()));

    // Wait (bounded) for the first probe of each target to be recorded.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while value(&registry, "probe_success", &up).is_none()
        || value(&registry, "probe_success", &down).is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no probe recorded within 10s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("prober stops after cancel")
        .expect("prober task did not panic");

    assert_eq!(value(&registry, "probe_success", &up), Some(1.0));
    assert_eq!(value(&registry, "probe_http_status_code", &up), Some(200.0));
    assert_eq!(value(&registry, "probe_success", &down), Some(0.0));
    assert_eq!(failures(&registry, &down, "connect"), Some(1.0));
}

#[test]
fn prober_rejects_invalid_targets_listing_every_problem() {
    let mut no_name = shop();
    no_name.name = String::new();
    let mut zero_timeout = shop();
    zero_timeout.name = "api".into();
    zero_timeout.timeout = Duration::ZERO;
    let error = Prober::new(
        vec![no_name, zero_timeout],
        &Registry::new(),
        ProberOptions::default(),
    )
    .expect_err("invalid targets");
    let message = error.to_string();
    assert!(
        message.starts_with("2 invalid probe target(s)"),
        "{message}"
    );
    assert!(
        message.contains("field `name` is empty")
            && message.contains("probe `api`: field `timeout`"),
        "{message}"
    );
}
