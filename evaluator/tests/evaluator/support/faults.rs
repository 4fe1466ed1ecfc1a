//! Fault injection against the real `vigil-evaluator` process: a lab with a
//! scrape target, a recording webhook receiver that keeps every attempt
//! (headers, body, whether it was answered) and can be told to answer
//! slowly, the history database, and any number of evaluator replicas on
//! it; seeded random kill points along an alert's lifecycle; and the checks
//! every trial must pass (each firing and resolved notification delivered
//! at least once, every duplicate keyed alike and marked as a re-send, every
//! delivery in the history's delivery log, no episode left open).
//!
//! Built for reuse: the single-replica test (`server/fault_injection.rs`)
//! kills and restarts one replica; an HA test starts two [`Replica`]s on
//! the same [`Lab`] and kills or freezes the leader.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use vigil_testkit::{free_port, ChildGuard};

use super::db::TestDb;
use super::process::{evaluator_command, serve, Target};
use super::wait;

/// The seed of a fault run: `VIGIL_FAULT_SEED` when set, else the clock.
/// Printed, so a failing run can be repeated exactly (as far as process
/// timing allows).
pub fn seed(test: &str) -> u64 {
    seed_from("VIGIL_FAULT_SEED", test)
}

/// How many trials: `VIGIL_FAULT_TRIALS` when set, else `default`.
pub fn trials(default: usize) -> usize {
    trials_from("VIGIL_FAULT_TRIALS", default)
}

/// The seed in environment variable `var` when set, else the clock;
/// printed with the variable that repeats the run.
pub fn seed_from(var: &str, test: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("{test}: seed {seed} (repeat with {var}={seed})");
    seed
}

/// The number of trials in environment variable `var` when set, else
/// `default`.
pub fn trials_from(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Header `name` of a request, when present and text.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The `series` label and status of each alert of a webhook payload.
pub fn series_and_status(body: &Value) -> Vec<(String, String)> {
    body["alerts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                a["labels"]["series"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Since the receiver started.
    pub at: Duration,
    pub status: String,
    /// `series` label of each alert, with its status.
    pub alerts: Vec<(String, String)>,
    /// The `Idempotency-Key` header.
    pub header_key: Option<String>,
    /// The body's `idempotencyKey`.
    pub body_key: Option<String>,
    /// `X-Vigil-Redelivery: true`.
    pub redelivery: bool,
    /// Answered 200 (false: the sender went away while the receiver was
    /// still holding the request).
    pub answered: bool,
}

#[derive(Default)]
struct HookState {
    attempts: Mutex<Vec<Attempt>>,
    delay_ms: AtomicU64,
}

/// A webhook receiver recording every request on arrival, answering 200
/// after the current delay ([`Hook::delay`]).
pub struct Hook {
    state: Arc<HookState>,
    started: Instant,
    pub port: u16,
}

impl Hook {
    pub async fn start() -> Hook {
        let state = Arc::new(HookState::default());
        let started = Instant::now();
        let app = Router::new()
            .route(
                "/hook",
                post(
                    move |State(s): State<Arc<HookState>>,
                          headers: HeaderMap,
                          Json(body): Json<Value>| async move {
                        let header = |name: &str| header(&headers, name);
                        let alerts = series_and_status(&body);
                        let index = {
                            let mut attempts = s.attempts.lock().unwrap();
                            attempts.push(Attempt {
                                at: started.elapsed(),
                                status: body["status"].as_str().unwrap_or("").to_string(),
                                alerts,
                                header_key: header("idempotency-key"),
                                body_key: body["idempotencyKey"].as_str().map(str::to_string),
                                redelivery: header("x-vigil-redelivery").as_deref() == Some("true"),
                                answered: false,
                            });
                            attempts.len() - 1
                        };
                        let delay = s.delay_ms.load(Ordering::SeqCst);
                        if delay > 0 {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        s.attempts.lock().unwrap()[index].answered = true;
                        StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&state));
        let port = serve(app).await;
        Hook {
            state,
            started,
            port,
        }
    }

    /// Answer every request from now on after `delay`.
    pub fn delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.attempts.lock().unwrap().clone()
    }

    /// Attempts carrying `series` as `status`.
    pub fn about(&self, series: &str, status: &str) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.alerts.iter().any(|(s, st)| s == series && st == status))
            .collect()
    }

    /// Whether a request carrying `series` as `status` has arrived
    /// (`answered`: and was answered).
    pub fn got(&self, series: &str, status: &str, answered: bool) -> bool {
        self.about(series, status)
            .iter()
            .any(|a| a.answered || !answered)
    }
}

/// Short timers, so a trial takes seconds: scrape and evaluate every
/// `interval`, `for` of `hold`, `group_wait` 400 ms (longer than the
/// history writer's 250 ms flush, so the firing state is saved before the
/// notification reaches the outbox, the window where a kill used to lose
/// it), `group_interval` 500 ms.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub interval: Duration,
    pub hold: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            interval: Duration::from_millis(250),
            hold: Duration::from_secs(1),
        }
    }
}

