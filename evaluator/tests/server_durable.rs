//! The evaluator's durability as a process: alert history reaches the SQL
//! database as an alert goes pending, fires and resolves; and an evaluator
//! killed with SIGKILL while an alert fires comes back with the alert still
//! firing, without a second firing notification, and sends its resolution
//! exactly once.
//!
//! Each scenario runs on SQLite, and on Postgres too when `DATABASE_URL` is
//! set (a fresh database per test, dropped afterwards). Every wait polls
//! against a deadline, so a broken build fails instead of hanging.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use sqlx::AnyPool;
use vigil_testkit::{cargo_bin, free_port, wait_for_http, ChildGuard};

const DEADLINE: Duration = Duration::from_secs(30);

/// A scrape target exposing `vigil_test_value` with a settable value.
struct Target {
    value: Arc<AtomicU64>,
    port: u16,
}

impl Target {
    async fn start() -> Target {
        let value = Arc::new(AtomicU64::new(0f64.to_bits()));
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
        let port = serve(app).await;
        Target { value, port }
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
        let port = serve(app).await;
        Webhook { received, port }
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

/// The history database of one test: a SQLite file in the test's directory,
/// or a fresh Postgres database dropped at the end.
struct TestDb {
    url: String,
    pool: AnyPool,
    /// The server URL and database name to drop (Postgres only).
    drop: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite(dir: &Path) -> TestDb {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}", dir.join("history.db").display());
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect_lazy(&format!("{url}?mode=rwc"))
            .unwrap();
        TestDb {
            url,
            pool,
            drop: None,
        }
    }

    /// `None` (the test prints SKIPPED) when `DATABASE_URL` is not set.
    async fn postgres() -> Option<TestDb> {
        let server = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))?;
        sqlx::any::install_default_drivers();
        let name = format!(
            "vigil_test_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000
        );
        let admin = AnyPool::connect(&server).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let base = server.split('?').next().unwrap();
        let (prefix, _) = base.rsplit_once('/').unwrap();
        let url = format!("{prefix}/{name}");
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect_lazy(&url)
            .unwrap();
        Some(TestDb {
            url,
            pool,
            drop: Some((server, name)),
        })
    }

    /// A count query's answer, or -1 while the table does not exist yet.
    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or(-1)
    }

    async fn finish(self) {
        self.pool.close().await;
        if let Some((server, name)) = self.drop {
            let admin = AnyPool::connect(&server).await.unwrap();
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&admin)
                .await;
            admin.close().await;
        }
    }
}

