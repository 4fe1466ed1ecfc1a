//! Running `vigil-evaluator run` as a real process in a test: a scrape
//! target whose values the test sets, a webhook receiver that records every
//! notification it accepts (and can be told to refuse them), config files,
//! and waits that poll against a deadline so a broken build fails instead
//! of hanging.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cargo_bin;
use super::db::TestDb;
use super::wait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use vigil_testkit::ChildGuard;

pub const DEADLINE: Duration = Duration::from_secs(30);

/// A scrape target exposing `vigil_test_value`: unlabelled ([`Target::set`])
/// and one series per `series` label value ([`Target::set_series`]).
pub struct Target {
    values: Arc<Mutex<BTreeMap<String, f64>>>,
    pub port: u16,
}

impl Target {
    pub async fn start() -> Target {
        let values = Arc::new(Mutex::new(BTreeMap::from([(String::new(), 0.0)])));
        let app = Router::new()
            .route(
                "/metrics",
                get(
                    |State(v): State<Arc<Mutex<BTreeMap<String, f64>>>>| async move {
                        let mut text = String::from("# TYPE vigil_test_value gauge\n");
                        for (series, value) in v.lock().unwrap().iter() {
                            if series.is_empty() {
                                text.push_str(&format!("vigil_test_value {value}\n"));
                            } else {
                                text.push_str(&format!(
                                    "vigil_test_value{{series=\"{series}\"}} {value}\n"
                                ));
                            }
                        }
                        text
                    },
                ),
            )
            .with_state(Arc::clone(&values));
        let port = serve(app).await;
        Target { values, port }
    }

    /// Sets the unlabelled series.
    pub fn set(&self, v: f64) {
        self.set_series("", v);
    }

    /// Sets the series `vigil_test_value{series="<series>"}`.
    pub fn set_series(&self, series: &str, v: f64) {
        self.values.lock().unwrap().insert(series.to_string(), v);
    }
}

/// A webhook receiver recording every payload it accepts; while
/// [`Webhook::refuse`] is on it answers 500 and records nothing.
pub struct Webhook {
    state: Arc<HookState>,
    pub port: u16,
}

