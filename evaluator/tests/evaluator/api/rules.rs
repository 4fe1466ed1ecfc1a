//! `/api/v1/rules`, `/api/v1/alerts` and `/api/v1/targets` as clients see
//! them: rule groups evaluated once over a store with known samples, then
//! read back through the router without a socket, in Prometheus' shape.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::api_state;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use api_state::app_state;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use vigil_evaluator::api::rules::format_alert_value;
use vigil_evaluator::api::targets::discovered_labels;
use vigil_evaluator::api::{router, AppState};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::promql::Engine;
use vigil_evaluator::rules::file::parse_rule_file;
use vigil_evaluator::rules::group::{GroupEnv, RuleGroup};
use vigil_evaluator::scrape::{Health, TargetState};
use vigil_evaluator::server::query_adapter::{SharedStore, StoreQueryEngine};
use vigil_evaluator::store::Store;

/// Evaluation time of every group: t=1000s.
const EVAL_MS: i64 = 1_000_000;

const AVAILABILITY: &str = r#"
groups:
  - name: availability
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: TargetDown
        expr: up == 0
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.instance }} is down"
      - alert: TargetUpLong
        expr: up == 1
        for: 5m
        keep_firing_for: 1m
"#;

const CAPACITY: &str = r#"
groups:
  - name: capacity
    rules:
      - record: instance:up:max
        expr: max by (instance) (up)
"#;

fn store() -> SharedStore {
    let mut store = Store::new(100);
    let up_a = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "a")]);
    let up_b = Labels::from_pairs([("__name__", "up"), ("job", "db"), ("instance", "b")]);
    for i in 0..=4 {
        let t = EVAL_MS - (4 - i) * 15_000;
        store.append(&up_a, t, 1.0).unwrap();
        store.append(&up_b, t, 0.0).unwrap();
    }
    Arc::new(RwLock::new(store))
}

/// The two rule files' groups, evaluated once at [`EVAL_MS`].
fn evaluated_groups(store: &SharedStore) -> Vec<Arc<Mutex<RuleGroup>>> {
    let adapter = StoreQueryEngine::new(Arc::clone(store), Engine::default());
    let external = Labels::default();
    let env = GroupEnv {
        engine: &adapter,
        appender: &adapter,
        external_labels: &external,
        external_url: "http://vigil.example",
        resend_delay: Duration::from_secs(60),
        clock: &vigil_evaluator::clock::SystemClock,
    };
    [
        ("availability.yaml", AVAILABILITY),
        ("capacity.yaml", CAPACITY),
    ]
    .into_iter()
    .map(|(file, src)| {
        let spec = parse_rule_file(&PathBuf::from(file), src)
            .unwrap()
            .remove(0);
        let mut group = RuleGroup::new(spec, Duration::from_secs(30)).unwrap();
        group.eval(EVAL_MS, &env);
        Arc::new(Mutex::new(group))
    })
    .collect()
}

fn app() -> axum::Router {
    let store = store();
    let groups = evaluated_groups(&store);
    router(Arc::new(AppState {
        store,
        rule_groups: RwLock::new(groups),
        ..app_state()
    }))
}

