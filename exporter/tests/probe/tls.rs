//! `probe_once` against an HTTPS server with a self-signed certificate made
//! in the test: verification, `tls_verify: false`, and certificate expiry.

use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use vigil_exporter::probe::{probe_once, FailureReason, ProbeClients, ProbeMetrics};

use crate::support::{metric_value, self_signed, serve_https, target, target_expecting};

/// 2031-05-17T00:00:00Z, the notAfter of the certificate below.
const NOT_AFTER_2031_05_17: i64 = 1_936_742_400;

async fn https_server(not_after: (i32, u8, u8)) -> String {
    let app = Router::new().route("/", get(|| async { "secure" }));
    let addr = serve_https(app, self_signed(not_after)).await;
    format!("https://{addr}/")
}

fn clients() -> ProbeClients {
    ProbeClients::new().expect("HTTP clients")
}

#[tokio::test]
async fn self_signed_certificate_is_a_tls_failure_when_verifying() {
    let url = https_server((2031, 5, 17)).await;
    let outcome = probe_once(&target(&url), &clients()).await;
    assert_eq!(outcome.reason(), Some(FailureReason::Tls), "{outcome:?}");
}

#[tokio::test]
async fn self_signed_certificate_passes_without_verification_and_reports_its_expiry() {
    let url = https_server((2031, 5, 17)).await;
    let mut target = target(&url);
    target.tls_verify = false;
    let outcome = probe_once(&target, &clients()).await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(outcome.cert_expiry_unix, Some(NOT_AFTER_2031_05_17));
}

#[tokio::test]
async fn earliest_cert_expiry_metric_is_the_certificate_not_after() {
    let url = https_server((2031, 5, 17)).await;
    let mut target = target(&url);
    target.tls_verify = false;
    let registry = Registry::new();
    let metrics = ProbeMetrics::register(&registry).expect("register");
    metrics.record(&target, &probe_once(&target, &clients()).await);

    let labels = [
        ("target", target.name.as_str()),
        ("url", target.url.as_str()),
    ];
    assert_eq!(
        metric_value(&registry, "probe_ssl_earliest_cert_expiry", &labels),
        Some(NOT_AFTER_2031_05_17 as f64)
    );
}

#[tokio::test]
async fn expired_certificate_fails_a_cert_days_left_expectation() {
    let url = https_server((2020, 1, 1)).await;
    let mut target = target_expecting(&url, "cert_days_left > 14");
    target.tls_verify = false;
    let outcome = probe_once(&target, &clients()).await;
    assert_eq!(
        outcome.reason(),
        Some(FailureReason::Expectation),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn expired_certificate_is_a_tls_failure_when_verifying() {
    let url = https_server((2020, 1, 1)).await;
    let outcome = probe_once(&target(&url), &clients()).await;
    assert_eq!(outcome.reason(), Some(FailureReason::Tls), "{outcome:?}");
}
