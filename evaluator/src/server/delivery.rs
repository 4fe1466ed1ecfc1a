//! The delivery task: takes the notifier's notifications off a channel and
//! delivers each to every integration of its receiver through the
//! [`DeliveryStage`] (retries, Slack pacing), counting the outcome per
//! receiver and integration.
//!
//! Durable delivery (with an [`Outbox`]): each notification is written to
//! the SQL outbox for each integration, under its idempotency key, before
//! it is sent, and marked sent or failed after the delivery stage's
//! outcome; a delivered one also leaves its notification-log and cooldown
//! rows, so a restart neither repeats it nor forgets to send its
//! resolution. A mark the database does not take is retried until it does
//! (the entry counts as in flight meanwhile, so it is not sent again).
//!
//! Order: deliveries of one lane (receiver, integration, group) go out one
//! at a time, in the order the notifier produced them, so a receiver never
//! sees an alert's resolution before its firing notification, even while
//! the stage retries a receiver that is down.
//!
//! Retries while running: when the stage gives up on a retryable error
//! (receiver down longer than its deadline), the outbox entry stays pending
//! with a backed-off `next_attempt_at`; every [`RETRY_EVERY`] the leader
//! delivers the entries that are due and not in flight (its own retries,
//! and whatever an old leader left pending), until [`GIVE_UP_AFTER`].
//!
//! Leadership: only the leader sends. A standby (or a replica that lost the
//! database, which makes it step down) holds its notifications in memory,
//! in order, and drops those the leader's notification log shows were
//! already told to the receiver. When it becomes the leader it first
//! delivers the outbox entries left pending, then the held notifications the
//! notification log does not cover; so a fail-over, or a database outage of
//! a single replica, neither repeats nor drops a notification. A delivery
//! whose term lapsed before it was sent, and which the database did not
//! take into the outbox, goes back to the held notifications (in the order
//! the notifier produced it) rather than being lost. Without a
//! database that answers, a leader still delivers (without an outbox row)
//! while its lease term lasts; the delivery's row reaches the delivery log
//! through the batched history writer once the database answers again.
//!
//! Fencing: leadership is a lease term with an epoch
//! ([`crate::history::leader`]). Right before sending, a delivery checks
//! that the term is still valid on this replica's monotonic clock and
//! claims its outbox entry under the epoch (the database refuses a stale
//! one); it is abandoned, left pending for the next leader, the moment the
//! term runs out (a frozen or cut-off leader wakes up to a lapsed term);
//! its outcome and its notification-log and cooldown rows are written under
//! the same epoch. So a replica that lost the lease sends nothing more and
//! its late writes do not land.
//!
//! Re-sends: every attempt carries the notification's idempotency key
//! ([`Notification::idempotency_key`]). An outbox entry resumed by a
//! process that did not queue it (a restart, a new leader) may have reached
//! the receiver before the old process died, so it goes out marked as a
//! redelivery ([`Notification::redelivery`]).
//!
//! On shutdown the channel closes; deliveries already started get a grace
//! period to finish, then are abandoned with a log line.
//!
//! Time (when a notification was received, when an entry is due, the retry
//! rounds, the grace period) comes from the injected [`Clock`], so tests
//! step a simulated clock instead of sleeping.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinSet;

use super::config::ReceiverIntegrations;
use super::durability::{
    cooldown_rows, notification_from_payload, notification_payload, notify_log_row,
};
use super::metrics::ServerMetrics;
use crate::clock::Clock;
use crate::history::leader::{Leadership, Term};
use crate::history::lease::Fence;
use crate::history::outbox::{
    idempotency_key, Claim, DeliveredRecord, NotificationRecord, OutboxEntry, OutboxStatus,
};
use crate::history::store::HistoryWrite;
use crate::history::writer::HistoryWriter;
use crate::history::{new_id, HistoryStore};
use crate::notify::alert::{AlertStatus, Fingerprint, Notification};
use crate::notify::deliver::DeliveryStage;
use crate::notify::failure_log::{FailureKind, FailureLog, DEFAULT_SUMMARY_EVERY};
use crate::notify::receivers::Integration;

/// How long one outbox operation may wait for the database before delivery
/// goes on without it.
const OUTBOX_TIMEOUT: Duration = Duration::from_secs(5);
/// Most pending outbox entries resumed at once.
const RESUME_LIMIT: usize = 10_000;
/// How often the leader looks for due outbox entries (and a standby drops
/// held notifications the leader has sent).
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
/// An outbox entry older than this is not retried any more: marked failed.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(6 * 3600);
/// Most notifications a standby holds; beyond, the oldest are dropped
/// (logged).
const HOLD_LIMIT: usize = 10_000;

/// Where notifications are queued before they are sent, and whether this
/// replica sends.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub store: HistoryStore,
    pub writer: HistoryWriter,
    pub leader: watch::Receiver<Leadership>,
}

/// The outbox name of an integration: `webhook[0]`, `slack[1]`, …
fn integration_name(integration: &Integration) -> String {
    format!("{}[{}]", integration.integration, integration.index)
}

