//! Test notifications against real HTTP receivers: `vigil-evaluator
//! receivers test` as a process (its output per integration and its exit
//! code) and `POST /api/vigil/v1/receivers/{name}/test` on the HTTP app.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::api_state::app_state;
use crate::support::process::Webhook;
use crate::support::{cargo_bin, webhook_team_a};

use std::process::Command;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use vigil_evaluator::api::{router, AppState};
use vigil_evaluator::notify::receivers::Secret;

/// Runs `receivers test` on `notify` (the config's text) with `args`;
/// returns stdout, stderr and the exit code.
fn receivers_test(notify: &str, args: &[&str]) -> (String, String, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notify.yaml");
    std::fs::write(&file, notify).unwrap();
    let out = Command::new(cargo_bin("vigil-evaluator"))
        .args(["receivers", "test", "--notify-config"])
        .arg(&file)
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_reports_each_integration_and_fails_when_one_fails() {
    let up = Webhook::start().await;
    let down = Webhook::start().await;
    down.refuse(true);
    let notify = format!(
        "route: {{receiver: ops}}\nreceivers:\n- name: ops\n  webhook_configs:\n  - url: 'http://127.0.0.1:{}/hook'\n  - url: 'http://127.0.0.1:{}/hook'\n- name: other\n  webhook_configs: [{{url: 'http://127.0.0.1:{}/hook'}}]\n",
        up.port, down.port, up.port
    );
    let (stdout, stderr, code) = tokio::task::spawn_blocking(move || {
        receivers_test(&notify, &["--receiver", "ops", "--alert", "severity=page"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(1), "one integration failed: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "ops/webhook[0]: OK");
    assert!(
        lines[1].starts_with("ops/webhook[1]: FAILED: webhook: endpoint answered HTTP 500"),
        "{stdout}"
    );
    let sent = up.payloads();
    assert_eq!(sent.len(), 1, "only receiver ops was tested");
    assert_eq!(sent[0]["receiver"], "ops");
    assert_eq!(sent[0]["status"], "firing");
    assert_eq!(
        sent[0]["alerts"][0]["labels"]["alertname"],
        "VigilReceiverTest"
    );
    assert_eq!(sent[0]["alerts"][0]["labels"]["severity"], "page");
    assert_eq!(down.refused(), 1, "one attempt, no retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_tests_every_receiver_and_passes_when_all_take_it() {
    let hook = Webhook::start().await;
    let notify = format!(
        "route: {{receiver: a}}\nreceivers:\n- name: a\n  webhook_configs: [{{url: 'http://127.0.0.1:{0}/hook'}}]\n- name: b\n  webhook_configs: [{{url: 'http://127.0.0.1:{0}/hook'}}]\n- name: silent\n",
        hook.port
    );
    let (stdout, stderr, code) = tokio::task::spawn_blocking(move || {
        receivers_test(&notify, &["--alert", "alertname=Drill"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "a/webhook[0]: OK\nb/webhook[0]: OK\n");
    let mut told: Vec<String> = hook
        .payloads()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["receiver"], p["alerts"][0]["labels"]["alertname"]
            )
        })
        .collect();
    told.sort();
    assert_eq!(told, ["\"a\":\"Drill\"", "\"b\":\"Drill\""]);
}

#[test]
fn an_unknown_receiver_or_a_broken_config_is_an_error_naming_it() {
    let (_, stderr, code) = receivers_test(
        "route: {receiver: a}\nreceivers: [{name: a}, {name: b}]\n",
        &["--receiver", "nope"],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr
            .contains("there is no receiver \"nope\" in the notification config; configured: a, b"),
        "{stderr}"
    );
    let (_, stderr, code) = receivers_test("route: {receiver: a}\nreceivers: [{name: b}]\n", &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("notify.yaml"), "{stderr}");
}

async fn post(
    app: &axum::Router,
    uri: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(Method::POST).uri(uri);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_sends_a_test_notification_to_the_named_receiver() {
    let hook = Webhook::start().await;
    let integrations = webhook_team_a(&format!("http://127.0.0.1:{}/hook", hook.port));
    let (_keep, receivers) = tokio::sync::watch::channel(Arc::new(integrations));
    let app = router(Arc::new(AppState {
        token: RwLock::new(Some(Secret::new("s3cret"))),
        receivers,
        ..app_state()
    }));
    let url = "/api/vigil/v1/receivers/team-a/test";

    let (status, _) = post(&app, url, None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(hook.payloads().is_empty(), "nothing sent without the token");

    let (status, body) = post(&app, url, Some("s3cret"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"receiver": "team-a", "ok": true, "integrations": [{"integration": "webhook[0]", "ok": true}]})
    );
    let (status, _) = post(
        &app,
        url,
        Some("s3cret"),
        r#"{"labels": {"alertname": "Drill"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<Value> = hook
        .payloads()
        .iter()
        .map(|p| p["alerts"][0]["labels"]["alertname"].clone())
        .collect();
    assert_eq!(names, [json!("VigilReceiverTest"), json!("Drill")]);

    hook.refuse(true);
    let (status, body) = post(&app, url, Some("s3cret"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["ok"], false);
    let error = body["data"]["integrations"][0]["error"].as_str().unwrap();
    assert!(error.contains("endpoint answered HTTP 500"), "{error}");

    let (status, body) = post(
        &app,
        "/api/vigil/v1/receivers/nope/test",
        Some("s3cret"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("configured: team-a"),
        "{body}"
    );
    let (status, _) = post(&app, url, Some("s3cret"), r#"{"labels": 5}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
