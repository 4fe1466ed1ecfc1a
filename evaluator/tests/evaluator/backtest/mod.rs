//! `vigil-evaluator backtest`, run as the real binary: [`cli`] against a
//! datasource whose answers the test computes (exact tables of the plain,
//! compare and sweep outputs; bad input; remote write), [`api`] the same
//! through `POST /api/vigil/v1/backtest`, [`oracle`] against a real
//! Prometheus and Alertmanager that lived through the same data.
//!
//! The computed datasource: `load{instance="a"}` is 10 during minutes
//! 5–10, 12–20 and the first 30 s of minute 30 of the hour from [`T0`];
//! `load{instance="b"}` is 7 during minutes 40–50; both are 0 otherwise.
//! It answers `query_range` for `load` and for `load > N` (with PromQL's
//! filter) and records every query.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

mod api;
mod cli;
mod oracle;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::support::process::serve;

/// 2025-12-01T00:00:00Z.
pub const T0: i64 = 1_764_547_200;

fn load(instance: &str, t: i64) -> f64 {
    let minute = (t - T0) as f64 / 60.0;
    match instance {
        "a" if (5.0..10.0).contains(&minute)
            || (12.0..20.0).contains(&minute)
            || (30.0..30.5).contains(&minute) =>
        {
            10.0
        }
        "b" if (40.0..50.0).contains(&minute) => 7.0,
        _ => 0.0,
    }
}

#[derive(serde::Deserialize)]
struct RangeQuery {
    query: String,
    start: f64,
    end: f64,
    step: f64,
}

async fn query_range(State(fake): State<Fake>, Form(q): Form<RangeQuery>) -> Json<Value> {
    fake.queries.lock().unwrap().push(q.query.clone());
    tokio::time::sleep(fake.delay).await;
    let threshold = match q.query.split_once(" > ") {
        Some(("load", n)) => n.parse::<f64>().ok(),
        _ if q.query == "load" => Some(f64::NEG_INFINITY),
        _ => None,
    };
    let Some(threshold) = threshold else {
        return Json(
            json!({"status": "error", "errorType": "bad_data", "error": format!("unknown query {}", q.query)}),
        );
    };
    let mut result = Vec::new();
    for instance in ["a", "b"] {
        let mut values = Vec::new();
        let mut t = q.start;
        while t <= q.end {
            let v = load(instance, t as i64);
            if v > threshold {
                values.push(json!([t, v.to_string()]));
            }
            t += q.step;
        }
        if !values.is_empty() {
            result.push(
                json!({"metric": {"__name__": "load", "instance": instance}, "values": values}),
            );
        }
    }
    Json(json!({"status": "success", "data": {"resultType": "matrix", "result": result}}))
}

#[derive(Clone)]
struct Fake {
    queries: Arc<Mutex<Vec<String>>>,
    delay: Duration,
}

/// A running computed datasource.
pub struct Datasource {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The `query` of every request, in order.
    pub queries: Arc<Mutex<Vec<String>>>,
}

/// The computed datasource, answering at once.
pub async fn datasource() -> Datasource {
    slow_datasource(Duration::ZERO).await
}

/// The computed datasource, taking `delay` over each answer.
pub async fn slow_datasource(delay: Duration) -> Datasource {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/api/v1/query_range", post(query_range))
        .with_state(Fake {
            queries: Arc::clone(&queries),
            delay,
        });
    Datasource {
        base: format!("http://127.0.0.1:{}", serve(app).await),
        queries,
    }
}

/// A rule file: `LoadHigh: load > THRESHOLD` for 30s, every 10s.
pub fn rules(threshold: &str) -> String {
    format!("groups:\n- name: load\n  interval: 10s\n  rules:\n  - alert: LoadHigh\n    expr: load > {threshold}\n    for: 30s\n")
}

/// Grouped per instance; flushes 30 s after a group starts, then each minute.
pub const NOTIFY: &str = "route: {receiver: team, group_by: [alertname, instance], group_wait: 30s, group_interval: 1m, repeat_interval: 4h}\nreceivers:\n- name: team\n  webhook_configs: [{url: 'http://127.0.0.1:9/'}]\n";
