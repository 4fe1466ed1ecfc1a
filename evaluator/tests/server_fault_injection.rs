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
//! `common::faults`, shared with the HA fault tests.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

mod common;

use common::faults::{single_replica_run, trials};
use common::process::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_notification_survives_kill_9_at_random_lifecycle_points() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path()).await;
    single_replica_run("sqlite fault injection", dir.path(), &db, trials(28)).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_notification_survives_kill_9_at_random_lifecycle_points() {
    let Some(db) = TestDb::postgres().await else {
        println!("SKIPPED: DATABASE_URL is not set to a Postgres server");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    single_replica_run("postgres fault injection", dir.path(), &db, trials(24)).await;
    db.finish().await;
}
