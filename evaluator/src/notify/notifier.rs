//! The notifier: the entry point of the notification pipeline, independent
//! of who produces alerts. [`Notifier::ingest`] takes alerts (from the rules
//! engine in-process, or from `POST /api/v2/alerts`); [`Notifier::tick`]
//! flushes the aggregation groups that are due and runs each flush through
//! the stages stated in [`super::pipeline`] — inhibition, silences,
//! cooldown, dedup — producing the notifications to hand to a
//! [`NotificationSink`] (the delivery stage).
//!
//! Both take the current time as an argument and [`Notifier::next_deadline`]
//! says when the next flush is due, so the whole pipeline is stepped by a
//! clock; [`run`] drives it with a real one.
//!
//! Invariant: a receiver that was sent an alert as firing is always sent its
//! resolution (unless none of its integrations has `send_resolved`), even
//! when the alert is silenced, inhibited or in cooldown by then.
//!
//! Readers never hold the pipeline up: [`Notifier::snapshot`] hands out an
//! [`AlertsSnapshot`] (shared pointers to the alerts, the route tree, the
//! inhibit rules and the silences), rebuilt only after a change and in
//! O(alerts) pointer copies, so a reader holds the notifier's lock for
//! that copy at most and does its filtering, inhibition and serialisation
//! outside it. Inhibition is checked through a [`SourceIndex`] (built once
//! per change, not per alert), never by scanning every pair of alerts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::alert::{Alert, AlertStatus, Fingerprint, Notification};
use super::config::NotifyConfig;
use super::cooldown::CooldownLedger;
use super::dedup::{LogEntry, NotificationLog};
use super::dispatcher::Dispatcher;
use super::inhibit::{Inhibitor, SourceIndex};
use super::pipeline::Pipeline;
use super::route::RouteTree;
use super::silence::{MemorySilences, Silence, SilenceStore};
use crate::clock::{add, Clock};
use crate::labels::Labels;

/// Why the delivery stage could not take a notification.
#[derive(Debug, thiserror::Error)]
#[error("the delivery stage refused the notification for {receiver}: {reason}")]
pub struct SinkError {
    pub receiver: String,
    pub reason: String,
}

/// The delivery side: takes notifications for delivery (with retries) to the
/// receiver's integrations. It must accept quickly (queue, outbox); an error
/// means "not taken", and the flush is retried at the next group interval.
///
/// A notification carries resolved alerts whenever the receiver has at least
/// one integration with `send_resolved`; integrations without it drop the
/// resolved alerts and skip a notification that has no firing alert left.
pub trait NotificationSink: Send {
    fn submit(&mut self, notification: Notification) -> Result<(), SinkError>;
}

/// Collects notifications (tests, and [`Notifier::tick`]).
impl NotificationSink for Vec<Notification> {
    fn submit(&mut self, notification: Notification) -> Result<(), SinkError> {
        self.push(notification);
        Ok(())
    }
}

/// Hands notifications to a delivery task over a channel.
impl NotificationSink for tokio::sync::mpsc::UnboundedSender<Notification> {
    fn submit(&mut self, notification: Notification) -> Result<(), SinkError> {
        let receiver = notification.receiver.clone();
        self.send(notification).map_err(|_| SinkError {
            receiver,
            reason: "the delivery task has stopped".to_string(),
        })
    }
}

/// Routing, grouping, inhibition, silencing, cooldown and dedup.
pub struct Notifier {
    config: Arc<NotifyConfig>,
    dispatcher: Dispatcher,
    /// The route tree again, shared with snapshots (the dispatcher owns its
    /// own copy).
    routes: Arc<RouteTree>,
    inhibitor: Arc<Inhibitor>,
    silences: Box<dyn SilenceStore>,
    cooldown: CooldownLedger,
    log: NotificationLog,
    /// Every alert not yet resolved and flushed: the inhibition sources.
    alerts: HashMap<Fingerprint, Arc<Alert>>,
    /// When each of `alerts` was last ingested (the alerts API's
    /// `updatedAt`).
    updated: HashMap<Fingerprint, DateTime<Utc>>,
    external_url: String,
    /// Bumped by every change readers can see (alerts, config, silences).
    version: u64,
    /// The snapshot of `version`, once someone asked for it.
    snapshot: Option<Arc<AlertsSnapshot>>,
    /// On a sharded replica: whether this replica may still notify about
    /// an alert (it holds the alert's rule group under a valid term).
    may_notify: Option<NotifyGuard>,
    /// Alerts the guard refused, with when: taken back in when the guard
    /// lets them pass again (the replica renewed its term late), dropped
    /// when forgotten (their group moved) or after [`HELD_BACK_AT_MOST`].
    held_back: HashMap<Fingerprint, (Arc<Alert>, DateTime<Utc>)>,
}