/// What the replicas share: the target (one series per trial, label
/// `series`), the receiver, the history database, the config directory.
pub struct Lab {
    pub dir: PathBuf,
    pub target: Target,
    pub hook: Hook,
    pub database_url: String,
    pub timing: Timing,
}

impl Lab {
    /// Writes `rules.yaml` (`ValueHigh: vigil_test_value > 0`, `for` =
    /// `timing.hold`) and `notify.yaml` (one group per series, to the hook,
    /// resolved notifications on) into `dir`.
    pub async fn new(dir: &Path, db: &TestDb, timing: Timing) -> Lab {
        let target = Target::start().await;
        let hook = Hook::start().await;
        std::fs::write(
            dir.join("rules.yaml"),
            format!(
                "groups:\n- name: faults\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n    for: {}ms\n    labels: {{severity: page}}\n",
                timing.hold.as_millis()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("notify.yaml"),
            format!(
                "route: {{receiver: hook, group_by: [alertname, series], group_wait: 400ms, group_interval: 500ms, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{}/hook', send_resolved: true, timeout: 30s}}]\n",
                hook.port
            ),
        )
        .unwrap();
        // The series of the trials start at 0 (not firing).
        target.set(0.0);
        Lab {
            dir: dir.to_path_buf(),
            target,
            hook,
            database_url: db.url.clone(),
            timing,
        }
    }

    /// Starts a replica named `name` (its config `<name>.yaml`, its log
    /// `<name>.log`, appended across restarts) on a fresh port.
    pub fn start(&self, name: &str) -> Replica {
        let listen = free_port();
        let interval = self.timing.interval.as_millis();
        let config = self.dir.join(format!("{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: {interval}ms, scrape_timeout: {}ms, evaluation_interval: {interval}ms}}\nscrape_configs:\n- job_name: app\n  static_configs: [{{targets: ['127.0.0.1:{}']}}]\nrule_files: [rules.yaml]\nnotify_config_file: notify.yaml\nweb: {{listen: '127.0.0.1:{listen}'}}\n",
                interval * 3 / 4,
                self.target.port
            ),
        )
        .unwrap();
        let log = format!("{name}.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(&log))
            .unwrap();
        let child = ChildGuard::spawn(
            evaluator_command(&config, &self.dir, file).env("DATABASE_URL", &self.database_url),
        );
        Replica {
            child: Some(child),
            listen,
            log: self.dir.join(log),
        }
    }

    /// Every replica log in the lab directory, for a failure message (the
    /// last `limit` bytes of each).
    pub fn logs(&self, limit: usize) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let cut = text.len().saturating_sub(limit);
                let cut = (cut..=text.len())
                    .find(|i| text.is_char_boundary(*i))
                    .unwrap_or(0);
                out.push_str(&format!("--- {} ---\n{}\n", path.display(), &text[cut..]));
            }
        }
        out
    }

    /// Polls `done` every 20 ms until it holds; `Err` with `what` after
    /// `deadline`.
    pub async fn wait(
        &self,
        what: &str,
        deadline: Duration,
        done: impl FnMut() -> bool,
    ) -> Result<(), String> {
        if wait::until_sync(deadline, Duration::from_millis(20), done).await {
            Ok(())
        } else {
            Err(format!("timed out after {deadline:?} waiting for {what}"))
        }
    }
}

