//! Oracle test: a real Prometheus 2.42 and the evaluator scrape the same
//! static exposition, then answer the same `/api/v1/query` requests; every
//! answer must agree (result type, label sets, values within 1e-9). The
//! exposition never changes, so the two scrapers' different sample
//! timestamps do not change any value asked about.
//!
//! Every wait polls against a deadline, so a broken build fails instead of
//! hanging.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::cargo_bin;
use crate::support::wait;
use axum::routing;
use axum::Router;
use serde_json::Value;
use vigil_testkit::{external_tool, free_port, wait_for_http, ChildGuard};

const DEADLINE: Duration = Duration::from_secs(60);

const EXPOSITION: &str = "\
# TYPE oracle_requests_total counter
oracle_requests_total{method=\"get\",code=\"200\"} 1027
oracle_requests_total{method=\"post\",code=\"200\"} 3
oracle_requests_total{method=\"get\",code=\"500\"} 12.5
# TYPE oracle_temperature gauge
oracle_temperature{room=\"a\"} 21.25
oracle_temperature{room=\"b\"} -3.5
oracle_temperature{room=\"c\"} 1e-3
# TYPE oracle_latency_seconds histogram
oracle_latency_seconds_bucket{le=\"0.1\"} 10
oracle_latency_seconds_bucket{le=\"0.5\"} 25
oracle_latency_seconds_bucket{le=\"1\"} 30
oracle_latency_seconds_bucket{le=\"+Inf\"} 31
oracle_latency_seconds_sum 12.3
oracle_latency_seconds_count 31
";

/// Queries whose answers depend only on the exposed values.
const QUERIES: &[&str] = &[
    "oracle_requests_total",
    r#"oracle_temperature{room=~"a|b"}"#,
    r#"oracle_requests_total{code!="200"}"#,
    "sum by (code) (oracle_requests_total)",
    "avg(oracle_temperature)",
    "count(oracle_requests_total)",
    "stddev(oracle_temperature)",
    "quantile(0.5, oracle_temperature)",
    "topk(2, oracle_requests_total)",
    "histogram_quantile(0.9, oracle_latency_seconds_bucket)",
    "abs(oracle_temperature) * 2",
    "clamp_min(oracle_temperature, 0)",
    r#"label_replace(oracle_temperature, "r", "x-$1", "room", "(.*)")"#,
    "rate(oracle_requests_total[1m])",
    "oracle_requests_total / on(method, code, instance, job) oracle_requests_total",
    "sum(oracle_requests_total) > bool 1000",
    "scalar(sum(oracle_requests_total))",
    "oracle_latency_seconds_sum / oracle_latency_seconds_count",
    "1 / oracle_temperature{room=\"c\"} - 1000",
];

async fn serve_exposition() -> u16 {
    let app = Router::new().route("/metrics", routing::get(|| async { EXPOSITION }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn start_prometheus(prometheus: &Path, dir: &Path, target: u16, listen: u16) -> ChildGuard {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n- job_name: oracle\n  static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
        ),
    )
    .unwrap();
    ChildGuard::spawn(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{listen}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
}

/// Malformed or wrongly typed queries whose error text (position prefix,
/// type names, quoting) must be Prometheus' own.
const BAD_QUERIES: &[&str] = &[
    "",
    "sum(",
    "up{",
    ")",
    "up ~ 1",
    "sum by (a) (oracle_temperature",
    r#"oracle_temperature{room="a"#,
    "rate(  oracle_temperature)",
    "sum(oracle_temperature) / rate(oracle_temperature)",
    "abs(oracle_temperature[5m])",
    "label_replace(oracle_temperature)",
    "nosuchfunction(oracle_temperature)",
    "-oracle_temperature[5m]",
    "oracle_temperature offset",
];

fn start_evaluator(dir: &Path, target: u16, listen: u16) -> ChildGuard {
    let config = dir.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: oracle\n  static_configs: [{{targets: ['127.0.0.1:{target}']}}]\nweb: {{listen: '127.0.0.1:{listen}'}}\n"
        ),
    )
    .unwrap();
    ChildGuard::spawn(
        Command::new(cargo_bin("vigil-evaluator"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("VIGIL_API_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("evaluator.log")).unwrap()),
    )
}

async fn query(port: u16, promql: &str, time: f64) -> Value {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", promql), ("time", &time.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn get(port: u16, path: &str, params: &[(&str, String)]) -> Value {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .query(params)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until `port` holds at least three samples of the exposition.
async fn wait_for_samples(port: u16) {
    let last = std::cell::RefCell::new(Value::Null);
    let scraped = wait::until(DEADLINE, Duration::from_millis(200), || {
        let last = &last;
        async move {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            let body = query(
                port,
                r#"count_over_time(oracle_temperature{room="a"}[1m])"#,
                now,
            )
            .await;
            let count = body["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
            *last.borrow_mut() = body;
            count >= 3.0
        }
    })
    .await;
    assert!(
        scraped,
        "port {port} did not scrape three samples in time: {}",
        last.borrow()
    );
}

fn number(v: &Value) -> f64 {
    match v.as_str().unwrap() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap(),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

/// `metric → value` of a vector result, or `{} → value` of a scalar.
fn values(body: &Value) -> BTreeMap<String, f64> {
    let data = &body["data"];
    match data["resultType"].as_str().unwrap() {
        "scalar" => BTreeMap::from([(String::new(), number(&data["result"][1]))]),
        "vector" => data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["metric"].to_string(), number(&s["value"][1])))
            .collect(),
        other => panic!("unexpected result type {other}: {body}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_queries_agree_with_prometheus() {
    let Some(prometheus) = external_tool("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = serve_exposition().await;
    let prom_port = free_port();
    let ours_port = free_port();
    let _prom = start_prometheus(&prometheus, dir.path(), target, prom_port);
    let _ours = start_evaluator(dir.path(), target, ours_port);
    wait_for_http(&format!("http://127.0.0.1:{prom_port}/-/ready"), DEADLINE)
        .await
        .unwrap();
    wait_for_http(&format!("http://127.0.0.1:{ours_port}/-/ready"), DEADLINE)
        .await
        .unwrap();
    wait_for_samples(prom_port).await;
    wait_for_samples(ours_port).await;

    let at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    for promql in QUERIES {
        let theirs = query(prom_port, promql, at).await;
        let ours = query(ours_port, promql, at).await;
        assert_eq!(theirs["status"], "success", "{promql}: {theirs}");
        assert_eq!(ours["status"], theirs["status"], "{promql}: {ours}");
        assert_eq!(
            ours["data"]["resultType"], theirs["data"]["resultType"],
            "{promql}"
        );
        let (theirs, ours) = (values(&theirs), values(&ours));
        assert!(!theirs.is_empty(), "{promql}: Prometheus returned nothing");
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{promql}: label sets differ"
        );
        for (metric, want) in &theirs {
            let got = ours[metric];
            assert!(
                close(got, *want),
                "{promql} {metric}: ours {got}, Prometheus {want}"
            );
        }
    }

    for promql in BAD_QUERIES {
        let theirs = query(prom_port, promql, at).await;
        let ours = query(ours_port, promql, at).await;
        assert_eq!(theirs["status"], "error", "{promql:?}: {theirs}");
        assert_eq!(ours, theirs, "{promql:?}: error bodies differ");
    }
    let range = [
        ("query", "oracle_temperature[5m]".to_string()),
        ("start", (at - 60.0).to_string()),
        ("end", at.to_string()),
        ("step", "15".to_string()),
    ];
    let theirs = get(prom_port, "/api/v1/query_range", &range).await;
    let ours = get(ours_port, "/api/v1/query_range", &range).await;
    assert_eq!(theirs["status"], "error", "{theirs}");
    assert_eq!(ours, theirs, "range query of a range vector");
}

/// `metric → [(t, value)]` of a matrix result.
fn matrix(body: &Value) -> BTreeMap<String, Vec<(f64, f64)>> {
    assert_eq!(body["data"]["resultType"], "matrix", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let points = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_f64().unwrap(), number(&p[1])))
                .collect();
            (s["metric"].to_string(), points)
        })
        .collect()
}

/// A JSON array's elements as sorted strings, to compare sets.
fn sorted(body: &Value) -> Vec<String> {
    assert_eq!(body["status"], "success", "{body}");
    let mut items: Vec<String> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(Value::to_string)
        .collect();
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_series_label_and_target_answers_agree_with_prometheus() {
    let Some(prometheus) = external_tool("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = serve_exposition().await;
    let prom_port = free_port();
    let ours_port = free_port();
    let _prom = start_prometheus(&prometheus, dir.path(), target, prom_port);
    let _ours = start_evaluator(dir.path(), target, ours_port);
    for port in [prom_port, ours_port] {
        wait_for_http(&format!("http://127.0.0.1:{port}/-/ready"), DEADLINE)
            .await
            .unwrap();
        wait_for_samples(port).await;
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    // The last 1.5s: both have held samples for at least 2s by now.
    let (start, end) = ((now_ms - 1500) as f64 / 1000.0, now_ms as f64 / 1000.0);

    for promql in [
        "sum by (code) (oracle_requests_total)",
        "oracle_temperature * 2",
    ] {
        let params = [
            ("query", promql.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", "0.5".to_string()),
        ];
        let theirs = matrix(&get(prom_port, "/api/v1/query_range", &params).await);
        let ours = matrix(&get(ours_port, "/api/v1/query_range", &params).await);
        assert!(!theirs.is_empty(), "{promql}: Prometheus returned nothing");
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{promql}: label sets differ"
        );
        for (metric, want) in &theirs {
            let got = &ours[metric];
            assert_eq!(
                got.len(),
                want.len(),
                "{promql} {metric}: {got:?} vs {want:?}"
            );
            for ((gt, gv), (wt, wv)) in got.iter().zip(want) {
                assert!(
                    close(*gt, *wt) && close(*gv, *wv),
                    "{promql} {metric}: {got:?} vs {want:?}"
                );
            }
        }
    }

    let lookups: [(&str, Vec<(&str, String)>); 3] = [
        (
            "/api/v1/series",
            vec![("match[]", "oracle_temperature".to_string())],
        ),
        (
            "/api/v1/labels",
            vec![("match[]", r#"{__name__=~"oracle_.*"}"#.to_string())],
        ),
        (
            "/api/v1/label/__name__/values",
            vec![("match[]", r#"{__name__=~"oracle_.*"}"#.to_string())],
        ),
    ];
    for (path, params) in lookups {
        let theirs = sorted(&get(prom_port, path, &params).await);
        let ours = sorted(&get(ours_port, path, &params).await);
        assert!(!theirs.is_empty(), "{path}: Prometheus returned nothing");
        assert_eq!(ours, theirs, "{path}");
    }

    // The target's identity and settings (times and durations differ).
    let fields = [
        "discoveredLabels",
        "labels",
        "scrapePool",
        "scrapeUrl",
        "lastError",
        "health",
        "scrapeInterval",
        "scrapeTimeout",
    ];
    let theirs = get(prom_port, "/api/v1/targets", &[]).await;
    let ours = get(ours_port, "/api/v1/targets", &[]).await;
    let (theirs, ours) = (
        &theirs["data"]["activeTargets"][0],
        &ours["data"]["activeTargets"][0],
    );
    for field in fields {
        assert_eq!(ours[field], theirs[field], "targets: {field}");
    }
}
