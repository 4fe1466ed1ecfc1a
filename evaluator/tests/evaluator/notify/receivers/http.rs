//! Slack and webhook receivers against a local HTTP server that checks the
//! payload the way Slack and Alertmanager webhook consumers read it, and
//! answers with scripted statuses to exercise retry, `Retry-After`, pacing
//! and batching on simulated time.

use crate::support as common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tokio::sync::{mpsc, Semaphore};
use vigil_evaluator::clock::{Clock, SimClock};
use vigil_evaluator::notify::alert::AlertStatus;
use vigil_evaluator::notify::deliver::{Jitter, Pacer, Retrier, RetryPolicy, SLACK_INTERVAL};
use vigil_evaluator::notify::receivers::SendError;

use common::{alert, build_one, notification};

/// What the server saw for one request.
#[derive(Debug, Clone)]
struct Recorded {
    at: Duration,
    headers: HeaderMap,
    body: Value,
    /// Problems found by the Slack payload check (empty when valid).
    problems: Vec<String>,
}

/// One scripted answer of the test server.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
    /// Real time to hold the request before answering (timeout tests).
    delay: Duration,
}

fn answer(status: u16) -> Answer {
    Answer {
        status,
        retry_after: None,
        body: "scripted".into(),
        delay: Duration::ZERO,
    }
}

impl Answer {
    fn retry_after(mut self, value: &str) -> Answer {
        self.retry_after = Some(value.into());
        self
    }

    fn body(mut self, body: &str) -> Answer {
        self.body = body.into();
        self
    }

    fn delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

#[derive(Clone)]
struct ServerState {
    clock: Arc<SimClock>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    /// Scripted answers (status, Retry-After); 200 once exhausted.
    script: Arc<Mutex<VecDeque<Answer>>>,
    check_slack: bool,
    /// When set, the first request waits for a permit before answering.
    gate: Option<Arc<Semaphore>>,
    arrivals: mpsc::UnboundedSender<usize>,
}

struct TestServer {
    url: String,
    state: ServerState,
    arrivals: mpsc::UnboundedReceiver<usize>,
}

impl TestServer {
    fn recorded(&self) -> Vec<Recorded> {
        self.state
            .recorded
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

/// Checks a body against Slack's documented incoming-webhook format:
/// `attachments` is an array of at most 100 objects whose `color`, `title`,
/// `text`, `fallback` are strings, `fields` have string `title`/`value` and a
/// boolean `short`, `actions` have string `type` and `text`; the visible text
/// stays under 40,000 characters.
fn slack_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(object) = body.as_object() else {
        return vec!["body is not a JSON object".into()];
    };
    for key in ["channel", "username", "icon_emoji", "icon_url", "text"] {
        if object.get(key).is_some_and(|v| !v.is_string()) {
            problems.push(format!("{key} is not a string"));
        }
    }
    let Some(attachments) = object.get("attachments").and_then(Value::as_array) else {
        return vec!["attachments missing or not an array".into()];
    };
    if attachments.is_empty() || attachments.len() > 100 {
        problems.push(format!(
            "{} attachments (1..=100 allowed)",
            attachments.len()
        ));
    }
    let mut visible = object
        .get("text")
        .and_then(Value::as_str)
        .map_or(0, |t| t.chars().count());
    for (i, attachment) in attachments.iter().enumerate() {
        for key in ["color", "title", "text", "fallback"] {
            match attachment.get(key).and_then(Value::as_str) {
                Some(value) => {
                    if key != "fallback" && key != "color" {
                        visible += value.chars().count();
                    }
                }
                None => problems.push(format!("attachments[{i}].{key} missing or not a string")),
            }
        }
        if attachment
            .get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| t.chars().count() > 3000)
        {
            problems.push(format!("attachments[{i}].text longer than 3000"));
        }
        for field in attachment
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ok = field.get("title").is_some_and(Value::is_string)
                && field.get("value").is_some_and(Value::is_string)
                && field.get("short").is_some_and(Value::is_boolean);
            if !ok {
                problems.push(format!("attachments[{i}].fields entry malformed: {field}"));
            }
        }
        for action in attachment
            .get("actions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let ok = action.get("type").is_some_and(Value::is_string)
                && action.get("text").is_some_and(Value::is_string);
            if !ok {
                problems.push(format!(
                    "attachments[{i}].actions entry malformed: {action}"
                ));
            }
        }
    }
    if visible > 40_000 {
        problems.push(format!("{visible} visible characters (> 40000)"));
    }
    problems
}