/// One running evaluator process.
pub struct Replica {
    child: Option<ChildGuard>,
    pub listen: u16,
    pub log: PathBuf,
}

impl Replica {
    /// SIGKILL, and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.0.kill();
            let _ = child.0.wait();
        }
    }

    /// Sends `SIGSTOP` (`true`) or `SIGCONT` (`false`).
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let status = Command::new("kill")
                .arg(signal)
                .arg(child.0.id().to_string())
                .status()
                .unwrap();
            assert!(status.success(), "kill {signal} failed");
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The state (`pending`, `firing`) of the alert for `series` on this
    /// replica's `/api/v1/alerts`; `None` when absent or unreachable.
    pub async fn alert_state(&self, series: &str) -> Option<String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let body: Value = client
            .get(format!("http://127.0.0.1:{}/api/v1/alerts", self.listen))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["series"] == series)
            .and_then(|a| a["state"].as_str().map(str::to_string))
    }

    /// Polls the alert of `series` until it is in `state`.
    pub async fn wait_state(
        &self,
        series: &str,
        state: &str,
        deadline: Duration,
    ) -> Result<(), String> {
        let reached = wait::until(deadline, Duration::from_millis(20), || async {
            self.alert_state(series).await.as_deref() == Some(state)
        })
        .await;
        if reached {
            Ok(())
        } else {
            Err(format!(
                "timed out after {deadline:?} waiting for alert {series} to be {state}"
            ))
        }
    }
}

/// Where along an alert's lifecycle the evaluator is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KillPoint {
    /// While the alert is pending (`for` not over).
    Pending,
    /// Within the first 450 ms of firing: between evaluation and the
    /// notifier, in `group_wait`, around the outbox enqueue.
    FirstFiring,
    /// While the receiver holds the firing request (it answers slowly).
    MidDelivery,
    /// Within 150 ms after the receiver answered 200 to the firing
    /// notification: before or after `mark_sent` and the log row.
    AfterFiring200,
    /// Within 400 ms after the condition cleared: the resolution between
    /// evaluation, notifier and outbox.
    Resolving,
    /// Within 150 ms after the receiver answered 200 to the resolution.
    AfterResolved200,
}

impl KillPoint {
    pub const ALL: [KillPoint; 6] = [
        KillPoint::Pending,
        KillPoint::FirstFiring,
        KillPoint::MidDelivery,
        KillPoint::AfterFiring200,
        KillPoint::Resolving,
        KillPoint::AfterResolved200,
    ];

    pub fn random(rng: &mut StdRng) -> KillPoint {
        KillPoint::ALL[rng.random_range(0..KillPoint::ALL.len())]
    }
}

/// The outcome of one trial, for the summary.
#[derive(Debug, Clone)]
pub struct Trial {
    pub series: String,
    pub point: KillPoint,
    /// Extra wait after reaching the point, before the kill.
    pub offset: Duration,
    pub duplicates: usize,
}

const STEP: Duration = Duration::from_secs(20);

