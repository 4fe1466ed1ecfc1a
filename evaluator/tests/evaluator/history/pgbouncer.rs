//! The history and the leader election behind PgBouncer in transaction
//! mode (`pool_mode = transaction`, two server connections), with
//! `storage.transaction_pooling: true` ([`Pooling::Transaction`]): every
//! server connection is shared by many client connections, so any state a
//! client leaves on one (a named prepared statement, a session lock) shows.
//!
//! - The store, the outbox and the leases under concurrent use from two
//!   pools, and several pools migrating one new database at once.
//! - The same through the default statements: PgBouncer refuses them, and
//!   the error says which setting to change (this also shows the rig is
//!   really in transaction mode).
//! - PgBouncer refusing the driver's `extra_float_digits`: the error says
//!   what to add to pgbouncer.ini.
//! - The transaction-pooling migration and sqlx's migrator wait for the
//!   same lock.
//! - Two real `vigil-evaluator` replicas started at once on a new database
//!   through PgBouncer: one leads and delivers, the history is written, and
//!   a leader killed with `kill -9` is replaced.
//!
//! Needs `DATABASE_URL` (a Postgres server) and `pgbouncer`; without them
//! the tests print SKIPPED, unless `VIGIL_REQUIRE_EXTERNAL_TOOLS=1` makes
//! that a failure.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;
use crate::support::db as pg;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Connection, Executor};
use vigil_evaluator::history::db::{migration_lock_key, Pooling, MIGRATOR};
use vigil_evaluator::history::lease::{Fence, Leases};
use vigil_evaluator::history::outbox::OutboxEntry;
use vigil_evaluator::history::store::{
    EpisodeRecord, HistoryQuery, HistoryState, HistoryWrite, NotifyLogRow, Transition,
};
use vigil_evaluator::history::{Database, HistoryError, HistoryStore};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::notify::alert::{AlertStatus, Fingerprint};
use vigil_evaluator::notify::delivery::Claim;

use common::ha::{Fault, Ha, HaSetup, LEASE};
use common::pgbouncer::PgBouncer;

/// Server connections PgBouncer keeps to the database.
const SERVER_CONNECTIONS: u32 = 2;

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
}

fn episode(task: usize, i: usize) -> EpisodeRecord {
    let labels = Labels::from_pairs([
        ("alertname", format!("Rule{}", task % 3)),
        ("task", task.to_string()),
        ("i", i.to_string()),
    ]);
    let start = (task * 1000 + i) as i64;
    EpisodeRecord {
        fingerprint: Fingerprint::of(&labels),
        rule: format!("Rule{}", task % 3),
        group_name: "web".to_string(),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), format!("{task}/{i}"))]),
        state: HistoryState::Firing,
        starts_at: t(start),
        fired_at: Some(t(start)),
        ends_at: None,
        value: Some(i as f64 + 0.5),
        updated_at: t(start),
        end_reason: None,
    }
}

