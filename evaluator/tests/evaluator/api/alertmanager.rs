//! Alertmanager's v2 API as clients see it: the router over a real notifier
//! (with its silences in a SQLite history, as the evaluator runs it) on a
//! simulated clock, called without a socket. Posted alerts are routed,
//! silenced, inhibited, listed and recorded in the history; silences follow
//! Alertmanager's update rules; bad input answers in Alertmanager's error
//! shapes. The last tests share silences between two replicas through one
//! database (SQLite, and Postgres when `DATABASE_URL` is set).

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::api_state::app_state;
use crate::support::db as pg;
use crate::support::wait;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use vigil_evaluator::api::alertmanager::AlertmanagerApi;
use vigil_evaluator::api::{router, AppState};
use vigil_evaluator::clock::{Clock, SimClock};
use vigil_evaluator::history::silences::SqlSilences;
use vigil_evaluator::history::store::{episode_id, HistoryQuery, HistoryState};
use vigil_evaluator::history::sync::sync_once;
use vigil_evaluator::history::HistoryStore;
use vigil_evaluator::labels::Labels;
use vigil_evaluator::notify::alert::{Alert, Fingerprint};
use vigil_evaluator::notify::notifier::Notifier;
use vigil_evaluator::notify::receivers::Secret;
use vigil_evaluator::notify::silence::DEFAULT_RETENTION;
use vigil_evaluator::server::metrics::ServerMetrics;

const NOTIFY: &str = "\
global: {resolve_timeout: 5m}
route:
  receiver: default
  group_wait: 30s
  routes:
  - matchers: ['team=\"db\"']
    receiver: dba
    continue: true
  - matchers: ['severity=\"page\"']
    receiver: pager
inhibit_rules:
- source_matchers: ['alertname=\"ClusterDown\"']
  target_matchers: ['severity=\"warning\"']
  equal: [cluster]
receivers:
- name: default
- name: dba
  webhook_configs: [{url: 'http://127.0.0.1:1/hook?token=s3cr3t'}]
- name: pager
";

/// Start of simulated time.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One evaluator's API over a history database.
struct Replica {
    state: Arc<AppState>,
    clock: Arc<SimClock>,
    store: HistoryStore,
    _stop: tokio_util::sync::DropGuard,
}

