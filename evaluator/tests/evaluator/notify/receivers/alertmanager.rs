//! Conformance with a real Alertmanager: the same alerts are sent through
//! Alertmanager (Slack and webhook receivers pointing at a local capture
//! server) and through Vigil's receivers; the Slack title, title link and
//! fallback, and the webhook payload's shape must match.

use crate::support as common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use vigil_evaluator::notify::alert::AlertStatus;
use vigil_testkit::{external_tool, free_port, wait_for_http, ChildGuard};

use common::{alert, build_one, notification};

type Captured = Arc<Mutex<Vec<(String, Value)>>>;

async fn capture(
    State(captured): State<Captured>,
    Path(kind): Path<String>,
    Json(body): Json<Value>,
) -> &'static str {
    if let Ok(mut c) = captured.lock() {
        c.push((kind, body));
    }
    "ok"
}

async fn start_capture() -> (String, Captured) {
    let captured: Captured = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/{kind}", post(capture))
        .with_state(captured.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{address}"), captured)
}

/// Debian ships the binary as `prometheus-alertmanager`.
fn alertmanager_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("alertmanager"))
        .find(|candidate| candidate.is_file())
        .or_else(|| external_tool("prometheus-alertmanager"))
}

fn find(captured: &Captured, kind: &str) -> Option<Value> {
    captured
        .lock()
        .ok()?
        .iter()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_title_and_webhook_payload_match_alertmanager() {
    let Some(binary) = alertmanager_binary() else {
        return;
    };
    let (capture_url, captured) = start_capture().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:
  receiver: team-a
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
receivers:
  - name: team-a
    slack_configs:
      - api_url: '{capture_url}/slack'
    webhook_configs:
      - url: '{capture_url}/webhook'
"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let _alertmanager = ChildGuard::spawn(
        std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.external-url=http://vigil:9096")
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn"),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_for_http(&format!("{base}/-/ready"), Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The same two alerts Vigil's side uses (see support::alert).
    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Firing),
    ]);
    let posted: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let labels: serde_json::Map<String, Value> = a
                .alert
                .labels
                .iter()
                .map(|l| (l.name.to_string(), json!(l.value)))
                .collect();
            json!({
                "labels": labels,
                "annotations": a.alert.annotations,
                "startsAt": a.alert.starts_at.to_rfc3339(),
                "generatorURL": a.alert.generator_url,
            })
        })
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v2/alerts"))
        .json(&posted)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(response.status().is_success(), "{}", response.status());

    let deadline = Instant::now() + Duration::from_secs(20);
    let (am_slack, am_webhook) = loop {
        if let (Some(s), Some(w)) = (find(&captured, "slack"), find(&captured, "webhook")) {
            break (s, w);
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager sent nothing in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // Vigil's receivers, fed the equivalent notification.
    let vigil_slack = build_one(&format!(
        "slack_configs:\n  - api_url: '{capture_url}/vigil-slack'\n"
    ));
    let vigil_webhook = build_one(&format!(
        "webhook_configs:\n  - url: '{capture_url}/vigil-webhook'\n"
    ));
    assert!(vigil_slack.send(&n).await.is_ok());
    assert!(vigil_webhook.send(&n).await.is_ok());
    let ours_slack = find(&captured, "vigil-slack").unwrap_or_default();
    let ours_webhook = find(&captured, "vigil-webhook").unwrap_or_default();

    assert_eq!(
        am_slack["attachments"][0]["title"],
        "[FIRING:2] HighErrorRate (/x critical)"
    );
    assert_eq!(am_webhook["alerts"].as_array().map(Vec::len), Some(2));
    for key in ["title", "title_link", "fallback", "color"] {
        assert_eq!(
            ours_slack["attachments"][0][key], am_slack["attachments"][0][key],
            "slack attachment {key} differs"
        );
    }
    for key in [
        "version",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "truncatedAlerts",
    ] {
        assert_eq!(ours_webhook[key], am_webhook[key], "webhook {key} differs");
    }
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        k.sort();
        k
    };
    // Every Alertmanager field, plus Vigil's `idempotencyKey` (added
    // fields are within the compatibility contract: consumers ignore
    // fields they do not know).
    let mut ours = keys(&ours_webhook);
    assert!(ours.contains(&"idempotencyKey".to_string()), "{ours:?}");
    ours.retain(|k| k != "idempotencyKey");
    assert_eq!(ours, keys(&am_webhook));
    assert_eq!(
        keys(&ours_webhook["alerts"][0]),
        keys(&am_webhook["alerts"][0])
    );
    for key in [
        "status",
        "labels",
        "annotations",
        "startsAt",
        "generatorURL",
    ] {
        assert_eq!(
            ours_webhook["alerts"][0][key], am_webhook["alerts"][0][key],
            "webhook alert {key} differs"
        );
    }
}