/// Writes `vigil.yaml`, `rules.yaml` and `notify.yaml` into `dir`.
fn write_config(dir: &Path, target: u16, webhook: u16, listen: u16, hold: &str) -> PathBuf {
    std::fs::write(
        dir.join("rules.yaml"),
        format!("groups:\n- name: test\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n    for: {hold}\n    labels: {{severity: page}}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("notify.yaml"),
        format!(
            "route: {{receiver: hook, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{webhook}/hook', send_resolved: true}}]\n"
        ),
    )
    .unwrap();
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

/// Starts `vigil-evaluator run` on `db`, appending to `dir/evaluator.log`.
fn start_evaluator(config: &Path, dir: &Path, db: &TestDb) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("evaluator.log"))
        .unwrap();
    ChildGuard::spawn(
        Command::new(cargo_bin("vigil-evaluator"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", &db.url)
            .env_remove("VIGIL_API_TOKEN")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(log),
    )
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("evaluator.log")).unwrap_or_default()
}

async fn wait_until(what: &str, dir: &Path, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; evaluator log:\n{}",
            log_of(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `sql` (a count) until it reaches at least `want`.
async fn wait_for_rows(what: &str, dir: &Path, db: &TestDb, sql: &str, want: i64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let n = db.count(sql).await;
        if n >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({sql} = {n}, want {want}); evaluator log:\n{}",
            log_of(dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn history_is_recorded_as_an_alert_goes_pending_fires_and_resolves(dir: &Path, db: &TestDb) {
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = write_config(dir, target.port, webhook.port, listen, "2s");
    target.set(5.0);
    let _child = start_evaluator(&config, dir, db);
    wait_until("the firing notification", dir, || {
        webhook.count("firing") >= 1
    })
    .await;
    target.set(0.0);
    wait_until("the resolved notification", dir, || {
        webhook.count("resolved") >= 1
    })
    .await;

    wait_for_rows(
        "the resolved episode",
        dir,
        db,
        "SELECT COUNT(*) FROM alerts WHERE rule = 'ValueHigh' AND state = 'resolved' \
         AND severity = 'page' AND fired_at IS NOT NULL AND ends_at IS NOT NULL",
        1,
    )
    .await;
    assert_eq!(db.count("SELECT COUNT(*) FROM alerts").await, 1);
    for (from, to) in [
        ("inactive", "pending"),
        ("pending", "firing"),
        ("firing", "resolved"),
    ] {
        let sql = format!(
            "SELECT COUNT(*) FROM alert_events WHERE from_state = '{from}' AND to_state = '{to}'"
        );
        assert_eq!(db.count(&sql).await, 1, "{sql}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM alert_events").await, 3);
    wait_for_rows(
        "both notifications marked sent in the outbox",
        dir,
        db,
        "SELECT COUNT(*) FROM notifications WHERE status = 'sent' AND integration = 'webhook[0]'",
        2,
    )
    .await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM notifications WHERE status <> 'sent'")
            .await,
        0
    );
}

async fn a_killed_evaluator_neither_repeats_the_firing_notification_nor_loses_the_resolution(
    dir: &Path,
    db: &TestDb,
) {
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = write_config(dir, target.port, webhook.port, listen, "0s");
    target.set(3.0);
    let mut child = start_evaluator(&config, dir, db);
    wait_until("the firing notification", dir, || {
        webhook.count("firing") >= 1
    })
    .await;
    // Kill only once the delivery and the state that prevents a repeat
    // are in the database.
    wait_for_rows(
        "the firing notification marked sent",
        dir,
        db,
        "SELECT COUNT(*) FROM notifications WHERE status = 'sent'",
        1,
    )
    .await;
    wait_for_rows(
        "the notification log",
        dir,
        db,
        "SELECT COUNT(*) FROM notify_log",
        1,
    )
    .await;
    wait_for_rows(
        "the alert state with its last send",
        dir,
        db,
        "SELECT COUNT(*) FROM alert_state WHERE state = 'firing' AND last_sent_at IS NOT NULL",
        1,
    )
    .await;
    child.0.kill().unwrap();
    let _ = child.0.wait();

    let listen = free_port();
    let config = write_config(dir, target.port, webhook.port, listen, "0s");
    let _child = start_evaluator(&config, dir, db);
    wait_for_http(&format!("http://127.0.0.1:{listen}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir)));
    let alerts: Value = reqwest::get(format!("http://127.0.0.1:{listen}/api/v1/alerts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    // Several evaluations and group intervals after the restart.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        webhook.count("firing"),
        1,
        "alerts API: {alerts}; payloads: {:#?}\nlog:\n{}",
        webhook.payloads(),
        log_of(dir)
    );

    target.set(0.0);
    wait_until("the resolved notification", dir, || {
        webhook.count("resolved") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(webhook.count("resolved"), 1, "{:#?}", webhook.payloads());
    assert_eq!(webhook.count("firing"), 1, "{:#?}", webhook.payloads());
    assert!(
        log_of(dir).contains("alert state restored from history"),
        "{}",
        log_of(dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_history_is_recorded_as_an_alert_goes_pending_fires_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path()).await;
    history_is_recorded_as_an_alert_goes_pending_fires_and_resolves(dir.path(), &db).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_history_is_recorded_as_an_alert_goes_pending_fires_and_resolves() {
    let Some(db) = TestDb::postgres().await else {
        println!("SKIPPED: DATABASE_URL is not set to a Postgres server");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    history_is_recorded_as_an_alert_goes_pending_fires_and_resolves(dir.path(), &db).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_killed_evaluator_sends_one_firing_and_one_resolved_notification() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path()).await;
    a_killed_evaluator_neither_repeats_the_firing_notification_nor_loses_the_resolution(
        dir.path(),
        &db,
    )
    .await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_killed_evaluator_sends_one_firing_and_one_resolved_notification() {
    let Some(db) = TestDb::postgres().await else {
        println!("SKIPPED: DATABASE_URL is not set to a Postgres server");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    a_killed_evaluator_neither_repeats_the_firing_notification_nor_loses_the_resolution(
        dir.path(),
        &db,
    )
    .await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_history_database_does_not_stop_evaluation_or_delivery() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    // A SQLite file in a directory that does not exist cannot be opened.
    let db = TestDb {
        url: format!(
            "sqlite://{}",
            dir.path().join("missing").join("history.db").display()
        ),
        pool: sqlx::any::AnyPoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap(),
        drop: None,
    };
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = write_config(dir.path(), target.port, webhook.port, listen, "0s");
    target.set(2.0);
    let _child = start_evaluator(&config, dir.path(), &db);
    wait_until("the firing notification", dir.path(), || {
        webhook.count("firing") >= 1
    })
    .await;
    let log = log_of(dir.path());
    assert!(log.contains("history database unavailable"), "{log}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let backlog = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_history_backlog "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        backlog.is_some_and(|b| b > 0.0),
        "history is buffered while the database is down: {backlog:?}"
    );
    db.finish().await;
}
