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

use crate::support as common;

use std::path::Path;
use std::time::Duration;

use common::db::TestDb;
use common::process::{
    kill9, log_of, start_evaluator, value_high_rules, wait_for_rows, wait_until, webhook_notify,
    write_config, Target, Webhook, DEADLINE,
};
use serde_json::Value;
use vigil_testkit::{free_port, wait_for_http};

/// `vigil.yaml` and friends for the single `ValueHigh` rule held `hold`.
fn configure(
    dir: &Path,
    target: &Target,
    webhook: &Webhook,
    listen: u16,
    hold: &str,
) -> std::path::PathBuf {
    write_config(
        dir,
        target.port,
        listen,
        &value_high_rules(hold, ""),
        &webhook_notify(webhook.port, true),
    )
}

fn start(config: &Path, dir: &Path, db: &TestDb) -> vigil_testkit::ChildGuard {
    start_evaluator(config, dir, "evaluator.log", Some(&db.url))
}

async fn history_is_recorded_as_an_alert_goes_pending_fires_and_resolves(dir: &Path, db: &TestDb) {
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = configure(dir, &target, &webhook, listen, "2s");
    target.set(5.0);
    let _child = start(&config, dir, db);
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
    let config = configure(dir, &target, &webhook, listen, "0s");
    target.set(3.0);
    let mut child = start(&config, dir, db);
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
    kill9(&mut child);

    let listen = free_port();
    let config = configure(dir, &target, &webhook, listen, "0s");
    let _child = start(&config, dir, db);
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
        postgres: None,
        dir: None,
    };
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = configure(dir.path(), &target, &webhook, listen, "0s");
    target.set(2.0);
    let _child = start(&config, dir.path(), &db);
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

async fn a_cooldown_survives_a_restart(dir: &Path, db: &TestDb) {
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let rules = value_high_rules("0s", "    cooldown: 1h\n");
    let notify = webhook_notify(webhook.port, true);
    let listen = free_port();
    let config = write_config(dir, target.port, listen, &rules, &notify);
    target.set(1.0);
    let mut child = start(&config, dir, db);
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
        "the cooldown saved after the resolution",
        dir,
        db,
        "SELECT COUNT(*) FROM cooldowns WHERE awaiting_resolve = 0 AND cooldown_ms = 3600000",
        1,
    )
    .await;
    kill9(&mut child);

    let listen = free_port();
    let config = write_config(dir, target.port, listen, &rules, &notify);
    let _child = start(&config, dir, db);
    wait_for_http(&format!("http://127.0.0.1:{listen}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir)));
    // The alert fires again within its cooldown: held back.
    target.set(1.0);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let alerts: Value = reqwest::get(format!("http://127.0.0.1:{listen}/api/v1/alerts"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if alerts["data"]["alerts"][0]["state"] == "firing" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several evaluations and group intervals.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        webhook.count("firing"),
        1,
        "{:#?}\nlog:\n{}",
        webhook.payloads(),
        log_of(dir)
    );
    assert!(
        log_of(dir).contains("cooldowns restored from history"),
        "{}",
        log_of(dir)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_cooldown_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path()).await;
    a_cooldown_survives_a_restart(dir.path(), &db).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cooldown_survives_a_restart() {
    let Some(db) = TestDb::postgres().await else {
        println!("SKIPPED: DATABASE_URL is not set to a Postgres server");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    a_cooldown_survives_a_restart(dir.path(), &db).await;
    db.finish().await;
}
