//! The Prometheus-compatible read API (`/api/v1/...`) as clients see it:
//! the router over a store with known samples, called without a socket,
//! answering Prometheus' exact envelopes, value spellings and errors.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::api_state;

use std::sync::{Arc, RwLock};

use api_state::app_state;
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use vigil_evaluator::api::{router, AppState};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::store::Store;

/// `up` for two targets and a counter, sampled every 15s from t=700s to
/// t=1000s (`up{instance="b"}` is 0, the counter grows 1.5 per second).
fn loaded_store() -> Store {
    let mut store = Store::new(1000);
    let up_a = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "a")]);
    let up_b = Labels::from_pairs([("__name__", "up"), ("job", "db"), ("instance", "b")]);
    let requests = Labels::from_pairs([
        ("__name__", "http_requests_total"),
        ("job", "api"),
        ("instance", "a"),
    ]);
    for i in 0..=20 {
        let t = 700_000 + i * 15_000;
        store.append(&up_a, t, 1.0).unwrap();
        store.append(&up_b, t, 0.0).unwrap();
        store.append(&requests, t, i as f64 * 22.5).unwrap();
    }
    store
}

fn app() -> axum::Router {
    router(Arc::new(AppState {
        store: Arc::new(RwLock::new(loaded_store())),
        ..app_state()
    }))
}

/// Status and raw body of a request.
async fn send(req: Request<Body>) -> (StatusCode, String) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(uri: &str) -> (StatusCode, String) {
    send(Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn get_json(uri: &str) -> (StatusCode, Value) {
    let (status, body) = get(uri).await;
    (status, serde_json::from_str(&body).unwrap())
}

fn enc(s: &str) -> String {
    crate::support::url_encode(s)
}

async fn instant(query: &str, time: &str) -> (StatusCode, Value) {
    get_json(&format!(
        "/api/v1/query?query={}&time={}",
        enc(query),
        enc(time)
    ))
    .await
}

fn bad_data(message: &str) -> Value {
    json!({"status": "error", "errorType": "bad_data", "error": message})
}

#[tokio::test]
async fn instant_vector_query_answers_prometheus_envelope_byte_for_byte() {
    let (status, body) = get(&format!(
        "/api/v1/query?query={}&time=1000",
        enc(r#"up{instance="a"}"#)
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1000,"1"]}]}}"#
    );
}

#[tokio::test]
async fn instant_query_returns_every_matching_series_with_its_value() {
    let (_, body) = instant("sort(up)", "1000").await;
    assert_eq!(
        body["data"]["result"],
        json!([
            {"metric": {"__name__": "up", "instance": "b", "job": "db"}, "value": [1000, "0"]},
            {"metric": {"__name__": "up", "instance": "a", "job": "api"}, "value": [1000, "1"]},
        ])
    );
}

#[tokio::test]
async fn instant_query_time_accepts_fractional_seconds_and_rfc3339() {
    let (_, fractional) = instant("scalar(up{instance=\"a\"})", "999.5").await;
    assert_eq!(fractional["data"]["result"], json!([999.5, "1"]));
    let (_, rfc) = instant("vector(time())", "1970-01-01T00:16:40.250Z").await;
    assert_eq!(
        rfc["data"]["result"],
        json!([{"metric": {}, "value": [1000.25, "1000.25"]}])
    );
}

#[tokio::test]
async fn instant_query_time_defaults_to_now() {
    let before = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let (_, body) = get_json("/api/v1/query?query=time()").await;
    let after = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    let t = body["data"]["result"][0].as_f64().unwrap();
    assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
}

#[tokio::test]
async fn instant_query_accepts_a_post_form_and_a_timeout() {
    let req = Request::post("/api/v1/query")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "query={}&time=1000&timeout=5s",
            enc("sum(up)")
        )))
        .unwrap();
    let (status, body) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["data"]["result"],
        json!([{"metric": {}, "value": [1000, "1"]}])
    );
}