impl Replica {
    async fn start(url: &str, token: Option<&str>, clock: Arc<SimClock>) -> Replica {
        let store = HistoryStore::connect(url).await.unwrap();
        let stop = CancellationToken::new();
        let registry = prometheus::Registry::new();
        let writer = crate::support::default_writer(&store, &registry, &stop);
        let silences = SqlSilences::load(&store, writer.clone(), DEFAULT_RETENTION)
            .await
            .unwrap();
        let config =
            vigil_evaluator::notify::config::parse(NOTIFY, std::path::Path::new("notify.yaml"))
                .unwrap();
        let notifier = Notifier::with_silences(Arc::new(config), Box::new(silences));
        let api = AlertmanagerApi::new(
            Arc::new(tokio::sync::Mutex::new(notifier)),
            Arc::clone(&clock) as Arc<dyn Clock>,
            Some(writer),
            NOTIFY,
        );
        let metrics = ServerMetrics::register(&registry).unwrap();
        let state = Arc::new(AppState {
            registry,
            metrics,
            token: RwLock::new(token.map(Secret::new)),
            alertmanager: Arc::new(api),
            history: store.clone(),
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            ..app_state()
        });
        Replica {
            state,
            clock,
            store,
            _stop: stop.drop_guard(),
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = router(Arc::clone(&self.state)).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, body) = self
            .send(Request::get(uri).body(Body::empty()).unwrap())
            .await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, uri: &str, body: impl Into<Body>) -> (StatusCode, String) {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::USER_AGENT, "Prometheus/2.42.0")
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    async fn post_json(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let (status, body) = self.post(uri, body.to_string()).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    async fn delete(&self, uri: &str) -> StatusCode {
        self.send(Request::delete(uri).body(Body::empty()).unwrap())
            .await
            .0
    }

    fn notifier(&self) -> &Arc<tokio::sync::Mutex<Notifier>> {
        self.state.alertmanager.notifier()
    }

    async fn alerts(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/api/v2/alerts{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().unwrap().clone()
    }
}

/// A replica over a fresh SQLite database, with its directory.
async fn sqlite_replica(token: Option<&str>) -> (Replica, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let replica = Replica::start(&url, token, Arc::new(SimClock::new(t0()))).await;
    (replica, dir)
}

fn alert(labels: Value, starts: i64, ends: Option<i64>) -> Value {
    let mut a = json!({
        "labels": labels,
        "annotations": {"summary": "it broke"},
        "startsAt": rfc(at(starts)),
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
    });
    if let Some(ends) = ends {
        a["endsAt"] = json!(rfc(at(ends)));
    }
    a
}

fn silence(matchers: Value, from: i64, to: i64) -> Value {
    json!({
        "matchers": matchers,
        "startsAt": rfc(at(from)),
        "endsAt": rfc(at(to)),
        "createdBy": "ops",
        "comment": "maintenance",
    })
}

fn eq(name: &str, value: &str) -> Value {
    json!({"name": name, "value": value, "isRegex": false, "isEqual": true})
}

/// Polls `condition` (history writes are batched) until it holds.
async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let limit = Duration::from_secs(10);
    assert!(
        wait::until(limit, Duration::from_millis(50), condition).await,
        "timed out waiting for {what}"
    );
}

// ------------------------------------------------------------------ alerts

#[tokio::test]
async fn posted_alerts_are_listed_with_their_receivers_and_status() {
    let (r, _dir) = sqlite_replica(None).await;
    let (status, body) = r
        .post(
            "/api/v2/alerts",
            json!([alert(
                json!({"alertname": "DiskFull", "team": "db", "severity": "page"}),
                0,
                Some(3600)
            )])
            .to_string(),
        )
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let alerts = r.alerts("").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    let labels = Labels::from_pairs([
        ("alertname", "DiskFull"),
        ("severity", "page"),
        ("team", "db"),
    ]);
    assert_eq!(
        a["fingerprint"],
        json!(Fingerprint::of(&labels).to_string())
    );
    assert_eq!(a["receivers"], json!([{"name": "dba"}, {"name": "pager"}]));
    assert_eq!(
        a["status"],
        json!({"state": "active", "silencedBy": [], "inhibitedBy": []})
    );
    assert_eq!(a["startsAt"], json!("2026-01-01T12:00:00.000Z"));
    assert_eq!(a["endsAt"], json!("2026-01-01T13:00:00.000Z"));
    assert_eq!(a["updatedAt"], json!("2026-01-01T12:00:00.000Z"));
    assert_eq!(a["annotations"], json!({"summary": "it broke"}));
    assert_eq!(
        a["generatorURL"],
        json!("http://prometheus:9090/graph?g0.expr=up")
    );
}

#[tokio::test]
async fn posted_alerts_go_through_routing_and_grouping_to_a_notification() {
    let (r, _dir) = sqlite_replica(None).await;
    r.post(
        "/api/v2/alerts",
        json!([alert(
            json!({"alertname": "DiskFull", "team": "db"}),
            0,
            None
        )])
        .to_string(),
    )
    .await;
    let mut notifier = r.notifier().lock().await;
    assert!(notifier.tick(at(29)).is_empty(), "group_wait is 30s");
    let sent = notifier.tick(at(30));
    let receivers: Vec<&str> = sent.iter().map(|n| n.receiver.as_str()).collect();
    assert_eq!(
        receivers,
        ["dba"],
        "a matching child route takes the alert from the root"
    );
    assert_eq!(
        sent[0].alerts[0].alert.labels.get("alertname"),
        Some("DiskFull")
    );
}

#[tokio::test]
async fn rule_alerts_in_the_notifier_are_listed_too() {
    let (r, _dir) = sqlite_replica(None).await;
    let rule_alert = Alert {
        labels: Labels::from_pairs([("alertname", "FromRule"), ("job", "api")]),
        annotations: Default::default(),
        starts_at: at(0),
        ends_at: Some(at(240)),
        generator_url: String::new(),
        cooldown: None,
    };
    r.notifier().lock().await.ingest(vec![rule_alert], at(0));
    let alerts = r.alerts("").await;
    assert_eq!(alerts[0]["labels"]["alertname"], "FromRule");
    assert!(alerts[0].get("generatorURL").is_none(), "empty: omitted");
}

#[tokio::test]
async fn an_alert_without_end_resolves_after_the_resolve_timeout() {
    let (r, _dir) = sqlite_replica(None).await;
    r.post(
        "/api/v2/alerts",
        json!([{"labels": {"alertname": "NoEnd"}}]).to_string(),
    )
    .await;
    let alerts = r.alerts("").await;
    assert_eq!(
        alerts[0]["startsAt"],
        json!(rfc(at(0))),
        "startsAt defaults to now"
    );
    assert_eq!(
        alerts[0]["endsAt"],
        json!(rfc(at(300))),
        "resolve_timeout 5m"
    );
    r.clock.set(at(301));
    assert!(
        r.alerts("").await.is_empty(),
        "resolved alerts are not listed"
    );
}

#[tokio::test]
async fn posted_alerts_are_recorded_in_the_history_until_they_resolve() {
    let (r, _dir) = sqlite_replica(None).await;
    let labels = json!({"alertname": "DiskFull", "instance": "a"});
    r.post(
        "/api/v2/alerts",
        json!([alert(labels.clone(), 0, Some(60))]).to_string(),
    )
    .await;
    r.clock.set(at(30));
    r.post(
        "/api/v2/alerts",
        json!([alert(labels.clone(), 0, Some(90))]).to_string(),
    )
    .await;
    r.clock.set(at(40));
    r.post(
        "/api/v2/alerts",
        json!([alert(labels, 0, Some(40))]).to_string(),
    )
    .await;
    let fingerprint = Fingerprint::of(&Labels::from_pairs([
        ("alertname", "DiskFull"),
        ("instance", "a"),
    ]));
    let id = episode_id(fingerprint, at(0));
    eventually("the resolved episode", || async {
        r.store
            .episode(&id)
            .await
            .unwrap()
            .is_some_and(|e| e.state == HistoryState::Resolved)
    })
    .await;
    let episode = r.store.episode(&id).await.unwrap().unwrap();
    assert_eq!(
        (
            episode.rule.as_str(),
            episode.group_name.as_str(),
            episode.ends_at
        ),
        ("DiskFull", "api/Prometheus", Some(at(40)))
    );
    let steps: Vec<(HistoryState, HistoryState)> = r
        .store
        .events(&id)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.from, e.to))
        .collect();
    assert_eq!(
        steps,
        [
            (HistoryState::Inactive, HistoryState::Firing),
            (HistoryState::Firing, HistoryState::Resolved)
        ]
    );
}

