//! The delivery task against a real outbox (SQLite) and a real webhook
//! receiver over HTTP: entries left pending by another replica (or by an
//! earlier attempt whose backoff has passed) are delivered while the task
//! runs, not only at start; a delivery the stage gives up on stays pending
//! with a backed-off next attempt; and a standby holds its notifications and,
//! on becoming the leader, sends only those the notification log does not
//! show as told already.
//!
//! The delivery task runs on a simulated clock: its retry rounds and the
//! backoff of a pending entry pass by stepping that clock ([`Rig::round`]),
//! not by sleeping or rewriting timestamps in SQL. What the task does in
//! response (HTTP, SQL) is waited for by polling against a real deadline;
//! the delivery stage's own quick retries (tens of milliseconds) run on the
//! real clock.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;
use crate::support::wait;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::Webhook;
use prometheus::Registry;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use vigil_evaluator::clock::{Clock, SimClock, SystemClock};
use vigil_evaluator::history::leader::{
    LeaderConfig, LeaderElector, Leadership, LeaseMode, ManualTicks, Term, Ticks,
};
use vigil_evaluator::history::lease::Leases;
use vigil_evaluator::history::notification_log::Outbox;
use vigil_evaluator::history::outbox::{DeliveredRecord, OutboxEntry, OutboxStatus};
use vigil_evaluator::history::payload::notification_payload;
use vigil_evaluator::history::store::{AlertSnapshot, HistoryState, HistoryWrite};
use vigil_evaluator::history::{new_id, Database, HistoryStore};
use vigil_evaluator::notify::alert::{AlertStatus, Notification};
use vigil_evaluator::notify::deliver::{DeliveryStage, Jitter, Retrier, RetryPolicy};
use vigil_evaluator::notify::delivery::{
    idempotency_key, notify_log_row, retry_delay, run_delivery, RETRY_EVERY,
};
use vigil_evaluator::notify::receivers::Integration;
use vigil_evaluator::server::config::ReceiverIntegrations;
use vigil_evaluator::server::metrics::ServerMetrics;

const DEADLINE: Duration = Duration::from_secs(20);

struct Rig {
    /// The delivery task's clock.
    clock: Arc<SimClock>,
    store: HistoryStore,
    webhook: Webhook,
    notifications: mpsc::UnboundedSender<Notification>,
    leader: watch::Sender<Leadership>,
    _receivers: watch::Sender<Arc<ReceiverIntegrations>>,
    _dir: tempfile::TempDir,
    _stop: CancellationToken,
}

/// The delivery task on a fresh SQLite outbox and a simulated clock,
/// sending to an in-test webhook as receiver `team-a`; the stage gives up
/// after `deadline` (real time).
async fn rig(leading: bool, deadline: Duration) -> Rig {
    let clock = Arc::new(SimClock::new(SystemClock.now()));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("history.db").display());
    let db = Database::connect(&url).await.unwrap();
    let store = HistoryStore::new(db);
    let stop = CancellationToken::new();
    let registry = Registry::new();
    let writer = crate::support::default_writer(&store, &registry, &stop);
    let webhook = Webhook::start().await;
    let receiver = common::build_one(&format!(
        "webhook_configs: [{{url: 'http://127.0.0.1:{}/hook'}}]",
        webhook.port
    ));
    let integrations: ReceiverIntegrations = [(
        "team-a".to_string(),
        vec![Integration {
            receiver_name: "team-a".into(),
            integration: "webhook",
            index: 0,
            receiver,
        }],
    )]
    .into_iter()
    .collect();
    let (receivers_tx, receivers) = watch::channel(Arc::new(integrations));
    let (leader, leader_rx) = watch::channel(if leading {
        Leadership::Leading(Term::unfenced())
    } else {
        Leadership::Standby
    });
    let retrier = Retrier::new(
        RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
            deadline,
            jitter: Jitter::None,
        },
        Arc::new(SystemClock),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    let task_store = store.clone();
    let task_clock: Arc<dyn Clock> = clock.clone();
    tokio::spawn(async move {
        run_delivery(
            rx,
            receivers,
            DeliveryStage::new(Arc::new(retrier)),
            ServerMetrics::register(&registry).unwrap(),
            Duration::from_secs(1),
            Some(Outbox {
                store: task_store,
                writer,
                leader: leader_rx,
                forward: false,
            }),
            task_clock,
        )
        .await;
    });
    Rig {
        clock,
        store,
        webhook,
        notifications: tx,
        leader,
        _receivers: receivers_tx,
        _dir: dir,
        _stop: stop,
    }
}

