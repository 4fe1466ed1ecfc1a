//! A real Alertmanager as the oracle of what receivers send: a capture
//! server its receivers (and Vigil's) post to, the Alertmanager binary
//! started on a config, and the same notification posted to it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use vigil_evaluator::notify::alert::Notification;
use vigil_testkit::{external_tool, free_port, wait_for_http, ChildGuard};

/// The start of an oracle's Alertmanager config: every alert to receiver
/// `team-a`, grouped by `alertname`, flushed quickly; the receiver's
/// integrations follow.
pub const ROUTE_TO_TEAM_A: &str = "route:
  receiver: team-a
  group_by: [alertname]
  group_wait: 100ms
  group_interval: 1s
receivers:
  - name: team-a
";

/// What the capture server received, as (path without the slash, body):
/// a JSON body as it is, a form body as an object of its fields, the query
/// of a GET as an object of its parameters.
pub type Captured = Arc<Mutex<Vec<(String, Value)>>>;

/// A form-encoded text's fields as a JSON object (the last of a repeated
/// name wins).
pub fn form_fields(text: &[u8]) -> Value {
    let fields: serde_json::Map<String, Value> = form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Value::Object(fields)
}

/// What the capture server answers on `kind`: what WeChat answers to a
/// sent message, SNS's `PublishResponse`, or a plain `ok`.
fn answer(kind: &str) -> &'static str {
    if kind.ends_with("message/send") {
        r#"{"errcode":0,"errmsg":"ok","msgid":"m1"}"#
    } else if kind.starts_with("sns") {
        "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><PublishResult><MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId></PublishResult><ResponseMetadata><RequestId>d74b8436-ae13-5ab4-a9ff-ce54dfea72a0</RequestId></ResponseMetadata></PublishResponse>"
    } else {
        "ok"
    }
}

async fn capture(
    State(captured): State<Captured>,
    UrlPath(kind): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let value = if form {
        form_fields(&body)
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    if let Ok(mut c) = captured.lock() {
        c.push((kind.clone(), value));
    }
    answer(&kind)
}

/// A GET: its query recorded; `gettoken` answered with a WeChat access
/// token (`t`).
async fn capture_get(
    State(captured): State<Captured>,
    UrlPath(kind): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> &'static str {
    let value = form_fields(query.unwrap_or_default().as_bytes());
    if let Ok(mut c) = captured.lock() {
        c.push((kind.clone(), value));
    }
    if kind.ends_with("gettoken") {
        r#"{"errcode":0,"errmsg":"ok","access_token":"t","expires_in":7200}"#
    } else {
        "ok"
    }
}

/// A server taking posts (JSON or form) and GETs on any path (`kind` is
/// the path without its first slash); returns its base URL.
pub async fn start_capture() -> (String, Captured) {
    let captured: Captured = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/{*kind}", post(capture).get(capture_get))
        .with_state(captured.clone());
    let port = crate::support::process::serve(app).await;
    (format!("http://127.0.0.1:{port}"), captured)
}

/// The first body posted to `/{kind}`, if any.
pub fn find(captured: &Captured, kind: &str) -> Option<Value> {
    captured
        .lock()
        .ok()?
        .iter()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v.clone())
}

/// The last body captured on `kind`.
pub fn find_last(captured: &Captured, kind: &str) -> Option<Value> {
    captured
        .lock()
        .ok()?
        .iter()
        .rev()
        .find(|(k, _)| k == kind)
        .map(|(_, v)| v.clone())
}

/// Waits up to 20 s for bodies on every one of `kinds`, in that order.
pub async fn wait_for_captures(captured: &Captured, kinds: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Value> = kinds.iter().filter_map(|k| find(captured, k)).collect();
        if found.len() == kinds.len() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager sent nothing in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Alertmanager binary (Debian ships it as `prometheus-alertmanager`).
pub fn alertmanager_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("alertmanager"))
        .find(|candidate| candidate.is_file())
        .or_else(|| external_tool("prometheus-alertmanager"))
}

/// What an oracle test starts from: the Alertmanager binary (`None`
/// when it is not installed: the test is skipped), a capture server (its
/// base URL and what it received) and a folder for the configs.
pub async fn oracle() -> Option<(PathBuf, String, Captured, tempfile::TempDir)> {
    let binary = alertmanager_binary()?;
    let (capture_url, captured) = start_capture().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    Some((binary, capture_url, captured, dir))
}

/// Starts Alertmanager on `config`, its data in `dir`, external URL
/// `http://vigil:9096`; returns the process and its base URL once ready.
/// The ready endpoint alone cannot tell our Alertmanager from another
/// test's that took the port first: the process must hold the port
/// itself, or it starts again on another one.
pub async fn start_alertmanager(binary: &Path, dir: &Path, config: &Path) -> (ChildGuard, String) {
    for _ in 0..3 {
        let port = free_port();
        let mut child = ChildGuard::spawn(
            std::process::Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.external-url=http://vigil:9096")
                .arg("--cluster.listen-address=")
                .arg("--log.level=warn"),
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_for_http(&format!("{base}/-/ready"), Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(child.0.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            if vigil_testkit::process_listens_on(child.0.id(), port) {
                return (child, base);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "port {port} answered for another process; starting Alertmanager on another port"
        );
    }
    panic!(
        "Alertmanager for {} did not start on a port of its own in 3 tries",
        config.display()
    )
}

/// Posts the alerts of `n` to the Alertmanager at `base`, as Prometheus
/// would (with `endsAt` for those that have one).
pub async fn post_alerts(base: &str, n: &Notification) {
    // Resolved alerts first: Alertmanager flushes a group of old alerts
    // as soon as the first one arrives, and a flush of resolved alerts
    // alone sends nothing; the firing alert then flushes them all
    // together, however the machine schedules the two.
    let mut alerts: Vec<_> = n.alerts.iter().collect();
    alerts.sort_by_key(|a| a.status == vigil_evaluator::notify::alert::AlertStatus::Firing);
    let posted: Vec<Value> = alerts
        .into_iter()
        .map(|a| {
            let labels: serde_json::Map<String, Value> = a
                .alert
                .labels
                .iter()
                .map(|l| (l.name.to_string(), json!(l.value)))
                .collect();
            let mut alert = json!({
                "labels": labels,
                "annotations": a.alert.annotations,
                "startsAt": a.alert.starts_at.to_rfc3339(),
                "generatorURL": a.alert.generator_url,
            });
            if let Some(ends_at) = a.alert.ends_at {
                alert["endsAt"] = json!(ends_at.to_rfc3339());
            }
            alert
        })
        .collect();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v2/alerts"))
        .json(&posted)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(response.status().is_success(), "{}", response.status());
}

/// The paths (`attachments[0].title`) where two JSON values differ: a
/// key only one side has, or a different value.
pub fn json_differences(ours: &Value, theirs: &Value) -> Vec<String> {
    fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(x), Value::Object(y)) => {
                let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let at = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match (x.get(k), y.get(k)) {
                        (Some(a), Some(b)) => walk(&at, a, b, out),
                        (Some(a), None) => out.push(format!("{at}: only Vigil has {a}")),
                        (None, Some(b)) => out.push(format!("{at}: only Alertmanager has {b}")),
                        (None, None) => {}
                    }
                }
            }
            (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
                for (i, (a, b)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), a, b, out);
                }
            }
            _ if a != b => out.push(format!("{path}: Vigil {a}, Alertmanager {b}")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", ours, theirs, &mut out);
    out
}
