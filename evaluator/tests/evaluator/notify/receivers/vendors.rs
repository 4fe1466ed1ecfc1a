//! Pushover, Microsoft Teams and WeChat receivers against a local HTTP
//! server that checks each request the way the vendor documents its API
//! (Pushover's form parameters and limits, the MessageCard and the Adaptive
//! Card fields, WeChat's token and `errcode` protocol) and answers with
//! scripted statuses, to see failures classified: 5xx and 429 (with
//! `Retry-After`) worth retrying, other 4xx final.

use crate::support as common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use chrono::Utc;
use serde_json::Value;
use vigil_evaluator::notify::alert::{AlertStatus, Notification};
use vigil_evaluator::notify::receivers::{SendError, IDEMPOTENCY_KEY_HEADER};

use common::alertmanager::form_fields;
use common::{alert, build_one, notification};

/// One request the server saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query.
    uri: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A scripted answer: status, `Retry-After`, body.
type Answer = (u16, Option<&'static str>, &'static str);

#[derive(Clone, Default)]
struct Vendor {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl Vendor {
    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn answer(
    State(vendor): State<Vendor>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Ok(mut seen) = vendor.seen.lock() {
        seen.push(Seen {
            method,
            uri: uri.to_string(),
            headers,
            body,
        });
    }
    let next = vendor.script.lock().ok().and_then(|mut s| s.pop_front());
    let (status, retry_after, body) = next.unwrap_or((200, None, "{}"));
    let mut response =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    if let Some(value) = retry_after.and_then(|v| v.parse().ok()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

/// A vendor server answering `script` in order (then 200 `{}`); its base URL.
async fn start_vendor(script: &[Answer]) -> (String, Vendor) {
    let vendor = Vendor::default();
    if let Ok(mut s) = vendor.script.lock() {
        s.extend(script.iter().copied());
    }
    let app = Router::new().fallback(answer).with_state(vendor.clone());
    let port = crate::support::process::serve(app).await;
    (format!("http://127.0.0.1:{port}"), vendor)
}

fn firing() -> Notification {
    notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Firing),
    ])
}

/// What Pushover's messages API requires of a request
/// (pushover.net/api): a form with `token`, `user` and a non-empty
/// `message`; title at most 250 characters, message 1,024, url 512,
/// url_title 100; priority -2..2, and with priority 2 a `retry` of at
/// least 30 s and an `expire` of at most 10,800 s.
fn pushover_problems(seen: &Seen) -> Vec<String> {
    let mut out = Vec::new();
    if !seen
        .content_type()
        .starts_with("application/x-www-form-urlencoded")
    {
        out.push(format!("content type {}", seen.content_type()));
    }
    let form = form_fields(&seen.body);
    let get = |k: &str| form[k].as_str().unwrap_or("").to_string();
    for key in ["token", "user", "message"] {
        if get(key).is_empty() {
            out.push(format!("{key} missing"));
        }
    }
    for (key, max) in [
        ("title", 250),
        ("message", 1024),
        ("url", 512),
        ("url_title", 100),
    ] {
        if get(key).chars().count() > max {
            out.push(format!("{key} longer than {max}"));
        }
    }
    match get("priority").parse::<i32>() {
        Ok(2) => {
            let retry: u64 = get("retry").parse().unwrap_or(0);
            let expire: u64 = get("expire").parse().unwrap_or(u64::MAX);
            if retry < 30 || expire > 10_800 {
                out.push(format!("emergency with retry {retry}, expire {expire}"));
            }
        }
        Ok(-2..=1) => {}
        _ => out.push(format!("priority {:?}", get("priority"))),
    }
    if seen.uri.contains("token=") {
        out.push("secrets in the URL".into());
    }
    out
}

#[tokio::test]
async fn pushover_posts_a_form_pushover_accepts_and_reads_the_request_id() {
    let (url, vendor) =
        start_vendor(&[(200, None, r#"{"status":1,"request":"647d2300-702c-4b38"}"#)]).await;
    let long = "x".repeat(2000);
    let receiver = build_one(&format!(
        "pushover_configs:\n  - {{user_key: 'uQiRzpo4DXghDmr9QzzfQu27cmVRsG', token: 'azGDORePK8gMaC0QOYAMyEEuzJnyUi', api_url: '{url}/1/messages.json', message: '{long}', url_title: '{{{{ .CommonLabels.alertname }}}}'}}\n"
    ));
    let report = receiver
        .send(&firing())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.message_id.as_deref(), Some("647d2300-702c-4b38"));
    let seen = vendor.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/1/messages.json");
    assert_eq!(pushover_problems(&seen[0]), Vec::<String>::new());
    let form = form_fields(&seen[0].body);
    assert_eq!(form["priority"], "2");
    assert_eq!(form["user"], "uQiRzpo4DXghDmr9QzzfQu27cmVRsG");
    assert_eq!(
        form["message"].as_str().map(|m| m.chars().count()),
        Some(1024)
    );
    assert!(seen[0].headers.contains_key(IDEMPOTENCY_KEY_HEADER));
}

#[tokio::test]
async fn pushover_refusals_are_final_and_server_errors_retried() {
    let (url, _vendor) = start_vendor(&[
        (
            400,
            None,
            r#"{"user":"invalid","errors":["user identifier is invalid"],"status":0}"#,
        ),
        (503, Some("7"), "busy"),
    ])
    .await;
    let receiver = build_one(&format!(
        "pushover_configs: [{{user_key: u, token: t, api_url: '{url}/1/messages.json'}}]\n"
    ));
    let refused = receiver.send(&firing()).await.err();
    assert!(
        matches!(refused, Some(SendError::HttpStatus { status: 400, .. })),
        "{refused:?}"
    );
    assert!(refused.is_some_and(|e| !e.is_retryable()));
    let busy = receiver.send(&firing()).await.err();
    assert!(
        busy.as_ref().is_some_and(SendError::is_retryable),
        "{busy:?}"
    );
    assert_eq!(
        busy.and_then(|e| e.retry_after(Utc::now())),
        Some(std::time::Duration::from_secs(7))
    );
}

/// What a connector accepts as a MessageCard (Outlook actionable message
/// card reference): `@type` `MessageCard`, the `@context`, a six-digit hex
/// `themeColor`, a `title`, and a `summary` or `text`.
fn message_card_problems(card: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if card["@type"] != "MessageCard" {
        out.push(format!("@type {}", card["@type"]));
    }
    if card["@context"] != "http://schema.org/extensions" {
        out.push(format!("@context {}", card["@context"]));
    }
    let color = card["themeColor"].as_str().unwrap_or("");
    if color.len() != 6 || !color.chars().all(|c| c.is_ascii_hexdigit()) {
        out.push(format!("themeColor {color:?}"));
    }
    if card["title"].as_str().is_none_or(str::is_empty) {
        out.push("no title".into());
    }
    if card["summary"].as_str().is_none_or(str::is_empty)
        && card["text"].as_str().is_none_or(str::is_empty)
    {
        out.push("neither summary nor text".into());
    }
    out
}

#[tokio::test]
async fn teams_message_cards_are_red_while_firing_and_green_once_resolved() {
    let (url, vendor) = start_vendor(&[(200, None, "1"), (200, None, "1")]).await;
    let receiver = build_one(&format!(
        "msteams_configs: [{{webhook_url: '{url}/webhookb2/x/IncomingWebhook/y'}}]\n"
    ));
    receiver
        .send(&firing())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let resolved = notification(vec![alert("a", "critical", AlertStatus::Resolved)]);
    receiver
        .send(&resolved)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seen = vendor.requests();
    let cards: Vec<Value> = seen.iter().map(Seen::json).collect();
    for card in &cards {
        assert_eq!(message_card_problems(card), Vec::<String>::new(), "{card}");
    }
    assert_eq!(cards[0]["themeColor"], "8C1A1A");
    assert_eq!(cards[1]["themeColor"], "2DC72D");
    assert_eq!(cards[0]["title"], "[FIRING:2] HighErrorRate (/x critical)");
    assert!(cards[0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("# Alerts Firing:")));
}

/// What a Workflows webhook accepts (Teams connector request schema): a
/// `message` with one attachment of content type
/// `application/vnd.microsoft.card.adaptive` holding an `AdaptiveCard`
/// with a version and a body of `TextBlock`s with text.
fn adaptive_card_problems(message: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if message["type"] != "message" {
        out.push(format!("type {}", message["type"]));
    }
    let attachments = message["attachments"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if attachments.len() != 1 {
        out.push(format!("{} attachments", attachments.len()));
    }
    let Some(attachment) = attachments.first() else {
        return out;
    };
    if attachment["contentType"] != "application/vnd.microsoft.card.adaptive" {
        out.push(format!("contentType {}", attachment["contentType"]));
    }
    let card = &attachment["content"];
    if card["type"] != "AdaptiveCard" || card["version"].as_str().is_none() {
        out.push(format!("card {} version {}", card["type"], card["version"]));
    }
    if card["$schema"] != "http://adaptivecards.io/schemas/adaptive-card.json" {
        out.push(format!("$schema {}", card["$schema"]));
    }
    for block in card["body"].as_array().cloned().unwrap_or_default() {
        if block["type"] != "TextBlock" || block["text"].as_str().is_none() {
            out.push(format!("body element {block}"));
        }
    }
    out
}

#[tokio::test]
async fn teams_workflow_messages_carry_an_adaptive_card_and_throttling_is_retried_after_the_wait() {
    let (url, vendor) = start_vendor(&[(429, Some("30"), "throttled"), (202, None, "")]).await;
    let receiver = build_one(&format!(
        "msteamsv2_configs: [{{webhook_url: '{url}/workflows/x/triggers/manual/paths/invoke', title: '{{{{ .CommonLabels.alertname }}}} is {{{{ .Status }}}}'}}]\n"
    ));
    let throttled = receiver.send(&firing()).await.err();
    assert!(
        throttled.as_ref().is_some_and(SendError::is_retryable),
        "{throttled:?}"
    );
    assert_eq!(
        throttled.and_then(|e| e.retry_after(Utc::now())),
        Some(std::time::Duration::from_secs(30))
    );
    let report = receiver
        .send(&firing())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.response_code, Some(202));
    let seen = vendor.requests();
    let message = seen[1].json();
    assert_eq!(
        adaptive_card_problems(&message),
        Vec::<String>::new(),
        "{message}"
    );
    let heading = &message["attachments"][0]["content"]["body"][0];
    assert_eq!(heading["text"], "HighErrorRate is firing");
    assert_eq!(heading["color"], "Attention");
    assert_eq!(heading["style"], "heading");
    assert_eq!(
        message["attachments"][0]["content"]["msteams"]["width"],
        "full"
    );
}

#[tokio::test]
async fn wechat_keeps_its_token_refreshes_an_expired_one_and_refuses_on_errcode() {
    let token = |t: &'static str| (200, None, t);
    let (url, vendor) = start_vendor(&[
        token(r#"{"errcode":0,"errmsg":"ok","access_token":"T1","expires_in":7200}"#),
        (200, None, r#"{"errcode":0,"errmsg":"ok"}"#),
        // The second send: the kept token has expired on WeChat's side.
        (
            200,
            None,
            r#"{"errcode":42001,"errmsg":"access_token expired"}"#,
        ),
        token(r#"{"errcode":0,"errmsg":"ok","access_token":"T2","expires_in":7200}"#),
        (200, None, r#"{"errcode":0,"errmsg":"ok"}"#),
        // The third: a refusal.
        (
            200,
            None,
            r#"{"errcode":81013,"errmsg":"user & party & tag all invalid"}"#,
        ),
    ])
    .await;
    let receiver = build_one(&format!(
        "wechat_configs: [{{api_secret: S3CR3T, corp_id: C0RP, api_url: '{url}/cgi-bin/', to_user: '@all', agent_id: '1000002'}}]\n"
    ));
    for _ in 0..2 {
        receiver
            .send(&firing())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let refused = receiver.send(&firing()).await.err();
    assert!(
        matches!(&refused, Some(SendError::Rejected { reason, .. }) if reason.contains("81013")),
        "{refused:?}"
    );
    assert!(refused.is_some_and(|e| !e.is_retryable()));
    let seen: Vec<(Method, String)> = vendor
        .requests()
        .iter()
        .map(|s| (s.method.clone(), s.uri.clone()))
        .collect();
    let token_call = "/cgi-bin/gettoken?corpid=C0RP&corpsecret=S3CR3T".to_string();
    assert_eq!(
        seen,
        vec![
            (Method::GET, token_call.clone()),
            (Method::POST, "/cgi-bin/message/send?access_token=T1".into()),
            (Method::POST, "/cgi-bin/message/send?access_token=T1".into()),
            (Method::GET, token_call),
            (Method::POST, "/cgi-bin/message/send?access_token=T2".into()),
            (Method::POST, "/cgi-bin/message/send?access_token=T2".into()),
        ]
    );
    let body = vendor.requests()[1].json();
    assert_eq!(body["touser"], "@all");
    assert_eq!(body["msgtype"], "text");
}

#[tokio::test]
async fn wechat_token_failures_are_refusals_and_server_errors_retried() {
    let (url, _vendor) = start_vendor(&[
        (
            200,
            None,
            r#"{"errcode":40001,"errmsg":"invalid credential"}"#,
        ),
        (502, None, "bad gateway"),
    ])
    .await;
    let receiver = build_one(&format!(
        "wechat_configs: [{{api_secret: WR0NG, corp_id: C0RP, api_url: '{url}/cgi-bin/'}}]\n"
    ));
    let refused = receiver.send(&firing()).await.err();
    assert!(
        matches!(&refused, Some(SendError::Rejected { reason, .. }) if reason.contains("40001") && !reason.contains("WR0NG")),
        "{refused:?}"
    );
    let bad_gateway = receiver.send(&firing()).await.err();
    assert!(
        bad_gateway.as_ref().is_some_and(SendError::is_retryable),
        "{bad_gateway:?}"
    );
}