#[tokio::test]
async fn a_posted_alert_that_is_not_refreshed_is_recorded_resolved_by_the_sync() {
    let (r, _dir) = sqlite_replica(None).await;
    r.post(
        "/api/v2/alerts",
        json!([alert(json!({"alertname": "Stale"}), 0, Some(60))]).to_string(),
    )
    .await;
    r.clock.set(at(61));
    sync_once(&*r.state.alertmanager, &r.store).await;
    let query = HistoryQuery {
        rule: Some("Stale".into()),
        state: Some(HistoryState::Resolved),
        ..HistoryQuery::default()
    };
    eventually("the timed-out episode", || async {
        r.store.query(&query).await.unwrap().items.len() == 1
    })
    .await;
}

#[tokio::test]
async fn bad_alerts_are_refused_in_alertmanagers_formats() {
    let (r, _dir) = sqlite_replica(None).await;
    let cases: Vec<(String, StatusCode, Value)> = vec![
        (
            "[{\"labels\": ".into(),
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "message": "parsing alerts body from \"\" failed, because EOF while parsing a value at line 1 column 12"}),
        ),
        (
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"code": 602, "message": "alerts in body is required"}),
        ),
        (
            json!([{"annotations": {"a": "b"}}]).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"code": 602, "message": "0.labels in body is required"}),
        ),
        (
            json!([{"labels": {}}]).to_string(),
            StatusCode::BAD_REQUEST,
            json!("at least one label pair required"),
        ),
        (
            json!([{"labels": {"alertname": ""}}]).to_string(),
            StatusCode::BAD_REQUEST,
            json!("at least one label pair required"),
        ),
        (
            json!([alert(json!({"alertname": "X"}), 60, Some(0))]).to_string(),
            StatusCode::BAD_REQUEST,
            json!("start time must be before end time"),
        ),
        (
            json!([{"labels": {"bad-name": "x"}}]).to_string(),
            StatusCode::BAD_REQUEST,
            json!("invalid label set: invalid name \"bad-name\""),
        ),
        (
            json!([{"labels": {"a": "b"}, "startsAt": "yesterday"}]).to_string(),
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "message": "parsing alerts body from \"\" failed, because startsAt \"yesterday\" is not an RFC 3339 time such as 2026-01-02T15:04:05Z (premature end of input)"}),
        ),
    ];
    for (body, status, expected) in cases {
        let (got, text) = r.post("/api/v2/alerts", body.clone()).await;
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((got, value), (status, expected), "body: {body}");
    }
    assert!(r.alerts("").await.is_empty());
}