async fn get_json(uri: &str) -> (StatusCode, Value) {
    let resp = app()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn rule_names(body: &Value) -> Vec<String> {
    body["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn rules_lists_each_group_with_its_file_and_rules() {
    let (status, body) = get_json("/api/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    let groups = body["data"]["groups"].as_array().unwrap();
    let names: Vec<(&str, &str)> = groups
        .iter()
        .map(|g| (g["name"].as_str().unwrap(), g["file"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("availability", "availability.yaml"),
            ("capacity", "capacity.yaml")
        ]
    );
    assert_eq!(groups[0]["interval"], json!(30));
    assert_eq!(groups[0]["lastEvaluation"], "1970-01-01T00:16:40Z");
}

#[tokio::test]
async fn recording_rule_shows_query_labels_and_health() {
    let (_, body) = get_json("/api/v1/rules").await;
    let rule = &body["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["type"], "recording");
    assert_eq!(rule["name"], "job:up:sum");
    assert_eq!(rule["query"], "sum by (job) (up)");
    assert!(
        rule.get("labels").is_none(),
        "empty labels are left out: {rule}"
    );
    assert_eq!(rule["health"], "ok");
    assert_eq!(rule["lastEvaluation"], "1970-01-01T00:16:40Z");
    assert!(rule.get("lastError").is_none(), "{rule}");
}

#[tokio::test]
async fn alerting_rule_shows_its_state_and_active_alerts() {
    let (_, body) = get_json("/api/v1/rules").await;
    let rules = &body["data"]["groups"][0]["rules"];
    let down = &rules[1];
    assert_eq!(down["type"], "alerting");
    assert_eq!(down["state"], "firing");
    assert_eq!(down["duration"], json!(0));
    assert_eq!(down["labels"], json!({"severity": "page"}));
    assert_eq!(down["alerts"].as_array().unwrap().len(), 1);
    let alert = &down["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "TargetDown");
    assert_eq!(alert["labels"]["instance"], "b");
    assert_eq!(alert["annotations"], json!({"summary": "b is down"}));
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["activeAt"], "1970-01-01T00:16:40Z");
    assert_eq!(alert["value"], "0e+00");

    let long = &rules[2];
    assert_eq!(long["state"], "pending");
    assert_eq!(long["duration"], json!(300));
    assert_eq!(long["keepFiringFor"], json!(60));
    assert_eq!(long["alerts"][0]["value"], "1e+00");
}

#[tokio::test]
async fn rules_filters_by_type() {
    let (_, alerting) = get_json("/api/v1/rules?type=alert").await;
    assert_eq!(rule_names(&alerting), ["TargetDown", "TargetUpLong"]);
    let (_, recording) = get_json("/api/v1/rules?type=record").await;
    assert_eq!(rule_names(&recording), ["job:up:sum", "instance:up:max"]);
}

#[tokio::test]
async fn rules_filters_by_rule_name_group_and_file() {
    let (_, by_name) =
        get_json("/api/v1/rules?rule_name[]=TargetDown&rule_name[]=instance:up:max").await;
    assert_eq!(rule_names(&by_name), ["TargetDown", "instance:up:max"]);
    let (_, by_group) = get_json("/api/v1/rules?rule_group[]=capacity").await;
    assert_eq!(rule_names(&by_group), ["instance:up:max"]);
    let (_, by_file) = get_json("/api/v1/rules?file[]=availability.yaml").await;
    assert_eq!(
        rule_names(&by_file),
        ["job:up:sum", "TargetDown", "TargetUpLong"]
    );
}

#[tokio::test]
async fn rules_rejects_an_unknown_type() {
    let (status, body) = get_json("/api/v1/rules?type=alerts").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorType"], "bad_data");
    assert!(
        body["error"].as_str().unwrap().contains("\"type\""),
        "{body}"
    );
}

#[tokio::test]
async fn alerts_lists_every_pending_and_firing_alert() {
    let (status, body) = get_json("/api/v1/alerts").await;
    assert_eq!(status, StatusCode::OK);
    let mut seen: Vec<(String, String, String)> = body["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap().to_string(),
                a["labels"]["instance"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("TargetDown".into(), "b".into(), "firing".into()),
            ("TargetUpLong".into(), "a".into(), "pending".into()),
        ]
    );
}

#[tokio::test]
async fn targets_answers_active_and_dropped_lists() {
    let (status, body) = get_json("/api/v1/targets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "success", "data": {"activeTargets": [], "droppedTargets": []}})
    );
}

#[test]
fn discovered_labels_come_from_the_scrape_url_and_job() {
    let target = TargetState {
        job: "node".into(),
        scrape_url: "https://host.example:9100/custom/metrics".into(),
        labels: Labels::from_pairs([
            ("job", "node"),
            ("instance", "host.example:9100"),
            ("team", "infra"),
        ]),
        health: Health::Up,
        last_scrape: Some(SystemTime::UNIX_EPOCH),
        last_scrape_duration: None,
        last_error: None,
        scrape_interval: Duration::from_secs(15),
        scrape_timeout: Duration::from_secs(10),
    };
    assert_eq!(
        discovered_labels(&target),
        Labels::from_pairs([
            ("__address__", "host.example:9100"),
            ("__metrics_path__", "/custom/metrics"),
            ("__scheme__", "https"),
            ("__scrape_interval__", "15s"),
            ("__scrape_timeout__", "10s"),
            ("job", "node"),
            ("team", "infra"),
        ])
    );
}

#[test]
fn alert_values_are_spelled_like_go_shortest_exponent_form() {
    let cases = [
        (1.0, "1e+00"),
        (2.5, "2.5e+00"),
        (0.0, "0e+00"),
        (-1234.5, "-1.2345e+03"),
        (1e-7, "1e-07"),
        (1e300, "1e+300"),
        (f64::INFINITY, "+Inf"),
        (f64::NAN, "NaN"),
    ];
    for (v, want) in cases {
        assert_eq!(format_alert_value(v), want, "{v}");
    }
}
