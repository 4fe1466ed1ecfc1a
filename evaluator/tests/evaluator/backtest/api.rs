//! `POST /api/vigil/v1/backtest` against the computed datasource: the
//! token, the same report as the command line, the limits, and a request
//! whose client goes away stopping its backtest.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use vigil_evaluator::api::{router, AppState};
use vigil_evaluator::clock::SystemClock;
use vigil_evaluator::datasource::{DatasourceClient, DatasourceSettings};
use vigil_evaluator::notify::receivers::http::HttpSettings;
use vigil_evaluator::notify::receivers::Secret;

use super::{datasource, rules, slow_datasource, NOTIFY, T0};
use crate::support::api_state::app_state;

fn app(datasource: Option<&str>) -> Arc<AppState> {
    let client = datasource.map(|url| {
        let settings = DatasourceSettings {
            url: url.to_string(),
            headers: Vec::new(),
            query_timeout: Duration::from_secs(30),
            query_offset: None,
            retries: 0,
            http: HttpSettings::default(),
        };
        let errors = prometheus::IntCounter::new("errors", "errors").unwrap();
        Arc::new(DatasourceClient::new(settings, Arc::new(SystemClock), errors).unwrap())
    });
    Arc::new(AppState {
        token: std::sync::RwLock::new(Some(Secret::new("s3cret"))),
        datasource: std::sync::RwLock::new(client),
        ..app_state()
    })
}

async fn post(state: &Arc<AppState>, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = Request::post("/api/vigil/v1/backtest");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = router(Arc::clone(state))
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn the_api_runs_a_backtest_for_the_token_holder_within_limits() {
    let fake = datasource().await;
    let state = app(Some(&fake.base));
    let request = json!({
        "from": T0.to_string(), "to": (T0 + 3600).to_string(),
        "rules": rules("5"), "notify_config": NOTIFY,
    });
    let (status, _) = post(&state, None, request.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = post(&state, Some("s3cret"), request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rule = &body["data"]["rules"][0];
    assert_eq!(
        (
            rule["rule"].clone(),
            rule["episodes"].clone(),
            rule["near_misses"].clone(),
            rule["flaps"].clone()
        ),
        (json!("LoadHigh"), json!(3), json!(1), json!(1))
    );
    assert_eq!(rule["notifications"], json!({"team": 6}));

    let mut sweep = request.clone();
    sweep["sweep"] = json!("LoadHigh:8:8:1");
    let (status, body) = post(&state, Some("s3cret"), sweep).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["values"][0]["episodes"], 2);

    let mut too_long = request.clone();
    too_long["from"] = json!((T0 - 40 * 86_400).to_string());
    let (status, body) = post(&state, Some("s3cret"), too_long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("over the limit of 31d"),
        "{body}"
    );

    let mut broken = request.clone();
    broken["rules"] = json!("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: 'rate(x[5m]'\n");
    let (status, body) = post(&state, Some("s3cret"), broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("rules has errors"),
        "{body}"
    );

    let (status, body) = post(&app(None), Some("s3cret"), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("no `datasource:`"),
        "{body}"
    );
}

#[tokio::test]
async fn a_backtest_stops_when_its_client_goes_away() {
    // 31 days at 10 s is 268 chunks; at 50 ms an answer the backtest would
    // run for over 13 s.
    let fake = slow_datasource(Duration::from_millis(50)).await;
    let state = app(Some(&fake.base));
    let port = crate::support::process::serve(router(Arc::clone(&state))).await;
    let request = json!({
        "from": (T0 - 30 * 86_400).to_string(), "to": T0.to_string(), "rules": rules("5"),
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let answer = client
        .post(format!("http://127.0.0.1:{port}/api/vigil/v1/backtest"))
        .bearer_auth("s3cret")
        .body(request.to_string())
        .send()
        .await;
    assert!(answer.is_err(), "the client gave up first");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_drop = fake.queries.lock().unwrap().len();
    assert!(after_drop > 0, "it had started");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        fake.queries.lock().unwrap().len(),
        after_drop,
        "queries went on after the client left"
    );
}