/// One round of what an evaluator does with its history, for episode `i`
/// of `task`: record it (alone and in a batch), queue, claim and deliver
/// its notification under the lease's fence, write the fenced
/// notification log, acknowledge it, and read it back through every kind
/// of query. Returns the first failure, named.
async fn round(store: &HistoryStore, fence: &Fence, task: usize, i: usize) -> Result<(), String> {
    let fail = |what: &'static str| move |e: HistoryError| format!("{what}: {e}");
    let record = episode(task, i);
    let id = record.id();
    store
        .upsert_episode(&record)
        .await
        .map_err(fail("upsert_episode"))?;
    store
        .record_transition(&Transition {
            alert_id: id.clone(),
            from: HistoryState::Inactive,
            to: HistoryState::Pending,
            at: record.starts_at,
            value: record.value,
        })
        .await
        .map_err(fail("record_transition"))?;
    let log = NotifyLogRow {
        receiver: "ops".to_string(),
        group_key: format!("{task}/{i}"),
        firing: BTreeSet::from([record.fingerprint]),
        resolved: BTreeSet::new(),
        sent_at: record.starts_at,
    };
    store
        .apply(&[
            HistoryWrite::Episode(record.clone()),
            HistoryWrite::Transition(Transition {
                alert_id: id.clone(),
                from: HistoryState::Pending,
                to: HistoryState::Firing,
                at: record.starts_at,
                value: record.value,
            }),
            HistoryWrite::Fenced {
                fence: fence.clone(),
                write: Box::new(HistoryWrite::NotifyLog(log)),
            },
        ])
        .await
        .map_err(fail("apply"))?;
    let entry = OutboxEntry {
        receiver: "ops".to_string(),
        integration: "webhook[0]".to_string(),
        group_key: format!("{task}/{i}"),
        payload: format!("{{\"episode\":\"{id}\"}}"),
        alerts: vec![(record.fingerprint, record.rule.clone(), AlertStatus::Firing)],
        created_at: record.starts_at,
    };
    let queued = store
        .enqueue(&entry, &format!("key/{task}/{i}"))
        .await
        .map_err(fail("enqueue"))?;
    let claim = store
        .claim(queued.id(), Some(fence), record.starts_at)
        .await
        .map_err(fail("claim"))?;
    if claim != Claim::Claimed {
        return Err(format!("claim: {claim:?}"));
    }
    let sent = store
        .mark_sent(queued.id(), Some(200), None, record.starts_at, Some(fence))
        .await
        .map_err(fail("mark_sent"))?;
    if !sent {
        return Err("mark_sent: refused".to_string());
    }
    store
        .acknowledge(&id, "tester", "on it", record.starts_at)
        .await
        .map_err(fail("acknowledge"))?;
    let stored = store
        .episode(&id)
        .await
        .map_err(fail("episode"))?
        .ok_or("episode: not found")?;
    if stored.acknowledged_by.as_deref() != Some("tester") {
        return Err(format!("episode: not acknowledged: {stored:?}"));
    }
    let notifications = store
        .notifications_for_episode(&stored)
        .await
        .map_err(fail("notifications_for_episode"))?;
    if notifications.len() != 1 {
        return Err(format!("notifications_for_episode: {notifications:?}"));
    }
    store.events(&id).await.map_err(fail("events"))?;
    store
        .query(&HistoryQuery {
            rule: Some(record.rule.clone()),
            limit: 5,
            ..HistoryQuery::default()
        })
        .await
        .map_err(fail("query"))?;
    store
        .rule_stats(t(0), t(1_000_000))
        .await
        .map_err(fail("rule_stats"))?;
    store.due(t(1_000_000), 10).await.map_err(fail("due"))?;
    store
        .outbox_backlog()
        .await
        .map_err(fail("outbox_backlog"))?;
    Ok(())
}