/// How long an alert the guard refused is kept for its group's term to be
/// valid again: a late renewal comes within a lease duration, and a group
/// that moved has its alerts forgotten at once; an alert held longer is
/// stale (its group's next owner, or this replica taking it back,
/// restores the group's alerts from the database).
const HELD_BACK_AT_MOST: chrono::Duration = chrono::Duration::minutes(1);

/// Tells, right before a flush, which of the alerts held (by fingerprint)
/// this replica may not notify about now; the notifier holds those back
/// (see [`Notifier::set_guard`]).
pub type NotifyGuard =
    Arc<dyn Fn(&mut dyn Iterator<Item = Fingerprint>) -> Vec<Fingerprint> + Send + Sync>;

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("alerts", &self.alerts.len())
            .field("groups", &self.dispatcher.group_count())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier for a validated config, with in-memory silences.
    pub fn new(config: Arc<NotifyConfig>) -> Notifier {
        Notifier::with_silences(config, Box::new(MemorySilences::default()))
    }

    /// A notifier with a given silence store.
    pub fn with_silences(config: Arc<NotifyConfig>, silences: Box<dyn SilenceStore>) -> Notifier {
        let routes = RouteTree::new(&config.route);
        Notifier {
            dispatcher: Dispatcher::new(routes.clone()),
            routes: Arc::new(routes),
            inhibitor: Arc::new(Inhibitor::from_config(&config.inhibit_rules)),
            silences,
            cooldown: CooldownLedger::new(),
            log: NotificationLog::default(),
            alerts: HashMap::new(),
            updated: HashMap::new(),
            external_url: String::new(),
            config,
            version: 0,
            snapshot: None,
            may_notify: None,
            held_back: HashMap::new(),
        }
    }

    /// Sets the check every flush makes first: alerts `guard` refuses are
    /// taken out, unnotified, as [`Notifier::forget`] does, and held back:
    /// taken in again at the first flush `guard` lets them pass. A sharded
    /// replica that was frozen (or slow to renew) past its group's term
    /// must not flush a notification about that group's alerts from here,
    /// even before its next fleet round tells it whether the group moved
    /// (then its alerts are forgotten, and the new owner notifies them) or
    /// is still held (then they are notified from here after all).
    pub fn set_guard(&mut self, guard: NotifyGuard) {
        self.may_notify = Some(guard);
    }

    /// Sets the link put into every notification (the evaluator's URL).
    pub fn set_external_url(&mut self, url: impl Into<String>) {
        self.external_url = url.into();
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    pub fn silences(&self) -> &dyn SilenceStore {
        self.silences.as_ref()
    }

    /// The silence store, for changes (which readers then see).
    pub fn silences_mut(&mut self) -> &mut dyn SilenceStore {
        self.changed();
        self.silences.as_mut()
    }

    fn changed(&mut self) {
        self.version += 1;
        self.snapshot = None;
    }

    /// What readers work on: the notifier as of its last change. Cheap
    /// when nothing changed since the last call; otherwise O(alerts)
    /// pointer copies (no alert is cloned).
    pub fn snapshot(&mut self) -> Arc<AlertsSnapshot> {
        if let Some(snapshot) = &self.snapshot {
            return Arc::clone(snapshot);
        }
        let alerts = self
            .alerts
            .iter()
            .map(|(fingerprint, alert)| SnapshotAlert {
                fingerprint: *fingerprint,
                updated_at: self
                    .updated
                    .get(fingerprint)
                    .copied()
                    .unwrap_or(alert.starts_at),
                alert: Arc::clone(alert),
            })
            .collect();
        let snapshot = Arc::new(AlertsSnapshot {
            version: self.version,
            alerts,
            routes: Arc::clone(&self.routes),
            inhibitor: Arc::clone(&self.inhibitor),
            silences: self.silences.list(),
            sources: Mutex::new(None),
        });
        self.snapshot = Some(Arc::clone(&snapshot));
        snapshot
    }

    /// Whether an alert with `labels` is inhibited by an alert firing at
    /// `now` (the alerts API's `inhibited` state).
    pub fn is_inhibited(&mut self, labels: &Labels, now: DateTime<Utc>) -> bool {
        let snapshot = self.snapshot();
        snapshot
            .sources_at(now)
            .is_inhibited(&self.inhibitor, labels)
    }

    /// The fingerprints of the firing alerts that inhibit an alert with
    /// `labels` at `now` (the alerts API's `inhibitedBy`), sorted.
    pub fn inhibited_by(&mut self, labels: &Labels, now: DateTime<Utc>) -> Vec<Fingerprint> {
        let snapshot = self.snapshot();
        snapshot
            .sources_at(now)
            .inhibited_by(&self.inhibitor, labels)
    }

    /// The receivers an alert with `labels` is routed to, in routing order.
    pub fn receivers(&self, labels: &Labels) -> Vec<String> {
        self.routes
            .receivers(labels)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The alerts the notifier currently knows.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().map(AsRef::as_ref)
    }

    /// Whether the notifier holds the alert with `fingerprint`.
    pub fn holds(&self, fingerprint: Fingerprint) -> bool {
        self.alerts.contains_key(&fingerprint)
    }

    /// How many alerts the notifier holds (firing, or resolved and not yet
    /// flushed).
    pub fn alert_count(&self) -> usize {
        self.alerts.len()
    }

    /// How far the pipeline is behind at `now`: how long ago its most
    /// overdue aggregation group was due (zero when none is overdue).
    pub fn lag(&self, now: DateTime<Utc>) -> std::time::Duration {
        self.next_deadline()
            .and_then(|due| (now - due).to_std().ok())
            .unwrap_or_default()
    }

    /// When the alert with `fingerprint` was last ingested.
    pub fn updated_at(&self, fingerprint: Fingerprint) -> Option<DateTime<Utc>> {
        self.updated.get(&fingerprint).copied()
    }

    /// Takes new or updated alerts. An alert without `ends_at` fires until
    /// `global.resolve_timeout` from now unless it is sent again; a re-sent
    /// alert keeps its earliest `starts_at` while it stays active.
    pub fn ingest(&mut self, alerts: Vec<Alert>, now: DateTime<Utc>) {
        if alerts.is_empty() {
            return;
        }
        self.changed();
        for mut alert in alerts {
            if alert.ends_at.is_none() {
                alert.ends_at = Some(add(now, self.config.global.resolve_timeout));
            }
            let fingerprint = alert.fingerprint();
            if let Some(old) = self.alerts.get(&fingerprint) {
                let old_active = old.ends_at.is_none_or(|end| end > alert.starts_at);
                if old_active && old.starts_at < alert.starts_at {
                    alert.starts_at = old.starts_at;
                }
            }
            self.dispatcher.insert(&alert, now);
            self.alerts.insert(fingerprint, Arc::new(alert));
            self.updated.insert(fingerprint, now);
        }
    }

    /// Drops alerts without notifying anything about them: their rule
    /// group moved to another replica, which holds and notifies them from
    /// now on (a resolution sent from here would be false).
    pub fn forget(&mut self, fingerprints: &[Fingerprint]) {
        if fingerprints.is_empty() {
            return;
        }
        self.changed();
        for fp in fingerprints {
            self.dispatcher.forget(*fp);
            self.alerts.remove(fp);
            self.updated.remove(fp);
            self.held_back.remove(fp);
        }
    }

    /// Switches to a new (validated) config, as on SIGHUP: the route tree
    /// and inhibit rules are replaced and every known alert is routed anew
    /// (alerts older than `group_wait` flush at the next tick); silences,
    /// the notification log and cooldowns are kept, so nothing already sent
    /// is sent again.
    pub fn reload(&mut self, config: Arc<NotifyConfig>, now: DateTime<Utc>) {
        self.changed();
        let routes = RouteTree::new(&config.route);
        self.dispatcher = Dispatcher::new(routes.clone());
        self.routes = Arc::new(routes);
        self.inhibitor = Arc::new(Inhibitor::from_config(&config.inhibit_rules));
        self.config = config;
        let mut alerts: Vec<&Alert> = self.alerts.values().map(AsRef::as_ref).collect();
        alerts.sort_by_key(|a| a.fingerprint());
        for alert in alerts {
            self.dispatcher.insert(alert, now);
        }
    }

    /// Puts back a notification-log entry saved before a restart, so
    /// alerts already notified are not notified again and their
    /// resolution is still sent.
    pub fn restore_log(&mut self, receiver: &str, group_key: &str, entry: LogEntry) {
        self.log.record(receiver, group_key, entry);
    }

    /// The notification-log entry of a group, if any.
    pub fn log_entry(&self, receiver: &str, group_key: &str) -> Option<&LogEntry> {
        self.log.get(receiver, group_key)
    }

    /// Whether the cooldown ledger has an entry for the alert and receiver.
    pub fn has_cooldown(&self, receiver: &str, fingerprint: Fingerprint) -> bool {
        self.cooldown.contains(receiver, fingerprint)
    }

    /// Puts back a cooldown-ledger entry saved before a restart, so a
    /// re-fire within an alert's cooldown stays held back and a resolution
    /// owed to a receiver is still sent.
    pub fn restore_cooldown(
        &mut self,
        receiver: &str,
        fingerprint: Fingerprint,
        last_firing_sent: DateTime<Utc>,
        cooldown: std::time::Duration,
        awaiting_resolve: bool,
    ) {
        self.cooldown.restore(
            receiver,
            fingerprint,
            last_firing_sent,
            cooldown,
            awaiting_resolve,
        );
    }

    /// When [`Notifier::tick`] next has work, if ever.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.dispatcher.next_deadline()
    }

    /// Flushes the due groups and returns the notifications to deliver.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Notification> {
        let mut out = Vec::new();
        self.tick_into(now, &mut out);
        out
    }

    /// Takes the held-back alerts that `may_notify` lets pass again back in
    /// (their group's term is valid again); drops those held too long.
    fn take_back_held(&mut self, may_notify: &NotifyGuard, now: DateTime<Utc>) {
        if self.held_back.is_empty() {
            return;
        }
        self.held_back
            .retain(|_, (_, since)| now.signed_duration_since(*since) < HELD_BACK_AT_MOST);
        let refused: std::collections::HashSet<Fingerprint> =
            may_notify(&mut self.held_back.keys().copied())
                .into_iter()
                .collect();
        let passing: Vec<Fingerprint> = self
            .held_back
            .keys()
            .filter(|fp| !refused.contains(fp))
            .copied()
            .collect();
        let alerts: Vec<Alert> = passing
            .iter()
            .filter_map(|fp| self.held_back.remove(fp))
            .map(|(alert, _)| (*alert).clone())
            .collect();
        if !alerts.is_empty() {
            tracing::info!(
                alerts = alerts.len(),
                "notifying held-back alerts after all: their rule group's term is valid again"
            );
            self.ingest(alerts, now);
        }
    }

    /// Flushes the due groups into `sink`; returns how many notifications
    /// it took.
    pub fn tick_into(&mut self, now: DateTime<Utc>, sink: &mut dyn NotificationSink) -> usize {
        if let Some(may_notify) = self.may_notify.clone() {
            self.take_back_held(&may_notify, now);
            let refused = may_notify(&mut self.alerts.keys().copied());
            if !refused.is_empty() {
                tracing::warn!(
                    alerts = refused.len(),
                    "holding back alerts whose rule group this replica does not hold under a valid term now: notified from here if it still holds the group, else by the group's new owner"
                );
                let held: Vec<(Fingerprint, Arc<Alert>)> = refused
                    .iter()
                    .filter_map(|fp| self.alerts.get(fp).map(|a| (*fp, Arc::clone(a))))
                    .collect();
                self.forget(&refused);
                for (fp, alert) in held {
                    self.held_back.insert(fp, (alert, now));
                }
            }
        }
        let flushes = self.dispatcher.due(now);
        // Built only when something flushes, and reused until the alerts
        // change or one of them resolves by the clock.
        let sources = if flushes.is_empty() || self.inhibitor.is_empty() {
            Arc::new(SourceIndex::default())
        } else {
            self.snapshot().sources_at(now)
        };
        let mut pipeline = Pipeline {
            config: &self.config,
            inhibitor: &self.inhibitor,
            sources: &sources,
            silences: self.silences.as_ref(),
            cooldown: &mut self.cooldown,
            log: &mut self.log,
            external_url: &self.external_url,
        };
        let mut sent = 0;
        for flush in flushes {
            match pipeline.run(&flush, now, sink) {
                Ok(delivered) => {
                    sent += usize::from(delivered);
                    self.dispatcher.flushed(&flush, now);
                }
                Err(err) => tracing::warn!(
                    receiver = %flush.receiver,
                    group = %flush.group_key,
                    error = %err,
                    "notification not taken; retrying at the next group interval"
                ),
            }
        }
        self.gc(now);
        sent
    }

    fn gc(&mut self, now: DateTime<Utc>) {
        let dispatcher = &self.dispatcher;
        let before = self.alerts.len();
        self.alerts.retain(|fingerprint, alert| {
            alert.status_at(now) == AlertStatus::Firing || dispatcher.contains(*fingerprint)
        });
        if self.alerts.len() != before {
            self.changed();
            let alerts = &self.alerts;
            self.updated
                .retain(|fingerprint, _| alerts.contains_key(fingerprint));
        }
        self.cooldown.gc(now);
        self.log.gc(now);
        self.silences.gc(now);
    }
}

