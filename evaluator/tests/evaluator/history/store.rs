//! The SQL history as a specification: every behaviour is checked on SQLite
//! (a temporary file) and on Postgres (a fresh database per test, created
//! from `DATABASE_URL` and dropped afterwards, so tests run in parallel).
//! Without `DATABASE_URL` the Postgres variants print SKIPPED, unless
//! `VIGIL_REQUIRE_EXTERNAL_TOOLS=1` makes that a failure (CI).

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::db as pg;
use crate::support::wait;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Connection, Executor};
use tokio_util::sync::CancellationToken;
use vigil_evaluator::clock::{SimClock, SystemClock};
use vigil_evaluator::history::leader::{
    LeaderConfig, LeaderElector, Leadership, LeaseMode, ManualTicks, Term, Ticks,
};
use vigil_evaluator::history::lease::{Fence, Leases};
use vigil_evaluator::history::outbox::{Enqueued, OutboxEntry, OutboxStatus};
use vigil_evaluator::history::silences::SqlSilences;
use vigil_evaluator::history::store::run_pruner;
use vigil_evaluator::history::store::{
    episode_id, AckOutcome, AlertSnapshot, CooldownRow, EpisodeRecord, HistoryQuery, HistoryState,
    HistoryWrite, NotifyLogRow, Transition,
};
use vigil_evaluator::history::writer::{HistoryWriter, WriterConfig};
use vigil_evaluator::history::{db::MIGRATOR, Database, HistoryStore};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::notify::alert::{AlertStatus, Fingerprint};
use vigil_evaluator::notify::delivery::Claim;
use vigil_evaluator::notify::matcher::parse_matcher;
use vigil_evaluator::notify::silence::{Silence, SilenceStore};

use pg::TestDb;

// ---------------------------------------------------------------- harness

fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// An episode of `rule` with extra labels, in `state`, started at `start`.
fn record(rule: &str, extra: &[(&str, &str)], state: HistoryState, start: i64) -> EpisodeRecord {
    let mut pairs = vec![("alertname", rule)];
    pairs.extend_from_slice(extra);
    let labels = labels(&pairs);
    EpisodeRecord {
        fingerprint: Fingerprint::of(&labels),
        rule: rule.to_string(),
        group_name: "web".to_string(),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), format!("{rule} is bad"))]),
        state,
        starts_at: t(start),
        fired_at: None,
        ends_at: None,
        value: Some(1.5),
        updated_at: t(start),
        end_reason: None,
    }
}

/// Polls `condition` until it holds; fails after `limit`. Waits on the
/// database or a background task, never asserts timing.
async fn eventually<F, Fut>(what: &str, limit: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        wait::until(limit, Duration::from_millis(20), condition).await,
        "{what}: not within {limit:?}"
    );
}

async fn count(store: &HistoryStore, table: &str) -> i64 {
    use sqlx::Row;
    let row = sqlx::query(&format!(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {table}"
    ))
    .fetch_one(store.database().pool())
    .await
    .unwrap();
    row.try_get("n").unwrap()
}

fn metric(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .find(|family| family.name() == name)
        .and_then(|family| family.get_metric().first().cloned())
        // The unused one of gauge and counter reads 0.
        .map(|m| m.get_gauge().get_value() + m.get_counter().get_value())
        .unwrap_or(f64::NAN)
}

// ------------------------------------------------------------------ tests

on_both!(
    migrations_are_idempotent,
    episode_lifecycle_records_every_transition,
    acknowledgements_feed_mtta_and_mttr,
    history_queries_filter_and_page,
    outbox_enqueue_is_idempotent_and_tracks_delivery,
    silences_survive_a_restart,
    alert_state_snapshots_round_trip,
    retention_prunes_only_closed_history,
    writer_flushes_everything_on_shutdown,
    notifier_memory_round_trips,
    pruner_applies_the_retention_to_the_clock,
    leases_renew_expire_and_pass_with_a_new_epoch,
    stale_epoch_claims_outcomes_and_log_writes_are_refused,
);

async fn migrations_are_idempotent(url: String) {
    let db = Database::connect(&url).await.unwrap();
    let store = HistoryStore::new(db.clone());
    store
        .upsert_episode(&record("Down", &[], HistoryState::Pending, 0))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    Database::connect(&url)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    assert_eq!(
        count(&store, "alerts").await,
        1,
        "data survives re-migration"
    );
    assert_eq!(
        count(&store, "_sqlx_migrations").await,
        MIGRATOR.iter().count() as i64
    );
}

