//! The evaluator as an Alertmanager, checked with the real tools:
//! `amtool` (Debian's prometheus-alertmanager) adds, lists and expires
//! silences and lists alerts, agreeing with our `/api/v2`; and a real
//! Prometheus 2.42 whose `alerting.alertmanagers` points at the evaluator
//! fires a rule whose alert shows in `/api/v2/alerts` and in the history and
//! reaches a webhook receiver once as firing and once as resolved.
//!
//! Every wait polls against a deadline, so a broken build fails instead of
//! hanging.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::db as pg;
use crate::support::wait;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::process::evaluator_command;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use vigil_evaluator::history::store::{episode_id, HistoryQuery, HistoryState};
use vigil_evaluator::history::HistoryStore;
use vigil_testkit::{external_tool, free_port, wait_for_http, ChildGuard};

const DEADLINE: Duration = Duration::from_secs(40);

/// A scrape target exposing `vigil_test_value` with a settable value.
struct Target {
    value: Arc<AtomicU64>,
    port: u16,
}

impl Target {
    async fn start(initial: f64) -> Target {
        let value = Arc::new(AtomicU64::new(initial.to_bits()));
        let app = Router::new()
            .route(
                "/metrics",
                get(|State(v): State<Arc<AtomicU64>>| async move {
                    format!(
                        "# TYPE vigil_test_value gauge\nvigil_test_value {}\n",
                        f64::from_bits(v.load(Ordering::SeqCst))
                    )
                }),
            )
            .with_state(Arc::clone(&value));
        Target {
            value,
            port: serve(app).await,
        }
    }

    fn set(&self, v: f64) {
        self.value.store(v.to_bits(), Ordering::SeqCst);
    }
}

/// A webhook receiver recording every payload.
struct Webhook {
    received: Arc<Mutex<Vec<Value>>>,
    port: u16,
}

impl Webhook {
    async fn start() -> Webhook {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State(r): State<Arc<Mutex<Vec<Value>>>>, Json(body): Json<Value>| async move {
                        r.lock().unwrap().push(body);
                    },
                ),
            )
            .with_state(Arc::clone(&received));
        Webhook {
            received,
            port: serve(app).await,
        }
    }

    fn count(&self, status: &str) -> usize {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == status)
            .count()
    }

    fn payloads(&self) -> Vec<Value> {
        self.received.lock().unwrap().clone()
    }
}

async fn serve(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// An evaluator without rules or targets: an Alertmanager in front of a
/// webhook, with its history in `dir/vigil.db`.
fn write_evaluator_config(dir: &Path, listen: u16, webhook: u16) -> PathBuf {
    std::fs::write(
        dir.join("notify.yaml"),
        format!(
            "route: {{receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{webhook}/hook'}}]\n"
        ),
    )
    .unwrap();
    let config = dir.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "global: {{evaluation_interval: 1s}}\nnotify_config_file: notify.yaml\nweb: {{listen: '127.0.0.1:{listen}'}}\n"
        ),
    )
    .unwrap();
    config
}

fn start_evaluator(config: &Path, dir: &Path) -> ChildGuard {
    start_evaluator_on(config, dir, None, "evaluator.log")
}

/// Starts `vigil-evaluator run` on `database` (default: `dir/vigil.db`),
/// logging to `dir/log`.
fn start_evaluator_on(config: &Path, dir: &Path, database: Option<&str>, log: &str) -> ChildGuard {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    let mut command = evaluator_command(config, dir, log);
    if let Some(url) = database {
        command.env("DATABASE_URL", url);
    }
    ChildGuard::spawn(&mut command)
}

fn logs(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!(
        "evaluator log:\n{}\nprometheus log:\n{}",
        read("evaluator.log"),
        read("prometheus.log")
    )
}

async fn wait_until(what: &str, dir: &Path, done: impl FnMut() -> bool) {
    assert!(
        wait::until_sync(DEADLINE, Duration::from_millis(100), done).await,
        "timed out waiting for {what}; {}",
        logs(dir)
    );
}

