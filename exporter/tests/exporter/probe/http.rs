//! `probe_once` against plain HTTP servers: each failure reason and the
//! request options.

use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{any, get};
use axum::Router;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use vigil_exporter::probe::{FailureReason, ProbeOutcome, MAX_BODY_BYTES};

use crate::support::{assert_fails_with, closed_addr, probe, serve_http, target, target_expecting};

#[tokio::test]
async fn up_target_succeeds_with_its_status() {
    let addr = serve_http(Router::new().route("/healthz", get(|| async { "ok" }))).await;
    let outcome = probe(&target(&format!("http://{addr}/healthz"))).await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(outcome.status, Some(200));
    assert_eq!(outcome.cert_expiry_unix, None);
}

#[tokio::test]
async fn refused_connection_is_a_connect_failure() {
    let addr = closed_addr().await;
    let outcome = probe(&target(&format!("http://{addr}/"))).await;
    assert_fails_with(&outcome, FailureReason::Connect);
    assert_eq!(outcome.status, None);
}

#[tokio::test]
async fn unresolvable_host_is_a_connect_failure() {
    // `.invalid` is reserved and never resolves (RFC 2606). The generous
    // timeout only matters on a machine whose resolver hangs instead of
    // failing; it keeps this test about classification, not DNS speed.
    let mut target = target("http://vigil-probe-test.invalid/");
    target.timeout = Duration::from_secs(60);
    let outcome = probe(&target).await;
    assert_fails_with(&outcome, FailureReason::Connect);
}

#[tokio::test]
async fn connection_closed_without_a_response_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            // Read the request, then hang up without answering.
            let mut buffer = [0_u8; 1024];
            let _ = stream.read(&mut buffer).await;
            drop(stream);
        }
    });
    let outcome = probe(&target(&format!("http://{addr}/"))).await;
    assert_fails_with(&outcome, FailureReason::Connect);
}

#[tokio::test]
async fn body_is_cut_at_the_documented_limit() {
    let huge = || async { "x".repeat(3 * MAX_BODY_BYTES) };
    let addr = serve_http(Router::new().route("/", get(huge))).await;
    let outcome = probe_expecting(
        &format!("http://{addr}/"),
        &format!("len(body) == {MAX_BODY_BYTES}"),
    )
    .await;
    assert!(outcome.is_success(), "{outcome:?}");
}

#[tokio::test]
async fn server_slower_than_the_timeout_is_a_timeout_failure() {
    let slow = || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        "late"
    };
    let addr = serve_http(Router::new().route("/", get(slow))).await;
    let mut target = target(&format!("http://{addr}/"));
    target.timeout = Duration::from_millis(200);
    let outcome = probe(&target).await;
    assert_fails_with(&outcome, FailureReason::Timeout);
}

#[tokio::test]
async fn error_status_with_the_default_expectation_is_a_status_failure() {
    let failing = || async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") };
    let addr = serve_http(Router::new().route("/", get(failing))).await;
    let outcome = probe(&target(&format!("http://{addr}/"))).await;
    assert_fails_with(&outcome, FailureReason::Status);
    assert_eq!(outcome.status, Some(500));
}

#[tokio::test]
async fn false_custom_expectation_on_the_body_is_an_expectation_failure() {
    let addr = serve_http(Router::new().route("/", get(|| async { "status: degraded" }))).await;
    let outcome = probe_expecting(
        &format!("http://{addr}/"),
        "contains_str(body, \"status: ok\")",
    )
    .await;
    assert_fails_with(&outcome, FailureReason::Expectation);
    assert_eq!(outcome.status, Some(200));
}

#[tokio::test]
async fn custom_expectation_failing_on_status_is_an_expectation_failure_not_status() {
    let addr = serve_http(Router::new().route("/", get(|| async { StatusCode::NO_CONTENT }))).await;
    let outcome = probe_expecting(&format!("http://{addr}/"), "status == 200").await;
    assert_fails_with(&outcome, FailureReason::Expectation);
}

#[tokio::test]
async fn custom_expectation_sees_headers_and_latency() {
    let json = || async { ([("content-type", "application/json")], "{\"ok\":true}") };
    let addr = serve_http(Router::new().route("/", get(json))).await;
    let outcome = probe_expecting(
        &format!("http://{addr}/"),
        "header(\"Content-Type\") == \"application/json\" && contains(headers, \"content-type: application/json\") && latency_ms >= 0 && latency_ms < 5000",
    ).await;
    assert!(outcome.is_success(), "{outcome:?}");
}

#[tokio::test]
async fn method_headers_and_body_are_sent_as_configured() {
    let echo = |method: Method, headers: HeaderMap, body: String| async move {
        let token_ok = headers
            .get("x-token")
            .is_some_and(|value| value == "s3cret");
        if method == Method::POST && token_ok && body == "{\"ping\":1}" {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        }
    };
    let addr = serve_http(Router::new().route("/", any(echo))).await;
    let mut target = target(&format!("http://{addr}/"));
    target.method = Method::POST;
    target.headers = vec![("X-Token".into(), "s3cret".into())];
    target.body = Some("{\"ping\":1}".into());
    let outcome = probe(&target).await;
    assert_eq!(outcome.status, Some(200), "{outcome:?}");
}

/// Probes `url` once with the expectation `expect`.
async fn probe_expecting(url: &str, expect: &str) -> ProbeOutcome {
    probe(&target_expecting(url, expect)).await
}

fn redirecting_app() -> Router {
    Router::new()
        .route(
            "/old",
            get(|| async { Redirect::to("/new").into_response() }),
        )
        .route("/new", get(|| async { "landed" }))
}

#[tokio::test]
async fn redirects_are_followed_when_enabled() {
    let addr = serve_http(redirecting_app()).await;
    let outcome = probe_expecting(
        &format!("http://{addr}/old"),
        "status == 200 && body == \"landed\"",
    )
    .await;
    assert!(outcome.is_success(), "{outcome:?}");
}

#[tokio::test]
async fn redirect_is_the_final_response_when_following_is_disabled() {
    let addr = serve_http(redirecting_app()).await;
    let mut target = target(&format!("http://{addr}/old"));
    target.follow_redirects = false;
    let outcome = probe(&target).await;
    assert!(
        outcome.is_success(),
        "a 3xx meets the default expectation: {outcome:?}"
    );
    assert_eq!(outcome.status, Some(303));
}

#[tokio::test]
async fn redirect_loop_is_a_status_failure() {
    let addr =
        serve_http(Router::new().route("/loop", get(|| async { Redirect::to("/loop") }))).await;
    let outcome = probe(&target(&format!("http://{addr}/loop"))).await;
    assert_fails_with(&outcome, FailureReason::Status);
}
