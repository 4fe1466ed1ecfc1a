//! Load run of the history pipeline: 10,000 alert transitions from the
//! alert state machine through [`AlertTracker`] (episode upsert, transition
//! and state snapshot per change) into the batched [`HistoryWriter`] and the
//! database, as fast as the evaluations can produce them (a storm). Reports
//! the evaluation side's cost (it never waits for the database), the
//! transitions per second until the last one is in the database, and the
//! peak backlog (`vigil_history_backlog`, sampled every 5 ms).
//!
//! Bounded and loopback only: 1,000 alerts, each firing and resolving five
//! times (10 evaluations of one rule group with a scripted query result).
//! Runs on Postgres when `DATABASE_URL` is set (a fresh database, dropped
//! afterwards) and on a SQLite file in a temporary directory for comparison.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
//! cargo bench -p vigil-evaluator --bench history_load`
//! (`VIGIL_BENCH_ALERTS` and `VIGIL_BENCH_ROUNDS` change the size).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench reports failure by panicking

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;
use vigil_evaluator::history::store::HistoryWrite;
use vigil_evaluator::history::tracker::AlertTracker;
use vigil_evaluator::history::writer::{HistoryWriter, WriterConfig};
use vigil_evaluator::history::{Database, HistoryStore};
use vigil_evaluator::rules::fake::{sample, FakeEngine};
use vigil_evaluator::rules::file::parse_rule_file;
use vigil_evaluator::rules::group::{GroupEnv, RuleGroup};

struct Report {
    transitions: usize,
    writes: usize,
    produce: Duration,
    total: Duration,
    peak_backlog: i64,
    rows: i64,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(url: &str, alerts: usize, rounds: usize) -> Report {
    let db = Database::connect(url)
        .await
        .expect("cannot open the database");
    let store = HistoryStore::new(db.clone());
    let registry = Registry::new();
    let stop = CancellationToken::new();
    let (writer, task) =
        HistoryWriter::spawn(store, WriterConfig::default(), &registry, stop.clone()).unwrap();

    let mut specs = parse_rule_file(
        Path::new("load.yaml"),
        "groups:\n- name: load\n  rules:\n  - alert: Load\n    expr: x > 0\n",
    )
    .unwrap();
    let mut group = RuleGroup::new(specs.remove(0), Duration::from_secs(1)).unwrap();
    let engine = FakeEngine::new();
    let firing: Vec<_> = (0..alerts)
        .map(|i| sample(&[("instance", &format!("host-{i:05}"))], 1.0))
        .collect();
    for round in 0..rounds {
        let at = (round as i64 + 1) * 1000;
        let vector = if round % 2 == 0 {
            firing.clone()
        } else {
            Vec::new()
        };
        engine.set("x > 0", at, vector);
    }
    let tracker = AlertTracker::default();
    let env = GroupEnv::local(&engine);

    let peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (writer, peak, done) = (writer.clone(), Arc::clone(&peak), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(writer.backlog(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let start = Instant::now();
    let mut transitions = 0;
    let mut writes = 0;
    let mut produce = Duration::ZERO;
    for round in 0..rounds {
        let at = (round as i64 + 1) * 1000;
        let began = Instant::now();
        group.eval(at, &env);
        let now: DateTime<Utc> = DateTime::from_timestamp_millis(at).unwrap();
        for write in tracker.observe(&group, now) {
            if matches!(write, HistoryWrite::Transition(_)) {
                transitions += 1;
            }
            writes += 1;
            writer.record(write).expect("the history queue is full");
        }
        produce += began.elapsed();
        peak.fetch_max(writer.backlog(), Ordering::Relaxed);
        // Let the writer run between evaluations, as the real interval would.
        tokio::task::yield_now().await;
    }
    while writer.backlog() > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let total = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    stop.cancel();
    drop(writer);
    let _ = task.await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM alert_events")
        .fetch_one(db.pool())
        .await
        .unwrap();
    db.close().await;
    Report {
        transitions,
        writes,
        produce,
        total,
        peak_backlog: peak.load(Ordering::Relaxed),
        rows,
    }
}

fn print(backend: &str, r: &Report) {
    println!(
        "{backend}: {} transitions ({} writes) in {:.2} s = {:.0} transitions/s into the database; \
         evaluation side {:.1} ms in all; peak backlog {} writes; alert_events rows {}",
        r.transitions,
        r.writes,
        r.total.as_secs_f64(),
        r.transitions as f64 / r.total.as_secs_f64(),
        r.produce.as_secs_f64() * 1000.0,
        r.peak_backlog,
        r.rows
    );
    assert_eq!(
        r.rows as usize, r.transitions,
        "every transition reached the database"
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then
    // a small size, just to check the run works.
    let benching = std::env::args().any(|a| a == "--bench");
    let alerts = env_usize("VIGIL_BENCH_ALERTS", if benching { 1000 } else { 50 });
    let rounds = env_usize("VIGIL_BENCH_ROUNDS", 10);
    sqlx::any::install_default_drivers();

    if let Some(server) = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        let name = format!("vigil_load_{}", std::process::id());
        let admin = sqlx::AnyPool::connect(&server).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let base = server.split('?').next().unwrap();
        let (prefix, _) = base.rsplit_once('/').unwrap();
        let report = run(&format!("{prefix}/{name}"), alerts, rounds).await;
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await;
        admin.close().await;
        print("postgres", &report);
    } else {
        println!("postgres: skipped (DATABASE_URL is not set to a Postgres server)");
    }

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("load.db").display());
    let report = run(&url, alerts, rounds).await;
    print("sqlite", &report);
}