/// Runs one trial on a single replica: the alert of `series` goes pending,
/// fires and resolves; the replica is killed with SIGKILL at `point` (plus a
/// random offset) and restarted at once (`replica` is the new process
/// afterwards). Returns the trial, or why the lifecycle did not complete.
pub async fn kill_and_restart_trial(
    lab: &Lab,
    replica: &mut Replica,
    name: &str,
    series: &str,
    point: KillPoint,
    rng: &mut StdRng,
) -> Result<Trial, String> {
    let hook = &lab.hook;
    let ms = |range: std::ops::Range<u64>, rng: &mut StdRng| {
        Duration::from_millis(rng.random_range(range))
    };
    lab.target.set_series(series, 1.0);
    let offset;
    let mut cleared = false;
    match point {
        KillPoint::Pending => {
            replica.wait_state(series, "pending", STEP).await?;
            offset = ms(0..lab.timing.hold.as_millis() as u64, rng);
        }
        KillPoint::FirstFiring => {
            replica.wait_state(series, "firing", STEP).await?;
            offset = ms(0..450, rng);
        }
        KillPoint::MidDelivery => {
            hook.delay(Duration::from_secs(3));
            lab.wait("the firing request to arrive", STEP, || {
                hook.got(series, "firing", false)
            })
            .await?;
            offset = ms(0..300, rng);
        }
        KillPoint::AfterFiring200 => {
            lab.wait("the firing request to be answered", STEP, || {
                hook.got(series, "firing", true)
            })
            .await?;
            offset = ms(0..150, rng);
        }
        KillPoint::Resolving => {
            lab.wait("the firing request to be answered", STEP, || {
                hook.got(series, "firing", true)
            })
            .await?;
            lab.target.set_series(series, 0.0);
            cleared = true;
            offset = ms(0..400, rng);
        }
        KillPoint::AfterResolved200 => {
            lab.wait("the firing request to be answered", STEP, || {
                hook.got(series, "firing", true)
            })
            .await?;
            lab.target.set_series(series, 0.0);
            cleared = true;
            lab.wait("the resolved request to be answered", STEP, || {
                hook.got(series, "resolved", true)
            })
            .await?;
            offset = ms(0..150, rng);
        }
    }
    tokio::time::sleep(offset).await;
    replica.kill9();
    hook.delay(Duration::ZERO);
    // Once the receiver has the firing notification, the condition may
    // clear while the evaluator is down: the resolution is still owed.
    let told = matches!(point, KillPoint::MidDelivery | KillPoint::AfterFiring200);
    if told && !cleared && rng.random_bool(0.4) {
        lab.target.set_series(series, 0.0);
        cleared = true;
    }
    *replica = lab.start(name);
    if !cleared {
        lab.wait("the firing notification after the restart", STEP, || {
            hook.got(series, "firing", true)
        })
        .await?;
        lab.target.set_series(series, 0.0);
    }
    lab.wait("the resolved notification after the restart", STEP, || {
        hook.got(series, "resolved", true)
    })
    .await?;
    let duplicates = ["firing", "resolved"]
        .iter()
        .map(|status| hook.about(series, status).len().saturating_sub(1))
        .sum();
    Ok(Trial {
        series: series.to_string(),
        point,
        offset,
        duplicates,
    })
}

/// What the receiver got for `series`, checked: a firing and a resolved
/// notification answered, the first firing before the first resolution,
/// and every copy of one notification carrying the same key in header and
/// body, each copy after the first marked as a re-send. Returns the
/// problems found.
pub fn check_receiver(hook: &Hook, series: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for status in ["firing", "resolved"] {
        let copies = hook.about(series, status);
        if !copies.iter().any(|a| a.answered) {
            problems.push(format!("{series}: no {status} notification answered"));
            continue;
        }
        for copy in &copies {
            if copy.header_key.is_none() || copy.header_key != copy.body_key {
                problems.push(format!(
                    "{series} {status}: Idempotency-Key header {:?} and body idempotencyKey {:?} differ or are missing",
                    copy.header_key, copy.body_key
                ));
            }
        }
        let first = &copies[0];
        for copy in &copies[1..] {
            if copy.header_key != first.header_key {
                problems.push(format!(
                    "{series} {status}: a duplicate has another key ({:?} vs {:?})",
                    copy.header_key, first.header_key
                ));
            }
            if !copy.redelivery {
                problems.push(format!(
                    "{series} {status}: a duplicate (at {:?}, first at {:?}) lacks X-Vigil-Redelivery",
                    copy.at, first.at
                ));
            }
        }
    }
    let first = |status| hook.about(series, status).first().map(|a| a.at);
    if let (Some(firing), Some(resolved)) = (first("firing"), first("resolved")) {
        if resolved < firing {
            problems.push(format!(
                "{series}: resolved ({resolved:?}) before firing ({firing:?})"
            ));
        }
    }
    problems
}