async fn episode_lifecycle_records_every_transition(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let mut episode = record("Down", &[("severity", "page")], HistoryState::Pending, 0);
    let id = episode.id();
    assert_eq!(id, episode_id(episode.fingerprint, t(0)));
    let step = |from, to, at| Transition {
        alert_id: id.clone(),
        from,
        to,
        at: t(at),
        value: Some(2.0),
    };
    store.upsert_episode(&episode).await.unwrap();
    store
        .record_transition(&step(HistoryState::Inactive, HistoryState::Pending, 0))
        .await
        .unwrap();
    episode.state = HistoryState::Firing;
    episode.fired_at = Some(t(60));
    episode.updated_at = t(60);
    store.upsert_episode(&episode).await.unwrap();
    store
        .record_transition(&step(HistoryState::Pending, HistoryState::Firing, 60))
        .await
        .unwrap();
    episode.state = HistoryState::Resolved;
    episode.fired_at = Some(t(120)); // a later report never moves the first firing
    episode.ends_at = Some(t(300));
    episode.updated_at = t(300);
    let resolve = step(HistoryState::Firing, HistoryState::Resolved, 300);
    store
        .apply(&[
            HistoryWrite::Episode(episode.clone()),
            HistoryWrite::Transition(resolve.clone()),
            HistoryWrite::Transition(resolve), // replayed: stored once
        ])
        .await
        .unwrap();
    let mut stale = episode.clone();
    stale.state = HistoryState::Firing;
    stale.ends_at = None;
    stale.updated_at = t(100);
    store.upsert_episode(&stale).await.unwrap();

    let stored = store.episode(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.state,
        HistoryState::Resolved,
        "a stale report is ignored"
    );
    assert_eq!(stored.fired_at, Some(t(60)));
    assert_eq!(stored.ends_at, Some(t(300)));
    assert_eq!(stored.severity, "page");
    assert_eq!(stored.labels, episode.labels);
    assert_eq!(stored.annotations["summary"], "Down is bad");
    let events = store.events(&id).await.unwrap();
    let path: Vec<(HistoryState, HistoryState, DateTime<Utc>)> =
        events.iter().map(|e| (e.from, e.to, e.at)).collect();
    assert_eq!(
        path,
        [
            (HistoryState::Inactive, HistoryState::Pending, t(0)),
            (HistoryState::Pending, HistoryState::Firing, t(60)),
            (HistoryState::Firing, HistoryState::Resolved, t(300)),
        ]
    );
    assert_eq!(events[1].value, Some(2.0));
}

/// A fired episode of `rule`: fired at `start`, acked after `ack` seconds,
/// resolved after `resolve` seconds.
async fn fired(store: &HistoryStore, rule: &str, start: i64, ack: Option<i64>, resolve: i64) {
    let mut e = record(
        rule,
        &[("n", &start.to_string())],
        HistoryState::Resolved,
        start,
    );
    e.fired_at = Some(t(start));
    e.ends_at = Some(t(start + resolve));
    e.updated_at = t(start + resolve);
    store.upsert_episode(&e).await.unwrap();
    if let Some(after) = ack {
        let outcome = store
            .acknowledge(&e.id(), "alice", "looking", t(start + after))
            .await
            .unwrap();
        assert_eq!(outcome, AckOutcome::Acknowledged);
    }
}

async fn acknowledgements_feed_mtta_and_mttr(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    fired(&store, "Down", 0, Some(60), 300).await;
    fired(&store, "Down", 1000, Some(120), 600).await;
    fired(&store, "Slow", 2000, None, 100).await;
    fired(&store, "Down", 99_000, Some(1), 1).await; // outside the range
    store
        .upsert_episode(&record("Slow", &[], HistoryState::Pending, 3000))
        .await
        .unwrap();

    let down = record("Down", &[("n", "0")], HistoryState::Resolved, 0);
    let entry = OutboxEntry {
        receiver: "ops".into(),
        integration: "webhook[0]".into(),
        group_key: "{}:{}".into(),
        payload: "{}".into(),
        alerts: vec![(down.fingerprint, "Down".into(), AlertStatus::Firing)],
        created_at: t(10),
    };
    let id = store.enqueue(&entry, "k1").await.unwrap();
    store
        .mark_sent(id.id(), Some(200), None, t(11), None)
        .await
        .unwrap();

    let again = store
        .acknowledge(&down.id(), "bob", "me too", t(500))
        .await
        .unwrap();
    assert_eq!(
        again,
        AckOutcome::AlreadyAcknowledged {
            by: "alice".into(),
            at: t(60)
        }
    );
    assert_eq!(
        store.acknowledge("nope", "bob", "", t(0)).await.unwrap(),
        AckOutcome::NotFound
    );
    let acked = store.episode(&down.id()).await.unwrap().unwrap();
    assert_eq!(acked.acknowledged_by.as_deref(), Some("alice"));
    assert_eq!(acked.ack_comment.as_deref(), Some("looking"));

    let stats = store.rule_stats(t(0), t(10_000)).await.unwrap();
    assert_eq!(stats.len(), 2);
    let (d, s) = (&stats[0], &stats[1]);
    assert_eq!((d.rule.as_str(), d.fires, d.episodes), ("Down", 2, 2));
    assert_eq!(d.mtta, Some(Duration::from_secs(90)));
    assert_eq!(d.mttr, Some(Duration::from_secs(450)));
    assert_eq!(d.notifications_sent, 1);
    assert_eq!((s.rule.as_str(), s.fires, s.episodes), ("Slow", 1, 2));
    assert_eq!(s.mtta, None, "never acknowledged");
    assert_eq!(s.mttr, Some(Duration::from_secs(100)));
}