/// The wait after a failed outbox entry of age `age` before its next
/// attempt: half its age, between 10 s and 10 min.
pub fn retry_delay(age: Duration) -> Duration {
    (age / 2).clamp(Duration::from_secs(10), Duration::from_secs(600))
}

/// (receiver, integration, group key): deliveries that must keep their order.
type LaneKey = (String, String, String);

#[derive(Debug, Default)]
struct Lane {
    next_ticket: u64,
    serving: u64,
}

/// First-come, first-served turns per lane: a ticket is taken in the
/// delivery loop (so in production order), and a delivery waits until its
/// ticket is served.
#[derive(Debug, Default)]
struct Lanes {
    lanes: Mutex<HashMap<LaneKey, Lane>>,
    changed: Notify,
}

impl Lanes {
    fn ticket(&self, key: &LaneKey) -> u64 {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        let lane = lanes.entry(key.clone()).or_default();
        lane.next_ticket += 1;
        lane.next_ticket - 1
    }

    async fn wait_turn(&self, key: &LaneKey, ticket: u64) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let serving = {
                let lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
                lanes.get(key).map_or(ticket, |l| l.serving)
            };
            if serving >= ticket {
                return;
            }
            changed.await;
        }
    }

    fn done(&self, key: &LaneKey) {
        {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(lane) = lanes.get_mut(key) {
                lane.serving += 1;
                if lane.serving >= lane.next_ticket {
                    lanes.remove(key);
                }
            }
        }
        self.changed.notify_waiters();
    }
}

/// Releases a lane turn when dropped, so an aborted delivery (shutdown)
/// does not block its lane.
struct Turn<'a> {
    lanes: &'a Lanes,
    key: LaneKey,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.lanes.done(&self.key);
    }
}

/// What the delivery tasks share.
struct Shared {
    receivers: watch::Receiver<Arc<ReceiverIntegrations>>,
    stage: DeliveryStage,
    metrics: ServerMetrics,
    outbox: Option<Outbox>,
    /// Idempotency keys of the outbox entries whose delivery (or its
    /// outcome's record) runs in this process, so a resume does not start
    /// a second delivery of the same entry.
    in_flight: Mutex<HashSet<String>>,
    /// Outbox ids of the entries this process queued and has not finished
    /// with: a resumed entry not among them was started by a previous
    /// process or leader, so its delivery is marked as a re-send.
    own: Mutex<HashSet<String>>,
    lanes: Lanes,
    /// Rate limit of delivery-failure log lines per receiver integration.
    failures: Arc<FailureLog>,
    /// This replica's current leadership term (`None`: standby).
    term: Mutex<Option<Term>>,
    clock: Arc<dyn Clock>,
    /// Back to the delivery loop: a delivery that may not be sent (the term
    /// lapsed) and has no outbox row for the next leader to resume, so it
    /// is held again instead of being lost.
    requeue: mpsc::UnboundedSender<Held>,
}