/// Delivered notifications in the history's delivery log: (series, status)
/// → count of outbox rows marked sent.
pub async fn delivered_in_history(db: &TestDb) -> BTreeMap<(String, String), usize> {
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM notifications WHERE status = 'sent'")
            .fetch_all(&db.pool)
            .await
            .unwrap_or_default();
    let mut out = BTreeMap::new();
    for payload in payloads {
        let Ok(stored) = serde_json::from_str::<Value>(&payload) else {
            continue;
        };
        for alert in stored["alerts"].as_array().cloned().unwrap_or_default() {
            let series = alert["labels"]["series"].as_str().unwrap_or("").to_string();
            let status = if alert["firing"] == true {
                "firing"
            } else {
                "resolved"
            };
            *out.entry((series, status.to_string())).or_default() += 1;
        }
    }
    out
}

/// Episodes of `ValueHigh` still open (pending or firing) in the history.
pub async fn open_episodes(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT labels FROM alerts WHERE rule = 'ValueHigh' AND state IN ('pending', 'firing')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap_or_default()
}

/// The checks on the history once the trials are over, polled until they
/// hold or `deadline` passes (the history is written in batches): every
/// (series, status) the receiver answered is in the delivery log, and no
/// episode is open. Returns the problems left at the deadline.
pub async fn check_history(
    db: &TestDb,
    hook: &Hook,
    series: &[String],
    deadline: Duration,
) -> Vec<String> {
    let until = Instant::now() + deadline;
    loop {
        let mut problems = Vec::new();
        let delivered = delivered_in_history(db).await;
        for s in series {
            for status in ["firing", "resolved"] {
                let answered = hook.about(s, status).iter().any(|a| a.answered);
                let logged = delivered
                    .get(&(s.clone(), status.to_string()))
                    .copied()
                    .unwrap_or(0);
                if answered && logged == 0 {
                    problems.push(format!(
                        "{s}: the {status} notification was delivered but is not in the history's delivery log"
                    ));
                }
            }
        }
        let open = open_episodes(db).await;
        if !open.is_empty() {
            problems.push(format!("episodes left open: {open:?}"));
        }
        if problems.is_empty() || Instant::now() >= until {
            return problems;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs `count` single-replica kill-and-restart trials on `db`, each with
/// its own series and a random kill point, then checks the receiver and
/// the history; panics with every problem found (and the logs).
pub async fn single_replica_run(test: &str, dir: &Path, db: &TestDb, count: usize) {
    let seed = seed(test);
    let mut rng = rng(seed);
    let lab = Lab::new(dir, db, Timing::default()).await;
    let started = Instant::now();
    let mut replica = lab.start("evaluator");
    let mut trials = Vec::new();
    let mut problems = Vec::new();
    for i in 0..count {
        let series = format!("t{i}");
        let point = KillPoint::random(&mut rng);
        match kill_and_restart_trial(&lab, &mut replica, "evaluator", &series, point, &mut rng)
            .await
        {
            Ok(trial) => {
                for p in check_receiver(&lab.hook, &series) {
                    problems.push(format!("trial {i} ({point:?}, +{:?}): {p}", trial.offset));
                }
                trials.push(trial);
            }
            Err(e) => {
                problems.push(format!("trial {i} ({point:?}): {e}"));
                // The lifecycle is broken; later trials would time out too.
                break;
            }
        }
    }
    let names: Vec<String> = trials.iter().map(|t| t.series.clone()).collect();
    problems.extend(check_history(db, &lab.hook, &names, Duration::from_secs(10)).await);
    let mut summary: BTreeMap<KillPoint, (usize, usize)> = BTreeMap::new();
    for t in &trials {
        let entry = summary.entry(t.point).or_default();
        entry.0 += 1;
        entry.1 += t.duplicates;
    }
    println!(
        "{test}: {} trials in {:.1} s, seed {seed}; per kill point (trials, marked duplicates): {summary:?}",
        trials.len(),
        started.elapsed().as_secs_f64()
    );
    if !problems.is_empty() {
        // Stop the replica first, so its log is complete.
        replica.kill9();
        panic!(
            "{test}: {} problem(s) (seed {seed}):\n{}\n\nreceiver: {:#?}\n\nlogs:\n{}",
            problems.len(),
            problems.join("\n"),
            lab.hook.attempts(),
            lab.logs(30_000)
        );
    }
}