#[tokio::test]
async fn valid_alerts_are_kept_when_others_in_the_batch_are_refused() {
    let (r, _dir) = sqlite_replica(None).await;
    let (status, body) = r
        .post(
            "/api/v2/alerts",
            json!([{"labels": {}}, {"labels": {"alertname": "Good"}}]).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(r.alerts("").await.len(), 1);
}

#[tokio::test]
async fn a_huge_body_is_refused_with_413() {
    let (r, _dir) = sqlite_replica(None).await;
    let huge = format!("[{{\"labels\": {{\"a\": \"{}\"}}}}]", "x".repeat(3 << 20));
    let (status, body) = r.post("/api/v2/alerts", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let value: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value["code"], 413, "{value}");
}

#[tokio::test]
async fn alert_filters_select_like_alertmanager() {
    let (r, _dir) = sqlite_replica(None).await;
    r.post(
        "/api/v2/alerts",
        json!([
            alert(json!({"alertname": "A", "team": "db"}), 0, Some(600)),
            alert(json!({"alertname": "B", "severity": "page"}), 0, Some(600)),
        ])
        .to_string(),
    )
    .await;
    let names = |alerts: Vec<Value>| -> Vec<String> {
        let mut n: Vec<String> = alerts
            .iter()
            .map(|a| a["labels"]["alertname"].as_str().unwrap().to_string())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(r.alerts("?filter=team%3D%22db%22").await), ["A"]);
    assert_eq!(
        names(
            r.alerts("?filter=alertname%3D~%22A%7CB%22&filter=severity%3Dpage")
                .await
        ),
        ["B"]
    );
    assert_eq!(names(r.alerts("?receiver=pag.*").await), ["B"]);
    assert_eq!(names(r.alerts("?receiver=dba").await), ["A"]);
    assert!(r.alerts("?receiver=default").await.is_empty());
    assert!(r.alerts("?active=false").await.is_empty());

    let (status, body) = r.get("/api/v2/alerts?filter=%7Bfoo").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.as_str().unwrap().contains("bad matcher format"),
        "{body}"
    );
    let (status, body) = r.get("/api/v2/alerts?receiver=%28").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.as_str()
            .unwrap()
            .starts_with("failed to parse receiver param"),
        "{body}"
    );
    let (status, body) = r.get("/api/v2/alerts?silenced=maybe").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], 601, "{body}");
}