impl Shared {
    fn term(&self) -> Option<Term> {
        self.term.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether this replica leads with a term still valid now.
    fn leads(&self) -> bool {
        self.term().is_some_and(|t| t.is_valid())
    }

    /// Follows `leadership`; true when it is a new term (a take-over, or a
    /// new epoch after the old term lapsed).
    fn set_term(&self, leadership: &Leadership) -> bool {
        let new = leadership.term().cloned();
        let mut term = self.term.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = match (&*term, &new) {
            (None, Some(_)) => true,
            (Some(old), Some(new)) => old.epoch().is_some() && old.epoch() != new.epoch(),
            _ => false,
        };
        *term = new;
        fresh
    }

    fn claim(&self, key: &str) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string())
    }

    fn forget(&self, key: &str) {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    fn own(&self, id: &str, own: bool) {
        let mut ids = self.own.lock().unwrap_or_else(|e| e.into_inner());
        if own {
            ids.insert(id.to_string());
        } else {
            ids.remove(id);
        }
    }

    fn owns(&self, id: &str) -> bool {
        self.own
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    fn integrations(&self, receiver: &str) -> Option<Vec<Integration>> {
        self.receivers.borrow().get(receiver).cloned()
    }
}

/// A notification produced while this replica did not lead, or handed back
/// by a delivery that could neither send it nor leave it in the outbox.
#[derive(Debug)]
struct Held {
    notification: Arc<Notification>,
    at: DateTime<Utc>,
    /// The one integration (by outbox name) it is still owed to; `None`:
    /// every integration of its receiver.
    integration: Option<String>,
}

/// What a receiver was last told about a group, per the notification log.
#[derive(Debug, Clone)]
struct Told {
    sent_at: DateTime<Utc>,
    firing: BTreeSet<Fingerprint>,
    resolved: BTreeSet<Fingerprint>,
}

type ToldMap = HashMap<(String, String), Told>;

fn sets(n: &Notification) -> (BTreeSet<Fingerprint>, BTreeSet<Fingerprint>) {
    let of = |want: AlertStatus| {
        n.alerts
            .iter()
            .filter(|a| a.status == want)
            .map(|a| a.fingerprint)
            .collect()
    };
    (of(AlertStatus::Firing), of(AlertStatus::Resolved))
}

/// Whether the receiver was already told what `held` says: the log has an
/// entry for its group at least as new, or one with the same alerts.
fn covered(told: &ToldMap, held: &Held) -> bool {
    let n = &held.notification;
    let Some(entry) = told.get(&(n.receiver.clone(), n.group_key.clone())) else {
        return false;
    };
    let (firing, resolved) = sets(n);
    held.at <= entry.sent_at || (firing == entry.firing && resolved == entry.resolved)
}

fn tell(told: &mut ToldMap, n: &Notification, at: DateTime<Utc>) {
    let (firing, resolved) = sets(n);
    let key = (n.receiver.clone(), n.group_key.clone());
    if told.get(&key).is_some_and(|t| t.sent_at > at) {
        return;
    }
    told.insert(
        key,
        Told {
            sent_at: at,
            firing,
            resolved,
        },
    );
}

/// What receivers were told, or why the database did not answer: the
/// notification log, and the outbox entries delivered since `held`'s oldest
/// notification (a leader killed right after a delivery has marked it sent
/// but may not have written its log row yet).
async fn load_told(outbox: &Outbox, held: &VecDeque<Held>) -> Result<ToldMap, String> {
    let mut told = load_log(outbox).await?;
    let Some(oldest) = held.iter().map(|h| h.at).min() else {
        return Ok(told);
    };
    let since = oldest - chrono::Duration::minutes(1);
    let sent = tokio::time::timeout(OUTBOX_TIMEOUT, outbox.store.sent_since(since, RESUME_LIMIT))
        .await
        .map_err(|_| "the outbox did not answer in time".to_string())?
        .map_err(|e| format!("cannot read delivered notifications: {e}"))?;
    for record in sent {
        if let Some(n) = notification_from_payload(&record.payload) {
            tell(&mut told, &n, record.sent_at.unwrap_or(record.created_at));
        }
    }
    Ok(told)
}

async fn load_log(outbox: &Outbox) -> Result<ToldMap, String> {
    match tokio::time::timeout(OUTBOX_TIMEOUT, outbox.store.load_notify_log()).await {
        Ok(Ok(rows)) => Ok(rows
            .into_iter()
            .map(|r| {
                (
                    (r.receiver, r.group_key),
                    Told {
                        sent_at: r.sent_at,
                        firing: r.firing,
                        resolved: r.resolved,
                    },
                )
            })
            .collect()),
        Ok(Err(e)) => Err(format!("cannot read the notification log: {e}")),
        Err(_) => Err("the notification log did not answer in time".to_string()),
    }
}

/// The retry round after the one due at `due` that ran at `now` (both on
/// the monotonic clock): a period after it, or a period after `now` when it
/// ran late (as tokio's `MissedTickBehavior::Delay`).
fn next_round(due: Duration, now: Duration) -> Duration {
    if now > due + Duration::from_millis(5) {
        now + RETRY_EVERY
    } else {
        due + RETRY_EVERY
    }
}

/// Runs until `notifications` is closed and every delivery has ended (or
/// `grace` has passed since the close), on `clock`.
pub async fn run_delivery(
    mut notifications: mpsc::UnboundedReceiver<Notification>,
    receivers: watch::Receiver<Arc<ReceiverIntegrations>>,
    stage: DeliveryStage,
    metrics: ServerMetrics,
    grace: Duration,
    outbox: Option<Outbox>,
    clock: Arc<dyn Clock>,
) {
    let mut leader = outbox.as_ref().map(|o| o.leader.clone());
    let (requeue, mut requeued) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        receivers,
        stage,
        metrics,
        outbox,
        in_flight: Mutex::default(),
        own: Mutex::default(),
        lanes: Lanes::default(),
        failures: Arc::new(FailureLog::new(Arc::clone(&clock), DEFAULT_SUMMARY_EVERY)),
        term: Mutex::default(),
        clock,
        requeue,
    });
    let mut running = JoinSet::new();
    let mut held: VecDeque<Held> = VecDeque::new();
    let initial = match leader.as_mut() {
        Some(l) => l.borrow_and_update().clone(),
        None => Leadership::Leading(Term::unfenced()),
    };
    shared.set_term(&initial);
    let mut leading = initial.is_leading();
    if leading {
        take_over(&shared, &mut held, &mut running).await;
    }
    let clock = Arc::clone(&shared.clock);
    // The next retry round, on the clock's monotonic time.
    let mut next_retry = clock.monotonic() + RETRY_EVERY;
    let mut outbox_down = false;
    loop {
        let retry_in = next_retry.saturating_sub(clock.monotonic());
        tokio::select! {
            next = notifications.recv() => {
                let Some(notification) = next else { break };
                let at = clock.now();
                let notification = Arc::new(notification);
                // A lapsed term (this replica was frozen or cut off and the
                // elector has not said so yet) counts as not leading.
                let h = Held { notification, at, integration: None };
                if leading && shared.leads() {
                    dispatch(&shared, h, &mut running);
                } else {
                    hold(&mut held, h);
                }
            }
            Some(h) = requeued.recv() => {
                if leading && shared.leads() {
                    dispatch(&shared, h, &mut running);
                } else {
                    hold(&mut held, h);
                }
            }
            changed = async {
                match leader.as_mut() {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    leader = None;
                    continue;
                }
                let now = match leader.as_mut() {
                    Some(l) => l.borrow_and_update().clone(),
                    None => Leadership::Standby,
                };
                let fresh = shared.set_term(&now);
                let leads = now.is_leading();
                if leads && (!leading || fresh) {
                    let epoch = now.term().and_then(Term::epoch);
                    tracing::info!(held = held.len(), epoch, "became the leader: delivering what is pending");
                    take_over(&shared, &mut held, &mut running).await;
                } else if !leads && leading {
                    tracing::warn!("no longer the leader: notifications are held until this replica leads again");
                }
                leading = leads;
            }
            () = clock.sleep(retry_in), if shared.outbox.is_some() => {
                next_retry = next_round(next_retry, clock.monotonic());
                let answered = if leading && shared.leads() && !held.is_empty() {
                    // Held while the term had lapsed, and renewed since.
                    take_over(&shared, &mut held, &mut running).await;
                    Ok(())
                } else if leading && shared.leads() {
                    resume(&shared, &mut running, None).await
                } else if let (false, Some(o)) = (held.is_empty(), &shared.outbox) {
                    match load_told(o, &held).await {
                        Ok(told) => {
                            held.retain(|h| !covered(&told, h));
                            Ok(())
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    Ok(())
                };
                // Logged when it changes, not at every round.
                match answered {
                    Err(e) if !outbox_down => {
                        tracing::error!(error = %e, "the outbox is unreadable; pending notifications wait until it answers");
                        outbox_down = true;
                    }
                    Ok(()) if outbox_down => {
                        tracing::info!("the outbox answers again");
                        outbox_down = false;
                    }
                    _ => {}
                }
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    if !running.is_empty() {
        tracing::info!(
            deliveries = running.len(),
            grace_seconds = grace.as_secs_f64(),
            "waiting for in-flight deliveries"
        );
        let drained = tokio::select! {
            biased;
            () = async { while running.join_next().await.is_some() {} } => true,
            () = clock.sleep(grace) => false,
        };
        if !drained {
            tracing::warn!(
                deliveries = running.len(),
                "deliveries still running after the shutdown grace period; abandoned"
            );
            running.abort_all();
        }
    }
    // Deliveries that ended handing their notification back count as held.
    while let Ok(h) = requeued.try_recv() {
        hold(&mut held, h);
    }
    if !held.is_empty() {
        tracing::warn!(
            notifications = held.len(),
            "shutting down without a valid leader lease: held notifications are left to the leader"
        );
    }
}

/// Holds `h` in the order the notifier produced it (a handed-back delivery
/// can be older than what is held already), so a take-over sends a group's
/// notifications in their order.
fn hold(held: &mut VecDeque<Held>, h: Held) {
    if held.len() >= HOLD_LIMIT {
        held.pop_front();
        tracing::error!(
            limit = HOLD_LIMIT,
            "too many notifications held while not the leader; the oldest is dropped"
        );
    }
    let at = held.partition_point(|x| x.at <= h.at);
    held.insert(at, h);
}

/// Becoming the leader: the entries an old leader (or this replica before a
/// restart) left pending first, then the held notifications the receiver
/// was not told yet according to the notification log and those entries.
async fn take_over(shared: &Arc<Shared>, held: &mut VecDeque<Held>, running: &mut JoinSet<()>) {
    let Some(outbox) = &shared.outbox else {
        return;
    };
    let mut told = match load_told(outbox, held).await {
        Ok(t) => t,
        Err(_) if held.is_empty() => ToldMap::new(),
        Err(e) => {
            tracing::warn!(
                error = %e,
                notifications = held.len(),
                "held notifications are sent as they are"
            );
            ToldMap::new()
        }
    };
    if let Err(e) = resume(shared, running, Some(&mut told)).await {
        tracing::error!(error = %e, "pending notifications not resumed; retried while running");
    }
    let mut sent = 0;
    let mut skipped = 0;
    for h in held.drain(..) {
        if covered(&told, &h) {
            skipped += 1;
            continue;
        }
        tell(&mut told, &h.notification, h.at);
        dispatch(shared, h, running);
        sent += 1;
    }
    if sent + skipped > 0 {
        tracing::info!(
            sent,
            already_sent = skipped,
            "notifications held while not the leader"
        );
    }
}

/// Sends `held`'s notification to each integration of its receiver it is
/// owed to: queued in the outbox, then delivered in its lane's turn.
fn dispatch(shared: &Arc<Shared>, held: Held, running: &mut JoinSet<()>) {
    let Held {
        notification,
        at,
        integration: only,
    } = held;
    let Some(integrations) = shared.integrations(&notification.receiver) else {
        tracing::warn!(receiver = %notification.receiver, "notification for a receiver that is no longer configured; dropped");
        return;
    };
    for integration in integrations {
        let name = integration_name(&integration);
        if only.as_ref().is_some_and(|only| *only != name) {
            continue;
        }
        let lane = (
            notification.receiver.clone(),
            name.clone(),
            notification.group_key.clone(),
        );
        let ticket = shared.lanes.ticket(&lane);
        let key = idempotency_key(&notification, &name, at);
        // Claimed before the row exists, so a resume never sees it unclaimed.
        shared.claim(&key);
        let shared = Arc::clone(shared);
        let notification = Arc::clone(&notification);
        running.spawn(async move {
            let id = match &shared.outbox {
                Some(o) => enqueue(o, &notification, &name, &key, at).await,
                None => None,
            };
            if let Some(id) = &id {
                shared.own(id, true);
            }
            shared.lanes.wait_turn(&lane, ticket).await;
            let turn = Turn {
                lanes: &shared.lanes,
                key: lane,
            };
            let sent = deliver_one(
                &shared,
                &integration,
                &notification,
                id.as_deref(),
                at,
                turn,
            )
            .await;
            shared.forget(&key);
            if sent == Attempt::NotSent && id.is_none() {
                // Neither sent nor in the outbox for the next leader: held
                // again until this replica leads.
                let _ = shared.requeue.send(Held {
                    notification,
                    at,
                    integration: Some(name),
                });
            }
        });
    }
}

/// Queues `notification` for `integration`; its outbox id, or `None` when
/// the database did not take it (logged).
async fn enqueue(
    outbox: &Outbox,
    notification: &Notification,
    integration: &str,
    key: &str,
    received_at: DateTime<Utc>,
) -> Option<String> {
    let entry = OutboxEntry::for_notification(
        notification,
        integration,
        notification_payload(notification),
        received_at,
    );
    // The firing state goes with the notification telling it (the
    // notifier's `startsAt` of a firing alert is the time it fired).
    let fired: Vec<(Fingerprint, DateTime<Utc>)> = notification
        .alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Firing)
        .map(|a| (a.fingerprint, a.alert.starts_at))
        .collect();
    let enqueue = outbox.store.enqueue_firing(&entry, key, &fired);
    match tokio::time::timeout(OUTBOX_TIMEOUT, enqueue).await {
        Ok(Ok(enqueued)) => Some(enqueued.id().to_string()),
        Ok(Err(e)) => {
            tracing::error!(error = %e, receiver = %notification.receiver, "cannot queue the notification in the outbox; delivering it now and recording it in the history once the database answers");
            None
        }
        Err(_) => {
            tracing::error!(receiver = %notification.receiver, "the outbox did not answer in time; delivering the notification now and recording it in the history once the database answers");
            None
        }
    }
}

/// Delivers the outbox entries that are due and that no delivery in this
/// process is handling, oldest first. With `told`, also every pending
/// entry (due or not) is entered there as told, since it will be sent.
/// Fails (with the reason) only when the outbox could not be read.
async fn resume(
    shared: &Arc<Shared>,
    running: &mut JoinSet<()>,
    told: Option<&mut ToldMap>,
) -> Result<(), String> {
    let Some(outbox) = &shared.outbox else {
        return Ok(());
    };
    let now = shared.clock.now();
    let horizon = if told.is_some() {
        DateTime::<Utc>::MAX_UTC
    } else {
        now
    };
    let pending =
        match tokio::time::timeout(OUTBOX_TIMEOUT, outbox.store.due(horizon, RESUME_LIMIT)).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => return Err(format!("cannot read pending notifications: {e}")),
            Err(_) => return Err("the outbox did not answer in time".to_string()),
        };
    let mut pending: Vec<(NotificationRecord, Option<Notification>)> = pending
        .into_iter()
        .map(|r| {
            let n = notification_from_payload(&r.payload);
            (r, n)
        })
        .collect();
    pending.sort_by(|(a, _), (b, _)| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    if let Some(told) = told {
        for (record, n) in &pending {
            if let Some(n) = n {
                tell(told, n, record.created_at);
            }
        }
    }
    let mut resumed = 0;
    let mut redelivered = 0;
    for (record, mut notification) in pending {
        if record.next_attempt_at > now || !shared.claim(&record.idempotency_key) {
            continue;
        }
        // Not queued by this process: a previous process or leader may
        // have sent it already (killed before recording the outcome).
        if let Some(n) = &mut notification {
            n.redelivery = !shared.owns(&record.id);
            redelivered += usize::from(n.redelivery);
        }
        let integration = shared.integrations(&record.receiver).and_then(|list| {
            list.into_iter()
                .find(|i| integration_name(i) == record.integration)
        });
        let (Some(integration), Some(notification)) = (integration, notification) else {
            let reason =
                "its receiver integration is no longer configured, or its payload is unreadable";
            tracing::warn!(id = %record.id, receiver = %record.receiver, integration = %record.integration, "pending notification cannot be resumed: {reason}");
            let fence = shared.term().and_then(|t| t.fence());
            let _ = outbox
                .store
                .mark_failed(&record.id, reason, None, None, fence.as_ref())
                .await;
            shared.forget(&record.idempotency_key);
            continue;
        };
        resumed += 1;
        let lane = (
            record.receiver.clone(),
            record.integration.clone(),
            record.group_key.clone(),
        );
        let ticket = shared.lanes.ticket(&lane);
        let shared = Arc::clone(shared);
        running.spawn(async move {
            shared.lanes.wait_turn(&lane, ticket).await;
            let turn = Turn {
                lanes: &shared.lanes,
                key: lane,
            };
            // An entry not sent stays pending in the outbox.
            let _ = deliver_one(
                &shared,
                &integration,
                &notification,
                Some(&record.id),
                record.created_at,
                turn,
            )
            .await;
            shared.forget(&record.idempotency_key);
        });
    }
    if resumed > 0 {
        tracing::info!(
            notifications = resumed,
            redelivered,
            "delivering notifications left pending in the outbox (redelivered: started by a previous process or leader, marked as re-sent)"
        );
    }
    Ok(())
}

/// How the delivery of one outbox entry ended, to record.
enum Outcome {
    Sent {
        code: Option<u16>,
        message_id: Option<String>,
    },
    /// Retryable: due again at this time.
    Retry {
        error: String,
        code: Option<u16>,
        at: DateTime<Utc>,
    },
    Failed {
        error: String,
        code: Option<u16>,
    },
}

/// Whether a delivery went through the stage (whatever its outcome), or
/// was not sent at all because this replica may not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Made,
    NotSent,
}

/// One delivery through the stage, counted, logged and (with an outbox id)
/// recorded in the outbox. `turn` is the lane's turn, released once the
/// stage is done (before the outcome is recorded).
async fn deliver_one(
    shared: &Shared,
    integration: &Integration,
    notification: &Notification,
    id: Option<&str>,
    created_at: DateTime<Utc>,
    turn: Turn<'_>,
) -> Attempt {
    let Some(term) = may_send(shared, integration, id).await else {
        return Attempt::NotSent;
    };
    let fence = term.fence();
    let outcome = tokio::select! {
        outcome = shared
            .stage
            .deliver(
                shared.failures.watch(
                    &integration.receiver_name,
                    Arc::clone(&integration.receiver),
                ),
                notification,
            ) => outcome,
        () = term.lost() => {
            tracing::warn!(
                receiver = %integration.receiver_name,
                integration = integration.integration,
                epoch = term.epoch(),
                "delivery abandoned: this replica's leader lease ran out; the notification is left to the next leader"
            );
            return Attempt::NotSent;
        }
    };
    drop(turn);
    let result = match outcome {
        // `send_resolved: false`: nothing to send, and nothing left to do.
        None => Outcome::Sent {
            code: None,
            message_id: None,
        },
        Some(outcome) => match outcome.last_error() {
            None => {
                shared.metrics.record_delivery(
                    &integration.receiver_name,
                    integration.integration,
                    outcome.attempts,
                    true,
                );
                tracing::info!(
                    receiver = %integration.receiver_name,
                    integration = integration.integration,
                    status = notification.status.as_str(),
                    alerts = notification.alerts.len(),
                    attempts = outcome.attempts,
                    "notification delivered"
                );
                Outcome::Sent {
                    code: outcome.response_code(),
                    message_id: outcome.message_id().map(str::to_string),
                }
            }
            Some(error) => {
                shared.metrics.record_delivery(
                    &integration.receiver_name,
                    integration.integration,
                    outcome.attempts,
                    false,
                );
                let age = (shared.clock.now() - created_at)
                    .to_std()
                    .unwrap_or_default();
                if error.is_retryable() && id.is_some() && age < GIVE_UP_AFTER {
                    let at = shared.clock.now()
                        + chrono::Duration::from_std(retry_delay(age))
                            .unwrap_or(chrono::Duration::zero());
                    shared.failures.log_failure(
                        &integration.receiver_name,
                        integration.integration,
                        error,
                        FailureKind::Kept(at),
                    );
                    Outcome::Retry {
                        error: error.to_string(),
                        code: outcome.response_code(),
                        at,
                    }
                } else {
                    shared.failures.log_failure(
                        &integration.receiver_name,
                        integration.integration,
                        error,
                        FailureKind::GivenUp,
                    );
                    Outcome::Failed {
                        error: error.to_string(),
                        code: outcome.response_code(),
                    }
                }
            }
        },
    };
    let Some(outbox) = &shared.outbox else {
        return Attempt::Made;
    };
    let now = shared.clock.now();
    if matches!(result, Outcome::Sent { .. }) {
        // Through the batched writer, which buffers while the database is
        // down: even a notification sent without an outbox row is logged.
        // Under the term's epoch: refused if the lease has moved on.
        let fenced = |write: HistoryWrite| match &fence {
            Some(fence) => HistoryWrite::Fenced {
                fence: fence.clone(),
                write: Box::new(write),
            },
            None => write,
        };
        let _ = outbox
            .writer
            .record(fenced(HistoryWrite::NotifyLog(notify_log_row(
                notification,
                now,
            ))));
        for row in cooldown_rows(notification, now) {
            let _ = outbox.writer.record(fenced(HistoryWrite::Cooldown(row)));
        }
    }
    let Some(id) = id else {
        record_without_outbox_row(outbox, integration, notification, created_at, &result, now);
        return Attempt::Made;
    };
    record_outcome(
        outbox,
        id,
        &result,
        now,
        fence.as_ref(),
        shared.clock.as_ref(),
    )
    .await;
    if !matches!(result, Outcome::Retry { .. }) {
        shared.own(id, false);
    }
    Attempt::Made
}

/// A notification delivered (or given up on) without an outbox row, as the
/// database did not take it when it was queued: its row goes into the
/// delivery log through the batched writer, which buffers it until the
/// database answers, so an outage loses no record.
fn record_without_outbox_row(
    outbox: &Outbox,
    integration: &Integration,
    notification: &Notification,
    created_at: DateTime<Utc>,
    result: &Outcome,
    now: DateTime<Utc>,
) {
    let name = integration_name(integration);
    let (status, last_error, response_code, message_id) = match result {
        Outcome::Sent { code, message_id } => (OutboxStatus::Sent, None, *code, message_id.clone()),
        Outcome::Retry { error, code, .. } | Outcome::Failed { error, code } => {
            (OutboxStatus::Failed, Some(error.clone()), *code, None)
        }
    };
    let record = DeliveredRecord {
        id: new_id(created_at),
        idempotency_key: idempotency_key(notification, &name, created_at),
        entry: OutboxEntry::for_notification(
            notification,
            &name,
            notification_payload(notification),
            created_at,
        ),
        status,
        attempts: 1,
        last_error,
        response_code,
        message_id,
        finished_at: now,
    };
    if let Err(e) = outbox.writer.record(HistoryWrite::Delivered(record)) {
        tracing::error!(error = %e, receiver = %notification.receiver, "the delivery of a notification cannot be recorded in the history");
    }
}

/// The term under which this delivery may be sent, or `None` (logged) when
/// it must not be: this replica's term lapsed, or the database refused the
/// claim of outbox entry `id` for a stale epoch, or the entry is no longer
/// pending. A claim the database cannot answer does not stop a delivery
/// while the term is valid.
async fn may_send(shared: &Shared, integration: &Integration, id: Option<&str>) -> Option<Term> {
    let receiver = integration.receiver_name.as_str();
    let lapsed = |term: &Option<Term>| !term.as_ref().is_some_and(Term::is_valid);
    let term = shared.term();
    if lapsed(&term) {
        tracing::warn!(receiver, integration = integration.integration, "not sending: this replica does not hold a valid leader lease; the notification waits for a leader (in the outbox, or held by this replica)");
        return None;
    }
    if let (Some(outbox), Some(id), Some(t)) = (&shared.outbox, id, &term) {
        let fence = t.fence();
        let claim = outbox.store.claim(id, fence.as_ref(), shared.clock.now());
        match tokio::time::timeout(OUTBOX_TIMEOUT, claim).await {
            Ok(Ok(Claim::Claimed)) => {}
            Ok(Ok(Claim::StaleEpoch { current })) => {
                tracing::error!(id, receiver, epoch = t.epoch(), current_epoch = current, "not sending: the database refused the claim for a stale lease epoch (another replica leads now)");
                return None;
            }
            Ok(Ok(Claim::NotPending)) => {
                tracing::info!(id, receiver, "not sending: the outbox entry is no longer pending (delivered or given up by another leader)");
                return None;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, id, receiver, "cannot claim the outbox entry; sending while this replica's lease term is valid");
            }
            Err(_) => {
                tracing::warn!(id, receiver, "the outbox did not answer the claim in time; sending while this replica's lease term is valid");
            }
        }
        // The claim took a round trip: the term may have run out meanwhile.
        if lapsed(&term) {
            tracing::warn!(
                id,
                receiver,
                "not sending: the leader lease term ran out while claiming"
            );
            return None;
        }
    }
    term
}

/// Records `result` for outbox entry `id` under `fence`, retrying (with a
/// back-off on `clock`) until the database answers: an entry left pending
/// after it was sent would be sent again. A refusal (stale epoch, or
/// already recorded) is final.
async fn record_outcome(
    outbox: &Outbox,
    id: &str,
    result: &Outcome,
    now: DateTime<Utc>,
    fence: Option<&Fence>,
    clock: &dyn Clock,
) {
    let mut wait = Duration::from_millis(500);
    let mut logged = false;
    loop {
        let marked = match result {
            Outcome::Sent { code, message_id } => {
                outbox
                    .store
                    .mark_sent(id, *code, message_id.as_deref(), now, fence)
                    .await
            }
            Outcome::Retry { error, code, at } => {
                outbox
                    .store
                    .mark_failed(id, error, *code, Some(*at), fence)
                    .await
            }
            Outcome::Failed { error, code } => {
                outbox
                    .store
                    .mark_failed(id, error, *code, None, fence)
                    .await
            }
        };
        match marked {
            Ok(recorded) => {
                if !recorded {
                    if let Some(fence) = fence {
                        tracing::warn!(id, %fence, "the database did not take the delivery outcome: the entry is no longer pending, or the lease has a newer epoch (the current leader keeps the record)");
                    }
                } else if logged {
                    tracing::info!(id, "delivery outcome recorded in the outbox");
                }
                return;
            }
            Err(e) => {
                if !logged {
                    tracing::error!(error = %e, id, "cannot record the delivery outcome in the outbox; retrying until the database answers");
                    logged = true;
                }
                clock.sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::labels::Labels;
    use crate::notify::alert::{Alert, NotifiedAlert};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    fn notification(pod: &str, status: AlertStatus) -> Notification {
        let alert = Alert {
            labels: Labels::from_pairs([("alertname", "High"), ("pod", pod)]),
            annotations: BTreeMap::new(),
            starts_at: t(0),
            ends_at: None,
            generator_url: String::new(),
            cooldown: None,
        };
        Notification {
            receiver: "r".into(),
            group_key: format!("{{}}:{{pod=\"{pod}\"}}"),
            status,
            alerts: vec![NotifiedAlert {
                status,
                fingerprint: alert.fingerprint(),
                alert,
            }],
            group_labels: Labels::default(),
            common_labels: Labels::default(),
            common_annotations: BTreeMap::new(),
            external_url: String::new(),
            truncated_alerts: 0,
            redelivery: false,
        }
    }

    fn held(pod: &str, status: AlertStatus, at: i64) -> Held {
        Held {
            notification: Arc::new(notification(pod, status)),
            at: t(at),
            integration: None,
        }
    }

    #[test]
    fn a_held_notification_is_covered_by_a_newer_or_equal_log_entry_only() {
        let mut told = ToldMap::new();
        tell(&mut told, &notification("a", AlertStatus::Firing), t(10));
        assert!(covered(&told, &held("a", AlertStatus::Firing, 9)), "older");
        assert!(
            covered(&told, &held("a", AlertStatus::Firing, 12)),
            "same alerts, flushed a bit later by the standby"
        );
        assert!(
            !covered(&told, &held("a", AlertStatus::Resolved, 12)),
            "the resolution the old leader never sent"
        );
        assert!(
            !covered(&told, &held("b", AlertStatus::Firing, 1)),
            "another group"
        );
        tell(&mut told, &notification("a", AlertStatus::Resolved), t(12));
        assert!(covered(&told, &held("a", AlertStatus::Resolved, 12)));
        tell(&mut told, &notification("a", AlertStatus::Firing), t(11));
        assert!(
            covered(&told, &held("a", AlertStatus::Resolved, 13)),
            "an older entry does not replace a newer one"
        );
    }

    #[test]
    fn a_handed_back_notification_is_held_in_the_order_it_was_produced() {
        let mut queue = VecDeque::new();
        hold(&mut queue, held("a", AlertStatus::Resolved, 20));
        hold(&mut queue, held("b", AlertStatus::Firing, 30));
        hold(&mut queue, held("a", AlertStatus::Firing, 10));
        hold(&mut queue, held("c", AlertStatus::Firing, 20));
        let order: Vec<(i64, AlertStatus)> = queue
            .iter()
            .map(|h| (h.at.timestamp(), h.notification.status))
            .collect();
        assert_eq!(
            order,
            vec![
                (10, AlertStatus::Firing),
                (20, AlertStatus::Resolved),
                (20, AlertStatus::Firing),
                (30, AlertStatus::Firing),
            ]
        );
    }

    #[test]
    fn the_retry_delay_is_half_the_age_between_10_s_and_10_min() {
        assert_eq!(retry_delay(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(
            retry_delay(Duration::from_secs(120)),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_delay(Duration::from_secs(7200)),
            Duration::from_secs(600)
        );
    }

    #[tokio::test]
    async fn a_lane_serves_its_tickets_in_order_whatever_order_they_wait_in() {
        let lanes = Arc::new(Lanes::default());
        let key: LaneKey = ("r".into(), "webhook[0]".into(), "g".into());
        let tickets: Vec<u64> = (0..4).map(|_| lanes.ticket(&key)).collect();
        let served = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Started last ticket first.
        for ticket in tickets.into_iter().rev() {
            let (lanes, key, served) = (Arc::clone(&lanes), key.clone(), Arc::clone(&served));
            tasks.push(tokio::spawn(async move {
                lanes.wait_turn(&key, ticket).await;
                served.lock().unwrap().push(ticket);
                tokio::task::yield_now().await;
                lanes.done(&key);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*served.lock().unwrap(), vec![0, 1, 2, 3]);
        assert!(
            lanes.lanes.lock().unwrap().is_empty(),
            "a finished lane is forgotten"
        );
        let other: LaneKey = ("r".into(), "webhook[0]".into(), "other".into());
        let first = lanes.ticket(&other);
        tokio::time::timeout(Duration::from_secs(1), lanes.wait_turn(&other, first))
            .await
            .unwrap();
    }
}
