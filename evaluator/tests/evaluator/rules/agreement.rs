//! Same alerts as the real rule managers: one rule file evaluated by
//! Prometheus' own rule manager and by vmalert, each over its own database
//! (which scrape one fixed workload), and by Vigil with that database as
//! its datasource. The alerts (labels, state, value, annotations) agree;
//! the alert a change in the workload starts is active since the same
//! moment within one evaluation interval (plus the scrape that carries
//! the change, which the two engines see at different instants); and the
//! recording-rule samples Vigil remote-writes back equal the ones the
//! rule manager wrote.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use serde_json::Value;
use vigil_testkit::free_port;

use crate::support::process::{log_of, serve, start_evaluator};
use crate::support::tsdb::{start_vmalert, Kind, Tsdb};
use crate::support::wait::poll;

/// The groups' evaluation interval, in seconds.
const INTERVAL_S: f64 = 2.0;

const RULES: &str = r#"groups:
  - name: agreement
    interval: 2s
    rules:
      - record: queue:depth:max
        expr: max by (queue) (app_queue_depth)
      - record: job:requests:rate10s
        expr: sum by (job, code) (rate(app_requests_total[10s]))
      - alert: QueueDeep
        expr: max by (queue) (app_queue_depth) > 10
        for: 4s
        labels: {severity: warning}
        annotations:
          summary: 'queue {{ $labels.queue }} holds {{ $value }}'
      - alert: ErrorsHigh
        expr: sum by (job) (rate(app_requests_total{code="500"}[10s])) > 1
        labels: {severity: critical}
      - alert: QueueShallow
        expr: app_queue_depth < 10
"#;

/// A target whose exposition is a fixed function of time: two queue
/// depths (queue `b` jumps from 5 to 50 when `deep` is set) and two
/// counters growing at 10/s and 3/s.
struct Workload {
    deep: Arc<AtomicBool>,
    port: u16,
}

impl Workload {
    async fn start() -> Workload {
        let deep = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let flag = deep.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let deep = flag.load(Ordering::SeqCst);
                let t = started.elapsed().as_secs_f64();
                async move {
                    format!(
                        "app_queue_depth{{queue=\"a\"}} 5\n\
                         app_queue_depth{{queue=\"b\"}} {}\n\
                         app_requests_total{{job=\"api\",code=\"200\"}} {}\n\
                         app_requests_total{{job=\"api\",code=\"500\"}} {}\n",
                        if deep { 50 } else { 5 },
                        100.0 + 10.0 * t,
                        30.0 + 3.0 * t
                    )
                }
            }),
        );
        let port = serve(app).await;
        Workload { deep, port }
    }
}

/// One alert as an engine's `/api/v1/alerts` shows it.
#[derive(Debug, Clone)]
struct Shown {
    labels: BTreeMap<String, String>,
    state: String,
    value: f64,
    summary: String,
    /// Unix seconds.
    active_at: f64,
}

/// The alerts of the engine at `base`, without the label that tells
/// Vigil's remote-written samples apart.
async fn alerts(base: &str) -> Vec<Shown> {
    let Ok(response) = reqwest::get(format!("{base}/api/v1/alerts")).await else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| Shown {
            labels: a["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| k.as_str() != "evaluator")
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
            state: a["state"].as_str().unwrap_or("").to_string(),
            value: a["value"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN),
            summary: a["annotations"]["summary"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            active_at: a["activeAt"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map_or(f64::NAN, |t| t.timestamp_millis() as f64 / 1000.0),
        })
        .collect()
}

fn firing<'a>(shown: &'a [Shown], name: &str) -> Vec<&'a Shown> {
    let mut found: Vec<&Shown> = shown
        .iter()
        .filter(|a| a.state == "firing" && a.labels.get("alertname").is_some_and(|n| n == name))
        .collect();
    found.sort_by(|a, b| a.labels.cmp(&b.labels));
    found
}

/// Every series of `query` on the database at `base`, as (labels, value).
async fn series(base: &str, query: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let Ok(response) = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
    else {
        return Vec::new();
    };
    let body: Value = response.json().await.unwrap_or_default();
    body["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect();
            let value = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            (labels, value)
        })
        .collect()
}