async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// Runs amtool against the evaluator; returns stdout, failing on a
/// non-zero exit.
fn amtool(amtool: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new(amtool)
        .arg(format!("--alertmanager.url=http://127.0.0.1:{port}"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "amtool {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fingerprints(alerts: &Value) -> BTreeSet<String> {
    alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["fingerprint"].as_str().unwrap().to_string())
        .collect()
}

fn silence_ids(silences: &Value) -> BTreeSet<String> {
    silences
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_manages_silences_and_lists_alerts_like_our_api() {
    let Some(amtool_bin) = external_tool("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let config = write_evaluator_config(dir.path(), listen, free_port());
    let _evaluator = start_evaluator(&config, dir.path());
    let base = format!("http://127.0.0.1:{listen}");
    wait_for_http(&format!("{base}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; {}", logs(dir.path())));

    let posted = reqwest::Client::new()
        .post(format!("{base}/api/v2/alerts"))
        .json(&json!([
            {"labels": {"alertname": "DiskFull", "team": "db"}, "annotations": {"summary": "disk full"}},
            {"labels": {"alertname": "Slow", "team": "web"}},
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);

    let ours = get_json(&format!("{base}/api/v2/alerts")).await;
    let theirs: Value = serde_json::from_str(&amtool(
        &amtool_bin,
        listen,
        &["-o", "json", "alert", "query"],
    ))
    .unwrap();
    assert_eq!(fingerprints(&theirs), fingerprints(&ours));
    assert_eq!(fingerprints(&ours).len(), 2);

    let id = amtool(
        &amtool_bin,
        listen,
        &[
            "silence",
            "add",
            "alertname=DiskFull",
            "--comment=disk swap",
            "--author=ops",
            "--duration=1h",
        ],
    )
    .trim()
    .to_string();
    let silence = get_json(&format!("{base}/api/v2/silence/{id}")).await;
    assert_eq!(silence["status"]["state"], "active", "{silence}");
    assert_eq!(
        (
            &silence["createdBy"],
            &silence["comment"],
            &silence["matchers"]
        ),
        (
            &json!("ops"),
            &json!("disk swap"),
            &json!([{"name": "alertname", "value": "DiskFull", "isRegex": false, "isEqual": true}])
        )
    );
    let listed = amtool(&amtool_bin, listen, &["silence", "query", "-q"]);
    assert_eq!(listed.split_whitespace().collect::<Vec<_>>(), [id.as_str()]);
    let theirs: Value = serde_json::from_str(&amtool(
        &amtool_bin,
        listen,
        &["-o", "json", "silence", "query"],
    ))
    .unwrap();
    assert_eq!(
        silence_ids(&theirs),
        silence_ids(&get_json(&format!("{base}/api/v2/silences")).await)
    );

    // The silenced alert leaves the default (active only) view of both.
    let active: Value = serde_json::from_str(&amtool(
        &amtool_bin,
        listen,
        &["-o", "json", "alert", "query", "--active"],
    ))
    .unwrap();
    let ours = get_json(&format!(
        "{base}/api/v2/alerts?silenced=false&inhibited=false"
    ))
    .await;
    assert_eq!(fingerprints(&active), fingerprints(&ours));
    assert_eq!(fingerprints(&ours).len(), 1);
    let silenced: Value = serde_json::from_str(&amtool(
        &amtool_bin,
        listen,
        &[
            "-o",
            "json",
            "alert",
            "query",
            "--silenced",
            "alertname=DiskFull",
        ],
    ))
    .unwrap();
    assert_eq!(silenced[0]["status"]["silencedBy"], json!([id]));

    amtool(&amtool_bin, listen, &["silence", "expire", &id]);
    let silence = get_json(&format!("{base}/api/v2/silence/{id}")).await;
    assert_eq!(silence["status"]["state"], "expired", "{silence}");
    assert_eq!(
        amtool(&amtool_bin, listen, &["silence", "query", "-q"]).trim(),
        "",
        "expired silences are not listed by default"
    );
    let expired = amtool(
        &amtool_bin,
        listen,
        &["silence", "query", "-q", "--expired"],
    );
    assert_eq!(expired.trim(), id);
}

/// Two evaluators on one database: a silence created on the first applies
/// on the second after its periodic merge, and is still there when the
/// first comes back from a SIGKILL.
async fn silences_are_shared_and_survive_a_restart(database: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let sub = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        d
    };
    let (dir_a, dir_b) = (sub("a"), sub("b"));
    let config_a = write_evaluator_config(&dir_a, port_a, free_port());
    let config_b = write_evaluator_config(&dir_b, port_b, free_port());
    // Without Postgres, both share one SQLite file.
    let sqlite = format!("sqlite://{}", dir.path().join("shared.db").display());
    let url = database.unwrap_or(&sqlite);
    let mut a = start_evaluator_on(&config_a, &dir_a, Some(url), "evaluator.log");
    let _b = start_evaluator_on(&config_b, &dir_b, Some(url), "evaluator.log");
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    for (base, d) in [(&base_a, &dir_a), (&base_b, &dir_b)] {
        wait_for_http(&format!("{base}/-/ready"), DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("{e}; {}", logs(d)));
    }
    let now = chrono::Utc::now();
    let created: Value = reqwest::Client::new()
        .post(format!("{base_a}/api/v2/silences"))
        .json(&json!({
            "matchers": [{"name": "job", "value": "db", "isRegex": false}],
            "startsAt": now.to_rfc3339(),
            "endsAt": (now + chrono::Duration::hours(1)).to_rfc3339(),
            "createdBy": "ops",
            "comment": "failover drill",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["silenceID"].as_str().unwrap().to_string();
    let status_on = |base: String| {
        let url = format!("{base}/api/v2/silence/{id}");
        async move { reqwest::get(url).await.unwrap().status() }
    };
    let deadline = Instant::now() + DEADLINE;
    while status_on(base_b.clone()).await != 200 {
        assert!(
            Instant::now() < deadline,
            "the silence never reached the other replica; {}",
            logs(&dir_b)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let silenced = get_json(&format!("{base_b}/api/v2/silences?filter=job%3Ddb")).await;
    assert_eq!(silenced[0]["comment"], "failover drill");

    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let _a = start_evaluator_on(&config_a, &dir_a, Some(url), "evaluator-restarted.log");
    wait_for_http(&format!("{base_a}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; {}", logs(&dir_a)));
    assert_eq!(status_on(base_a.clone()).await, 200, "loaded at start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_shared_between_evaluators_and_survive_a_restart_on_sqlite() {
    silences_are_shared_and_survive_a_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_are_shared_between_evaluators_and_survive_a_restart_on_postgres() {
    let Some(db) = pg::TestDb::postgres().await else {
        return;
    };
    silences_are_shared_and_survive_a_restart(Some(&db.url)).await;
}

/// Prometheus' config: scrape the target every second, evaluate the rule
/// every second, send alerts to the evaluator.
fn write_prometheus_config(dir: &Path, target: u16, evaluator: u16) -> PathBuf {
    std::fs::write(
        dir.join("prom-rules.yaml"),
        "groups:\n- name: compat\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n    for: 0s\n    labels: {severity: page}\n    annotations: {summary: 'value is {{ $value }}'}\n",
    )
    .unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [prom-rules.yaml]\nalerting:\n  alertmanagers:\n  - api_version: v2\n    static_configs: [{{targets: ['127.0.0.1:{evaluator}']}}]\nscrape_configs:\n- job_name: app\n  static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_alerts_flow_through_vigil_to_the_receiver_and_the_history() {
    let Some(prometheus) = external_tool("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start(1.0).await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = write_evaluator_config(dir.path(), listen, webhook.port);
    let _evaluator = start_evaluator(&config, dir.path());
    let base = format!("http://127.0.0.1:{listen}");
    wait_for_http(&format!("{base}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; {}", logs(dir.path())));

    let prom_config = write_prometheus_config(dir.path(), target.port, listen);
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = ChildGuard::spawn(
        Command::new(prometheus)
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
            .arg("--rules.alert.resend-delay=1s")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log),
    );

    wait_until("the firing notification", dir.path(), || {
        webhook.count("firing") >= 1
    })
    .await;
    let alerts = get_json(&format!(
        "{base}/api/v2/alerts?filter=alertname%3DValueHigh"
    ))
    .await;
    let alert = &alerts[0];
    assert_eq!(
        (
            &alert["labels"]["job"],
            &alert["labels"]["severity"],
            &alert["status"]["state"]
        ),
        (&json!("app"), &json!("page"), &json!("active")),
        "{alerts}"
    );
    assert_eq!(alert["receivers"], json!([{"name": "hook"}]));
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .contains("vigil_test_value"),
        "{alert}"
    );
    let fingerprint = alert["fingerprint"].as_str().unwrap().to_string();
    let starts_at = chrono::DateTime::parse_from_rfc3339(alert["startsAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);

    let history = HistoryStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("vigil.db").display()
    ))
    .await
    .unwrap();
    let query = HistoryQuery {
        rule: Some("ValueHigh".into()),
        ..HistoryQuery::default()
    };
    let deadline = Instant::now() + DEADLINE;
    let episode = loop {
        if let Some(e) = history.query(&query).await.unwrap().items.pop() {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "no episode; {}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (
            episode.group_name.as_str(),
            episode.state,
            &episode.fingerprint
        ),
        ("api/Prometheus", HistoryState::Firing, &fingerprint)
    );

    target.set(0.0);
    wait_until("the resolved notification", dir.path(), || {
        webhook.count("resolved") >= 1
    })
    .await;
    // Prometheus keeps re-sending the resolved alert every second: nothing
    // more may arrive.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        (webhook.count("firing"), webhook.count("resolved")),
        (1, 1),
        "{:#?}",
        webhook.payloads()
    );
    assert!(get_json(&format!("{base}/api/v2/alerts"))
        .await
        .as_array()
        .unwrap()
        .is_empty());

    let id = episode_id(
        vigil_evaluator::notify::alert::Fingerprint(u64::from_str_radix(&fingerprint, 16).unwrap()),
        starts_at,
    );
    let deadline = Instant::now() + DEADLINE;
    loop {
        let e = history.episode(&id).await.unwrap().unwrap();
        if e.state == HistoryState::Resolved {
            break;
        }
        assert!(Instant::now() < deadline, "episode not resolved: {e:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let steps: Vec<(HistoryState, HistoryState)> = history
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