async fn history_queries_filter_and_page(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    for (i, (rule, env)) in [
        ("Down", "prod"),
        ("Down", "dev"),
        ("Slow", "prod"),
        ("Down", "prod"),
        ("Slow", "dev"),
    ]
    .into_iter()
    .enumerate()
    {
        let start = i as i64 * 100;
        let mut e = record(
            rule,
            &[("env", env), ("i", &i.to_string())],
            HistoryState::Firing,
            start,
        );
        if i % 2 == 0 {
            e.state = HistoryState::Resolved;
            e.ends_at = Some(t(start + 50));
        }
        store.upsert_episode(&e).await.unwrap();
    }
    let query = |f: &dyn Fn(&mut HistoryQuery)| {
        let mut q = HistoryQuery::default();
        f(&mut q);
        q
    };
    let starts = |page: &[vigil_evaluator::history::store::Episode]| -> Vec<i64> {
        page.iter()
            .map(|e| (e.starts_at - t(0)).num_seconds())
            .collect()
    };
    let all = store.query(&HistoryQuery::default()).await.unwrap();
    assert_eq!(starts(&all.items), [400, 300, 200, 100, 0], "newest first");
    let down = store
        .query(&query(&|q| q.rule = Some("Down".into())))
        .await
        .unwrap();
    assert_eq!(starts(&down.items), [300, 100, 0]);
    let prod = store
        .query(&query(&|q| {
            q.matchers = vec![parse_matcher("env=prod").unwrap()]
        }))
        .await
        .unwrap();
    assert_eq!(starts(&prod.items), [300, 200, 0]);
    let firing = store
        .query(&query(&|q| q.state = Some(HistoryState::Firing)))
        .await
        .unwrap();
    assert_eq!(starts(&firing.items), [300, 100]);
    // Active at some time in [160, 260): started before 260, not ended before 160.
    let window = store
        .query(&query(&|q| {
            q.from = Some(t(160));
            q.to = Some(t(260));
        }))
        .await
        .unwrap();
    assert_eq!(starts(&window.items), [200, 100]);

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .query(&query(&|q| {
                q.limit = 2;
                q.cursor = cursor.clone();
                q.matchers = vec![parse_matcher("i=~\".+\"").unwrap()];
            }))
            .await
            .unwrap();
        pages += 1;
        seen.extend(starts(&page.items));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, [400, 300, 200, 100, 0]);
    assert_eq!(pages, 3);
    let bad = store
        .query(&query(&|q| q.cursor = Some("garbage".into())))
        .await;
    assert!(bad.is_err());
}

async fn outbox_enqueue_is_idempotent_and_tracks_delivery(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let mut episode = record("Down", &[], HistoryState::Firing, 0);
    episode.fired_at = Some(t(0));
    store.upsert_episode(&episode).await.unwrap();
    let entry = |key_time: i64| OutboxEntry {
        receiver: "ops".into(),
        integration: "slack[0]".into(),
        group_key: "{}:{alertname=\"Down\"}".into(),
        payload: format!("{{\"text\":\"Down at {key_time}\"}}"),
        alerts: vec![(episode.fingerprint, "Down".into(), AlertStatus::Firing)],
        created_at: t(key_time),
    };
    let first = store.enqueue(&entry(10), "ops/10").await.unwrap();
    let Enqueued::New(id) = first.clone() else {
        panic!("first enqueue must queue: {first:?}")
    };
    let second = store.enqueue(&entry(10), "ops/10").await.unwrap();
    assert_eq!(second, Enqueued::Duplicate(id.clone()));
    assert_eq!(count(&store, "notifications").await, 1);

    let due = store.due(t(10), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].status, OutboxStatus::Pending);
    assert_eq!(due[0].payload, "{\"text\":\"Down at 10\"}");
    assert!(
        store.due(t(9), 10).await.unwrap().is_empty(),
        "not due before it was created"
    );

    assert!(store
        .mark_failed(&id, "HTTP 503", Some(503), Some(t(70)), None)
        .await
        .unwrap());
    assert!(store.due(t(69), 10).await.unwrap().is_empty());
    let retry = store.due(t(70), 10).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].attempts, 1);
    assert_eq!(retry[0].last_error.as_deref(), Some("HTTP 503"));

    assert!(store
        .mark_sent(&id, Some(200), Some("ts-1.2"), t(71), None)
        .await
        .unwrap());
    assert!(store.due(t(1000), 10).await.unwrap().is_empty());
    assert!(
        !store
            .mark_sent(&id, Some(200), None, t(72), None)
            .await
            .unwrap(),
        "already sent"
    );
    let sent = store.notification(&id).await.unwrap().unwrap();
    assert_eq!(sent.status, OutboxStatus::Sent);
    assert_eq!((sent.attempts, sent.response_code), (2, Some(200)));
    assert_eq!(sent.message_id.as_deref(), Some("ts-1.2"));
    assert_eq!(sent.sent_at, Some(t(71)));

    let other = store.enqueue(&entry(20), "ops/20").await.unwrap();
    assert!(store
        .mark_failed(other.id(), "invalid_token", Some(403), None, None)
        .await
        .unwrap());
    let gave_up = store.notification(other.id()).await.unwrap().unwrap();
    assert_eq!(gave_up.status, OutboxStatus::Failed);

    // A later episode of the same alert does not list these notifications.
    let mut later = record("Down", &[], HistoryState::Firing, 5000);
    later.fired_at = Some(t(5000));
    store.upsert_episode(&later).await.unwrap();
    store.enqueue(&entry(5010), "ops/5010").await.unwrap();
    let stored = store.episode(&episode.id()).await.unwrap().unwrap();
    let log = store.notifications_for_episode(&stored).await.unwrap();
    let ids: Vec<&str> = log.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, [id.as_str(), other.id()]);
}