impl Rig {
    /// Waits until the delivery task is parked on its clock until its next
    /// retry round (so whatever it was doing, the start-up resume or a
    /// round, is done).
    async fn settle(&self) {
        wait("the delivery task to wait for its next round", || {
            self.clock.sleepers() > 0
        })
        .await;
    }

    /// One retry round: the clock moves on by [`RETRY_EVERY`], the task runs
    /// the round, and what the round sent has a moment to reach the webhook.
    async fn round(&self) {
        self.clock.advance(RETRY_EVERY);
        self.settle().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait(what: &str, done: impl FnMut() -> bool) {
    assert!(
        wait::until_sync(DEADLINE, Duration::from_millis(50), done).await,
        "timed out waiting for {what}"
    );
}

fn notification(pod: &str) -> Notification {
    let mut n = common::notification(vec![common::alert(pod, "page", AlertStatus::Firing)]);
    n.group_key = format!("{{}}:{{pod=\"{pod}\"}}");
    n
}

async fn count(store: &HistoryStore, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(store.database().pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_another_replica_left_pending_is_delivered_while_running() {
    let rig = rig(true, Duration::from_secs(5)).await;
    // Past the start-up resume: only the periodic retry can find it.
    rig.settle().await;
    let n = notification("p1");
    let created = rig.clock.now() - chrono::Duration::seconds(30);
    let entry = OutboxEntry::for_notification(&n, "webhook[0]", notification_payload(&n), created);
    rig.store
        .enqueue(&entry, &idempotency_key(&n, "webhook[0]", created))
        .await
        .unwrap();
    let started = Instant::now();
    rig.round().await;
    wait("the pending entry delivered", || {
        rig.webhook.count("firing") == 1
    })
    .await;
    assert!(started.elapsed() < RETRY_EVERY + Duration::from_secs(3));
    let deadline = Instant::now() + DEADLINE;
    while count(
        &rig.store,
        "SELECT COUNT(*) FROM notifications WHERE status = 'sent'",
    )
    .await
        < 1
    {
        assert!(Instant::now() < deadline, "the entry is marked sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Another round or two: it is not sent again.
    rig.round().await;
    rig.round().await;
    assert_eq!(rig.webhook.count("firing"), 1);
    // Queued by another process, which may have sent it already: marked as
    // a re-send, under the notification's own key.
    assert_eq!(rig.webhook.redelivered(), vec![true]);
    assert_eq!(
        rig.webhook.payloads()[0]["idempotencyKey"],
        n.idempotency_key().as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_given_up_on_stays_pending_with_a_backoff_and_is_retried() {
    let rig = rig(true, Duration::from_millis(200)).await;
    rig.webhook.refuse(true);
    rig.notifications.send(notification("p2")).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let sql = "SELECT COUNT(*) FROM notifications WHERE status = 'pending' AND attempts = 1 \
               AND last_error IS NOT NULL";
    while count(&rig.store, sql).await < 1 {
        assert!(
            Instant::now() < deadline,
            "the failed entry stays pending with its error"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = rig.webhook.refused();
    assert!(refused >= 2, "the stage retried first: {refused}");
    let wait_ms: i64 = sqlx::query_scalar(
        "SELECT next_attempt_at - created_at FROM notifications WHERE status = 'pending'",
    )
    .fetch_one(rig.store.database().pool())
    .await
    .unwrap();
    let backoff = retry_delay(Duration::ZERO).as_millis() as i64;
    assert!(
        wait_ms >= backoff,
        "next attempt {wait_ms} ms after creation"
    );
    // Not retried before its time.
    rig.round().await;
    assert_eq!(rig.webhook.refused(), refused);

    // The backoff passes (stepped on the clock, not slept) and the
    // receiver is back.
    rig.webhook.refuse(false);
    rig.clock.advance(retry_delay(Duration::ZERO));
    rig.settle().await;
    wait("the retried delivery", || rig.webhook.count("firing") == 1).await;
    rig.round().await;
    rig.round().await;
    assert_eq!(rig.webhook.count("firing"), 1);
    // Its own retry of a delivery the receiver refused: not a re-send.
    assert_eq!(rig.webhook.redelivered(), vec![false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_made_without_an_outbox_row_reaches_the_delivery_log_once() {
    let rig = rig(true, Duration::from_secs(5)).await;
    let n = notification("offline");
    let created = rig.clock.now() - chrono::Duration::seconds(5);
    let record = DeliveredRecord {
        id: new_id(created),
        idempotency_key: idempotency_key(&n, "webhook[0]", created),
        entry: OutboxEntry::for_notification(&n, "webhook[0]", notification_payload(&n), created),
        status: OutboxStatus::Sent,
        attempts: 1,
        last_error: None,
        response_code: Some(200),
        message_id: None,
        finished_at: rig.clock.now(),
    };
    // Written by the batched writer once the database answers; a replayed
    // batch (a lost commit acknowledgement) adds nothing.
    for _ in 0..2 {
        rig.store
            .apply(&[HistoryWrite::Delivered(record.clone())])
            .await
            .unwrap();
    }
    let row = rig.store.notification(&record.id).await.unwrap().unwrap();
    assert_eq!(row.status, OutboxStatus::Sent);
    assert_eq!(row.response_code, Some(200));
    assert!(row.sent_at.is_some());
    assert_eq!(
        count(&rig.store, "SELECT COUNT(*) FROM notifications").await,
        1
    );
    assert_eq!(
        count(
            &rig.store,
            "SELECT COUNT(*) FROM notification_alerts WHERE alert_status = 'firing'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_sends_the_held_notifications_the_old_one_did_not() {
    let rig = rig(false, Duration::from_secs(5)).await;
    let told = notification("told");
    let untold = notification("untold");
    rig.notifications.send(told.clone()).unwrap();
    rig.notifications.send(untold.clone()).unwrap();
    // The old leader sent `told` (its notification-log row), not `untold`.
    rig.store
        .apply(&[HistoryWrite::NotifyLog(notify_log_row(
            &told,
            rig.clock.now(),
        ))])
        .await
        .unwrap();
    rig.round().await;
    assert_eq!(rig.webhook.payloads().len(), 0, "a standby sends nothing");

    rig.leader
        .send_replace(Leadership::Leading(Term::unfenced()));
    wait("the untold notification", || {
        rig.webhook.payloads().len() == 1
    })
    .await;
    rig.round().await;
    rig.round().await;
    let payloads = rig.webhook.payloads();
    assert_eq!(payloads.len(), 1, "{payloads:#?}");
    assert_eq!(payloads[0]["alerts"][0]["labels"]["pod"], "untold");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_a_firing_notification_saves_the_firing_state_with_it() {
    let rig = rig(false, Duration::from_secs(5)).await;
    let n = notification("state");
    let alert = &n.alerts[0];
    let fired_at = alert.alert.starts_at;
    let saved = |state: HistoryState, active_at| AlertSnapshot {
        fingerprint: alert.fingerprint,
        rule: "HighErrorRate".into(),
        group_name: "g".into(),
        labels: alert.alert.labels.clone(),
        annotations: Default::default(),
        state,
        active_at,
        fired_at: None,
        resolved_at: None,
        keep_firing_since: None,
        last_sent_at: None,
        value: Some(1.0),
        updated_at: active_at,
    };
    // The batched writer has saved the alert as pending, not yet as firing.
    let active_at = fired_at - chrono::Duration::seconds(10);
    rig.store
        .apply(&[HistoryWrite::Snapshot(saved(
            HistoryState::Pending,
            active_at,
        ))])
        .await
        .unwrap();
    let entry = OutboxEntry::for_notification(&n, "webhook[0]", notification_payload(&n), fired_at);
    let key = idempotency_key(&n, "webhook[0]", fired_at);
    rig.store
        .enqueue_firing(&entry, &key, &[(alert.fingerprint, fired_at)])
        .await
        .unwrap();
    let snapshots = rig.store.load_snapshots().await.unwrap();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].state, HistoryState::Firing);
    assert_eq!(snapshots[0].fired_at, Some(fired_at));

    // A pending alert of a later episode (activated after that firing) is
    // left alone, e.g. when an old notification is queued again.
    let later = fired_at + chrono::Duration::seconds(60);
    rig.store
        .apply(&[HistoryWrite::Snapshot(saved(HistoryState::Pending, later))])
        .await
        .unwrap();
    let again = OutboxEntry::for_notification(&n, "webhook[0]", notification_payload(&n), later);
    rig.store
        .enqueue_firing(
            &again,
            &idempotency_key(&n, "webhook[0]", later),
            &[(alert.fingerprint, fired_at)],
        )
        .await
        .unwrap();
    let snapshots = rig.store.load_snapshots().await.unwrap();
    assert_eq!(snapshots[0].state, HistoryState::Pending);
}

/// A replica's election on the rig's database, stepped by hand, its term
/// on a manual monotonic clock.
struct Elected {
    elector: LeaderElector,
    step: ManualTicks,
    clock: Arc<SimClock>,
    _stop: tokio_util::sync::DropGuard,
}

impl Elected {
    async fn lead(store: &HistoryStore, holder: &str) -> Elected {
        let (ticks, step) = Ticks::manual();
        let clock = Arc::new(SimClock::new(chrono::DateTime::UNIX_EPOCH));
        let stop = CancellationToken::new();
        let elector = LeaderElector::run(
            Leases::new(store.database().clone()),
            LeaderConfig {
                holder: holder.to_string(),
                ..LeaderConfig::default()
            },
            LeaseMode::Compete,
            ticks,
            clock.clone(),
            stop.clone(),
        );
        assert!(step.step().await);
        assert!(elector.is_leader(), "{holder} takes the lease");
        Elected {
            elector,
            step,
            clock,
            _stop: stop.drop_guard(),
        }
    }
}

async fn wait_rows(store: &HistoryStore, what: &str, sql: &str, want: i64) {
    let reached = wait::until(DEADLINE, Duration::from_millis(50), || async {
        count(store, sql).await == want
    })
    .await;
    assert!(reached, "timed out waiting for {what}: {sql}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_term_stops_sending_at_once_and_the_next_epoch_sends_what_was_left() {
    let rig = rig(false, Duration::from_secs(60)).await;
    let a = Elected::lead(&rig.store, "a").await;
    rig.leader.send_replace(a.elector.leadership());
    rig.webhook.refuse(true);
    rig.notifications.send(notification("in-flight")).unwrap();
    wait("attempts under epoch 1", || rig.webhook.refused() >= 2).await;
    wait_rows(
        &rig.store,
        "the claim under epoch 1",
        "SELECT COUNT(*) FROM notifications WHERE status = 'pending' AND epoch = 1",
        1,
    )
    .await;

    // a freezes past its term (its elector has not run a round since).
    a.clock.advance(Duration::from_secs(4));
    assert!(!a.elector.is_leader());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = rig.webhook.refused();
    rig.notifications.send(notification("after")).unwrap();
    rig.round().await;
    assert_eq!(
        rig.webhook.refused(),
        refused,
        "no attempt after the term lapsed, neither the retries nor the new notification"
    );
    wait_rows(
        &rig.store,
        "the abandoned entry left pending without an outcome",
        "SELECT COUNT(*) FROM notifications WHERE status = 'pending' AND attempts = 0",
        1,
    )
    .await;

    // b takes the lease over once it expired on the database's clock.
    sqlx::query("UPDATE leases SET expires_at = expires_at - 10000")
        .execute(rig.store.database().pool())
        .await
        .unwrap();
    let b = Elected::lead(&rig.store, "b").await;
    assert_eq!(b.elector.leadership().term().and_then(Term::epoch), Some(2));
    rig.webhook.refuse(false);
    rig.leader.send_replace(b.elector.leadership());
    wait("both notifications under epoch 2", || {
        rig.webhook.count("firing") == 2
    })
    .await;
    wait_rows(
        &rig.store,
        "both recorded sent under epoch 2",
        "SELECT COUNT(*) FROM notifications WHERE status = 'sent' AND epoch = 2",
        2,
    )
    .await;
    // Two groups, so two lanes: their order is not fixed, each is sent once.
    let mut pods: Vec<String> = rig
        .webhook
        .payloads()
        .iter()
        .map(|p| {
            p["alerts"][0]["labels"]["pod"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    pods.sort();
    assert_eq!(pods, ["after", "in-flight"]);
    drop(a.step);
    drop(b.step);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_held_while_the_term_lapsed_is_sent_once_the_lease_is_renewed() {
    let rig = rig(false, Duration::from_secs(5)).await;
    let a = Elected::lead(&rig.store, "a").await;
    rig.leader.send_replace(a.elector.leadership());
    // The process stalls past its term; the lease has not expired on the
    // database's clock, and nobody else took it.
    a.clock.advance(Duration::from_secs(4));
    rig.notifications.send(notification("stalled")).unwrap();
    rig.round().await;
    assert_eq!(rig.webhook.payloads().len(), 0, "not sent on a lapsed term");

    assert!(a.step.step().await);
    assert!(a.elector.is_leader(), "renewed under the same epoch");
    // Sent at the next retry round.
    rig.round().await;
    wait("the held notification after the renewal", || {
        rig.webhook.count("firing") == 1
    })
    .await;
    rig.round().await;
    rig.round().await;
    assert_eq!(rig.webhook.count("firing"), 1);
}