#[tokio::test]
async fn scalar_values_are_spelled_like_prometheus() {
    let cases = [
        ("1/0", "+Inf"),
        ("-1/0", "-Inf"),
        ("0/0", "NaN"),
        ("0.1+0.2", "0.30000000000000004"),
        ("1e21", "1000000000000000000000"),
        ("1e-7", "0.0000001"),
        ("-2.5", "-2.5"),
    ];
    for (query, want) in cases {
        let (_, body) = instant(query, "1000").await;
        assert_eq!(
            body["data"],
            json!({"resultType": "scalar", "result": [1000, want]}),
            "{query}"
        );
    }
}

#[tokio::test]
async fn string_query_answers_a_string_result_at_the_evaluation_time() {
    let (_, body) = instant("\"hello\"", "1000").await;
    assert_eq!(
        body["data"],
        json!({"resultType": "string", "result": [1000, "hello"]})
    );
}

#[tokio::test]
async fn range_query_answers_a_matrix_with_one_point_per_step() {
    let (status, body) = get_json(&format!(
        "/api/v1/query_range?query={}&start=940&end=1000&step=30s",
        enc("http_requests_total")
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["data"],
        json!({"resultType": "matrix", "result": [{
            "metric": {"__name__": "http_requests_total", "instance": "a", "job": "api"},
            "values": [[940, "360"], [970, "405"], [1000, "450"]],
        }]})
    );
}

#[tokio::test]
async fn range_query_step_accepts_float_seconds() {
    let (_, body) = get_json(&format!(
        "/api/v1/query_range?query={}&start=999&end=1000&step=0.5",
        enc(r#"up{instance="b"}"#)
    ))
    .await;
    assert_eq!(
        body["data"]["result"][0]["values"],
        json!([[999, "0"], [999.5, "0"], [1000, "0"]])
    );
}

#[tokio::test]
async fn bad_promql_is_bad_data_with_prometheus_position_prefix() {
    let (status, body) = instant("sum(up", "1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(r#"invalid parameter "query": 1:7: parse error: unclosed left parenthesis"#)
    );
}

#[tokio::test]
async fn wrongly_typed_function_argument_names_prometheus_types_and_position() {
    let (status, body) = instant("sum(up) / rate(up)", "1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(
            r#"invalid parameter "query": 1:16: parse error: expected type range vector in call to function "rate", got instant vector"#
        )
    );
}

#[tokio::test]
async fn missing_query_is_bad_data_saying_no_expression_was_found() {
    let (status, body) = get_json("/api/v1/query?time=1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(r#"invalid parameter "query": 1:1: parse error: no expression found in input"#)
    );
}

#[tokio::test]
async fn range_query_of_a_range_vector_is_bad_data_naming_the_range_vector_type() {
    let (status, body) = get_json(&format!(
        "/api/v1/query_range?query={}&start=900&end=1000&step=15",
        enc("up[1m]")
    ))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(
            r#"invalid expression type "range vector" for range query, must be Scalar or instant Vector"#
        )
    );
}