async fn silences_survive_a_restart(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let registry = prometheus::Registry::new();
    let shutdown = CancellationToken::new();
    let (writer, task) = HistoryWriter::spawn(
        store.clone(),
        WriterConfig::default(),
        &registry,
        shutdown.clone(),
    )
    .unwrap();
    let mut silences = SqlSilences::load(&store, writer.clone(), Duration::from_secs(3600))
        .await
        .unwrap();
    let silence = |matcher: &str| Silence {
        id: String::new(),
        matchers: vec![parse_matcher(matcher).unwrap()],
        starts_at: t(0),
        ends_at: t(1000),
        created_by: "ops".into(),
        comment: "maintenance".into(),
    };
    let db = silences.upsert(silence("job=db"), t(0)).unwrap();
    let web = silences.upsert(silence("job=~\"web|api\""), t(0)).unwrap();
    silences.expire(&web, t(10)).unwrap();
    shutdown.cancel();
    assert_eq!(task.await.unwrap().lost, 0);

    let (writer2, _task2) = HistoryWriter::spawn(
        store.clone(),
        WriterConfig::default(),
        &prometheus::Registry::new(),
        CancellationToken::new(),
    )
    .unwrap();
    let restored = SqlSilences::load(&store, writer2, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(restored.list(), silences.list());
    assert!(restored.is_silenced(&labels(&[("job", "db")]), t(20)));
    assert!(
        !restored.is_silenced(&labels(&[("job", "web")]), t(20)),
        "expired"
    );
    assert_eq!(restored.get(&db).unwrap().comment, "maintenance");
    assert_eq!(restored.get(&web).unwrap().ends_at, t(10));

    // Another replica's newer version replaces the cached one.
    let mut theirs = restored.get(&db).unwrap();
    theirs.comment = "extended".into();
    theirs.ends_at = t(2000);
    let mut cache = restored;
    assert_eq!(cache.merge(vec![(theirs.clone(), t(5))]), 1);
    assert_eq!(
        cache.merge(vec![(theirs, t(5))]),
        0,
        "same version: unchanged"
    );
    assert_eq!(cache.get(&db).unwrap().comment, "extended");
}

async fn alert_state_snapshots_round_trip(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let snapshot = |name: &str, fired: Option<i64>| {
        let labels = labels(&[("alertname", name), ("job", "db")]);
        AlertSnapshot {
            fingerprint: Fingerprint::of(&labels),
            rule: name.into(),
            group_name: "g".into(),
            labels,
            annotations: BTreeMap::from([("summary".into(), "s".into())]),
            state: if fired.is_some() {
                HistoryState::Firing
            } else {
                HistoryState::Pending
            },
            active_at: t(0),
            fired_at: fired.map(t),
            resolved_at: None,
            keep_firing_since: None,
            last_sent_at: fired.map(|f| t(f + 1)),
            value: Some(0.25),
            updated_at: t(100),
        }
    };
    let (a, b) = (snapshot("A", None), snapshot("B", Some(60)));
    store.save_snapshots(&[a.clone(), b.clone()]).await.unwrap();
    let mut loaded = store.load_snapshots().await.unwrap();
    loaded.sort_by_key(|s| s.rule.clone());
    assert_eq!(loaded, [a.clone(), b.clone()]);
    store
        .apply(&[HistoryWrite::ForgetSnapshot(a.fingerprint)])
        .await
        .unwrap();
    assert_eq!(store.load_snapshots().await.unwrap(), [b]);
}

async fn retention_prunes_only_closed_history(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let mut closed = record("Old", &[], HistoryState::Resolved, 0);
    closed.ends_at = Some(t(100));
    let open = record("Ongoing", &[], HistoryState::Firing, 0);
    let mut recent = record("Recent", &[], HistoryState::Resolved, 0);
    recent.ends_at = Some(t(5000));
    for e in [&closed, &open, &recent] {
        store.upsert_episode(e).await.unwrap();
        store
            .record_transition(&Transition {
                alert_id: e.id(),
                from: HistoryState::Inactive,
                to: HistoryState::Firing,
                at: t(0),
                value: None,
            })
            .await
            .unwrap();
    }
    let entry = OutboxEntry {
        receiver: "ops".into(),
        integration: "webhook[0]".into(),
        group_key: "g".into(),
        payload: "{}".into(),
        alerts: vec![(closed.fingerprint, "Old".into(), AlertStatus::Firing)],
        created_at: t(10),
    };
    let sent = store.enqueue(&entry, "sent").await.unwrap();
    store
        .mark_sent(sent.id(), None, None, t(11), None)
        .await
        .unwrap();
    store.enqueue(&entry, "still-pending").await.unwrap();
    let mut silences = vec![];
    for (i, ends) in [(0, 200), (1, 9000)] {
        silences.push(HistoryWrite::Silence {
            silence: Silence {
                id: format!("s{i}"),
                matchers: vec![parse_matcher("job=db").unwrap()],
                starts_at: t(0),
                ends_at: t(ends),
                created_by: "ops".into(),
                comment: String::new(),
            },
            updated_at: t(0),
        });
    }
    store.apply(&silences).await.unwrap();

    let report = store.prune(t(1000)).await.unwrap();
    assert_eq!(
        (
            report.episodes,
            report.events,
            report.notifications,
            report.silences
        ),
        (1, 1, 1, 1)
    );
    assert!(store.episode(&closed.id()).await.unwrap().is_none());
    assert!(
        store.episode(&open.id()).await.unwrap().is_some(),
        "open episodes stay"
    );
    assert!(store.episode(&recent.id()).await.unwrap().is_some());
    assert_eq!(store.events(&open.id()).await.unwrap().len(), 1);
    assert_eq!(
        store.due(t(10_000), 10).await.unwrap().len(),
        1,
        "pending stays"
    );
    assert_eq!(count(&store, "notification_alerts").await, 1);
    let left: Vec<String> = store
        .load_silences()
        .await
        .unwrap()
        .into_iter()
        .map(|(s, _)| s.id)
        .collect();
    assert_eq!(left, ["s1"]);
    assert_eq!(store.prune(t(1000)).await.unwrap(), Default::default());
}

async fn notifier_memory_round_trips(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let log = |sent: i64| NotifyLogRow {
        receiver: "ops".into(),
        group_key: "{}:{job=\"db\"}".into(),
        firing: [Fingerprint(1), Fingerprint(u64::MAX)].into(),
        resolved: [Fingerprint(7)].into(),
        sent_at: t(sent),
    };
    let cooldown = CooldownRow {
        receiver: "ops".into(),
        fingerprint: Fingerprint(u64::MAX),
        last_firing_sent: t(10),
        cooldown: Duration::from_secs(600),
        awaiting_resolve: true,
    };
    store
        .apply(&[
            HistoryWrite::NotifyLog(log(10)),
            HistoryWrite::NotifyLog(log(20)),
            HistoryWrite::Cooldown(cooldown.clone()),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.load_notify_log().await.unwrap(),
        [log(20)],
        "latest entry wins"
    );
    assert_eq!(store.load_cooldowns().await.unwrap(), [cooldown]);
    let report = store.prune(t(1000)).await.unwrap();
    assert_eq!(report.notify_log, 1);
    assert!(store.load_notify_log().await.unwrap().is_empty());
    assert_eq!(
        store.load_cooldowns().await.unwrap().len(),
        1,
        "an owed resolved notification is never pruned"
    );
}

async fn pruner_applies_the_retention_to_the_clock(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let mut closed = record("Old", &[], HistoryState::Resolved, 0);
    closed.ends_at = Some(t(100));
    store.upsert_episode(&closed).await.unwrap();
    let mut ancient = record("Ancient", &[], HistoryState::Resolved, -90 * 86_400);
    ancient.ends_at = Some(t(-80 * 86_400));
    store.upsert_episode(&ancient).await.unwrap();
    let day = Duration::from_secs(86_400);
    // 29 days after the end: inside a 30-day retention.
    let clock = Arc::new(SimClock::new(t(100) + chrono::Duration::days(29)));
    let shutdown = CancellationToken::new();
    let pruner = tokio::spawn(run_pruner(
        store.clone(),
        30 * day,
        Duration::from_millis(10),
        clock.clone(),
        shutdown.clone(),
    ));
    eventually(
        "the first round prunes what is already too old",
        Duration::from_secs(30),
        || {
            let store = store.clone();
            let id = ancient.id();
            async move { store.episode(&id).await.unwrap().is_none() }
        },
    )
    .await;
    assert!(
        store.episode(&closed.id()).await.unwrap().is_some(),
        "inside the retention"
    );
    clock.advance(2 * day);
    eventually(
        "the pruner deletes the old episode",
        Duration::from_secs(30),
        || {
            let store = store.clone();
            let id = closed.id();
            async move { store.episode(&id).await.unwrap().is_none() }
        },
    )
    .await;
    shutdown.cancel();
    pruner.await.unwrap();
}

fn transition(i: i64) -> HistoryWrite {
    HistoryWrite::Transition(Transition {
        alert_id: format!("storm-{}", i % 50),
        from: HistoryState::Pending,
        to: HistoryState::Firing,
        at: t(i),
        value: Some(i as f64),
    })
}

async fn writer_flushes_everything_on_shutdown(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let registry = prometheus::Registry::new();
    let shutdown = CancellationToken::new();
    let config = WriterConfig {
        max_batch: 100,
        flush_interval: Duration::from_secs(3600),
        ..WriterConfig::default()
    };
    let (writer, task) =
        HistoryWriter::spawn(store.clone(), config, &registry, shutdown.clone()).unwrap();
    for i in 0..1050 {
        writer.record(transition(i)).unwrap();
    }
    shutdown.cancel();
    let summary = task.await.unwrap();
    assert_eq!((summary.written, summary.lost), (1050, 0));
    assert_eq!(count(&store, "alert_events").await, 1050);
    assert_eq!(writer.backlog(), 0);
    assert_eq!(metric(&registry, "vigil_history_writes_total"), 1050.0);
    assert!(
        writer.record(transition(0)).is_err(),
        "stopped writer refuses"
    );
}

// ----------------------------------------------- database unavailable

/// Records a storm while the database cannot be reached, makes it
/// reachable with `make_available`, and checks every write lands.
async fn writer_catches_up(store: HistoryStore, make_available: impl Future<Output = ()>) {
    let registry = prometheus::Registry::new();
    let shutdown = CancellationToken::new();
    let config = WriterConfig {
        max_batch: 200,
        flush_interval: Duration::from_millis(20),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..WriterConfig::default()
    };
    let (writer, task) =
        HistoryWriter::spawn(store.clone(), config, &registry, shutdown.clone()).unwrap();
    for i in 0..2000 {
        writer.record(transition(i)).unwrap();
    }
    eventually(
        "writes fail while the database is away",
        Duration::from_secs(30),
        || {
            let failures = metric(&registry, "vigil_history_write_failures_total");
            async move { failures >= 2.0 }
        },
    )
    .await;
    assert_eq!(writer.backlog(), 2000, "nothing written, nothing dropped");
    assert_eq!(metric(&registry, "vigil_history_backlog"), 2000.0);

    make_available.await;
    for i in 2000..2500 {
        writer.record(transition(i)).unwrap();
    }
    eventually("the backlog drains", Duration::from_secs(60), || {
        let backlog = writer.backlog();
        async move { backlog == 0 }
    })
    .await;
    assert_eq!(count(&store, "alert_events").await, 2500);
    assert_eq!(metric(&registry, "vigil_history_dropped_writes_total"), 0.0);
    shutdown.cancel();
    assert_eq!(task.await.unwrap().lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_catches_up_after_database_was_unavailable_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let url = format!("sqlite://{}", missing.join("vigil.db").display());
    let store = HistoryStore::new(Database::connect_lazy(&url).unwrap());
    writer_catches_up(store, async {
        std::fs::create_dir(&missing).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_catches_up_after_database_was_unavailable_postgres() {
    let Some(db) = TestDb::postgres_unborn() else {
        return;
    };
    let store = HistoryStore::new(Database::connect_lazy(&db.url).unwrap());
    writer_catches_up(store, db.create()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_catches_up_after_its_connections_were_killed_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = HistoryStore::connect(&db.url).await.unwrap();
    let registry = prometheus::Registry::new();
    let shutdown = CancellationToken::new();
    let (writer, task) = HistoryWriter::spawn(
        store.clone(),
        WriterConfig::default(),
        &registry,
        shutdown.clone(),
    )
    .unwrap();
    writer.record(transition(0)).unwrap();
    eventually("first write lands", Duration::from_secs(30), || {
        let backlog = writer.backlog();
        async move { backlog == 0 }
    })
    .await;
    let (admin, name) = db.postgres.clone().unwrap();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    conn.execute(
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        .as_str(),
    )
    .await
    .unwrap();
    for i in 1..300 {
        writer.record(transition(i)).unwrap();
    }
    eventually("the backlog drains", Duration::from_secs(60), || {
        let backlog = writer.backlog();
        async move { backlog == 0 }
    })
    .await;
    assert_eq!(count(&store, "alert_events").await, 300);
    shutdown.cancel();
    assert_eq!(task.await.unwrap().lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_keeps_writes_beyond_its_capacity_and_reports_congestion() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("not-yet");
    let url = format!("sqlite://{}", missing.join("vigil.db").display());
    let store = HistoryStore::new(Database::connect_lazy(&url).unwrap());
    let registry = prometheus::Registry::new();
    let shutdown = CancellationToken::new();
    let config = WriterConfig {
        capacity: 10,
        max_batch: 5,
        flush_interval: Duration::from_millis(20),
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        ..WriterConfig::default()
    };
    let (writer, task) =
        HistoryWriter::spawn(store.clone(), config, &registry, shutdown.clone()).unwrap();
    assert!(!writer.congested());
    for i in 0..40 {
        writer.record(transition(i)).unwrap();
    }
    assert_eq!(writer.backlog(), 40, "four times the capacity, all kept");
    assert!(writer.congested(), "the backlog is above the capacity");
    assert_eq!(metric(&registry, "vigil_history_dropped_writes_total"), 0.0);

    std::fs::create_dir(&missing).unwrap();
    eventually("the spill is caught up", Duration::from_secs(60), || {
        let backlog = writer.backlog();
        async move { backlog == 0 }
    })
    .await;
    assert!(!writer.congested());
    assert_eq!(count(&store, "alert_events").await, 40);
    assert_eq!(metric(&registry, "vigil_history_dropped_writes_total"), 0.0);
    shutdown.cancel();
    assert_eq!(task.await.unwrap().lost, 0);
}

// ------------------------------------------------- leases and the leader

const LEASE_TTL: Duration = Duration::from_secs(60);

/// Moves the database's clock past every lease's expiry (the rows' times
/// back), as a frozen holder would see it after a minute.
async fn lease_clock_passes(store: &HistoryStore, by: Duration) {
    sqlx::query("UPDATE leases SET expires_at = expires_at - $1")
        .bind(i64::try_from(by.as_millis()).unwrap())
        .execute(store.database().pool())
        .await
        .unwrap();
}

async fn leases_renew_expire_and_pass_with_a_new_epoch(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let leases = Leases::new(store.database().clone());
    assert_eq!(
        leases.acquire("l", "a", LEASE_TTL, false).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        leases.acquire("l", "b", LEASE_TTL, false).await.unwrap(),
        None,
        "a live lease is not taken"
    );
    assert!(leases.renew("l", "a", 1, LEASE_TTL).await.unwrap());
    let live = leases.get("l").await.unwrap().unwrap();
    assert!(live.is_live() && live.remaining > LEASE_TTL / 2, "{live:?}");

    lease_clock_passes(&store, LEASE_TTL * 2).await;
    assert!(!leases.get("l").await.unwrap().unwrap().is_live());
    assert!(
        !leases.renew("l", "a", 1, LEASE_TTL).await.unwrap(),
        "an expired lease is not renewed"
    );
    assert_eq!(
        leases.acquire("l", "b", LEASE_TTL, false).await.unwrap(),
        Some(2),
        "taken over with the epoch bumped"
    );
    assert!(!leases.release("l", "a", 1).await.unwrap(), "a lost it");
    assert!(leases.release("l", "b", 2).await.unwrap());
    assert_eq!(
        leases.acquire("l", "a", LEASE_TTL, false).await.unwrap(),
        Some(3),
        "a released lease is taken at once"
    );
}

async fn stale_epoch_claims_outcomes_and_log_writes_are_refused(url: String) {
    let store = HistoryStore::connect(&url).await.unwrap();
    let leases = Leases::new(store.database().clone());
    let entry = OutboxEntry {
        receiver: "ops".into(),
        integration: "webhook[0]".into(),
        group_key: "{}:{alertname=\"Down\"}".into(),
        payload: "{}".into(),
        alerts: vec![],
        created_at: t(10),
    };
    let id = store.enqueue(&entry, "k").await.unwrap().id().to_string();
    let fence = |epoch| Fence {
        lease: "leader".into(),
        epoch,
    };
    assert_eq!(
        leases
            .acquire("leader", "a", LEASE_TTL, false)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        store.claim(&id, Some(&fence(1)), t(11)).await.unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        store
            .notification(&id)
            .await
            .unwrap()
            .unwrap()
            .claimed_epoch,
        Some(1)
    );

    // a freezes; b takes the lease over.
    lease_clock_passes(&store, LEASE_TTL * 2).await;
    assert_eq!(
        leases
            .acquire("leader", "b", LEASE_TTL, false)
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        store.claim(&id, Some(&fence(1)), t(12)).await.unwrap(),
        Claim::StaleEpoch { current: Some(2) },
        "a's claim is refused"
    );
    assert!(
        !store
            .mark_sent(&id, Some(200), None, t(12), Some(&fence(1)))
            .await
            .unwrap(),
        "a's outcome is refused"
    );
    assert!(!store
        .mark_failed(&id, "HTTP 500", Some(500), Some(t(20)), Some(&fence(1)))
        .await
        .unwrap());
    let row = store.notification(&id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (OutboxStatus::Pending, 0));

    let log = |sent: i64| NotifyLogRow {
        receiver: "ops".into(),
        group_key: "{}:{alertname=\"Down\"}".into(),
        firing: [Fingerprint(1)].into(),
        resolved: Default::default(),
        sent_at: t(sent),
    };
    let cooldown = CooldownRow {
        receiver: "ops".into(),
        fingerprint: Fingerprint(1),
        last_firing_sent: t(12),
        cooldown: Duration::ZERO,
        awaiting_resolve: true,
    };
    let fenced = |epoch, write| HistoryWrite::Fenced {
        fence: fence(epoch),
        write: Box::new(write),
    };
    store
        .apply(&[
            fenced(1, HistoryWrite::NotifyLog(log(12))),
            fenced(1, HistoryWrite::Cooldown(cooldown.clone())),
            fenced(1, HistoryWrite::ForgetSnapshot(Fingerprint(1))),
        ])
        .await
        .unwrap();
    assert!(
        store.load_notify_log().await.unwrap().is_empty(),
        "a's log write is refused, without failing the batch"
    );
    assert!(store.load_cooldowns().await.unwrap().is_empty());

    // b, the leader, claims, sends, records and logs.
    assert_eq!(
        store.claim(&id, Some(&fence(2)), t(13)).await.unwrap(),
        Claim::Claimed
    );
    assert!(store
        .mark_sent(&id, Some(200), None, t(13), Some(&fence(2)))
        .await
        .unwrap());
    assert_eq!(
        store.claim(&id, Some(&fence(2)), t(14)).await.unwrap(),
        Claim::NotPending
    );
    store
        .apply(&[
            fenced(2, HistoryWrite::NotifyLog(log(13))),
            fenced(2, HistoryWrite::Cooldown(cooldown.clone())),
        ])
        .await
        .unwrap();
    assert_eq!(store.load_notify_log().await.unwrap(), [log(13)]);
    assert_eq!(store.load_cooldowns().await.unwrap(), [cooldown]);
}

/// One replica's election on its own pool, stepped by hand, its term on a
/// manual monotonic clock.
struct Replica {
    elector: LeaderElector,
    step: ManualTicks,
    clock: Arc<SimClock>,
    stop: CancellationToken,
}

impl Replica {
    async fn start(url: &str, holder: &str, mode: LeaseMode) -> Replica {
        let (ticks, step) = Ticks::manual();
        let clock = Arc::new(SimClock::new(chrono::DateTime::UNIX_EPOCH));
        let stop = CancellationToken::new();
        let config = LeaderConfig {
            holder: holder.to_string(),
            ..LeaderConfig::default()
        };
        let leases = Leases::new(Database::connect(url).await.unwrap());
        let elector = LeaderElector::run(leases, config, mode, ticks, clock.clone(), stop.clone());
        Replica {
            elector,
            step,
            clock,
            stop,
        }
    }

    fn term(&self) -> Option<Term> {
        self.elector.leadership().term().cloned()
    }

    fn epoch(&self) -> Option<i64> {
        self.term().and_then(|t| t.epoch())
    }

    /// A round one second later.
    async fn round(&self) {
        self.clock.advance(Duration::from_secs(1));
        assert!(self.step.step().await, "the elector stopped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_node_always_leads() {
    let db = TestDb::temp_sqlite();
    let history = Database::connect(&db.url).await.unwrap();
    let stop = CancellationToken::new();
    let elector = LeaderElector::start(
        &db.url,
        &history,
        LeaderConfig::default(),
        Ticks::Every(Duration::from_secs(60)),
        Arc::new(SystemClock),
        stop.clone(),
    )
    .unwrap();
    assert!(elector.is_leader(), "leads before the database answered");
    stop.cancel();
    elector.join().await;
    let before = Leases::new(history.clone())
        .get(vigil_evaluator::history::leader::DEFAULT_LEASE)
        .await
        .unwrap()
        .map_or(0, |l| l.epoch);
    // The next run of the process takes the lease by force.
    let a = Replica::start(&db.url, "a", LeaseMode::Sole).await;
    assert!(
        a.elector.is_leader() && a.epoch().is_none(),
        "unfenced at first"
    );
    a.round().await;
    assert_eq!(a.epoch(), Some(before + 1), "fenced after its first round");
    a.clock.advance(Duration::from_secs(3600));
    a.round().await;
    assert!(a.elector.is_leader(), "never steps down");
    a.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_postgres_replica_leads_and_a_frozen_one_is_replaced() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let store = HistoryStore::connect(&db.url).await.unwrap();
    let a = Replica::start(&db.url, "a", LeaseMode::Compete).await;
    let b = Replica::start(&db.url, "b", LeaseMode::Compete).await;
    assert!(
        !a.elector.is_leader() && !b.elector.is_leader(),
        "nobody leads before a round"
    );
    a.round().await;
    b.round().await;
    assert_eq!(
        (a.epoch(), b.epoch()),
        (Some(1), None),
        "the first to try leads"
    );
    for _ in 0..3 {
        a.round().await;
        b.round().await;
        assert!(a.elector.is_leader() && !b.elector.is_leader(), "stable");
    }
    let old = a.term().unwrap();

    // a freezes (no rounds): 4 s after its last renewal its own clock ends
    // its term, before the lease can expire on the database's clock.
    a.clock.advance(Duration::from_secs(4));
    assert!(!old.is_valid(), "stopped sending before the lease can pass");
    b.round().await;
    assert!(
        !b.elector.is_leader(),
        "not yet expired on the database's clock"
    );
    lease_clock_passes(&store, Duration::from_secs(5)).await;
    b.round().await;
    assert_eq!(b.epoch(), Some(2), "taken over with the epoch bumped");

    // a wakes up: the database refuses its renewal; it stays a standby.
    a.round().await;
    assert_eq!(a.elector.leadership(), Leadership::Standby);
    b.round().await;
    assert!(
        b.elector.is_leader() && !a.elector.is_leader(),
        "exactly one leads"
    );

    // A leader that shuts down hands over at the standby's next round.
    b.stop.cancel();
    b.elector.join().await;
    a.round().await;
    assert_eq!(a.epoch(), Some(3));
    a.stop.cancel();
    a.elector.join().await;
}