#[tokio::test]
async fn inhibited_alerts_name_their_source() {
    let (r, _dir) = sqlite_replica(None).await;
    let source = json!({"alertname": "ClusterDown", "cluster": "eu"});
    r.post(
        "/api/v2/alerts",
        json!([
            alert(source.clone(), 0, Some(600)),
            alert(
                json!({"alertname": "Slow", "cluster": "eu", "severity": "warning"}),
                0,
                Some(600)
            ),
            alert(
                json!({"alertname": "Slow", "cluster": "us", "severity": "warning"}),
                0,
                Some(600)
            ),
        ])
        .to_string(),
    )
    .await;
    let source_fp = Fingerprint::of(&Labels::from_pairs([
        ("alertname", "ClusterDown"),
        ("cluster", "eu"),
    ]))
    .to_string();
    let alerts = r.alerts("?filter=alertname%3DSlow").await;
    let status_of = |cluster: &str| {
        alerts
            .iter()
            .find(|a| a["labels"]["cluster"] == cluster)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(
        status_of("eu"),
        json!({"state": "suppressed", "silencedBy": [], "inhibitedBy": [source_fp]})
    );
    assert_eq!(status_of("us")["state"], "active");
    assert_eq!(
        r.alerts("?filter=alertname%3DSlow&inhibited=false")
            .await
            .len(),
        1
    );
}

// ---------------------------------------------------------------- silences

#[tokio::test]
async fn a_silence_mutes_matching_alerts_and_is_listed() {
    let (r, _dir) = sqlite_replica(None).await;
    r.post(
        "/api/v2/alerts",
        json!([alert(
            json!({"alertname": "DiskFull", "team": "db"}),
            0,
            Some(600)
        )])
        .to_string(),
    )
    .await;
    let (status, created) = r
        .post_json(
            "/api/v2/silences",
            silence(json!([eq("team", "db")]), 0, 3600),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["silenceID"].as_str().unwrap().to_string();

    let alerts = r.alerts("").await;
    assert_eq!(
        alerts[0]["status"],
        json!({"state": "suppressed", "silencedBy": [id], "inhibitedBy": []})
    );
    assert!(r.alerts("?silenced=false").await.is_empty());

    let (status, got) = r.get(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        got,
        json!({
            "id": id,
            "status": {"state": "active"},
            "updatedAt": rfc(at(0)),
            "comment": "maintenance",
            "createdBy": "ops",
            "startsAt": rfc(at(0)),
            "endsAt": rfc(at(3600)),
            "matchers": [{"name": "team", "value": "db", "isRegex": false, "isEqual": true}],
        })
    );
    let (_, listed) = r.get("/api/v2/silences?filter=team%3D%22db%22").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, listed) = r.get("/api/v2/silences?filter=team%3D~%22db%22").await;
    assert!(
        listed.as_array().unwrap().is_empty(),
        "filters compare matchers exactly"
    );

    // Nothing is notified for the silenced alert.
    let mut notifier = r.notifier().lock().await;
    let sent = notifier.tick(at(30));
    assert!(sent.iter().all(|n| n.receiver != "dba"), "{sent:?}");
}

#[tokio::test]
async fn silences_are_updated_in_place_or_replaced_like_alertmanager() {
    let (r, _dir) = sqlite_replica(None).await;
    let (_, created) = r
        .post_json(
            "/api/v2/silences",
            silence(json!([eq("job", "db")]), 0, 600),
        )
        .await;
    let id = created["silenceID"].as_str().unwrap().to_string();
    r.clock.set(at(60));

    // A later end only: the same silence.
    let mut longer = silence(json!([eq("job", "db")]), 0, 1200);
    longer["id"] = json!(id);
    let (status, updated) = r.post_json("/api/v2/silences", longer).await;
    assert_eq!(
        (status, updated["silenceID"].as_str()),
        (StatusCode::OK, Some(id.as_str()))
    );

    // Other matchers: the old one expires, a new one starts now.
    let mut other = silence(json!([eq("job", "web")]), 0, 1200);
    other["id"] = json!(id);
    let (_, replaced) = r.post_json("/api/v2/silences", other).await;
    let new_id = replaced["silenceID"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    let (_, old) = r.get(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(old["status"]["state"], "expired");
    let (_, new) = r.get(&format!("/api/v2/silence/{new_id}")).await;
    assert_eq!(
        (new["status"]["state"].as_str(), new["startsAt"].as_str()),
        (Some("active"), Some(rfc(at(60)).as_str()))
    );

    // A pending silence is listed after the active one.
    r.post_json(
        "/api/v2/silences",
        silence(json!([eq("job", "x")]), 600, 1200),
    )
    .await;
    let (_, listed) = r.get("/api/v2/silences").await;
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "pending", "expired"]);
}

#[tokio::test]
async fn deleting_a_silence_expires_it() {
    let (r, _dir) = sqlite_replica(None).await;
    let (_, created) = r
        .post_json(
            "/api/v2/silences",
            silence(json!([eq("job", "db")]), 0, 600),
        )
        .await;
    let id = created["silenceID"].as_str().unwrap().to_string();
    r.clock.set(at(10));
    assert_eq!(
        r.delete(&format!("/api/v2/silence/{id}")).await,
        StatusCode::OK
    );
    let (_, got) = r.get(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(
        (got["status"]["state"].as_str(), got["endsAt"].as_str()),
        (Some("expired"), Some(rfc(at(10)).as_str()))
    );
    assert_eq!(
        r.delete(&format!("/api/v2/silence/{id}")).await,
        StatusCode::OK,
        "idempotent"
    );
    let unknown = "/api/v2/silence/6b5c2b3e-1f0a-4c1e-9d2a-0a1b2c3d4e5f";
    assert_eq!(r.delete(unknown).await, StatusCode::NOT_FOUND);
    let (status, body) = r
        .send(Request::get(unknown).body(Body::empty()).unwrap())
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, ""));
    // Not a UUID: refused like Alertmanager's parameter validation does.
    assert_eq!(
        r.delete("/api/v2/silence/nope").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, body) = r
        .send(
            Request::get("/api/v2/silence/nope")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        json!({"code": 601, "message": "silenceID in path must be of type uuid: \"nope\""})
    );
}

