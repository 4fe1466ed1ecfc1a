//! Vigil's own API (`/api/vigil/v1`) through the router, without a socket,
//! over a real history database: SQLite (a temporary file) and Postgres (a
//! fresh database per test from `DATABASE_URL`, dropped afterwards). Covers
//! the history filters and paging, episode details, acknowledgements and
//! their conflicts, per-rule stats, bad input, database failures, the
//! `web.read_requires_token` switch, and that `evaluator/openapi.yaml`
//! describes what the router serves.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::api_state;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use api_state::app_state;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tower::ServiceExt;
use vigil_evaluator::api::vigil::OPENAPI;
use vigil_evaluator::api::{router, AppState};
use vigil_evaluator::history::outbox::OutboxEntry;
use vigil_evaluator::history::store::{EpisodeRecord, HistoryState, HistoryWrite, Transition};
use vigil_evaluator::history::{Database, HistoryStore};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::notify::alert::{AlertStatus, Fingerprint};
use vigil_evaluator::notify::receivers::Secret;
use vigil_evaluator::rules::fake::{sample, FakeEngine};
use vigil_evaluator::rules::file::parse_rule_file;
use vigil_evaluator::rules::group::{GroupEnv, RuleGroup};
use vigil_evaluator::server::metrics::ServerMetrics;

// ---------------------------------------------------------------- harness

/// The router over the history at `url`.
struct Api {
    app: axum::Router,
    history: HistoryStore,
}

impl Api {
    async fn new(url: &str) -> Api {
        Api::with_access(url, None, false).await
    }

    /// The API with `groups` as the running rule groups.
    async fn with_rules(url: &str, groups: Vec<RuleGroup>) -> Api {
        let api = Api::new(url).await;
        let registry = prometheus::Registry::new();
        let metrics = ServerMetrics::register(&registry).unwrap();
        let app = router(Arc::new(AppState {
            registry,
            metrics,
            history: api.history.clone(),
            rule_groups: RwLock::new(
                groups
                    .into_iter()
                    .map(|g| Arc::new(std::sync::Mutex::new(g)))
                    .collect(),
            ),
            ..app_state()
        }));
        Api { app, ..api }
    }

    async fn with_access(url: &str, token: Option<&str>, read_requires_token: bool) -> Api {
        let registry = prometheus::Registry::new();
        let metrics = ServerMetrics::register(&registry).unwrap();
        let history = HistoryStore::new(Database::connect(url).await.unwrap())
            .with_metrics(&registry)
            .unwrap();
        let app = router(Arc::new(AppState {
            registry,
            metrics,
            token: RwLock::new(token.map(Secret::new)),
            history: history.clone(),
            read_requires_token: AtomicBool::new(read_requires_token),
            ..app_state()
        }));
        Api { app, history }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn seed(&self, writes: Vec<HistoryWrite>) {
        self.history.apply(&writes).await.unwrap();
    }
}

/// Midnight UTC, 2023-11-15, plus `secs`.
fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_006_400 + secs)
}

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Unix seconds of `t(secs)`, as a query parameter.
fn at(secs: i64) -> String {
    t(secs).timestamp().to_string()
}

/// An episode of `rule` with extra labels, in `state`, started at `start`
/// (firing at once unless pending).
fn episode(rule: &str, extra: &[(&str, &str)], state: HistoryState, start: i64) -> EpisodeRecord {
    let mut pairs = vec![("alertname", rule)];
    pairs.extend_from_slice(extra);
    let labels = Labels::from_pairs(pairs);
    EpisodeRecord {
        fingerprint: Fingerprint::of(&labels),
        rule: rule.to_string(),
        group_name: "web".to_string(),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), format!("{rule} is bad"))]),
        state,
        starts_at: t(start),
        fired_at: (state != HistoryState::Pending).then(|| t(start)),
        ends_at: None,
        value: Some(1.5),
        updated_at: t(start),
        end_reason: None,
    }
}

