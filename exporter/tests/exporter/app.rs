//! The exporter's HTTP app, driven in-process with `oneshot` (no socket):
//! business events, `/metrics`, health and demo endpoints.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vigil_exporter::config::Config;
use vigil_exporter::server::{app, AppState};

use crate::support::{assert_contains, assert_contains_all};

const TOKEN: &str = "test-token";

const CONFIG: &str = "
demo: true
business:
  max_label_sets: 3
  counters:
    - {name: orders_created_total, help: Orders created., labels: [channel]}
  gauges:
    - {name: queue_depth, help: Jobs waiting., labels: [queue]}
";

fn state_with(yaml: &str, env_token: Option<&str>) -> Result<AppState> {
    let config = Config::parse(yaml, Path::new("exporter.yaml"), env_token)?;
    Ok(AppState::new(&config)?)
}

fn state() -> Result<AppState> {
    state_with(CONFIG, Some(TOKEN))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The value of the response header `name`, as bytes.
    fn header(&self, name: header::HeaderName) -> Option<&[u8]> {
        self.headers.get(name).map(|v| v.as_bytes())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(state: &AppState, request: Request<Body>) -> Result<Reply> {
    let response = app(state.clone()).oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

async fn get(state: &AppState, uri: &str) -> Result<Reply> {
    send(state, Request::get(uri).body(Body::empty())?).await
}

/// The event body of one `orders_created_total` order from `channel`.
fn order(channel: &str) -> String {
    format!(r#"{{"metric": "orders_created_total", "labels": {{"channel": "{channel}"}}}}"#)
}

/// The status `GET uri` answers with.
async fn status_of(state: &AppState, uri: &str) -> Result<StatusCode> {
    Ok(get(state, uri).await?.status)
}

async fn post_event(state: &AppState, token: Option<&str>, body: impl Into<Body>) -> Result<Reply> {
    let mut request =
        Request::post("/api/v1/events").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(state, request.body(body.into())?).await
}

/// Posts one order from the web channel with the right token.
async fn post_web_order(state: &AppState) -> Result<Reply> {
    post_event(state, Some(TOKEN), order("web")).await
}

/// The business part of `/metrics`: other families (process metrics, HTTP
/// request metrics) change by themselves or because of the test's requests.
async fn business_metrics(state: &AppState) -> Result<String> {
    let reply = get(state, "/metrics").await?;
    Ok(reply
        .text()
        .lines()
        .filter(|line| line.contains("orders_created_total") || line.contains("queue_depth"))
        .map(|line| format!("{line}\n"))
        .collect())
}

#[tokio::test]
async fn counter_events_add_their_value_defaulting_to_one() -> Result<()> {
    let state = state()?;
    for body in [
        r#"{"metric": "orders_created_total", "labels": {"channel": "web"}}"#,
        r#"{"metric": "orders_created_total", "labels": {"channel": "web"}, "value": 2}"#,
        r#"{"metric": "orders_created_total", "labels": {"channel": "app"}, "value": 0.5}"#,
    ] {
        let reply = post_event(&state, Some(TOKEN), body).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let metrics = business_metrics(&state).await?;
    assert_contains(&metrics, "orders_created_total{channel=\"web\"} 3\n");
    assert_contains(&metrics, "orders_created_total{channel=\"app\"} 0.5\n");
    Ok(())
}

#[tokio::test]
async fn accepted_event_answers_with_the_new_value() -> Result<()> {
    let state = state()?;
    post_web_order(&state).await?;
    let reply = post_web_order(&state).await?;
    assert_eq!(
        reply.json()?,
        serde_json::json!({"metric": "orders_created_total", "labels": {"channel": "web"}, "value": 2.0})
    );
    Ok(())
}

#[tokio::test]
async fn gauge_events_set_the_value() -> Result<()> {
    let state = state()?;
    for value in ["12", "4", "-1.5"] {
        let body = format!(
            r#"{{"metric": "queue_depth", "labels": {{"queue": "mail"}}, "value": {value}}}"#
        );
        let reply = post_event(&state, Some(TOKEN), body).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let metrics = business_metrics(&state).await?;
    assert_contains(&metrics, "queue_depth{queue=\"mail\"} -1.5\n");
    Ok(())
}

/// A bad post: what is sent, and the status and error code expected.
struct BadPost {
    what: &'static str,
    token: Option<&'static str>,
    body: String,
    status: StatusCode,
    code: &'static str,
    mentions: &'static str,
}

#[tokio::test]
async fn every_kind_of_bad_event_gets_a_json_error_and_changes_nothing() -> Result<()> {
    let state = state()?;
    // One accepted event first, so "unchanged" covers an existing series.
    post_web_order(&state).await?;
    let before = business_metrics(&state).await?;
    let web = r#""labels": {"channel": "web"}"#;
    let cases = [
        BadPost { what: "no token", token: None, body: format!(r#"{{"metric": "orders_created_total", {web}}}"#), status: StatusCode::UNAUTHORIZED, code: "missing_token", mentions: "Authorization: Bearer" },
        BadPost { what: "wrong token", token: Some("nope"), body: format!(r#"{{"metric": "orders_created_total", {web}}}"#), status: StatusCode::UNAUTHORIZED, code: "wrong_token", mentions: "wrong bearer token" },
        BadPost { what: "malformed JSON", token: Some(TOKEN), body: r#"{"metric": "orders_created_total","#.into(), status: StatusCode::BAD_REQUEST, code: "malformed_event", mentions: "malformed event" },
        BadPost { what: "unknown event field", token: Some(TOKEN), body: format!(r#"{{"metric": "orders_created_total", {web}, "count": 1}}"#), status: StatusCode::BAD_REQUEST, code: "malformed_event", mentions: "unknown field `count`" },
        BadPost { what: "undeclared metric", token: Some(TOKEN), body: r#"{"metric": "refunds_total"}"#.into(), status: StatusCode::UNPROCESSABLE_ENTITY, code: "unknown_metric", mentions: "\"refunds_total\" is not declared" },
        BadPost { what: "unknown label", token: Some(TOKEN), body: r#"{"metric": "orders_created_total", "labels": {"channel": "web", "region": "eu"}}"#.into(), status: StatusCode::UNPROCESSABLE_ENTITY, code: "unknown_labels", mentions: "has no label(s) [\"region\"]" },
        BadPost { what: "missing label", token: Some(TOKEN), body: r#"{"metric": "orders_created_total"}"#.into(), status: StatusCode::UNPROCESSABLE_ENTITY, code: "missing_labels", mentions: "needs label(s) [\"channel\"]" },
        BadPost { what: "empty label value", token: Some(TOKEN), body: r#"{"metric": "orders_created_total", "labels": {"channel": ""}}"#.into(), status: StatusCode::UNPROCESSABLE_ENTITY, code: "missing_labels", mentions: "needs label(s) [\"channel\"] with non-empty values" },
        BadPost { what: "negative counter value", token: Some(TOKEN), body: format!(r#"{{"metric": "orders_created_total", {web}, "value": -1}}"#), status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_value", mentions: "counters never go down" },
        BadPost { what: "non-finite value", token: Some(TOKEN), body: format!(r#"{{"metric": "orders_created_total", {web}, "value": 1e999}}"#), status: StatusCode::BAD_REQUEST, code: "malformed_event", mentions: "number out of range" },
        BadPost { what: "string value", token: Some(TOKEN), body: format!(r#"{{"metric": "orders_created_total", {web}, "value": "NaN"}}"#), status: StatusCode::BAD_REQUEST, code: "malformed_event", mentions: "invalid type" },
        BadPost { what: "gauge without value", token: Some(TOKEN), body: r#"{"metric": "queue_depth", "labels": {"queue": "mail"}}"#.into(), status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_value", mentions: "needs a value" },
        BadPost { what: "body over 64 KiB", token: Some(TOKEN), body: format!(r#"{{"metric": "orders_created_total", {web}, "pad": "{}"}}"#, "x".repeat(70_000)), status: StatusCode::PAYLOAD_TOO_LARGE, code: "body_too_large", mentions: "larger than 65536 bytes" },
    ];
    for case in cases {
        let reply = post_event(&state, case.token, case.body).await?;
        let json = reply.json()?;
        let error = json["error"].as_str().unwrap_or_default();
        assert_eq!(reply.status, case.status, "{}: {json}", case.what);
        assert_eq!(json["code"], case.code, "{}: {json}", case.what);
        assert!(
            error.contains(case.mentions),
            "{}: {error:?} should mention {:?}",
            case.what,
            case.mentions
        );
        assert_eq!(
            business_metrics(&state).await?,
            before,
            "{} changed /metrics",
            case.what
        );
    }
    Ok(())
}

#[tokio::test]
async fn unauthorized_reply_asks_for_a_bearer_token() -> Result<()> {
    let reply = post_event(&state()?, None, "{}").await?;
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some(&b"Bearer"[..]));
    Ok(())
}

#[tokio::test]
async fn a_counter_event_that_would_overflow_to_infinity_is_refused_with_422() -> Result<()> {
    let state = state()?;
    let big = r#"{"metric": "orders_created_total", "labels": {"channel": "web"}, "value": 1e308}"#;
    let first = post_event(&state, Some(TOKEN), big).await?;
    assert_eq!(first.status, StatusCode::OK);
    let before = business_metrics(&state).await?;
    let second = post_event(&state, Some(TOKEN), big).await?;
    assert_eq!(second.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reply = second.json()?;
    assert_eq!(reply["code"], "counter_overflow", "{reply}");
    assert!(
        reply.to_string().contains("would overflow it to +Inf"),
        "{reply}"
    );
    assert_eq!(business_metrics(&state).await?, before, "unchanged");
    Ok(())
}

#[tokio::test]
async fn label_set_limit_rejects_new_sets_but_keeps_counting_known_ones() -> Result<()> {
    let state = state()?; // max_label_sets: 3
    for channel in ["web", "app", "phone"] {
        assert_eq!(
            post_event(&state, Some(TOKEN), order(channel))
                .await?
                .status,
            StatusCode::OK
        );
    }
    let before = business_metrics(&state).await?;
    let fourth = post_event(&state, Some(TOKEN), order("fax")).await?;
    assert_eq!(fourth.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fourth.json()?["code"], "too_many_label_sets");
    assert_eq!(business_metrics(&state).await?, before);
    let known = post_web_order(&state).await?;
    assert_eq!(known.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn without_a_configured_token_events_are_refused_with_403() -> Result<()> {
    let state = state_with(CONFIG, None)?;
    let reply = post_event(&state, Some("anything"), order("web")).await?;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.json()?["code"], "ingest_disabled");
    Ok(())
}

#[tokio::test]
async fn metrics_use_the_prometheus_text_content_type() -> Result<()> {
    let state = state()?;
    post_web_order(&state).await?;
    let reply = get(&state, "/metrics").await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        Some(&b"text/plain; version=0.0.4; charset=utf-8"[..])
    );
    assert_contains(&reply.text(), "# TYPE orders_created_total counter");
    Ok(())
}

#[tokio::test]
async fn metrics_name_the_running_build() -> Result<()> {
    let text = get(&state()?, "/metrics").await?.text();
    let expected = format!(
        "vigil_exporter_build_info{{commit=\"{}\",version=\"{}\"}} 1\n",
        vigil_common::build_info::GIT_COMMIT,
        env!("CARGO_PKG_VERSION")
    );
    assert_contains(&text, &expected);
    Ok(())
}

#[tokio::test]
async fn metrics_are_gzipped_when_the_client_accepts_gzip() -> Result<()> {
    let state = state()?;
    post_web_order(&state).await?;
    let request = Request::get("/metrics")
        .header(header::ACCEPT_ENCODING, "gzip")
        .body(Body::empty())?;
    let reply = send(&state, request).await?;
    assert_eq!(reply.header(header::CONTENT_ENCODING), Some(&b"gzip"[..]));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&reply.body[..]).read_to_string(&mut text)?;
    assert_contains(&text, "# HELP orders_created_total Orders created.");
    Ok(())
}

#[tokio::test]
async fn healthz_is_always_ok_and_readyz_follows_readiness() -> Result<()> {
    let state = state()?;
    assert_eq!(status_of(&state, "/healthz").await?, StatusCode::OK);
    assert_eq!(
        status_of(&state, "/readyz").await?,
        StatusCode::SERVICE_UNAVAILABLE
    );
    state.set_ready(true);
    assert_eq!(status_of(&state, "/readyz").await?, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn demo_ok_and_error_answer_200_and_500() -> Result<()> {
    let state = state()?;
    for (uri, expected) in [
        ("/demo/ok", StatusCode::OK),
        ("/demo/error", StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        assert_eq!(status_of(&state, uri).await?, expected, "{uri}");
    }
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn demo_slow_sleeps_the_default_or_the_capped_requested_time() -> Result<()> {
    let state = state()?;
    for (uri, expected) in [
        ("/demo/slow", 1500),
        ("/demo/slow?ms=200", 200),
        ("/demo/slow?ms=999999", 10_000),
    ] {
        let started = tokio::time::Instant::now();
        let reply = get(&state, uri).await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::from_millis(expected), "{uri}");
    }
    let bad = get(&state, "/demo/slow?ms=soon").await?;
    assert_eq!(
        (bad.status, bad.json()?["code"].clone()),
        (StatusCode::BAD_REQUEST, "bad_request".into())
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn demo_flaky_fails_for_its_window_after_start_then_recovers() -> Result<()> {
    let state = state()?;
    assert_eq!(
        status_of(&state, "/demo/flaky").await?,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    tokio::time::advance(Duration::from_secs(89)).await;
    assert_eq!(
        status_of(&state, "/demo/flaky").await?,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        status_of(&state, "/demo/flaky?fail_for_s=30").await?,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(status_of(&state, "/demo/flaky").await?, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn demo_routes_do_not_exist_unless_demo_is_on() -> Result<()> {
    let state = state_with("demo: false\n", None)?;
    let reply = get(&state, "/demo/ok").await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json()?["code"], "not_found");
    Ok(())
}

#[tokio::test]
async fn registry_is_shared_with_other_components() -> Result<()> {
    let registry = prometheus::Registry::new();
    let config = Config::parse(CONFIG, Path::new("exporter.yaml"), None)?;
    let state = AppState::with_registry(&config, registry.clone())?;
    let extra =
        prometheus::IntCounter::new("extra_component_total", "Registered by another component.")?;
    registry.register(Box::new(extra.clone()))?;
    extra.inc();
    let text = get(&state, "/metrics").await?.text();
    assert_contains(&text, "extra_component_total 1\n");
    Ok(())
}

#[test]
fn config_problems_surface_as_errors() {
    let result = state_with("business:\n  counters: [{name: Bad}]\n", None)
        .map_err(|e| anyhow!(e).to_string());
    assert!(
        result
            .as_ref()
            .err()
            .is_some_and(|e| e.contains("exporter.yaml:2:21: business.counters[0].name")),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_exporters_own_routes_are_counted_by_route_template_and_status() -> Result<()> {
    let state = state()?;
    for uri in ["/demo/ok", "/demo/ok", "/demo/error", "/no/such/page"] {
        get(&state, uri).await?;
    }
    let text = get(&state, "/metrics").await?.text();
    assert_contains_all(
        &text,
        [
            "http_requests_total{method=\"GET\",route=\"/demo/ok\",status=\"200\"} 2\n",
            "http_requests_total{method=\"GET\",route=\"/demo/error\",status=\"500\"} 1\n",
            "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n",
        ],
    );
    Ok(())
}

#[tokio::test]
async fn one_state_builds_many_routers_on_one_registry() -> Result<()> {
    let state = state()?;
    // Each `app` call reuses the state's layer; registering a second layer
    // in the same registry would fail, so this would error or double count.
    get(&state, "/healthz").await?;
    get(&state, "/healthz").await?;
    let text = get(&state, "/metrics").await?.text();
    assert_contains(
        &text,
        "http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 2\n",
    );
    Ok(())
}