#[tokio::test]
async fn bad_silences_are_refused_in_alertmanagers_formats() {
    let (r, _dir) = sqlite_replica(None).await;
    let mut no_author = silence(json!([eq("job", "db")]), 0, 60);
    no_author.as_object_mut().unwrap().remove("createdBy");
    let mut unknown = silence(json!([eq("job", "db")]), 0, 60);
    unknown["id"] = json!("6f1b2f6e-0000-4000-8000-000000000000");
    let cases = vec![
        (
            no_author,
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"code": 602, "message": "createdBy in body is required"}),
        ),
        (
            silence(json!([]), 0, 60),
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"code": 612, "message": "matchers in body should have at least 1 items"}),
        ),
        (
            silence(json!([{"name": "job", "value": "db"}]), 0, 60),
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"code": 602, "message": "matchers.0.isRegex in body is required"}),
        ),
        (
            silence(json!([{"name": "job", "value": "(", "isRegex": true}]), 0, 60),
            StatusCode::BAD_REQUEST,
            json!("invalid silence: invalid label matcher 0: invalid regular expression \"(\": unclosed group"),
        ),
        (
            silence(json!([eq("bad-name", "x")]), 0, 60),
            StatusCode::BAD_REQUEST,
            json!("invalid silence: invalid label matcher 0: invalid label name \"bad-name\""),
        ),
        (
            silence(json!([{"name": "job", "value": ".*", "isRegex": true}]), 0, 60),
            StatusCode::BAD_REQUEST,
            json!("invalid silence: at least one matcher must not match the empty string, or the silence would mute every alert"),
        ),
        (
            silence(json!([eq("job", "db")]), 60, 0),
            StatusCode::BAD_REQUEST,
            json!("Failed to create silence: start time must be before end time"),
        ),
        (
            silence(json!([eq("job", "db")]), -120, -60),
            StatusCode::BAD_REQUEST,
            json!("Failed to create silence: end time can't be in the past"),
        ),
        (unknown, StatusCode::NOT_FOUND, json!("not found")),
    ];
    for (body, status, expected) in cases {
        let (got, value) = r.post_json("/api/v2/silences", body.clone()).await;
        assert_eq!((got, value), (status, expected), "body: {body}");
    }
    let (status, text) = r.post("/api/v2/silences", "{\"matchers\": [").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let (status, body) = r.get("/api/v2/silences?filter=%3D%3D").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, listed) = r.get("/api/v2/silences").await;
    assert!(listed.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn mutating_endpoints_need_the_bearer_token_when_one_is_configured() {
    let (r, _dir) = sqlite_replica(Some("t0ken")).await;
    let body = json!([{"labels": {"alertname": "X"}}]).to_string();
    let (status, text) = r.post("/api/v2/alerts", body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("bearer token"), "{text}");
    let (status, _) = r
        .post_json("/api/v2/silences", silence(json!([eq("job", "db")]), 0, 60))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.delete("/api/v2/silence/x").await,
        StatusCode::UNAUTHORIZED
    );
    assert!(r.alerts("").await.is_empty(), "reads stay open");

    let (status, _) = r
        .send(
            Request::post("/api/v2/alerts")
                .header(header::AUTHORIZATION, "Bearer t0ken")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r.alerts("").await.len(), 1);
}

