//! The oracle: a real Prometheus 2.42 scrapes a target whose values cross
//! thresholds on a known schedule and evaluates three rules with its own
//! rule manager (1 s interval), sending to a real Alertmanager 0.25 whose
//! webhook posts to a capture server. Then `vigil-evaluator backtest` over
//! that window, with that Prometheus as its datasource and the same
//! notification config, must find the firing intervals of Prometheus'
//! `ALERTS{alertstate="firing"}` series (each edge within one evaluation
//! interval) and as many notifications per rule as Alertmanager sent.
//!
//! The schedule is one 64-second cycle per series by default;
//! `VIGIL_BACKTEST_ORACLE_SECS=900` runs about 15 minutes of cycles.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::support::alertmanager::{alertmanager_binary, start_alertmanager, start_capture};
use crate::support::cargo_bin;
use crate::support::process::Target;
use crate::support::tsdb::{Kind, Tsdb};

const CYCLE_SECS: u64 = 64;

/// (alertname, series) → episodes as (start, end) in ms.
type Episodes<End> = BTreeMap<(String, String), Vec<(i64, End)>>;

/// The value of a series `s` seconds into its cycle: every state change
/// of a rule and series is at least two group intervals (6 s) from the
/// next, so no two changes can meet in one Alertmanager flush.
fn value_at(s: u64) -> f64 {
    match s {
        5..20 => 30.0,  // ValueHigh fires at 8, ValueHeld at 5
        32..42 => 80.0, // and ValueCritical too
        53..55 => 30.0, // ValueHigh: a near miss; ValueHeld fires (to 59)
        _ => 0.0,
    }
}

const RULES: &str = "groups:
- name: oracle
  interval: 1s
  rules:
  - alert: ValueHigh
    expr: vigil_test_value > 10
    for: 3s
    labels: {severity: warning}
  - alert: ValueCritical
    expr: vigil_test_value > 50
    labels: {severity: critical}
  - alert: ValueHeld
    expr: vigil_test_value > 10
    keep_firing_for: 4s
    labels: {severity: info}
";