/// One alert as readers see it.
#[derive(Debug, Clone)]
pub struct SnapshotAlert {
    pub fingerprint: Fingerprint,
    pub alert: Arc<Alert>,
    /// When it was last ingested (the alerts API's `updatedAt`).
    pub updated_at: DateTime<Utc>,
}

/// The notifier as of one change, for readers (the alerts API, the
/// dashboard): they work on it without the notifier's lock.
#[derive(Debug)]
pub struct AlertsSnapshot {
    version: u64,
    /// Every alert the notifier held, in no particular order.
    pub alerts: Vec<SnapshotAlert>,
    pub routes: Arc<RouteTree>,
    pub inhibitor: Arc<Inhibitor>,
    /// Every retained silence (active, pending, expired).
    pub silences: Vec<Silence>,
    /// The inhibition sources of the last time asked, with the span of
    /// time over which the set of firing alerts stays the same.
    sources: Mutex<Option<CachedSources>>,
}

#[derive(Debug)]
struct CachedSources {
    from: DateTime<Utc>,
    /// The first `ends_at` of a firing alert: from then on another set fires.
    until: Option<DateTime<Utc>>,
    index: Arc<SourceIndex>,
}

impl AlertsSnapshot {
    /// The notifier change this snapshot shows.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The alerts firing at `now`, filed for inhibition checks with
    /// [`AlertsSnapshot::inhibitor`]. Built once and reused while the same
    /// alerts fire. Never built while holding the cache's lock, so a reader
    /// building it does not hold up the pipeline asking for it too.
    pub fn sources_at(&self, now: DateTime<Utc>) -> Arc<SourceIndex> {
        {
            let cached = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cached.as_ref() {
                if c.from <= now && c.until.is_none_or(|until| now < until) {
                    return Arc::clone(&c.index);
                }
            }
        }
        let firing = self
            .alerts
            .iter()
            .filter(|a| a.alert.status_at(now) == AlertStatus::Firing);
        let until = firing.clone().filter_map(|a| a.alert.ends_at).min();
        let index = Arc::new(
            self.inhibitor
                .index(firing.map(|a| (a.fingerprint, &a.alert.labels))),
        );
        *self.sources.lock().unwrap_or_else(|e| e.into_inner()) = Some(CachedSources {
            from: now,
            until,
            index: Arc::clone(&index),
        });
        index
    }
}