fn resolved(mut e: EpisodeRecord, end: i64) -> EpisodeRecord {
    e.state = HistoryState::Resolved;
    e.ends_at = Some(t(end));
    e.updated_at = t(end);
    e
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn enc(s: &str) -> String {
    crate::support::url_encode(s)
}

// ------------------------------------------------------- OpenAPI checking

/// The OpenAPI document as JSON.
fn openapi() -> Value {
    serde_yaml::from_str(OPENAPI).unwrap()
}

/// Resolves `{"$ref": "#/components/..."}`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let mut node = doc;
            for part in r.trim_start_matches("#/").split('/') {
                node = &node[part];
            }
            assert!(!node.is_null(), "dangling $ref {r}");
            resolve(doc, node)
        }
        None => schema,
    }
}

/// Problems of `value` against an OpenAPI 3.0 `schema` (types, required
/// properties, enums, nullable, allOf, items, additionalProperties).
fn violations(doc: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut out = Vec::new();
    if value.is_null() {
        if schema["nullable"] != true && !schema.as_object().is_some_and(|o| o.is_empty()) {
            out.push(format!("{path}: null but not nullable"));
        }
        return out;
    }
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            out.extend(violations(doc, part, value, path));
        }
    }
    let ok = match schema["type"].as_str() {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(other) => panic!("schema type {other} not handled"),
    };
    if !ok {
        out.push(format!("{path}: {value} is not {}", schema["type"]));
        return out;
    }
    if let Some(choices) = schema["enum"].as_array() {
        if !choices.contains(value) {
            out.push(format!("{path}: {value} not in {choices:?}"));
        }
    }
    if let Some(required) = schema["required"].as_array() {
        for name in required {
            if value.get(name.as_str().unwrap()).is_none() {
                out.push(format!("{path}: required {name} missing"));
            }
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (name, sub) in props {
            if let Some(v) = obj.get(name) {
                out.extend(violations(doc, sub, v, &format!("{path}.{name}")));
            }
        }
    }
    if let (Some(extra), Some(obj)) = (schema.get("additionalProperties"), value.as_object()) {
        if extra.is_object() {
            for (name, v) in obj {
                out.extend(violations(doc, extra, v, &format!("{path}.{name}")));
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            out.extend(violations(doc, items, v, &format!("{path}[{i}]")));
        }
    }
    out
}

/// Asserts that `body`, answered with `status` by `method path` (the
/// document's path template), matches the documented response schema.
fn assert_documented(method: &str, path: &str, status: StatusCode, body: &Value) {
    let doc = openapi();
    let operation = &doc["paths"][path][method];
    assert!(operation.is_object(), "{method} {path} is not documented");
    let response = &operation["responses"][status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path}: status {status} is not documented"
    );
    let response = resolve(&doc, response);
    let schema = &response["content"]["application/json"]["schema"];
    let problems = violations(&doc, schema, body, "body");
    assert!(
        problems.is_empty(),
        "{method} {path} {status}: {problems:#?}\n{body:#}"
    );
}

// ----------------------------------------------------------------- tests

/// Three episodes: `Down` critical (firing, from 0), `Down` warning
/// (resolved, 1h to 2h), `Slow` critical (pending, from 3h).
async fn three_episodes(api: &Api) -> [EpisodeRecord; 3] {
    let a = episode("Down", &[("severity", "critical")], HistoryState::Firing, 0);
    let b = resolved(
        episode(
            "Down",
            &[("severity", "warning")],
            HistoryState::Firing,
            HOUR,
        ),
        2 * HOUR,
    );
    let c = episode(
        "Slow",
        &[("severity", "critical")],
        HistoryState::Pending,
        3 * HOUR,
    );
    api.seed(
        [&a, &b, &c]
            .iter()
            .map(|e| HistoryWrite::Episode((*e).clone()))
            .collect(),
    )
    .await;
    [a, b, c]
}