fn close(a: f64, b: f64, relative: f64) -> bool {
    (a - b).abs() <= relative * a.abs().max(b.abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_on_a_datasource_fires_what_prometheus_and_vmalert_fire() {
    for kind in [Kind::Prometheus, Kind::VictoriaMetrics] {
        let workload = Workload::start().await;
        let scrape = format!(
            "- job_name: app\n  static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            workload.port
        );
        let Some(tsdb) = Tsdb::new(kind, &scrape) else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, RULES).unwrap_or_else(|e| panic!("{e}"));
        if kind == Kind::Prometheus {
            tsdb.evaluate_rules(&rules);
        }
        let _database = tsdb.start().await;
        let (_vmalert, peer) = match kind {
            Kind::Prometheus => (None, tsdb.base.clone()),
            Kind::VictoriaMetrics => match start_vmalert(&tsdb, &rules).await {
                Some((process, base)) => (Some(process), base),
                None => continue,
            },
        };
        let listen = free_port();
        let config = dir.path().join("vigil.yaml");
        std::fs::write(
            &config,
            format!(
                "global: {{evaluation_interval: 2s, external_labels: {{evaluator: vigil}}}}\n\
                 datasource: {{url: '{}', query_timeout: 2s}}\n\
                 rule_files: [rules.yaml]\n\
                 remote_write: [{{url: '{}', queue_config: {{batch_send_deadline: 1s}}}}]\n\
                 web: {{listen: '127.0.0.1:{listen}'}}\n",
                tsdb.base,
                tsdb.write_url()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let _evaluator = start_evaluator(&config, dir.path(), "evaluator.log", None);
        let vigil = format!("http://127.0.0.1:{listen}");

        // Both engines see the steady workload: the error rate is high
        // (and the rate's window is full: the peer's recording reads 3/s),
        // both queues are shallow.
        let steady = poll(
            Duration::from_secs(60),
            Duration::from_millis(250),
            || async {
                let (ours, theirs) = (alerts(&vigil).await, alerts(&peer).await);
                (firing(&ours, "ErrorsHigh").len() == 1
                    && firing(&theirs, "ErrorsHigh").len() == 1
                    && firing(&ours, "QueueShallow").len() == 2
                    && firing(&theirs, "QueueShallow").len() == 2
                    && series(&tsdb.base, r#"job:requests:rate10s{code="500"}"#)
                        .await
                        .iter()
                        .any(|(_, v)| close(*v, 3.0, 0.05)))
                .then_some(())
            },
        )
        .await;
        assert!(
            steady.is_some(),
            "{kind:?}: not both engines fire the steady alerts\nVigil: {:?}\npeer: {:?}\nlog:\n{}",
            alerts(&vigil).await,
            alerts(&peer).await,
            log_of(dir.path())
        );

        // Queue b fills: QueueDeep goes pending, then fires for 4s later,
        // and b's QueueShallow ends.
        workload.deep.store(true, Ordering::SeqCst);
        let both_fire = poll(
            Duration::from_secs(60),
            Duration::from_millis(250),
            || async {
                let (ours, theirs) = (alerts(&vigil).await, alerts(&peer).await);
                (firing(&ours, "QueueDeep").len() == 1
                    && firing(&theirs, "QueueDeep").len() == 1
                    && firing(&ours, "QueueShallow").len() == 1
                    && firing(&theirs, "QueueShallow").len() == 1)
                    .then_some((ours, theirs))
            },
        )
        .await;
        let Some((ours, theirs)) = both_fire else {
            panic!(
                "{kind:?}: QueueDeep did not fire in both\nVigil: {:?}\npeer: {:?}\nlog:\n{}",
                alerts(&vigil).await,
                alerts(&peer).await,
                log_of(dir.path())
            );
        };
        for name in ["QueueDeep", "ErrorsHigh", "QueueShallow"] {
            let (a, b) = (firing(&ours, name), firing(&theirs, name));
            let labels = |v: &[&Shown]| v.iter().map(|s| s.labels.clone()).collect::<Vec<_>>();
            assert_eq!(labels(&a), labels(&b), "{kind:?} {name}: labels");
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    close(x.value, y.value, 0.1),
                    "{kind:?} {name}: value {} vs {}",
                    x.value,
                    y.value
                );
                assert_eq!(x.summary, y.summary, "{kind:?} {name}: summary");
            }
        }
        let (ours_deep, theirs_deep) = (
            firing(&ours, "QueueDeep")[0],
            firing(&theirs, "QueueDeep")[0],
        );
        assert_eq!(ours_deep.value, 50.0);
        assert_eq!(ours_deep.summary, "queue b holds 50");
        let skew = (ours_deep.active_at - theirs_deep.active_at).abs();
        eprintln!("{kind:?}: QueueDeep active-since differs by {skew:.3} s");
        assert!(
            skew <= INTERVAL_S + 1.0,
            "{kind:?}: QueueDeep active since {} (Vigil) vs {} (peer)",
            ours_deep.active_at,
            theirs_deep.active_at
        );

        // The recording rules' samples, written back by both.
        let written_back = poll(
            Duration::from_secs(30),
            Duration::from_millis(250),
            || async {
                let depth = series(&tsdb.base, r#"queue:depth:max{queue="b"}"#).await;
                let rate = series(&tsdb.base, r#"job:requests:rate10s{code="500"}"#).await;
                (depth.len() == 2 && rate.len() == 2).then_some((depth, rate))
            },
        )
        .await;
        let Some((depth, rate)) = written_back else {
            panic!(
                "{kind:?}: the recording rules' samples are not both in the database: {:?} {:?}",
                series(&tsdb.base, "queue:depth:max").await,
                series(&tsdb.base, "job:requests:rate10s").await
            );
        };
        for found in [&depth, &rate] {
            let vigil_written: Vec<_> = found
                .iter()
                .filter(|(l, _)| l.get("evaluator").is_some_and(|v| v == "vigil"))
                .collect();
            assert_eq!(vigil_written.len(), 1, "{kind:?}: {found:?}");
            let strip = |labels: &BTreeMap<String, String>| {
                let mut labels = labels.clone();
                labels.remove("evaluator");
                labels
            };
            assert_eq!(strip(&found[0].0), strip(&found[1].0), "{kind:?}: labels");
            assert!(close(found[0].1, found[1].1, 0.1), "{kind:?}: {found:?}");
        }
        assert_eq!(depth[0].1, 50.0);
    }
}
