//! High-availability fault injection (issue "No page lost", item 5, HA
//! part): two real `vigil-evaluator` replicas on one fresh Postgres
//! database, seeded trials that kill -9 the leader at random points of an
//! alert's lifecycle (including while the receiver holds a slow delivery)
//! or freeze it with `SIGSTOP` for longer than two lease periods and resume
//! it. Every trial asserts that its firing and resolved notifications were
//! delivered, that a frozen leader was replaced within two lease periods
//! and sent nothing once resumed, and that repeats carry the first send's
//! key (and, once re-sends are marked, the mark). Prints the failover times.
//!
//! Bounded: `VIGIL_HA_TRIALS` trials (default 8, about 3 minutes); the seed
//! is printed and `VIGIL_HA_SEED` repeats it. Without `DATABASE_URL` it
//! prints SKIPPED.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;

use std::time::Duration;

use common::db::TestDb;
use common::faults::rng;
use common::ha::{seed, trials, Fault, Ha, LEASE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_frozen_leaders_lose_no_notification_and_a_resumed_one_sends_nothing() {
    let _alone = crate::support::alone().await;
    let Some(db) = TestDb::postgres().await else {
        println!("SKIPPED: DATABASE_URL is not set to a Postgres server");
        return;
    };
    let test = "ha faults";
    let mut rng = rng(seed(test));
    let root = tempfile::tempdir().unwrap();
    let mut ha = Ha::start(root.path(), db).await;
    let mut outcomes = Vec::new();
    for i in 0..trials(8) {
        let fault = Fault::random(i, &mut rng);
        let outcome = ha.trial(i, fault).await;
        println!(
            "trial {i}: failover {:.2} s, deliveries {}, duplicates {} ({} keyed and marked)",
            outcome.failover.as_secs_f64(),
            outcome.deliveries,
            outcome.duplicates,
            outcome.marked
        );
        outcomes.push(outcome);
    }
    let times = |freeze: bool| {
        let mut t: Vec<f64> = outcomes
            .iter()
            .filter(|o| {
                matches!(
                    o.fault,
                    Fault::Freeze { .. } | Fault::FreezeMidDelivery { .. }
                ) == freeze
            })
            .map(|o| o.failover.as_secs_f64())
            .collect();
        t.sort_by(f64::total_cmp);
        t
    };
    let duplicates: usize = outcomes.iter().map(|o| o.duplicates).sum();
    let marked: usize = outcomes.iter().map(|o| o.marked).sum();
    println!(
        "{test}: {} trials; failover after kill -9 (s): {:?}; after SIGSTOP (s): {:?}; \
         duplicates {duplicates} ({marked} keyed and marked); requests per replica {:?}",
        outcomes.len(),
        times(false),
        times(true),
        ha.sent_by()
    );
    for o in &outcomes {
        assert!(
            o.failover < LEASE * 2 + Duration::from_secs(2),
            "failover {:?} after {:?}",
            o.failover,
            o.fault
        );
    }
    let Ha { db, replicas, .. } = ha;
    drop(replicas);
    db.finish().await;
}