async fn handle(State(state): State<ServerState>, headers: HeaderMap, body: Bytes) -> Response {
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut problems = if state.check_slack {
        slack_problems(&body)
    } else {
        Vec::new()
    };
    if !json_type {
        problems.push("Content-Type is not application/json".into());
    }
    let index = {
        let Ok(mut recorded) = state.recorded.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        recorded.push(Recorded {
            at: state.clock.monotonic(),
            headers,
            body,
            problems: problems.clone(),
        });
        recorded.len() - 1
    };
    let _ = state.arrivals.send(index);
    if index == 0 {
        if let Some(gate) = &state.gate {
            if let Ok(permit) = gate.acquire().await {
                permit.forget();
            }
        }
    }
    if !problems.is_empty() {
        // Slack answers a malformed payload with 400 invalid_payload.
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    }
    let next = state.script.lock().ok().and_then(|mut s| s.pop_front());
    match next {
        None => (StatusCode::OK, "ok").into_response(),
        Some(answer) => {
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            let status =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, answer.body).into_response();
            if let Some(value) = answer.retry_after.and_then(|v| v.parse().ok()) {
                response.headers_mut().insert("retry-after", value);
            }
            response
        }
    }
}

async fn start_server(
    clock: Arc<SimClock>,
    script: Vec<Answer>,
    check_slack: bool,
    gate: Option<Arc<Semaphore>>,
) -> TestServer {
    let (arrivals_tx, arrivals) = mpsc::unbounded_channel();
    let state = ServerState {
        clock,
        recorded: Arc::new(Mutex::new(Vec::new())),
        script: Arc::new(Mutex::new(script.into())),
        check_slack,
        gate,
        arrivals: arrivals_tx,
    };
    let app = Router::new()
        .route("/hook", post(handle))
        .with_state(state.clone());
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("cannot bind a loopback port: {e}"),
    };
    let address = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TestServer {
        url: format!("http://{address}/hook"),
        state,
        arrivals,
    }
}

/// Simulated time (from 2026-01-01) whose sleeps advance it.
fn sim_clock() -> Arc<SimClock> {
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .map(|t| t.to_utc())
        .unwrap_or_default();
    Arc::new(SimClock::new(start).advancing_on_sleep())
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
        deadline: Duration::from_secs(120),
        jitter: Jitter::Full,
    }
}

fn slack_yaml(url: &str) -> String {
    format!(
        "slack_configs:\n  - api_url: '{url}'\n    channel: '#alerts'\n    send_resolved: true\n    text: '{{{{ template \"vigil.slack.text\" . }}}}'\n    actions: [{{type: button, text: Runbook, url: '{{{{ .CommonAnnotations.runbook_url }}}}'}}]\n    fields: [{{title: route, value: '{{{{ .CommonLabels.route }}}}', short: true}}]\n"
    )
}

#[tokio::test]
async fn slack_payload_is_valid_for_slack_and_carries_title_colour_fields_and_links() {
    let clock = sim_clock();
    let server = start_server(clock.clone(), vec![], true, None).await;
    let receiver = build_one(&slack_yaml(&server.url));
    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Firing),
    ]);

    let report = receiver.send(&n).await;

    assert!(report.is_ok(), "{report:?}");
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 1);
    assert!(
        recorded[0].problems.is_empty(),
        "{:?}",
        recorded[0].problems
    );
    let body = &recorded[0].body;
    assert_eq!(body["channel"], "#alerts");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["title"],
        "[FIRING:2] HighErrorRate (/x critical)"
    );
    assert_eq!(attachment["color"], "danger");
    assert_eq!(
        attachment["mrkdwn_in"],
        serde_json::json!(["fallback", "pretext", "text"])
    );
    assert_eq!(
        attachment["title_link"],
        "http://vigil:9096/#/alerts?receiver=team-a"
    );
    assert_eq!(
        attachment["actions"][0]["url"],
        "https://runbooks.example/high-error-rate"
    );
    let fields: Vec<(&str, &str)> = attachment["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["title"].as_str()?, f["value"].as_str()?)))
        .collect();
    assert_eq!(fields, vec![("route", "/x")]);
    let text = attachment["text"].as_str().unwrap_or("");
    assert!(text.contains("Error rate above 5% on a"), "{text}");
    assert!(text.contains("`pod=b`"), "{text}");
}

