//! Fault injection, single replica: the real evaluator is killed with
//! SIGKILL at random points of an alert's lifecycle (pending, the first
//! 200 ms of firing, while a slow receiver holds the firing request, right
//! after a 200, while resolving, right after the resolution's 200) and
//! restarted at once, many times, on SQLite and on Postgres. Every trial
//! must end with the firing and the resolved notification delivered at
//! least once, every duplicate carrying the same idempotency key and the
//! re-delivery mark, every delivery in the history's delivery log, and no
//! episode left open.
//!
//! Seeded: the seed is printed; `VIGIL_FAULT_SEED` repeats a run and
//! `VIGIL_FAULT_TRIALS` changes the number of trials per database. The
//! Postgres run needs `DATABASE_URL` (a fresh database is created and
//! dropped); without it it prints SKIPPED. The harness is
//! `support::faults`, shared with the HA fault tests.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;

use std::time::{Duration, Instant};

use common::db::TestDb;
use common::faults::{check_history, check_receiver, single_replica_run, trials, Lab, Timing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_notification_survives_kill_9_at_random_lifecycle_points() {
    let _alone = crate::support::alone().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path()).await;
    single_replica_run("sqlite fault injection", dir.path(), &db, trials(28)).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_notification_survives_kill_9_at_random_lifecycle_points() {
    let _alone = crate::support::alone().await;
    let Some(db) = TestDb::postgres().await else {
        println!("SKIPPED: DATABASE_URL is not set to a Postgres server");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    single_replica_run("postgres fault injection", dir.path(), &db, trials(24)).await;
    db.finish().await;
}

/// Start-up with a history database that cannot be opened (a SQLite file in
/// a directory that does not exist yet): the listener, scraping, evaluation
/// and delivery start at once; `/-/ready` says what is pending; once the
/// directory exists the saved state is merged in, `/-/ready` turns 200,
/// and the deliveries made meanwhile are in the history's delivery log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_does_not_wait_for_the_database_and_the_history_catches_up() {
    let _alone = crate::support::alone().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("later");
    let mut db = TestDb::sqlite(dir.path()).await;
    db.url = format!("sqlite://{}", missing.join("history.db").display());
    let lab = Lab::new(dir.path(), &db, Timing::default()).await;
    lab.target.set_series("s", 1.0);
    let started = Instant::now();
    let replica = lab.start("evaluator");
    let client = reqwest::Client::new();
    let ready = |path: &'static str| {
        let client = client.clone();
        let url = format!("http://127.0.0.1:{}{path}", replica.listen);
        async move {
            let response = client.get(url).send().await.ok()?;
            Some((
                response.status().as_u16(),
                response.text().await.unwrap_or_default(),
            ))
        }
    };
    while ready("/-/healthy").await.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no HTTP listener after 10 s; logs:\n{}",
            lab.logs(20_000)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listening = started.elapsed();
    lab.wait("the firing notification", Duration::from_secs(15), || {
        lab.hook.got("s", "firing", true)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; logs:\n{}", lab.logs(20_000)));
    let firing = started.elapsed();
    let (status, body) = ready("/-/ready").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("history database unreachable"), "{body}");
    assert!(body.contains("writes buffered"), "{body}");
    println!("without a database: listening after {listening:?}, firing delivered after {firing:?}; /-/ready: {body}");

    // The database becomes reachable.
    std::fs::create_dir_all(&missing).unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((200, _)) = ready("/-/ready").await {
            break;
        }
        assert!(
            Instant::now() < until,
            "/-/ready still {:?}; logs:\n{}",
            ready("/-/ready").await,
            lab.logs(20_000)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lab.target.set_series("s", 0.0);
    let history = resolved_and_truthful(&lab, &missing).await;
    drop(replica);
    history.finish().await;
    db.finish().await;
}

/// The saved state arrives late: the evaluator is killed while an alert
/// fires, the alert ends while it is down, and it restarts with its history
/// database unreachable (the SQLite directory moved away), so it starts
/// without the saved state. Once the database is back, the saved firing
/// alert that no rule holds any more is resolved at the receiver (before,
/// it never was: the receiver was left believing it still fired) and no
/// episode is left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_saved_state_resolves_the_alerts_that_ended_while_down() {
    let _alone = crate::support::alone().await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("db");
    let away = dir.path().join("db-away");
    std::fs::create_dir_all(&home).unwrap();
    let db = TestDb::sqlite(&home).await;
    let lab = Lab::new(dir.path(), &db, Timing::default()).await;
    lab.target.set_series("s", 1.0);
    let mut replica = lab.start("evaluator");
    lab.wait("the firing notification", Duration::from_secs(20), || {
        lab.hook.got("s", "firing", true)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; logs:\n{}", lab.logs(20_000)));
    // The delivery's outcome and the firing state are saved.
    let saved = Instant::now() + Duration::from_secs(10);
    while !common::faults::delivered_in_history(&db)
        .await
        .contains_key(&("s".to_string(), "firing".to_string()))
    {
        assert!(
            Instant::now() < saved,
            "the firing delivery was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    replica.kill9();
    db.finish().await;

    // Down: the alert ends, and the database is out of reach at restart.
    lab.target.set_series("s", 0.0);
    std::fs::rename(&home, &away).unwrap();
    let _replica = lab.start("evaluator");
    // Long enough for the start-up budget to pass and a few evaluations.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !lab.hook.got("s", "resolved", true),
        "resolved before the saved state could be read; logs:\n{}",
        lab.logs(20_000)
    );
    std::fs::rename(&away, &home).unwrap();
    let history = resolved_and_truthful(&lab, &home).await;
    history.finish().await;
}

/// Waits for series `s`'s resolved notification, then checks the receiver
/// and the SQLite history in `db_dir` (every delivery logged, no episode
/// open); returns the history database.
async fn resolved_and_truthful(lab: &Lab, db_dir: &std::path::Path) -> TestDb {
    lab.wait("the resolved notification", Duration::from_secs(20), || {
        lab.hook.got("s", "resolved", true)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}; logs:\n{}", lab.logs(20_000)));
    let history = TestDb::sqlite(db_dir).await;
    let problems = check_history(
        &history,
        &lab.hook,
        &["s".to_string()],
        Duration::from_secs(10),
    )
    .await;
    assert!(
        problems.is_empty(),
        "{problems:?}; logs:\n{}",
        lab.logs(20_000)
    );
    assert!(check_receiver(&lab.hook, "s").is_empty());
    history
}
