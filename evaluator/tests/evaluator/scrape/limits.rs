//! Hostile scrape targets against the real evaluator process (issue 16 at
//! reduced size):
//!
//! - one series with 20,000 labels, scraped by two jobs (one with the
//!   default limits, one with `label_limit: 0`): `/-/healthy` keeps
//!   answering within 100 ms, polled every 20 ms, while the limited job
//!   fails with the limit as its reason (in `/api/v1/targets` and in
//!   `vigil_scrape_limit_exceeded_total`);
//! - 200,000 series from one target with `storage.series_limit: 50000`: that
//!   target fails whole with the series limit as its reason, while a small
//!   target keeps adding new series and its alert fires.
//!
//! Every wait polls against a deadline, so a broken build fails instead of
//! hanging.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;
use crate::support::process::write_vigil_files;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use common::process::{api_alerts, log_of, serve, start_evaluator, Target};
use serde_json::Value;
use vigil_testkit::{free_port, wait_for_http};

/// A target answering the same (large) exposition on every scrape.
async fn fixed_target(body: String) -> u16 {
    let body = Arc::new(body);
    serve(Router::new().route(
        "/metrics",
        get(move || {
            let body = Arc::clone(&body);
            async move { body.as_str().to_owned() }
        }),
    ))
    .await
}

async fn ready(listen: u16, dir: &Path) {
    wait_for_http(
        &format!("http://127.0.0.1:{listen}/-/ready"),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir)));
}

/// `/api/v1/targets`: scrape pool → (health, lastError) of its first target.
async fn targets(listen: u16) -> Vec<(String, String, String)> {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{listen}/api/v1/targets")).await
    else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["data"]["activeTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let field = |name: &str| t[name].as_str().unwrap_or("").to_string();
            (field("scrapePool"), field("health"), field("lastError"))
        })
        .collect()
}

async fn metrics_text(listen: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{listen}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_within_100ms_while_two_jobs_scrape_a_series_with_20000_labels() {
    let _alone = crate::support::alone().await;
    let dir = tempfile::tempdir().unwrap();
    let labels: Vec<String> = (0..20_000)
        .map(|i| format!("label_{i}=\"value_{i}\""))
        .collect();
    let port = fixed_target(format!("wide_series{{{}}} 1\n", labels.join(","))).await;
    let listen = free_port();
    let config = write_vigil_files(
        dir.path(),
        "groups: []\n",
        &format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n\
             - job_name: limited\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n\
             - job_name: unlimited\n  label_limit: 0\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n\
             rule_files: [rules.yaml]\nweb: {{listen: '127.0.0.1:{listen}'}}\n"
        ),
    );
    let _evaluator = start_evaluator(&config, dir.path(), "evaluator.log", None);
    ready(listen, dir.path()).await;

    // Poll health every 20 ms for 6 s (six scrapes of each job).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let health = format!("http://127.0.0.1:{listen}/-/healthy");
    let until = Instant::now() + Duration::from_secs(6);
    let (mut slowest, mut polls) = (Duration::ZERO, 0);
    while Instant::now() < until {
        let sent = Instant::now();
        let response = client.get(&health).send().await.unwrap();
        assert!(response.status().is_success());
        slowest = slowest.max(sent.elapsed());
        polls += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("/-/healthy: {polls} polls, slowest {slowest:?}");
    assert!(
        slowest < Duration::from_millis(100),
        "slowest /-/healthy took {slowest:?}; log:\n{}",
        log_of(dir.path())
    );

    let all = targets(listen).await;
    let limited = all.iter().find(|t| t.0 == "limited").unwrap();
    assert_eq!(limited.1, "down", "{all:?}");
    assert!(limited.2.contains("label_limit"), "{all:?}");
    assert!(limited.2.contains("more than 128 labels"), "{all:?}");
    let unlimited = all.iter().find(|t| t.0 == "unlimited").unwrap();
    assert_eq!(unlimited.1, "up", "{all:?}");
    let text = metrics_text(listen).await;
    let counted = text
        .lines()
        .find(|l| {
            l.starts_with("vigil_scrape_limit_exceeded_total{")
                && l.contains("job=\"limited\"")
                && l.contains("limit=\"label_limit\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(counted >= 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_with_200000_series_cannot_starve_a_small_target_of_the_series_limit() {
    let _alone = crate::support::alone().await;
    let dir = tempfile::tempdir().unwrap();
    let big: String = (0..200_000)
        .map(|i| format!("big_series{{shard=\"{}\",i=\"{i}\"}} 1\n", i % 16))
        .collect();
    let big_port = fixed_target(big).await;
    let small = Target::start().await;
    let listen = free_port();
    let config = write_vigil_files(
        dir.path(),
        "groups:\n- name: small\n  interval: 1s\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n",
        &format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n\
             - job_name: big\n  scrape_interval: 10s\n  scrape_timeout: 10s\n  static_configs: [{{targets: ['127.0.0.1:{big_port}']}}]\n\
             - job_name: small\n  static_configs: [{{targets: ['127.0.0.1:{}']}}]\n\
             rule_files: [rules.yaml]\nstorage: {{series_limit: 50000}}\nweb: {{listen: '127.0.0.1:{listen}'}}\n",
            small.port
        ),
    );
    let _evaluator = start_evaluator(&config, dir.path(), "evaluator.log", None);
    ready(listen, dir.path()).await;

    // The big target is refused whole, with the series limit as reason.
    let deadline = Instant::now() + Duration::from_secs(90);
    let seen = loop {
        let seen = targets(listen).await;
        if seen
            .iter()
            .any(|t| t.0 == "big" && t.2.contains("series_limit exceeded"))
        {
            break seen;
        }
        assert!(
            Instant::now() < deadline,
            "big target never refused for the series limit: {seen:?}; log:\n{}",
            log_of(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let big_target = seen.iter().find(|t| t.0 == "big").unwrap();
    assert_eq!(big_target.1, "down", "{seen:?}");
    assert!(
        big_target
            .2
            .contains("would make the target hold 200005 series"),
        "{seen:?}"
    );

    // Meanwhile the small target adds new series; the last one fires.
    for i in 0..50 {
        small.set_series(&format!("new_{i}"), 0.0);
    }
    small.set_series("late", 1.0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = api_alerts(listen).await;
        if alerts.get("late").map(String::as_str) == Some("firing") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the small target's new series never fired: {alerts:?}; targets {:?}; log:\n{}",
            targets(listen).await,
            log_of(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every new series of the small target is stored.
    let query = reqwest::get(format!(
        "http://127.0.0.1:{listen}/api/v1/query?query=count(vigil_test_value)"
    ))
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap();
    assert_eq!(
        query["data"]["result"][0]["value"][1].as_str(),
        Some("52"),
        "{query}"
    );
    let small_target = targets(listen).await;
    assert!(
        small_target.iter().any(|t| t.0 == "small" && t.1 == "up"),
        "{small_target:?}"
    );
}