/// Drives a shared notifier on `clock` until `shutdown` fires: sleeps
/// (on `clock`) until the next deadline (or `idle` when there is none, so alerts
/// ingested meanwhile are picked up) and ticks into `sink`.
pub async fn run(
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    clock: Arc<dyn Clock>,
    mut sink: Box<dyn NotificationSink>,
    idle: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let wait = {
            let mut notifier = notifier.lock().await;
            let now = clock.now();
            // A flush of many alerts is CPU work: off the async worker, so
            // the worker's other requests (health checks) move elsewhere.
            off_worker(|| notifier.tick_into(now, sink.as_mut()));
            notifier
                .next_deadline()
                .and_then(|deadline| (deadline - now).to_std().ok())
                .map_or(idle, |until| until.min(idle))
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = clock.sleep(wait) => {}
        }
    }
}

/// Runs `work` with the runtime told this worker is busy (so its queued
/// tasks move to another worker) on a multi-threaded runtime; as is on a
/// current-thread one.
pub fn off_worker<R>(work: impl FnOnce() -> R) -> R {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::clock::SimClock;
    use crate::notify::fixtures::notify_config;

    fn notifier() -> Notifier {
        let config = notify_config("route: {receiver: r, group_wait: 30s}\nreceivers: [{name: r, console_configs: [{}]}]\n");
        Notifier::new(Arc::new(config))
    }

    fn alert(now: DateTime<Utc>) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", "Down")]),
            annotations: BTreeMap::new(),
            starts_at: now,
            ends_at: None,
            generator_url: String::new(),
            cooldown: None,
        }
    }

    #[test]
    fn a_refused_notification_is_offered_again_at_the_next_flush() {
        struct Refuse;
        impl NotificationSink for Refuse {
            fn submit(&mut self, n: Notification) -> Result<(), SinkError> {
                Err(SinkError {
                    receiver: n.receiver,
                    reason: "outbox full".into(),
                })
            }
        }
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let mut notifier = notifier();
        notifier.ingest(vec![alert(t0)], t0);
        let at = |s| t0 + chrono::Duration::seconds(s);
        assert_eq!(notifier.tick_into(at(30), &mut Refuse), 0);
        notifier.ingest(vec![alert(at(200))], at(200));
        assert_eq!(
            notifier.tick(at(330)).len(),
            1,
            "not recorded as sent, so sent now"
        );
    }

    #[test]
    fn a_forgotten_alert_is_neither_notified_nor_resolved_later() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let at = |s| t0 + chrono::Duration::seconds(s);
        let mut notifier = notifier();
        let a = alert(t0);
        let fp = a.fingerprint();
        notifier.ingest(vec![a], t0);
        notifier.forget(&[fp]);
        assert!(!notifier.holds(fp));
        assert_eq!(notifier.alert_count(), 0);
        assert!(
            notifier.tick(at(3600)).is_empty(),
            "its group moved to another replica: nothing sent from here, not even a resolution"
        );
    }

    #[test]
    fn reload_reroutes_known_alerts_without_resending_them() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let at = |s| t0 + chrono::Duration::seconds(s);
        let mut notifier = notifier();
        notifier.ingest(vec![alert(t0)], t0);
        assert_eq!(notifier.tick(at(30)).len(), 1);
        let same = notifier.config().clone();
        notifier.reload(Arc::new(same), at(60));
        assert!(
            notifier.tick(at(60)).is_empty(),
            "same group key: already sent"
        );
        let regrouped = notify_config("route: {receiver: r, group_wait: 30s, group_by: [alertname]}\nreceivers: [{name: r, console_configs: [{}]}]\n");
        notifier.reload(Arc::new(regrouped), at(90));
        let sent = notifier.tick(at(90));
        assert_eq!(
            sent.len(),
            1,
            "a new group, flushed at once: the alert is older than group_wait"
        );
        assert_eq!(sent[0].group_key, "{}:{alertname=\"Down\"}");
    }

    #[tokio::test]
    async fn run_delivers_due_notifications_to_the_sink() {
        let clock = Arc::new(SimClock::new(DateTime::<Utc>::UNIX_EPOCH));
        let notifier = Arc::new(tokio::sync::Mutex::new(notifier()));
        notifier
            .lock()
            .await
            .ingest(vec![alert(clock.now())], clock.now());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(run(
            notifier.clone(),
            clock.clone(),
            Box::new(tx),
            Duration::from_millis(5),
            shutdown.clone(),
        ));
        // Only the simulated clock decides when the group is due.
        clock.advance(Duration::from_secs(30));
        let received = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        let notification = received.unwrap().unwrap();
        assert_eq!(notification.receiver, "r");
        shutdown.cancel();
        task.await.unwrap();
    }
}