fn notify_config(hook: &str) -> String {
    format!("route: {{receiver: hook, group_by: [alertname, series], group_wait: 1s, group_interval: 3s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: '{hook}/hook', send_resolved: true}}]\n")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// (alertname, series) → firing intervals (ms, end exclusive) from
/// Prometheus' `ALERTS` samples, one per evaluation while firing.
async fn prometheus_episodes(base: &str, from_ms: i64, to_ms: i64) -> Episodes<i64> {
    let window = (to_ms - from_ms) / 1000 + 1;
    let answer: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[
            (
                "query",
                format!("ALERTS{{alertstate=\"firing\"}}[{window}s]"),
            ),
            ("time", format!("{:.3}", to_ms as f64 / 1000.0)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for series in answer["data"]["result"].as_array().unwrap() {
        let key = (
            series["metric"]["alertname"].as_str().unwrap().to_string(),
            series["metric"]["series"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
        let mut runs: Vec<(i64, i64)> = Vec::new();
        for point in series["values"].as_array().unwrap() {
            let t = (point[0].as_f64().unwrap() * 1000.0).round() as i64;
            match runs.last_mut() {
                Some((_, end)) if t - *end < 500 => *end = t + 1000,
                _ => runs.push((t, t + 1000)),
            }
        }
        out.insert(key, runs);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backtest_finds_what_prometheus_and_alertmanager_did() {
    let Some(am_binary) = alertmanager_binary() else {
        eprintln!("SKIPPED: alertmanager not found on PATH");
        return;
    };
    let target = Target::start().await;
    let Some(prometheus) = Tsdb::new(
        Kind::Prometheus,
        &format!(
            "  - job_name: target\n    static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            target.port
        ),
    ) else {
        return;
    };
    let secs: u64 = std::env::var("VIGIL_BACKTEST_ORACLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(CYCLE_SECS);
    let cycles = secs.div_ceil(CYCLE_SECS).max(1);

    let dir = tempfile::tempdir().unwrap();
    let (hook, captured) = start_capture().await;
    let notify = dir.path().join("notify.yaml");
    std::fs::write(&notify, notify_config(&hook)).unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(&rules, RULES).unwrap();
    let (_am, am_base) = start_alertmanager(&am_binary, dir.path(), &notify).await;
    let am_target = am_base.trim_start_matches("http://");
    prometheus.evaluate_rules(&rules);
    prometheus.append_config(&format!(
        "alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{am_target}']}}]}}]}}\n"
    ));
    for series in ["a", "b"] {
        target.set_series(series, 0.0);
    }
    let _prometheus = prometheus.start().await;
    // Let the first scrapes and evaluations happen on zeros.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let from_ms = now_ms() - 2000;

    // Series b runs the same cycle 13 s behind a; then 12 s of zeros so
    // every episode ends and its resolved notification goes out.
    let start = tokio::time::Instant::now();
    let total = cycles * CYCLE_SECS + 13 + 12;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().as_secs();
        if elapsed >= total {
            break;
        }
        let cycle_time = |delay: u64| {
            let s = elapsed.checked_sub(delay)?;
            (s < cycles * CYCLE_SECS).then_some(s % CYCLE_SECS)
        };
        target.set_series("a", cycle_time(0).map_or(0.0, value_at));
        target.set_series("b", cycle_time(13).map_or(0.0, value_at));
    }
    let to_ms = now_ms();
    // Alertmanager's last flushes are at most a group interval away.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let expected = prometheus_episodes(&prometheus.base, from_ms, to_ms).await;
    let out = tokio::task::spawn_blocking({
        let (notify, rules, base) = (notify.clone(), rules.clone(), prometheus.base.clone());
        move || {
            Command::new(cargo_bin("vigil-evaluator"))
                .arg("backtest")
                .args(["--datasource", &base])
                .args(["--from", &format!("{:.3}", from_ms as f64 / 1000.0)])
                .args(["--to", &format!("{:.3}", to_ms as f64 / 1000.0)])
                .arg("--notify-config")
                .arg(&notify)
                .args(["--output", "json"])
                .arg(&rules)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let mut ours: Episodes<Option<i64>> = BTreeMap::new();
    let mut our_notifications: BTreeMap<String, u64> = BTreeMap::new();
    for rule in report["rules"].as_array().unwrap() {
        let name = rule["rule"]
            .as_str()
            .unwrap()
            .split('{')
            .next()
            .unwrap()
            .to_string();
        our_notifications.insert(name.clone(), rule["notifications_total"].as_u64().unwrap());
        for e in rule["episode_list"].as_array().unwrap() {
            let series = e["labels"]["series"].as_str().unwrap_or("").to_string();
            ours.entry((name.clone(), series))
                .or_default()
                .push((e["start_ms"].as_i64().unwrap(), e["end_ms"].as_i64()));
        }
    }

    // Per cycle and series: ValueHigh 2, ValueCritical 1, ValueHeld 3.
    let count = |m: &Episodes<i64>| m.values().map(Vec::len).sum::<usize>();
    assert_eq!(
        count(&expected),
        12 * cycles as usize,
        "Prometheus: {expected:?}"
    );
    let interval = 1000;
    for (key, theirs) in &expected {
        let mine = ours.get(key).cloned().unwrap_or_default();
        assert_eq!(
            mine.len(),
            theirs.len(),
            "{key:?}: ours {mine:?}, Prometheus {theirs:?}"
        );
        for ((start, end), (their_start, their_end)) in mine.iter().zip(theirs) {
            let end = end.unwrap_or(to_ms);
            assert!(
                (start - their_start).abs() <= interval && (end - their_end).abs() <= interval,
                "{key:?}: ours {start}–{end}, Prometheus {their_start}–{their_end}"
            );
        }
    }
    assert_eq!(ours.len(), expected.len(), "ours {ours:?}");

    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    for (kind, body) in captured.lock().unwrap().iter() {
        if kind == "hook" {
            let name = body["groupLabels"]["alertname"]
                .as_str()
                .unwrap()
                .to_string();
            *sent.entry(name).or_default() += 1;
        }
    }
    assert_eq!(our_notifications, sent, "ours vs what Alertmanager sent");
    assert_eq!(sent.values().sum::<u64>(), 24 * cycles, "{sent:?}");
}