async fn history_filters_by_rule_matchers_state_and_time(url: String) {
    let api = Api::new(&url).await;
    let [a, b, c] = three_episodes(&api).await;
    let (a, b, c) = (a.id(), b.id(), c.id());

    let (status, all) = api.get("/api/vigil/v1/history").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(ids(&all), [c.clone(), b.clone(), a.clone()], "newest first");
    assert_eq!(all["data"]["next"], Value::Null);
    assert_documented("get", "/api/vigil/v1/history", status, &all);

    let cases: Vec<(String, Vec<&String>)> = vec![
        ("rule=Down".into(), vec![&b, &a]),
        (
            format!("match[]={}", enc(r#"{severity="critical"}"#)),
            vec![&c, &a],
        ),
        ("match[]=severity=critical&rule=Down".into(), vec![&a]),
        (
            format!(
                "match[]={}&match[]={}",
                enc("severity=~\"crit.*\""),
                enc("alertname!=Down")
            ),
            vec![&c],
        ),
        ("state=resolved".into(), vec![&b]),
        ("state=pending".into(), vec![&c]),
        // Active at or after 2h30m: the open ones.
        (format!("start={}", at(2 * HOUR + 1800)), vec![&c, &a]),
        // Started by 30m: only the first.
        (format!("end={}", enc(&t(1800).to_rfc3339())), vec![&a]),
        (
            format!("start={}&end={}", at(HOUR + 60), at(HOUR + 120)),
            vec![&b, &a],
        ),
    ];
    for (query, want) in cases {
        let (status, body) = api.get(&format!("/api/vigil/v1/history?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        let want: Vec<String> = want.into_iter().cloned().collect();
        assert_eq!(ids(&body), want, "{query}");
    }
}

async fn history_episodes_carry_every_documented_field(url: String) {
    let api = Api::new(&url).await;
    let [_, b, _] = three_episodes(&api).await;
    let (_, body) = api.get("/api/vigil/v1/history?rule=Down&limit=1").await;
    let first = &body["data"]["episodes"][0];
    assert_eq!(
        first,
        &json!({
            "id": b.id(),
            "fingerprint": b.fingerprint.to_string(),
            "rule": "Down",
            "group": "web",
            "labels": {"alertname": "Down", "severity": "warning"},
            "annotations": {"summary": "Down is bad"},
            "severity": "warning",
            "state": "resolved",
            "startsAt": "2023-11-15T01:00:00.000Z",
            "firedAt": "2023-11-15T01:00:00.000Z",
            "endsAt": "2023-11-15T02:00:00.000Z",
            "endReason": null,
            "value": 1.5,
            "ack": null,
        })
    );
    // The fingerprint the dashboard can compute from the labels alone.
    let labels = Labels::from_pairs([("severity", "warning"), ("alertname", "Down")]);
    assert_eq!(first["fingerprint"], Fingerprint::of(&labels).to_string());
}

async fn history_pages_through_every_episode_once(url: String) {
    let api = Api::new(&url).await;
    let episodes: Vec<EpisodeRecord> = (0..5)
        .map(|i| {
            episode(
                "Flap",
                &[("n", &i.to_string())],
                HistoryState::Firing,
                i * 60,
            )
        })
        .collect();
    api.seed(
        episodes
            .iter()
            .cloned()
            .map(HistoryWrite::Episode)
            .collect(),
    )
    .await;
    let mut seen = Vec::new();
    let mut uri = "/api/vigil/v1/history?limit=2".to_string();
    let mut pages = 0;
    loop {
        let (status, body) = api.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages += 1;
        seen.extend(ids(&body));
        match body["data"]["next"].as_str() {
            Some(next) => uri = format!("/api/vigil/v1/history?limit=2&cursor={}", enc(next)),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    let want: Vec<String> = episodes.iter().rev().map(EpisodeRecord::id).collect();
    assert_eq!(seen, want);
    assert_eq!(pages, 3);
}

async fn episode_details_hold_transitions_and_notifications(url: String) {
    let api = Api::new(&url).await;
    let mut down = episode("Down", &[("job", "api")], HistoryState::Pending, 0);
    down.fired_at = None;
    let mut firing = down.clone();
    firing.state = HistoryState::Firing;
    firing.fired_at = Some(t(60));
    firing.updated_at = t(60);
    api.seed(vec![
        HistoryWrite::Episode(down.clone()),
        HistoryWrite::Transition(Transition {
            alert_id: down.id(),
            from: HistoryState::Inactive,
            to: HistoryState::Pending,
            at: t(0),
            value: Some(1.0),
        }),
        HistoryWrite::Episode(firing),
        HistoryWrite::Transition(Transition {
            alert_id: down.id(),
            from: HistoryState::Pending,
            to: HistoryState::Firing,
            at: t(60),
            value: Some(f64::NAN),
        }),
    ])
    .await;
    let entry = OutboxEntry {
        receiver: "ops".into(),
        integration: "webhook[0]".into(),
        group_key: "{}:{}".into(),
        payload: "{}".into(),
        alerts: vec![(down.fingerprint, "Down".into(), AlertStatus::Firing)],
        created_at: t(61),
    };
    let queued = api.history.enqueue(&entry, "k1").await.unwrap();
    api.history
        .mark_failed(queued.id(), "connection refused", None, Some(t(70)), None)
        .await
        .unwrap();
    api.history
        .mark_sent(queued.id(), Some(200), Some("msg-1"), t(70), None)
        .await
        .unwrap();

    let uri = format!("/api/vigil/v1/history/{}", down.id());
    let (status, body) = api.get(&uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("get", "/api/vigil/v1/history/{id}", status, &body);
    let data = &body["data"];
    assert_eq!(data["state"], "firing");
    assert_eq!(
        data["events"],
        json!([
            {"from": "inactive", "to": "pending", "at": "2023-11-15T00:00:00.000Z", "value": 1.0},
            {"from": "pending", "to": "firing", "at": "2023-11-15T00:01:00.000Z", "value": null},
        ])
    );
    assert_eq!(
        data["notifications"],
        json!([{
            "receiver": "ops",
            "integration": "webhook[0]",
            "status": "sent",
            "attempts": 2,
            "lastError": "connection refused",
            "responseCode": 200,
            "messageId": "msg-1",
            "createdAt": "2023-11-15T00:01:01.000Z",
            "sentAt": "2023-11-15T00:01:10.000Z",
        }])
    );

    let (status, body) = api.get("/api/vigil/v1/history/nosuch-1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["errorType"], "not_found");
    assert_documented("get", "/api/vigil/v1/history/{id}", status, &body);
}

async fn the_first_acknowledgement_wins_and_a_second_is_a_conflict(url: String) {
    let api = Api::new(&url).await;
    let [a, ..] = three_episodes(&api).await;
    let uri = format!("/api/vigil/v1/history/{}/ack", a.id());
    let (status, body) = api
        .post(&uri, &json!({"by": "alice", "comment": "on it"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("post", "/api/vigil/v1/history/{id}/ack", status, &body);
    assert_eq!(body["data"]["id"], a.id());
    assert_eq!(body["data"]["ack"]["by"], "alice");
    assert_eq!(body["data"]["ack"]["comment"], "on it");
    let acked_at = body["data"]["ack"]["at"].as_str().unwrap().to_string();

    let (status, body) = api.post(&uri, &json!({"by": "bob"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_documented("post", "/api/vigil/v1/history/{id}/ack", status, &body);
    assert_eq!(body["errorType"], "conflict");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("\"alice\"") && error.contains(&acked_at),
        "{error}"
    );
    assert_eq!(
        body["data"]["ack"],
        json!({"by": "alice", "at": acked_at, "comment": "on it"})
    );

    let (status, body) = api
        .post("/api/vigil/v1/history/nosuch-1/ack", &json!({"by": "bob"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_documented("post", "/api/vigil/v1/history/{id}/ack", status, &body);
}

async fn an_alert_is_acknowledged_by_its_labels_only_while_open(url: String) {
    let api = Api::new(&url).await;
    let [a, b, _] = three_episodes(&api).await;
    // The labels exactly as /api/v1/alerts lists them (any order).
    let (status, body) = api
        .post(
            "/api/vigil/v1/alerts/ack",
            &json!({"labels": {"severity": "critical", "alertname": "Down"}, "by": "carol"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("post", "/api/vigil/v1/alerts/ack", status, &body);
    assert_eq!(body["data"]["id"], a.id());
    assert_eq!(body["data"]["ack"]["by"], "carol");
    let stored = api.history.episode(&a.id()).await.unwrap().unwrap();
    assert_eq!(stored.acknowledged_by.as_deref(), Some("carol"));

    // `b` is resolved: nothing open to acknowledge.
    let b_labels: BTreeMap<String, String> = b
        .labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    let (status, body) = api
        .post(
            "/api/vigil/v1/alerts/ack",
            &json!({"labels": b_labels, "by": "carol"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errorType"], "not_found");
    // A subset of the labels is another alert.
    let (status, _) = api
        .post(
            "/api/vigil/v1/alerts/ack",
            &json!({"labels": {"alertname": "Down"}, "by": "carol"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn stats_give_fires_mtta_mttr_notifications_and_fires_per_day(url: String) {
    let api = Api::new(&url).await;
    // Down fires on day 0 (twice) and day 2; acknowledged after 60s and
    // 180s, resolved after 600s and 1200s. Slow is only pending.
    let d1 = resolved(episode("Down", &[("n", "1")], HistoryState::Firing, 0), 600);
    let d2 = resolved(
        episode("Down", &[("n", "2")], HistoryState::Firing, HOUR),
        HOUR + 1200,
    );
    let d3 = episode("Down", &[("n", "3")], HistoryState::Firing, 2 * DAY + 10);
    let slow = episode("Slow", &[], HistoryState::Pending, DAY);
    api.seed(
        [&d1, &d2, &d3, &slow]
            .iter()
            .map(|e| HistoryWrite::Episode((*e).clone()))
            .collect(),
    )
    .await;
    api.history
        .acknowledge(&d1.id(), "a", "", t(60))
        .await
        .unwrap();
    api.history
        .acknowledge(&d2.id(), "b", "", t(HOUR + 180))
        .await
        .unwrap();
    let entry = OutboxEntry {
        receiver: "ops".into(),
        integration: "webhook[0]".into(),
        group_key: "{}:{}".into(),
        payload: "{}".into(),
        alerts: vec![(d1.fingerprint, "Down".into(), AlertStatus::Firing)],
        created_at: t(1),
    };
    let queued = api.history.enqueue(&entry, "k1").await.unwrap();
    api.history
        .mark_sent(queued.id(), Some(200), None, t(2), None)
        .await
        .unwrap();

    let (status, body) = api
        .get(&format!(
            "/api/vigil/v1/stats?start={}&end={}",
            at(0),
            at(3 * DAY)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("get", "/api/vigil/v1/stats", status, &body);
    let days = |counts: [i64; 3]| {
        let names = ["2023-11-15", "2023-11-16", "2023-11-17"];
        names
            .iter()
            .zip(counts)
            .map(|(day, fires)| json!({"day": day, "fires": fires}))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        body["data"],
        json!([
            {
                "rule": "Down", "episodes": 3, "fires": 3,
                "mttaSeconds": 120.0, "mttrSeconds": 900.0, "notificationsSent": 1,
                "firesPerDay": days([2, 0, 1]),
            },
            {
                "rule": "Slow", "episodes": 1, "fires": 0,
                "mttaSeconds": null, "mttrSeconds": null, "notificationsSent": 0,
                "firesPerDay": days([0, 0, 0]),
            },
        ])
    );

    // A range holding only d3's day.
    let (_, body) = api
        .get(&format!(
            "/api/vigil/v1/stats?start={}&end={}",
            at(2 * DAY),
            at(3 * DAY)
        ))
        .await;
    assert_eq!(body["data"][0]["rule"], "Down");
    assert_eq!(body["data"][0]["fires"], 1);
    assert_eq!(
        body["data"][0]["firesPerDay"],
        json!([{"day": "2023-11-17", "fires": 1}])
    );
}

async fn bad_input_is_a_400_naming_the_parameter(url: String) {
    let api = Api::new(&url).await;
    let [a, ..] = three_episodes(&api).await;
    let gets = [
        (
            format!("/api/vigil/v1/history?match[]={}", enc("{severity}")),
            "match[]",
        ),
        ("/api/vigil/v1/history?match[]={}".to_string(), "match[]"),
        ("/api/vigil/v1/history?start=yesterday".to_string(), "start"),
        ("/api/vigil/v1/history?end=NaN".to_string(), "end"),
        (
            format!("/api/vigil/v1/history?start={}&end={}", at(100), at(0)),
            "end",
        ),
        ("/api/vigil/v1/history?limit=0".to_string(), "limit"),
        ("/api/vigil/v1/history?limit=1001".to_string(), "limit"),
        ("/api/vigil/v1/history?limit=ten".to_string(), "limit"),
        ("/api/vigil/v1/history?state=burning".to_string(), "state"),
        ("/api/vigil/v1/history?cursor=garbage".to_string(), "cursor"),
        (
            format!("/api/vigil/v1/stats?start={}&end={}", at(0), at(400 * DAY)),
            "start",
        ),
        ("/api/vigil/v1/stats?end=soon".to_string(), "end"),
    ];
    for (uri, param) in gets {
        let (status, body) = api.get(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["status"], "error", "{uri}");
        assert_eq!(body["errorType"], "bad_data", "{uri}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("invalid parameter \"{param}\": ")),
            "{uri}: {error}"
        );
        let path = uri.split('?').next().unwrap();
        assert_documented("get", path, status, &body);
    }

    let ack = format!("/api/vigil/v1/history/{}/ack", a.id());
    let bodies: [(&str, Body, Option<&str>); 5] = [
        ("not JSON", Body::from("{by: alice"), None),
        (
            "unknown field",
            Body::from(r#"{"by":"x","when":"now"}"#),
            None,
        ),
        ("no by", Body::from(r#"{"comment":"x"}"#), None),
        ("blank by", Body::from(r#"{"by":"  "}"#), Some("by")),
        (
            "long comment",
            Body::from(json!({"by": "x", "comment": "c".repeat(5000)}).to_string()),
            Some("comment"),
        ),
    ];
    for (what, body, param) in bodies {
        let (status, answer) = api.send(Request::post(&ack).body(body).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["errorType"], "bad_data", "{what}");
        if let Some(param) = param {
            assert!(
                answer["error"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("invalid parameter \"{param}\"")),
                "{what}: {answer}"
            );
        }
        assert_documented("post", "/api/vigil/v1/history/{id}/ack", status, &answer);
    }
    let huge = Body::from(format!(
        r#"{{"by":"x","comment":"{}"}}"#,
        "c".repeat(200_000)
    ));
    let (status, answer) = api.send(Request::post(&ack).body(huge).unwrap()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_documented("post", "/api/vigil/v1/history/{id}/ack", status, &answer);
    let (status, answer) = api
        .post(
            "/api/vigil/v1/alerts/ack",
            &json!({"labels": {}, "by": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid parameter \"labels\""));
    // Nothing was acknowledged on the way.
    let stored = api.history.episode(&a.id()).await.unwrap().unwrap();
    assert_eq!(stored.acknowledged_by, None);
}

async fn a_database_failure_is_a_503_with_a_generic_message(url: String) {
    let api = Api::new(&url).await;
    api.history.database().close().await;
    for uri in [
        "/api/vigil/v1/history",
        "/api/vigil/v1/history/x-1",
        "/api/vigil/v1/stats",
    ] {
        let (status, body) = api.get(uri).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert_eq!(
            body,
            json!({
                "status": "error",
                "errorType": "unavailable",
                "error": "the alert history database is unavailable; try again later",
            }),
            "{uri}"
        );
    }
}

async fn acknowledging_needs_the_token_when_one_is_configured(url: String) {
    let api = Api::with_access(&url, Some("s3cret"), false).await;
    let [a, ..] = three_episodes(&api).await;
    let uri = format!("/api/vigil/v1/history/{}/ack", a.id());
    let ack = |token: Option<&str>| {
        let mut req = Request::post(&uri);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        req.body(Body::from(r#"{"by":"alice"}"#)).unwrap()
    };
    let (status, body) = api.send(ack(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errorType"], "unauthorized");
    let (status, _) = api.send(ack(Some("guess"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Reads stay open by default.
    let (status, _) = api.get("/api/vigil/v1/history").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.send(ack(Some("s3cret"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn read_requires_token_closes_every_api_read_but_not_health_or_metrics(url: String) {
    let api = Api::with_access(&url, Some("s3cret"), true).await;
    let reads = [
        (Method::GET, "/api/vigil/v1/history"),
        (Method::GET, "/api/vigil/v1/stats"),
        (Method::GET, "/api/vigil/v1/openapi.yaml"),
        (Method::GET, "/api/v1/alerts"),
        (Method::GET, "/api/v1/rules"),
        (Method::GET, "/api/v1/query?query=1"),
        (Method::POST, "/api/v1/query?query=1"),
        (Method::GET, "/api/v1/labels"),
    ];
    for (method, uri) in &reads {
        let req = || Request::builder().method(method.clone()).uri(*uri);
        let (status, body) = api.send(req().body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {body}");
        assert_eq!(body["errorType"], "unauthorized");
        let (status, body) = api
            .send(
                req()
                    .header(header::AUTHORIZATION, "Bearer s3cret")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{method} {uri} with token: {body}");
    }
    for uri in ["/-/healthy", "/-/ready", "/metrics"] {
        let (status, body) = api.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    }
}

async fn every_documented_operation_is_routed(url: String) {
    let api = Api::new(&url).await;
    let [a, ..] = three_episodes(&api).await;
    let doc = openapi();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 6, "{paths:?}");
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            let uri = path.replace("{id}", &a.id());
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let (status, body) = api.send(req).await;
            // A handler's own 404 (no such receiver) comes in the API's
            // error envelope; an unrouted path gets a bare one.
            let unrouted = status == StatusCode::NOT_FOUND && body.get("errorType").is_none();
            assert!(
                !unrouted && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri} answered {status}: {body}"
            );
        }
    }
    let (status, body) = api.get("/api/vigil/v1/openapi.yaml").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::String(OPENAPI.to_string()));
}

async fn history_queries_are_timed_on_metrics(url: String) {
    let api = Api::new(&url).await;
    let (status, _) = api.get("/api/vigil/v1/history").await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = api.get("/metrics").await;
    let text = body.as_str().unwrap();
    for series in [
        "vigil_history_db_duration_seconds_count{operation=\"query\"} 1",
        "vigil_history_db_duration_seconds_count{operation=\"outbox\"}",
        "vigil_outbox_pending 0",
    ] {
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
}

/// Group `web` of `rules/web.yaml`: a recording rule, then `Down` at
/// warning (`x > 1`) and at critical (`x > 5`), both firing on 9 after one
/// evaluation at `t(0)`.
fn two_levels_of_one_alert() -> RuleGroup {
    let mut specs = parse_rule_file(
        std::path::Path::new("conf/../rules/web.yaml"),
        "groups:\n- name: web\n  rules:\n  - record: r\n    expr: x\n  \
         - alert: Down\n    expr: x > 1\n    labels: {severity: warning}\n    \
         annotations: {summary: '{{ $value | humanizePercentage }} down'}\n  \
         - alert: Down\n    expr: (x > 5)\n    labels: {severity: critical}\n",
    )
    .unwrap();
    let mut group = RuleGroup::new(specs.remove(0), std::time::Duration::from_secs(1)).unwrap();
    let engine = FakeEngine::new();
    engine.set("x > 1", 0, vec![sample(&[("i", "a")], 0.25)]);
    engine.set("(x > 5)", 0, vec![sample(&[("i", "a")], 9.0)]);
    group.eval(t(0).timestamp_millis(), &GroupEnv::local(&engine));
    group
}

async fn the_rule_view_names_rules_by_file_group_and_index_with_threshold_and_intervals(
    url: String,
) {
    let api = Api::with_rules(&url, vec![two_levels_of_one_alert()]).await;
    // History: the warning rule's alert pending then firing, the critical
    // one's firing then resolved; another group's Down is not theirs.
    let mut warning = episode("Down", &[("severity", "warning")], HistoryState::Firing, 0);
    warning.fired_at = Some(t(60));
    let critical = resolved(
        episode(
            "Down",
            &[("severity", "critical")],
            HistoryState::Firing,
            120,
        ),
        600,
    );
    let mut elsewhere = episode(
        "Down",
        &[("severity", "critical")],
        HistoryState::Firing,
        30,
    );
    elsewhere.group_name = "db".into();
    api.seed(
        [warning, critical, elsewhere]
            .into_iter()
            .map(HistoryWrite::Episode)
            .collect(),
    )
    .await;

    let file = enc("conf/../rules/web.yaml");
    let range = format!("&start={}&end={}", at(-HOUR), at(HOUR));
    let (status, body) = api
        .get(&format!(
            "/api/vigil/v1/rule?file={file}&group=web&index=2{range}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("get", "/api/vigil/v1/rule", status, &body);
    let rule = &body["data"];
    assert_eq!(rule["name"], "Down");
    assert_eq!(rule["expr"], "(x > 5)");
    assert_eq!(rule["labels"], json!({"severity": "critical"}));
    assert_eq!(
        rule["groupIntervalSeconds"], 1.0,
        "the Tune view backtests at it"
    );
    assert_eq!(
        rule["threshold"],
        json!({"op": ">", "value": 5.0, "operand": "x"})
    );
    assert_eq!(
        rule["intervals"],
        json!([{"state": "firing", "start": t(120).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "end": t(600).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "labels": {"alertname": "Down", "severity": "critical"}}]),
        "only the critical rule's episode of this group"
    );

    let (status, body) = api
        .get(&format!(
            "/api/vigil/v1/rule?file={file}&group=web&index=1{range}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let states: Vec<(&str, Option<&str>)> = body["data"]["intervals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["state"].as_str().unwrap(), i["end"].as_str()))
        .collect();
    let fired = t(60).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        states,
        vec![("pending", Some(fired.as_str())), ("firing", None)]
    );
    assert_eq!(body["data"]["valueFormat"], "humanizePercentage");

    // A recording rule has no threshold and no intervals.
    let (status, body) = api
        .get(&format!("/api/vigil/v1/rule?file={file}&group=web&index=0"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("get", "/api/vigil/v1/rule", status, &body);
    assert_eq!(body["data"]["type"], "recording");
    assert_eq!(body["data"]["threshold"], Value::Null);

    // Wrong references say what is wrong.
    for (query, status, needle) in [
        ("group=web&index=1", StatusCode::BAD_REQUEST, "\"file\""),
        (
            &format!("file={file}&group=web&index=one") as &str,
            StatusCode::BAD_REQUEST,
            "\"index\"",
        ),
        (
            &format!("file={file}&group=db&index=0"),
            StatusCode::NOT_FOUND,
            "GET /api/v1/rules",
        ),
        (
            &format!("file={file}&group=web&index=3"),
            StatusCode::NOT_FOUND,
            "has 3 rules",
        ),
    ] {
        let (got, body) = api.get(&format!("/api/vigil/v1/rule?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert_documented("get", "/api/vigil/v1/rule", got, &body);
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }

    // The alerts, each with its own rule and its value humanised.
    let (status, body) = api.get("/api/vigil/v1/alerts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_documented("get", "/api/vigil/v1/alerts", status, &body);
    let alerts = body["data"]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{body}");
    for a in alerts {
        let (index, text) = match a["labels"]["severity"].as_str().unwrap() {
            "warning" => (1, "25%"),
            _ => (2, "9"),
        };
        assert_eq!(a["rule"]["index"], index, "{a}");
        assert_eq!(a["valueText"], text, "{a}");
        assert!(
            a["graphURL"]
                .as_str()
                .unwrap()
                .ends_with(&format!("&g0.rule_group=web&g0.rule_index={index}")),
            "{a}"
        );
    }
}

on_both!(
    the_rule_view_names_rules_by_file_group_and_index_with_threshold_and_intervals,
    history_filters_by_rule_matchers_state_and_time,
    history_episodes_carry_every_documented_field,
    history_pages_through_every_episode_once,
    episode_details_hold_transitions_and_notifications,
    the_first_acknowledgement_wins_and_a_second_is_a_conflict,
    an_alert_is_acknowledged_by_its_labels_only_while_open,
    stats_give_fires_mtta_mttr_notifications_and_fires_per_day,
    bad_input_is_a_400_naming_the_parameter,
    a_database_failure_is_a_503_with_a_generic_message,
    acknowledging_needs_the_token_when_one_is_configured,
    read_requires_token_closes_every_api_read_but_not_health_or_metrics,
    every_documented_operation_is_routed,
    history_queries_are_timed_on_metrics,
);