/// `tasks` tasks at once, each `rounds` rounds, on the stores in turn;
/// every failure, named by task and round.
async fn concurrent_rounds(
    stores: &[HistoryStore],
    fence: &Fence,
    tasks: usize,
    rounds: usize,
) -> Vec<String> {
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = stores[task % stores.len()].clone();
        let fence = fence.clone();
        handles.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..rounds {
                if let Err(e) = round(&store, &fence, task, i).await {
                    failures.push(format!("task {task} round {i}: {e}"));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for handle in handles {
        failures.extend(handle.await.unwrap());
    }
    failures
}

async fn count(db: &pg::TestDb, sql: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    n
}

/// The Postgres server and PgBouncer in front of it, or `None` (SKIPPED).
async fn rig() -> Option<(pg::TestDb, PgBouncer)> {
    let db = pg::TestDb::postgres().await?;
    let (admin, _) = db.postgres.clone().unwrap();
    let bouncer = PgBouncer::start(&admin, SERVER_CONNECTIONS).await?;
    Some((db, bouncer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_leases_and_migrations_work_concurrently_through_pgbouncer_in_transaction_mode() {
    let _alone = crate::support::alone().await;
    let Some((db, bouncer)) = rig().await else {
        return;
    };
    let url = bouncer.url(&db.url);

    // Four pools migrate the new database at once.
    let connects = (0..4).map(|_| Database::connect_with(&url, Pooling::Transaction));
    let databases: Vec<Database> = futures::future::join_all(connects)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("migrating through PgBouncer: {e}\n{}", bouncer.log()));
    let migrations = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .count() as i64;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(DISTINCT version) FROM _sqlx_migrations WHERE success"
        )
        .await,
        migrations
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        migrations
    );

    // Two replicas' stores and the election's leases, all at once.
    let stores = [
        HistoryStore::new(databases[0].clone()),
        HistoryStore::new(databases[1].clone()),
    ];
    let leases = Leases::new(databases[2].clone());
    let epoch = leases
        .acquire(
            "notification-leader",
            "tester",
            Duration::from_secs(60),
            false,
        )
        .await
        .unwrap()
        .expect("a new lease is free");
    let fence = Fence {
        lease: "notification-leader".to_string(),
        epoch,
    };
    let renewals = {
        let leases = leases.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..40 {
                match leases
                    .renew(
                        "notification-leader",
                        "tester",
                        epoch,
                        Duration::from_secs(60),
                    )
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => failures.push("renew: refused".to_string()),
                    Err(e) => failures.push(format!("renew: {e}")),
                }
                if let Err(e) = leases.live("notification").await {
                    failures.push(format!("live: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            failures
        })
    };
    let (tasks, rounds) = (8, 12);
    let mut failures = concurrent_rounds(&stores, &fence, tasks, rounds).await;
    failures.extend(renewals.await.unwrap());
    assert!(
        failures.is_empty(),
        "{} failures through PgBouncer:\n{}\nPgBouncer log:\n{}",
        failures.len(),
        failures.join("\n"),
        bouncer.log()
    );

    let n = (tasks * rounds) as i64;
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM alerts WHERE acknowledged_by = 'tester'"
        )
        .await,
        n
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM alert_events").await, 2 * n);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM notifications WHERE status = 'sent' AND epoch IS NOT NULL"
        )
        .await,
        n
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM notify_log").await, n);

    // The pools held more client connections than PgBouncer had server
    // connections: they really were shared.
    let clients: u32 = databases.iter().map(|d| d.pool().size()).sum();
    let (_, name) = db.postgres.clone().unwrap();
    let servers = count(
        &db,
        &format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
    println!("{clients} client connections over {servers} server connections");
    assert!(
        servers <= i64::from(SERVER_CONNECTIONS) && clients > SERVER_CONNECTIONS,
        "{clients} client connections, {servers} server connections"
    );
    for database in &databases {
        database.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_transaction_pooling_pgbouncer_refuses_the_statements_and_the_error_says_what_to_set(
) {
    let Some((db, bouncer)) = rig().await else {
        return;
    };
    // Migrated straight; through PgBouncer each new pool checks the
    // schema with sqlx's migrator, which prepares `sqlx_s_1` first.
    Database::connect(&db.url).await.unwrap().close().await;
    let url = bouncer.url(&db.url);
    // Three client connections preparing `sqlx_s_1` on two server
    // connections (which keep it: nothing resets them between
    // transactions): at least two of them meet on one, and the second is
    // refused. One that gets further may wait for ever on the migration
    // lock that another left on a server connection (hence the timeout).
    let mut refused = Vec::new();
    let mut hung = 0;
    let mut databases = Vec::new();
    for _ in 0..3 {
        let database = Database::connect_lazy_with(&url, Pooling::Session).unwrap();
        let store = HistoryStore::new(database.clone());
        match tokio::time::timeout(Duration::from_secs(10), store.episode("none")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => refused.push(e),
            Err(_) => hung += 1,
        }
        databases.push(database);
    }
    println!(
        "as expected: {} of 3 refused, {hung} waiting on a lost lock; first: {}",
        refused.len(),
        refused.first().map(ToString::to_string).unwrap_or_default()
    );
    assert!(
        !refused.is_empty(),
        "named statements went through PgBouncer in transaction mode: is it in session mode?\n{}",
        bouncer.log()
    );
    for error in &refused {
        assert!(
            matches!(error, HistoryError::Pooler { .. }),
            "not recognised as the pooler's doing: {error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains("prepared statement")
                && text.contains("set storage.transaction_pooling: true"),
            "{text}"
        );
    }
    for database in &databases {
        database.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pgbouncer_refusing_the_drivers_startup_parameter_gets_an_error_saying_what_to_add() {
    let Some(db) = pg::TestDb::postgres().await else {
        return;
    };
    let (admin, _) = db.postgres.clone().unwrap();
    let Some(bouncer) = PgBouncer::start_with(&admin, SERVER_CONNECTIONS, "").await else {
        return;
    };
    let refused = Database::connect_with(&bouncer.url(&db.url), Pooling::Transaction)
        .await
        .expect_err("PgBouncer 1.18 refuses extra_float_digits unless told to ignore it");
    assert!(
        matches!(refused, HistoryError::Pooler { .. }),
        "{refused:?}"
    );
    let text = refused.to_string();
    assert!(
        text.contains("unsupported startup parameter")
            && text.contains("ignore_startup_parameters = extra_float_digits"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transaction_pooling_migration_and_sqlx_migrator_wait_for_the_same_lock() {
    let Some(db) = pg::TestDb::postgres().await else {
        return;
    };
    let (_, name) = db.postgres.clone().unwrap();
    // Another migrator holds the lock (a session lock, as sqlx's takes).
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(migration_lock_key(&name))
        .execute(&mut holder)
        .await
        .unwrap();
    let url = db.url.clone();
    let sqlx_migrator = tokio::spawn(async move { Database::connect(&url).await });
    let url = db.url.clone();
    let ours =
        tokio::spawn(async move { Database::connect_with(&url, Pooling::Transaction).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !sqlx_migrator.is_finished() && !ours.is_finished(),
        "a migration ran while the lock was held (sqlx's: {}, ours: {})",
        sqlx_migrator.is_finished(),
        ours.is_finished()
    );
    holder
        .execute(sqlx::query("SELECT pg_advisory_unlock_all()"))
        .await
        .unwrap();
    let within = Duration::from_secs(20);
    let a = tokio::time::timeout(within, sqlx_migrator).await.unwrap();
    let b = tokio::time::timeout(within, ours).await.unwrap();
    a.unwrap().unwrap().close().await;
    b.unwrap().unwrap().close().await;
    let migrations = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .count() as i64;
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM _sqlx_migrations WHERE success").await,
        migrations,
        "each migration applied once, whichever ran first"
    );
    holder.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_pgbouncer_deliver_once_write_history_and_fail_over() {
    let _alone = crate::support::alone().await;
    // Checked first so that a missing DATABASE_URL fails under
    // VIGIL_REQUIRE_EXTERNAL_TOOLS=1 like the other tests.
    let Some(pg_db) = pg::TestDb::postgres_unborn() else {
        return;
    };
    let (server, _) = pg_db.postgres.clone().unwrap();
    drop(pg_db);
    let Some(bouncer) = PgBouncer::start(&server, SERVER_CONNECTIONS).await else {
        return;
    };
    let db = pg::TestDb::fresh_on(&server).await;
    let root = tempfile::tempdir().unwrap();
    let setup = HaSetup {
        database_url: bouncer.url(&db.url),
        storage: vec!["transaction_pooling: true".to_string()],
        together: true,
    };
    let mut ha = Ha::start_with(root.path(), db, setup).await;
    let dump = |ha: &Ha| format!("{}\nPgBouncer log:\n{}", ha.logs(), bouncer.log());

    // Both started at once on the new database: each migration once.
    let migrations = MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .count() as i64;
    assert_eq!(
        ha.db
            .count("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .await,
        migrations,
        "{}",
        dump(&ha)
    );

    // The alert fires; the leader, and only it, delivers it, once.
    ha.target.set_series("a", 1.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ha.hook.told("a", "firing") {
        assert!(
            std::time::Instant::now() < deadline,
            "the firing alert was not delivered:\n{}",
            dump(&ha)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let firing = ha.hook.about("a", "firing");
    assert_eq!(firing.len(), 1, "{firing:#?}\n{}", dump(&ha));
    let (leader_pid, _) = ha.lease_holder().await.expect("a leader");
    let leader = ha
        .replicas
        .iter()
        .find(|r| r.pid() == leader_pid)
        .expect("the leader is one of the replicas");
    assert_eq!(firing[0].replica, leader.name, "{}", dump(&ha));

    // Its history: the episode, its transitions, the delivered
    // notification.
    let history = [
        (
            "SELECT COUNT(*) FROM alerts WHERE labels LIKE '%\"series\":\"a\"%' AND fired_at IS NOT NULL",
            1,
        ),
        (
            "SELECT COUNT(*) FROM alert_events e JOIN alerts a ON a.id = e.alert_id \
             WHERE a.labels LIKE '%\"series\":\"a\"%' AND e.to_state = 'firing'",
            1,
        ),
        (
            "SELECT COUNT(*) FROM notifications n JOIN notification_alerts na \
             ON na.notification_id = n.id WHERE n.status = 'sent' AND na.alert_status = 'firing'",
            1,
        ),
    ];
    for (sql, want) in history {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while ha.db.count(sql).await < want {
            assert!(
                std::time::Instant::now() < deadline,
                "history not written ({sql}):\n{}",
                dump(&ha)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // kill -9 the leader: the other replica takes over and delivers; the
    // killed one comes back as the standby.
    let outcome = ha
        .trial(
            1,
            Fault::Kill {
                after: Duration::from_millis(500),
                resolving: true,
            },
        )
        .await;
    println!(
        "failover after kill -9 through PgBouncer: {:.2} s; deliveries {}, duplicates {}",
        outcome.failover.as_secs_f64(),
        outcome.deliveries,
        outcome.duplicates
    );
    assert!(
        outcome.failover < LEASE * 2 + Duration::from_secs(2),
        "failover took {:?}:\n{}",
        outcome.failover,
        dump(&ha)
    );
    ha.target.set_series("a", 0.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ha.hook.told("a", "resolved") {
        assert!(
            std::time::Instant::now() < deadline,
            "the resolution was not delivered after the failover:\n{}",
            dump(&ha)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for replica in &ha.replicas {
        let log = replica.log();
        // What PgBouncer does to state kept on a server connection (a slow
        // database under load is not this test's subject).
        for symptom in [
            "prepared statement",
            "storage.transaction_pooling",
            "unsupported startup parameter",
            "cannot migrate",
        ] {
            assert!(
                !log.contains(symptom),
                "{} logged {symptom:?}:\n{}",
                replica.name,
                dump(&ha)
            );
        }
    }
    let Ha { db, replicas, .. } = ha;
    drop(replicas);
    db.finish().await;
}