#[tokio::test]
async fn slack_429_retry_after_is_honoured_on_the_simulated_clock() {
    let clock = sim_clock();
    let server = start_server(
        clock.clone(),
        vec![answer(429).retry_after("7")],
        true,
        None,
    )
    .await;
    let receiver = build_one(&slack_yaml(&server.url));
    let retrier = Retrier::with_seed(policy(), clock.clone(), 1);

    let outcome = retrier
        .deliver(
            receiver.as_ref(),
            &notification(vec![alert("a", "warning", AlertStatus::Firing)]),
        )
        .await;

    assert!(outcome.is_delivered(), "{:?}", outcome.result);
    assert_eq!(outcome.attempts, 2);
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 2);
    assert!(
        recorded[1].at - recorded[0].at >= Duration::from_secs(7),
        "second attempt at {:?}, first at {:?}",
        recorded[1].at,
        recorded[0].at
    );
}

#[tokio::test]
async fn slack_500_is_retried_until_it_succeeds() {
    let clock = sim_clock();
    let server = start_server(clock.clone(), vec![answer(500), answer(502)], true, None).await;
    let receiver = build_one(&slack_yaml(&server.url));
    let retrier = Retrier::with_seed(policy(), clock.clone(), 2);

    let outcome = retrier
        .deliver(
            receiver.as_ref(),
            &notification(vec![alert("a", "warning", AlertStatus::Firing)]),
        )
        .await;

    assert!(outcome.is_delivered(), "{:?}", outcome.result);
    assert_eq!(outcome.attempts, 3);
    assert_eq!(server.recorded().len(), 3);
    assert_eq!(outcome.result.ok().and_then(|r| r.response_code), Some(200));
}

#[tokio::test]
async fn slack_400_is_not_retried_and_the_error_hides_the_url() {
    let clock = sim_clock();
    let server = start_server(clock.clone(), vec![answer(400)], true, None).await;
    let receiver = build_one(&slack_yaml(&server.url));
    let retrier = Retrier::with_seed(policy(), clock.clone(), 3);

    let outcome = retrier
        .deliver(
            receiver.as_ref(),
            &notification(vec![alert("a", "warning", AlertStatus::Firing)]),
        )
        .await;

    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.response_code(), Some(400));
    assert_eq!(server.recorded().len(), 1);
    let error = outcome
        .last_error()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(error.contains("HTTP 400"), "{error}");
    assert!(
        !error.contains("/hook"),
        "error leaks the webhook URL: {error}"
    );
    assert!(
        !format!("{receiver:?}").contains("/hook"),
        "Debug leaks the webhook URL"
    );
}

#[tokio::test]
async fn slack_connection_refused_is_retried_until_the_deadline() {
    let clock = sim_clock();
    // A port nobody listens on.
    let port = vigil_testkit::free_port();
    let receiver = build_one(&slack_yaml(&format!("http://127.0.0.1:{port}/hook")));
    let policy = RetryPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(4),
        deadline: Duration::from_secs(10),
        jitter: Jitter::None,
    };
    let retrier = Retrier::with_seed(policy, clock.clone(), 4);

    let outcome = retrier
        .deliver(
            receiver.as_ref(),
            &notification(vec![alert("a", "warning", AlertStatus::Firing)]),
        )
        .await;

    // Waits 1, 2, 4 (total 7); the next 4 s wait would end at 11 s > 10 s.
    assert_eq!(outcome.attempts, 4);
    assert!(outcome.deadline_exceeded);
    assert!(matches!(
        outcome.last_error(),
        Some(SendError::Transport { .. })
    ));
}