#[tokio::test]
async fn series_match_that_does_not_lex_carries_the_position() {
    let (status, body) = get_json(&format!("/api/v1/series?match[]={}", enc("up{"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(
            r#"invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces"#
        )
    );
}

#[tokio::test]
async fn evaluation_failure_is_an_execution_error_with_status_422() {
    // Both sides hold two series for the one empty match group.
    let (status, body) = instant("up + on() up", "1000").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "execution");
    assert!(!body["error"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn unparsable_time_is_bad_data_naming_the_parameter() {
    let (status, body) = instant("up", "yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(
            r#"invalid parameter "time": Invalid time value for 'time': cannot parse "yesterday" to a valid timestamp"#
        )
    );
}

#[tokio::test]
async fn range_query_rejects_end_before_start() {
    let (status, body) = get_json("/api/v1/query_range?query=up&start=1000&end=900&step=15").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(r#"invalid parameter "end": end timestamp must not be before start time"#)
    );
}

#[tokio::test]
async fn range_query_rejects_a_zero_or_negative_step() {
    for step in ["0", "-15"] {
        let (status, body) = get_json(&format!(
            "/api/v1/query_range?query=up&start=900&end=1000&step={step}"
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "step={step}");
        assert_eq!(
            body,
            bad_data(
                r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#
            )
        );
    }
}

#[tokio::test]
async fn range_query_rejects_more_than_11000_points_per_series() {
    let (status, body) = get_json("/api/v1/query_range?query=up&start=0&end=11001&step=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
    );
    let (below_limit, _) = get_json("/api/v1/query_range?query=up&start=0&end=10999&step=1").await;
    assert_eq!(below_limit, StatusCode::OK);
}

#[tokio::test]
async fn range_query_rejects_an_unparsable_step() {
    let (status, body) =
        get_json("/api/v1/query_range?query=up&start=900&end=1000&step=often").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(r#"invalid parameter "step": cannot parse "often" to a valid duration"#)
    );
}

#[tokio::test]
async fn series_lists_the_label_sets_matching_any_selector() {
    let (status, body) = get_json(&format!(
        "/api/v1/series?match[]={}&match[]={}",
        enc(r#"up{job="db"}"#),
        enc("http_requests_total")
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "success", "data": [
            {"__name__": "http_requests_total", "instance": "a", "job": "api"},
            {"__name__": "up", "instance": "b", "job": "db"},
        ]})
    );
}

#[tokio::test]
async fn series_leaves_out_series_without_samples_in_the_range() {
    let (_, body) = get_json(&format!(
        "/api/v1/series?match[]={}&start=0&end=600",
        enc("up")
    ))
    .await;
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn series_without_match_is_bad_data() {
    let (status, body) = get_json("/api/v1/series").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, bad_data("no match[] parameter provided"));
}

#[tokio::test]
async fn labels_lists_every_label_name_sorted() {
    let (status, body) = get_json("/api/v1/labels").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "success", "data": ["__name__", "instance", "job"]})
    );
}

#[tokio::test]
async fn label_values_lists_the_values_of_one_label() {
    let (_, jobs) = get_json("/api/v1/label/job/values").await;
    assert_eq!(jobs, json!({"status": "success", "data": ["api", "db"]}));
    let (_, names) = get_json("/api/v1/label/__name__/values").await;
    assert_eq!(names["data"], json!(["http_requests_total", "up"]));
    let (_, filtered) = get_json(&format!(
        "/api/v1/label/instance/values?match[]={}",
        enc(r#"up{job="db"}"#)
    ))
    .await;
    assert_eq!(filtered["data"], json!(["b"]));
}

#[tokio::test]
async fn label_values_rejects_an_invalid_label_name() {
    let (status, body) = get_json("/api/v1/label/1job/values").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, bad_data(r#"invalid label name: "1job""#));
}

#[tokio::test]
async fn buildinfo_reports_the_crate_version() {
    let (status, body) = get_json("/api/v1/status/buildinfo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn vector_samples_are_stamped_with_the_evaluation_time() {
    let (_, body) = instant(r#"up{instance="a"}"#, "1007").await;
    assert_eq!(body["data"]["result"][0]["value"], json!([1007, "1"]));
}

#[tokio::test]
async fn query_warnings_and_infos_are_listed_next_to_the_data() {
    let (status, warned) = instant("quantile(2, up)", "1000").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        warned["warnings"],
        json!(["PromQL warning: quantile value should be between 0 and 1, got 2"])
    );
    let (_, informed) = instant("rate(up[1m])", "1000").await;
    assert_eq!(informed["infos"].as_array().unwrap().len(), 1, "{informed}");
    assert!(informed.get("warnings").is_none(), "{informed}");
}

#[tokio::test]
async fn answers_without_annotations_carry_no_warnings_or_infos_keys() {
    let (_, body) = instant("up", "1000").await;
    assert!(body.get("warnings").is_none(), "{body}");
    assert!(body.get("infos").is_none(), "{body}");
}

#[tokio::test]
async fn unparsable_timeout_is_bad_data_naming_the_parameter() {
    let (status, body) = get_json("/api/v1/query?query=up&time=1000&timeout=soon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        bad_data(r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#)
    );
}

#[tokio::test]
async fn series_reads_match_from_a_post_form() {
    let req = Request::post("/api/v1/series")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("match[]={}", enc(r#"up{job="db"}"#))))
        .unwrap();
    let (status, body) = send(req).await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["data"],
        json!([{"__name__": "up", "instance": "b", "job": "db"}])
    );
}
