//! `probe_once` against an HTTPS server with a self-signed certificate made
//! in the test: verification, `tls_verify: false`, and certificate expiry.

use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use vigil_exporter::probe::{FailureReason, ProbeMetrics, ProbeTarget};

use crate::support::{
    assert_fails_with, chained, metric_value, probe, self_signed, serve_https, target,
    target_expecting, ServerCert,
};

/// 2031-05-17T00:00:00Z, the notAfter of the certificate below.
const NOT_AFTER_2031_05_17: i64 = 1_936_742_400;

/// 2029-03-01T00:00:00Z.
const NOT_AFTER_2029_03_01: i64 = 1_867_017_600;

async fn https_server(not_after: (i32, u8, u8)) -> String {
    serve(self_signed(not_after)).await
}

async fn serve(cert: ServerCert) -> String {
    let app = Router::new().route("/", get(|| async { "secure" }));
    let addr = serve_https(app, cert).await;
    format!("https://{addr}/")
}

/// `target` with certificate verification turned off.
fn unverified(mut target: ProbeTarget) -> ProbeTarget {
    target.tls_verify = false;
    target
}

/// Asserts that probing `url` without verification succeeds and reports
/// `expiry` as the earliest certificate expiry.
async fn assert_passes_unverified_reporting_expiry(url: &str, expiry: i64) {
    let outcome = probe(&unverified(target(url))).await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(outcome.cert_expiry_unix, Some(expiry));
}

#[tokio::test]
async fn self_signed_certificate_is_a_tls_failure_when_verifying() {
    let url = https_server((2031, 5, 17)).await;
    assert_fails_with(&probe(&target(&url)).await, FailureReason::Tls);
}

#[tokio::test]
async fn self_signed_certificate_passes_without_verification_and_reports_its_expiry() {
    let url = https_server((2031, 5, 17)).await;
    assert_passes_unverified_reporting_expiry(&url, NOT_AFTER_2031_05_17).await;
}

#[tokio::test]
async fn earliest_cert_expiry_metric_is_the_certificate_not_after() {
    let url = https_server((2031, 5, 17)).await;
    let target = unverified(target(&url));
    let registry = Registry::new();
    let metrics = ProbeMetrics::register(&registry).expect("register");
    metrics.record(&target, &probe(&target).await);

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
    let target = unverified(target_expecting(&url, "cert_days_left > 14"));
    let outcome = probe(&target).await;
    assert_fails_with(&outcome, FailureReason::Expectation);
}

#[tokio::test]
async fn expired_certificate_is_a_tls_failure_when_verifying() {
    let url = https_server((2020, 1, 1)).await;
    assert_fails_with(&probe(&target(&url)).await, FailureReason::Tls);
}

#[tokio::test]
async fn cert_expiry_is_the_earliest_in_the_presented_chain() {
    // The intermediate expires before the leaf: that is the date that matters.
    let url = serve(chained((2035, 1, 1), (2029, 3, 1), (2031, 5, 17))).await;
    assert_passes_unverified_reporting_expiry(&url, NOT_AFTER_2029_03_01).await;
}

#[tokio::test]
async fn leaf_expiring_first_is_reported_from_a_chain() {
    let url = serve(chained((2035, 1, 1), (2033, 1, 1), (2031, 5, 17))).await;
    let target = unverified(target(&url));
    let outcome = probe(&target).await;
    assert_eq!(
        outcome.cert_expiry_unix,
        Some(NOT_AFTER_2031_05_17),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn certificate_from_an_untrusted_chain_is_a_tls_failure() {
    let url = serve(chained((2035, 1, 1), (2033, 1, 1), (2031, 5, 17))).await;
    assert_fails_with(&probe(&target(&url)).await, FailureReason::Tls);
}