#[tokio::test]
async fn slack_backlog_is_paced_and_merged_into_one_message() {
    let clock = sim_clock();
    let gate = Arc::new(Semaphore::new(0));
    let mut server = start_server(clock.clone(), vec![], true, Some(gate.clone())).await;
    let receiver = build_one(&slack_yaml(&server.url));
    let retrier = Arc::new(Retrier::with_seed(policy(), clock.clone(), 5));
    let pacer = Pacer::new(retrier, SLACK_INTERVAL);

    // The first message is in flight (held by the server) while four more queue up.
    let first = pacer.submit(
        receiver.clone(),
        notification(vec![alert("p0", "warning", AlertStatus::Firing)]),
    );
    assert_eq!(server.arrivals.recv().await, Some(0));
    let queued: Vec<_> = (1..=4)
        .map(|i| {
            pacer.submit(
                receiver.clone(),
                notification(vec![alert(
                    &format!("p{i}"),
                    "warning",
                    AlertStatus::Firing,
                )]),
            )
        })
        .collect();
    gate.add_permits(1);

    let first = first.await;
    assert!(first.is_ok_and(|o| o.is_delivered()));
    for outcome in queued {
        assert!(outcome.await.is_ok_and(|o| o.is_delivered()));
    }
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 2, "backlog must go out as one message");
    assert!(
        recorded[1].problems.is_empty(),
        "{:?}",
        recorded[1].problems
    );
    assert!(recorded[1].at - recorded[0].at >= SLACK_INTERVAL);
    let attachments = recorded[1].body["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let pods: Vec<String> = attachments
        .iter()
        .filter_map(|a| a["text"].as_str())
        .map(|t| t.to_string())
        .collect();
    assert_eq!(attachments.len(), 4);
    for i in 1..=4 {
        assert!(
            pods.iter().any(|t| t.contains(&format!("on p{i}"))),
            "p{i} missing from {pods:?}"
        );
    }
}

#[tokio::test]
async fn slack_messages_to_one_webhook_are_at_least_a_second_apart() {
    let clock = sim_clock();
    let server = start_server(clock.clone(), vec![], true, None).await;
    let receiver = build_one(&slack_yaml(&server.url));
    let retrier = Arc::new(Retrier::with_seed(policy(), clock.clone(), 6));
    let pacer = Pacer::new(retrier, SLACK_INTERVAL);

    for i in 0..3 {
        let outcome = pacer
            .submit(
                receiver.clone(),
                notification(vec![alert(
                    &format!("p{i}"),
                    "warning",
                    AlertStatus::Firing,
                )]),
            )
            .await;
        assert!(outcome.is_ok_and(|o| o.is_delivered()));
        clock.advance(Duration::from_millis(300));
    }

    let at: Vec<Duration> = server.recorded().iter().map(|r| r.at).collect();
    assert_eq!(at.len(), 3);
    assert!(
        at.windows(2).all(|w| w[1] - w[0] >= SLACK_INTERVAL),
        "{at:?}"
    );
}