#[tokio::test]
async fn status_reports_an_unclustered_alertmanager_with_its_config_masked() {
    let (r, _dir) = sqlite_replica(None).await;
    let (status, body) = r.get("/api/v2/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["cluster"], json!({"status": "disabled", "peers": []}));
    assert_eq!(body["uptime"], json!(rfc(at(0))));
    assert!(body["versionInfo"]["version"].is_string());
    let original = body["config"]["original"].as_str().unwrap();
    assert!(original.contains("receiver: dba"), "{original}");
    assert!(
        !original.contains("s3cr3t") && original.contains("<secret>"),
        "{original}"
    );
}

// ------------------------------------------------- silences across replicas

/// A silence created on one replica mutes alerts on another after a sync,
/// its expiry follows the same way, and a replica started later loads it.
async fn silences_are_shared_between_replicas(url: String) {
    let clock = Arc::new(SimClock::new(t0()));
    let a = Replica::start(&url, None, Arc::clone(&clock)).await;
    let b = Replica::start(&url, None, Arc::clone(&clock)).await;
    let (_, created) = a
        .post_json(
            "/api/v2/silences",
            silence(json!([eq("job", "db")]), 0, 3600),
        )
        .await;
    let id = created["silenceID"].as_str().unwrap().to_string();
    let db = Labels::from_pairs([("job", "db")]);
    eventually("the silence on the other replica", || async {
        sync_once(&*b.state.alertmanager, &b.store).await;
        b.notifier()
            .lock()
            .await
            .silences()
            .is_silenced(&db, clock.now())
    })
    .await;

    let c = Replica::start(&url, None, Arc::clone(&clock)).await;
    let (status, got) = c.get(&format!("/api/v2/silence/{id}")).await;
    assert_eq!(
        (status, got["status"]["state"].as_str()),
        (StatusCode::OK, Some("active"))
    );

    clock.set(at(60));
    assert_eq!(
        b.delete(&format!("/api/v2/silence/{id}")).await,
        StatusCode::OK
    );
    eventually("the expiry on the first replica", || async {
        sync_once(&*a.state.alertmanager, &a.store).await;
        !a.notifier()
            .lock()
            .await
            .silences()
            .is_silenced(&db, clock.now())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_shared_between_replicas_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    silences_are_shared_between_replicas(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_shared_between_replicas_on_postgres() {
    let Some(db) = pg::TestDb::postgres().await else {
        return;
    };
    silences_are_shared_between_replicas(db.url.clone()).await;
}