#[derive(Default)]
struct HookState {
    received: Mutex<Vec<Value>>,
    /// Per accepted payload: whether it carried `X-Vigil-Redelivery: true`.
    redelivered: Mutex<Vec<bool>>,
    refusing: AtomicBool,
    refused: AtomicUsize,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let state = Arc::new(HookState::default());
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State(s): State<Arc<HookState>>,
                     headers: axum::http::HeaderMap,
                     Json(body): Json<Value>| async move {
                        if s.refusing.load(Ordering::SeqCst) {
                            s.refused.fetch_add(1, Ordering::SeqCst);
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        let redelivered = headers
                            .get("x-vigil-redelivery")
                            .is_some_and(|v| v.as_bytes() == b"true");
                        s.redelivered.lock().unwrap().push(redelivered);
                        s.received.lock().unwrap().push(body);
                        StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&state));
        let port = serve(app).await;
        Webhook { state, port }
    }

    /// Makes the receiver answer 500 (`true`) or accept again (`false`).
    pub fn refuse(&self, refusing: bool) {
        self.state.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Requests answered 500 so far.
    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Notifications with this `status` accepted so far.
    pub fn count(&self, status: &str) -> usize {
        self.payloads()
            .iter()
            .filter(|p| p["status"] == status)
            .count()
    }

    pub fn payloads(&self) -> Vec<Value> {
        self.state.received.lock().unwrap().clone()
    }

    /// Per accepted payload, in order: whether it was marked as a re-send
    /// (`X-Vigil-Redelivery: true`).
    pub fn redelivered(&self) -> Vec<bool> {
        self.state.redelivered.lock().unwrap().clone()
    }

    /// Every alert of every accepted notification, in arrival order:
    /// (`series` label, `startsAt`, status).
    pub fn alerts(&self) -> Vec<(String, String, String)> {
        self.payloads()
            .iter()
            .flat_map(|p| p["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| {
                (
                    a["labels"]["series"].as_str().unwrap_or("").to_string(),
                    a["startsAt"].as_str().unwrap_or("").to_string(),
                    a["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// How many times the receiver was told `series` is `status`.
    pub fn told(&self, series: &str, status: &str) -> usize {
        self.alerts()
            .iter()
            .filter(|(s, _, st)| s == series && st == status)
            .count()
    }
}

/// What a fault test checks at the receiving end: each alert episode was
/// told firing exactly once and resolved exactly once, firing first.
/// Prints the counts and returns (firing, resolved, duplicates).
pub fn exactly_once(hook: &Webhook, episodes: &[&str], test: &str) -> (usize, usize, usize) {
    let alerts = hook.alerts();
    // By alert and status: each series has one episode in these tests, and
    // after a fail-over the new leader's `startsAt` (its own evaluation
    // time) may differ from the old one's by a few milliseconds.
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (series, _, status) in &alerts {
        *seen.entry((series.clone(), status.clone())).or_default() += 1;
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let firing = episodes
        .iter()
        .filter(|s| hook.told(s, "firing") >= 1)
        .count();
    let resolved = episodes
        .iter()
        .filter(|s| hook.told(s, "resolved") >= 1)
        .count();
    println!(
        "{test}: firing {firing}/{n}, resolved {resolved}/{n}, duplicates {duplicates}, \
         notifications {}, refused attempts {}",
        hook.payloads().len(),
        hook.refused(),
        n = episodes.len()
    );
    for series in episodes {
        let order: Vec<&str> = alerts
            .iter()
            .filter(|(s, _, _)| s == series)
            .map(|(_, _, st)| st.as_str())
            .collect();
        assert_eq!(
            order,
            ["firing", "resolved"],
            "{test}: alert {series} was told, in this order: {order:?}; all: {alerts:#?}"
        );
    }
    assert_eq!(duplicates, 0, "{test}: {alerts:#?}");
    (firing, resolved, duplicates)
}

pub async fn serve(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// `rules.yaml` with one alerting rule `ValueHigh: vigil_test_value > 0`.
pub fn value_high_rules(hold: &str, extra: &str) -> String {
    format!(
        "groups:\n- name: test\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n    for: {hold}\n    labels: {{severity: page}}\n{extra}"
    )
}

/// `notify.yaml` sending everything to the webhook on `port`, one group per
/// `series` (short timers: group_wait 0s, group_interval 1s).
pub fn webhook_notify(port: u16, send_resolved: bool) -> String {
    format!(
        "route: {{receiver: hook, group_by: [alertname, series], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{port}/hook', send_resolved: {send_resolved}}}]\n"
    )
}

/// Writes `vigil.yaml` (1 s scrape and evaluation intervals), `rules.yaml`
/// and `notify.yaml` into `dir`; returns the path of `vigil.yaml`.
pub fn write_config(dir: &Path, target: u16, listen: u16, rules: &str, notify: &str) -> PathBuf {
    std::fs::write(dir.join("rules.yaml"), rules).unwrap();
    std::fs::write(dir.join("notify.yaml"), notify).unwrap();
    let config = dir.join("vigil.yaml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: app\n  static_configs: [{{targets: ['127.0.0.1:{target}']}}]\nrule_files: [rules.yaml]\nnotify_config_file: notify.yaml\nweb: {{listen: '127.0.0.1:{listen}'}}\n"
        ),
    )
    .unwrap();
    config
}

/// Starts `vigil-evaluator run` in `dir`, appending its log to `log`
/// (a file in `dir`). With `database_url` the history goes there; without,
/// to the default SQLite file in `dir`.
pub fn start_evaluator(
    config: &Path,
    dir: &Path,
    log: &str,
    database_url: Option<&str>,
) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(log))
        .unwrap();
    let mut command = evaluator_command(config, dir, log);
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    ChildGuard::spawn(&mut command)
}

/// `vigil-evaluator run --config <config>` in `dir`, logging at `info` to
/// `log`, with neither the API token nor the database URL of the test's own
/// environment.
pub fn evaluator_command(config: &Path, dir: &Path, log: std::fs::File) -> Command {
    let mut command = Command::new(cargo_bin("vigil-evaluator"));
    command
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env_remove("VIGIL_API_TOKEN")
        .env_remove("DATABASE_URL")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(log);
    command
}

pub fn log_of(dir: &Path) -> String {
    read_log(dir, "evaluator.log")
}

pub fn read_log(dir: &Path, log: &str) -> String {
    std::fs::read_to_string(dir.join(log)).unwrap_or_default()
}

/// Polls `done` every 100 ms until it holds; fails after `deadline` showing
/// the evaluator log in `dir`.
pub async fn wait_until(what: &str, dir: &Path, mut done: impl FnMut() -> bool) {
    wait_until_for(what, dir, DEADLINE, &mut done).await;
}

pub async fn wait_until_for(
    what: &str,
    dir: &Path,
    deadline: Duration,
    done: &mut dyn FnMut() -> bool,
) {
    assert!(
        wait::until_sync(deadline, Duration::from_millis(100), done).await,
        "timed out waiting for {what}; evaluator log:\n{}",
        log_of(dir)
    );
}

/// Polls `sql` (a count) until it reaches at least `want`.
pub async fn wait_for_rows(what: &str, dir: &Path, db: &TestDb, sql: &str, want: i64) {
    let last = std::cell::Cell::new(-1);
    let reached = wait::until(DEADLINE, Duration::from_millis(200), || {
        let last = &last;
        async move {
            last.set(db.count(sql).await);
            last.get() >= want
        }
    })
    .await;
    assert!(
        reached,
        "timed out waiting for {what} ({sql} = {}, want {want}); evaluator log:\n{}",
        last.get(),
        log_of(dir)
    );
}

pub fn wait_for_exit(child: &mut ChildGuard) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Sends signal `name` (`TERM`, `HUP`, `KILL`) to the child.
pub fn signal(child: &ChildGuard, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} failed");
}

/// SIGKILLs the child and reaps it.
pub fn kill9(child: &mut ChildGuard) {
    child.0.kill().unwrap();
    let _ = child.0.wait();
}

/// The value of an unlabelled metric on the evaluator's `/metrics`.
pub async fn metric(listen: u16, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{listen}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
}

/// `series` label → state of the alerts on `/api/v1/alerts`.
pub async fn api_alerts(listen: u16) -> BTreeMap<String, String> {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{listen}/api/v1/alerts")).await
    else {
        return BTreeMap::new();
    };
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                a["labels"]["series"].as_str().unwrap_or("").to_string(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Writes `rules` as `rules.yaml` and `vigil` as `vigil.yaml` into `dir`;
/// returns the path of `vigil.yaml`.
pub fn write_vigil_files(dir: &Path, rules: &str, vigil: &str) -> PathBuf {
    std::fs::write(dir.join("rules.yaml"), rules).unwrap();
    let config = dir.join("vigil.yaml");
    std::fs::write(&config, vigil).unwrap();
    config
}