#[tokio::test]
async fn webhook_sends_alertmanager_v4_payload_with_bearer_token_and_max_alerts() {
    let clock = sim_clock();
    let server = start_server(clock.clone(), vec![], false, None).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cr3t-token\n").unwrap_or_else(|e| panic!("{e}"));
    let receiver = build_one(&format!(
        "webhook_configs:\n  - url: '{}'\n    max_alerts: 2\n    http_config:\n      authorization:\n        credentials_file: '{}'\n",
        server.url,
        token_file.display()
    ));
    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Resolved),
        alert("c", "critical", AlertStatus::Firing),
    ]);

    let report = receiver.send(&n).await;

    assert_eq!(report.ok().and_then(|r| r.response_code), Some(200));
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer s3cr3t-token")
    );
    let body = &recorded[0].body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["groupKey"], "{}:{alertname=\"HighErrorRate\"}");
    assert_eq!(body["truncatedAlerts"], 1);
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "team-a");
    assert_eq!(
        body["groupLabels"],
        serde_json::json!({"alertname": "HighErrorRate"})
    );
    assert_eq!(
        body["commonLabels"],
        serde_json::json!({"alertname": "HighErrorRate", "route": "/x", "severity": "critical"})
    );
    assert_eq!(
        body["commonAnnotations"],
        serde_json::json!({"runbook_url": "https://runbooks.example/high-error-rate"})
    );
    assert_eq!(body["externalURL"], "http://vigil:9096");
    let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["pod"], "a");
    assert_eq!(
        alerts[0]["annotations"]["summary"],
        "Error rate above 5% on a"
    );
    assert_eq!(alerts[0]["startsAt"], "2026-03-04T05:06:07Z");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        alerts[0]["generatorURL"],
        "http://vigil:9096/graph?g0.expr=rate"
    );
    assert_eq!(
        alerts[0]["fingerprint"],
        n.alerts[0].fingerprint.to_string()
    );
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["endsAt"], "2026-03-04T06:00:00Z");
    let debug = format!("{receiver:?}");
    assert!(!debug.contains("s3cr3t"), "Debug leaks the token: {debug}");
}

#[tokio::test]
async fn webhook_503_retry_after_http_date_is_retryable() {
    let clock = sim_clock();
    let server = start_server(
        clock.clone(),
        vec![answer(503).retry_after("Wed, 21 Oct 2015 07:28:00 GMT")],
        false,
        None,
    )
    .await;
    let receiver = build_one(&format!("webhook_configs:\n  - url: '{}'\n", server.url));

    let error = receiver
        .send(&notification(vec![alert(
            "a",
            "critical",
            AlertStatus::Firing,
        )]))
        .await
        .err();

    // A date in the past means "retry now": present, and zero.
    assert!(error.as_ref().is_some_and(SendError::is_retryable));
    assert_eq!(
        error.and_then(|e| e.retry_after(clock.now())),
        Some(Duration::ZERO)
    );
}

#[tokio::test]
async fn webhook_timeout_is_a_retryable_transport_error() {
    let clock = sim_clock();
    // Held for 5 s of real time; the receiver gives up after 200 ms.
    let server = start_server(
        clock.clone(),
        vec![answer(200).delay(Duration::from_secs(5))],
        false,
        None,
    )
    .await;
    let receiver = build_one(&format!(
        "webhook_configs:\n  - url: '{}'\n    timeout: 200ms\n",
        server.url
    ));

    let error = receiver
        .send(&notification(vec![alert(
            "a",
            "critical",
            AlertStatus::Firing,
        )]))
        .await
        .err();

    let error = error.unwrap_or_else(|| panic!("a stalled endpoint must time out"));
    assert!(error.is_retryable(), "{error}");
    assert!(error.to_string().contains("timed out"), "{error}");
}

#[tokio::test]
async fn slack_web_api_answer_gives_the_message_ts_or_a_final_refusal() {
    let clock = sim_clock();
    let server = start_server(
        clock.clone(),
        vec![
            answer(200).body(r#"{"ok":true,"channel":"C1","ts":"1700000000.000100"}"#),
            answer(200).body(r#"{"ok":false,"error":"channel_not_found"}"#),
        ],
        true,
        None,
    )
    .await;
    let receiver = build_one(&slack_yaml(&server.url));
    let n = notification(vec![alert("a", "warning", AlertStatus::Firing)]);

    let accepted = receiver.send(&n).await;
    let refused = receiver.send(&n).await;

    assert_eq!(
        accepted.ok().and_then(|r| r.message_id).as_deref(),
        Some("1700000000.000100")
    );
    let refused = refused
        .err()
        .unwrap_or_else(|| panic!("ok:false must fail"));
    assert!(!refused.is_retryable());
    assert!(
        refused.to_string().contains("channel_not_found"),
        "{refused}"
    );
}
