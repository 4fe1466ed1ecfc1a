//! The glue between the running evaluator and the SQL history
//! ([`crate::history`]): connecting and migrating at start (without ever
//! blocking evaluation on a database that is down), the batched writer and
//! the retention pruner, the leader election that decides who sends, alert
//! transitions and state snapshots recorded after every rule evaluation,
//! and restoring the alert state machine from those snapshots at start.
//!
//! Why: without it the history tables stay empty and a restart forgets
//! which alerts were firing, so the same alert would fire (and notify)
//! twice and a `for` timer would start over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::StorageSettings;
use crate::alerts::state::AlertState;
use crate::alerts::Alert as RuleAlert;
use crate::clock::Clock;
use crate::history::leader::{LeaderConfig, LeaderElector, Ticks};
use crate::history::silences::SqlSilences;
use crate::history::store::{
    run_pruner, AlertSnapshot, CooldownRow, EndReason, EpisodeRecord, HistoryState, HistoryWrite,
    NotifyLogRow, Transition,
};
use crate::history::writer::{HistoryWriter, WriterConfig, WriterSummary};
use crate::history::{Database, HistoryError, HistoryStore};
use crate::labels::Labels;
use crate::notify::alert::{
    Alert as NotifierAlert, AlertStatus, Fingerprint, Notification, NotifiedAlert,
};
use crate::notify::dedup::LogEntry;
use crate::notify::notifier::Notifier;
use crate::notify::silence::DEFAULT_RETENTION;
use crate::rules::group::{DroppedByReload, Rule, RuleGroup};
use crate::scrape::TargetHandle;

/// How often closed history older than `storage.retention` is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How long start-up waits for saved state before evaluating without it.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the history could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DurabilityError {
    #[error("history storage (storage.database_url): {0}")]
    History(#[from] HistoryError),
}

/// The running history: the store, the writer the evaluation records into,
/// the pruner and the leader election.
#[derive(Debug)]
pub struct Durability {
    pub store: HistoryStore,
    pub writer: HistoryWriter,
    pub leader: LeaderElector,
    writer_task: JoinHandle<WriterSummary>,
    pruner_task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Durability {
    /// Opens the database lazily (a database that is down is logged and
    /// retried by the writer; evaluation does not wait for it), migrates it
    /// in the background, and starts the writer, the pruner and the leader
    /// election. `grace` bounds the writer's flush at [`Durability::stop`].
    /// All of them read time from `clock`.
    pub fn start(
        storage: &StorageSettings,
        registry: &Registry,
        grace: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Durability, DurabilityError> {
        let db = Database::connect_lazy_with(&storage.database_url, storage.pooling)?;
        let store = HistoryStore::new(db.clone()).with_metrics(registry)?;
        let stop = CancellationToken::new();
        tokio::spawn(async move {
            match db.ensure_schema().await {
                Ok(()) => tracing::info!(database = %db.url(), "history database ready"),
                Err(e) => {
                    tracing::error!(error = %e, "history database unavailable; history is buffered and written once it answers")
                }
            }
        });
        let config = WriterConfig {
            shutdown_grace: grace,
            clock: Arc::clone(&clock),
            ..WriterConfig::default()
        };
        let (writer, writer_task) =
            HistoryWriter::spawn(store.clone(), config, registry, stop.clone())?;
        let pruner_task = tokio::spawn(run_pruner(
            store.clone(),
            storage.retention,
            PRUNE_EVERY,
            Arc::clone(&clock),
            stop.clone(),
        ));
        let leader = LeaderElector::start(
            &storage.database_url,
            store.database(),
            LeaderConfig::new(storage.lease_duration, storage.lease_renew_interval),
            Ticks::Every(storage.lease_renew_interval),
            clock,
            stop.clone(),
        )?;
        Ok(Durability {
            store,
            writer,
            leader,
            writer_task,
            pruner_task,
            stop,
        })
    }

    /// The stored silences, written through to the history from now on;
    /// none yet when the database does not answer (the periodic merge of
    /// [`crate::server::api::alertmanager::run_sync`] brings them in later).
    pub async fn load_silences(&self) -> SqlSilences {
        let writer = self.writer.clone();
        let load = SqlSilences::load(&self.store, writer.clone(), DEFAULT_RETENTION);
        match tokio::time::timeout(LOAD_TIMEOUT, load).await {
            Ok(Ok(silences)) => silences,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot load silences; they are merged in once the database answers");
                SqlSilences::empty(writer, DEFAULT_RETENTION)
            }
            Err(_) => {
                tracing::error!("the history database did not answer in time; silences are merged in once it does");
                SqlSilences::empty(writer, DEFAULT_RETENTION)
            }
        }
    }

    /// Silences for a start without the database: none yet, written
    /// through from now on; the periodic sync merges the stored ones in.
    pub fn silences_without_database(&self) -> SqlSilences {
        SqlSilences::empty(self.writer.clone(), DEFAULT_RETENTION)
    }

    /// Stops the pruner and the election and flushes the writer (bounded by
    /// the grace given to [`Durability::start`]).
    pub async fn stop(self) {
        self.stop.cancel();
        drop(self.writer);
        match self.writer_task.await {
            Ok(summary) if summary.lost > 0 => {
                tracing::warn!(lost = summary.lost, "history writes lost at shutdown");
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "the history writer failed"),
        }
        let _ = self.pruner_task.await;
        self.leader.join().await;
        self.store.database().close().await;
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn history_state(a: &RuleAlert) -> HistoryState {
    match a.state {
        AlertState::Pending => HistoryState::Pending,
        AlertState::Firing => HistoryState::Firing,
        AlertState::Inactive if a.resolved_at_ms.is_some() => HistoryState::Resolved,
        AlertState::Inactive => HistoryState::Inactive,
    }
}

/// What was last recorded of one alert.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: HistoryState,
    active_at_ms: i64,
    fired_at_ms: Option<i64>,
    resolved_at_ms: Option<i64>,
    last_sent_at_ms: Option<i64>,
    keep_firing_since_ms: Option<i64>,
}

impl Seen {
    fn of(a: &RuleAlert) -> Seen {
        Seen {
            state: history_state(a),
            active_at_ms: a.active_at_ms,
            fired_at_ms: a.fired_at_ms,
            resolved_at_ms: a.resolved_at_ms,
            last_sent_at_ms: a.last_sent_at_ms,
            keep_firing_since_ms: a.keep_firing_since_ms,
        }
    }
}

/// One alert the tracker follows: what was last recorded of it, and its
/// episode as last written (to close it when the alert disappears).
#[derive(Debug, Clone)]
struct Tracked {
    seen: Seen,
    episode: EpisodeRecord,
}

/// Turns the alerts of each evaluated group into history writes: an
/// episode upsert and a transition per state change, a snapshot whenever
/// the state machine's timestamps moved, and a forgotten snapshot when an
/// alert leaves the rule. Compares each group's alerts with what it saw
/// after the previous evaluation, so only changes are written.
///
/// The invariant it keeps: the open episodes in the history are exactly
/// the alerts the evaluator holds as pending or firing. So an alert that
/// leaves its rule while open (pending that cleared before `for`, alerts
/// dropped by a rule's `limit`) closes its episode, and so do the alerts a
/// reload drops ([`AlertTracker::close_dropped`]) and, at start, the
/// episodes of alerts that were not restored ([`AlertTracker::after_restore`]).
#[derive(Debug, Default)]
pub struct AlertTracker {
    seen: Mutex<HashMap<(String, String), BTreeMap<Fingerprint, Tracked>>>,
}

fn group_key(group: &RuleGroup) -> (String, String) {
    (group.file.display().to_string(), group.name.clone())
}

impl AlertTracker {
    /// Puts saved alerts back into `group`'s alerting rules (see
    /// [`restore_group`]) and remembers them as seen, so restored alerts
    /// are not recorded as new transitions.
    pub fn restore(&self, group: &mut RuleGroup, snapshots: &[AlertSnapshot]) -> usize {
        let restored = restore_group(group, snapshots);
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = all.entry(group_key(group)).or_default();
        for a in alerting(group) {
            seen.insert(
                Fingerprint::of(&a.labels),
                Tracked {
                    seen: Seen::of(a),
                    episode: episode_record(group, a, time(a.active_at_ms)),
                },
            );
        }
        restored
    }

    /// After every group was restored: the writes that close the episodes
    /// of saved alerts no group took back (their rule is gone) and drop
    /// their snapshots, then the sweep that closes every other open episode
    /// of a rule alert the evaluator does not hold (its state was lost);
    /// and the firing ones among the former as resolved alerts for the
    /// notifier, so receivers that were told they fire hear they ended.
    pub fn after_restore(
        &self,
        snapshots: &[AlertSnapshot],
        now: DateTime<Utc>,
    ) -> (Vec<HistoryWrite>, Vec<NotifierAlert>) {
        let all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let held: HashSet<Fingerprint> = all.values().flat_map(|m| m.keys().copied()).collect();
        let mut writes = Vec::new();
        let mut resolved = Vec::new();
        for s in snapshots.iter().filter(|s| !held.contains(&s.fingerprint)) {
            if s.state.is_open() {
                let episode = EpisodeRecord {
                    fingerprint: s.fingerprint,
                    rule: s.rule.clone(),
                    group_name: s.group_name.clone(),
                    labels: s.labels.clone(),
                    annotations: s.annotations.clone(),
                    state: s.state,
                    starts_at: s.active_at,
                    fired_at: s.fired_at,
                    ends_at: None,
                    value: s.value,
                    updated_at: s.updated_at,
                    end_reason: None,
                };
                writes.extend(closing_writes(
                    &episode,
                    Some(EndReason::RuleGoneAtStart),
                    now,
                ));
                if s.state == HistoryState::Firing {
                    resolved.push(resolved_at(s, now));
                }
            }
            writes.push(HistoryWrite::ForgetSnapshot(s.fingerprint));
        }
        // A restored alert's episode is written again, open, so that what
        // the evaluator holds is open in the history even when a crash kept
        // the saved state but lost the episode's own writes (or the reverse).
        let tracked = || all.values().flat_map(|m| m.values());
        for t in tracked().filter(|t| t.seen.state.is_open()) {
            writes.push(HistoryWrite::Episode(EpisodeRecord {
                updated_at: now,
                ..t.episode.clone()
            }));
        }
        writes.push(HistoryWrite::CloseEpisodesNotHeld {
            open: tracked()
                .filter(|t| t.seen.state.is_open())
                .map(|t| t.episode.id())
                .collect(),
            held: tracked().map(|t| t.episode.id()).collect(),
            before: now,
            reason: EndReason::StateLost,
        });
        (writes, resolved)
    }

    /// The writes that close the episodes of the alerts a reload took away
    /// from a group (see [`RuleGroup::dropped_by_reload`]), which it stops
    /// following; a removed group is forgotten altogether.
    pub fn close_dropped(
        &self,
        dropped: &DroppedByReload,
        now: DateTime<Utc>,
    ) -> Vec<HistoryWrite> {
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let key = (dropped.file.clone(), dropped.name.clone());
        let mut writes = Vec::new();
        let mut close = |fp: Fingerprint, t: Tracked| {
            if t.seen.state.is_open() {
                writes.extend(closing_writes(
                    &t.episode,
                    Some(EndReason::RuleRemoved),
                    now,
                ));
            }
            writes.push(HistoryWrite::ForgetSnapshot(fp));
        };
        if dropped.group_removed {
            for (fp, t) in all.remove(&key).unwrap_or_default() {
                close(fp, t);
            }
        } else if let Some(seen) = all.get_mut(&key) {
            for (a, _) in &dropped.alerts {
                let fp = Fingerprint::of(&a.labels);
                if let Some(t) = seen.remove(&fp) {
                    close(fp, t);
                }
            }
        }
        writes
    }

    /// The writes for `group` after an evaluation at `now`.
    pub fn observe(&self, group: &RuleGroup, now: DateTime<Utc>) -> Vec<HistoryWrite> {
        let mut all = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let seen = all.entry(group_key(group)).or_default();
        let mut before_eval = std::mem::take(seen);
        let mut writes = Vec::new();
        let mut present = BTreeMap::new();
        for a in alerting(group) {
            let fp = Fingerprint::of(&a.labels);
            let current = Seen::of(a);
            let before = match before_eval.remove(&fp) {
                Some(unchanged) if unchanged.seen == current => {
                    present.insert(fp, unchanged);
                    continue;
                }
                other => other.map(|b| b.seen),
            };
            let from = before.as_ref().map_or(HistoryState::Inactive, |b| b.state);
            // A new activation is a new episode even when the old one's
            // resolved state was never seen in between.
            let from = match &before {
                Some(b) if b.active_at_ms != current.active_at_ms => HistoryState::Inactive,
                _ => from,
            };
            let episode = episode_record(group, a, now);
            if from != current.state
                && !(from == HistoryState::Inactive && current.state.is_closed())
            {
                writes.push(HistoryWrite::Episode(episode.clone()));
                writes.push(HistoryWrite::Transition(Transition {
                    alert_id: episode.id(),
                    from,
                    to: current.state,
                    at: now,
                    value: Some(a.value),
                }));
            }
            writes.push(HistoryWrite::Snapshot(snapshot(group, a, now)));
            present.insert(
                fp,
                Tracked {
                    seen: current,
                    episode,
                },
            );
        }
        // Alerts that left their rule: a pending one that cleared before
        // its `for` elapsed (the rule drops it at once), or alerts the
        // rule's `limit` dropped. Their episodes end now.
        for (fp, gone) in before_eval {
            if gone.seen.state.is_open() {
                let reason =
                    (gone.seen.state == HistoryState::Firing).then_some(EndReason::LimitExceeded);
                writes.extend(closing_writes(&gone.episode, reason, now));
            }
            writes.push(HistoryWrite::ForgetSnapshot(fp));
        }
        *seen = present;
        writes
    }
}

/// The episode of `a` as reported at `now`.
fn episode_record(group: &RuleGroup, a: &RuleAlert, now: DateTime<Utc>) -> EpisodeRecord {
    EpisodeRecord {
        fingerprint: Fingerprint::of(&a.labels),
        rule: a.name().to_string(),
        group_name: group.name.clone(),
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: history_state(a),
        starts_at: time(a.active_at_ms),
        fired_at: a.fired_at_ms.map(time),
        ends_at: a.resolved_at_ms.map(time),
        value: Some(a.value),
        updated_at: now,
        end_reason: None,
    }
}

/// The episode upsert and transition that close the open `episode` at
/// `now`: a pending one goes back to inactive, a firing one resolves.
fn closing_writes(
    episode: &EpisodeRecord,
    reason: Option<EndReason>,
    now: DateTime<Utc>,
) -> [HistoryWrite; 2] {
    let to = if episode.state == HistoryState::Pending {
        HistoryState::Inactive
    } else {
        HistoryState::Resolved
    };
    let closed = EpisodeRecord {
        state: to,
        ends_at: Some(now),
        updated_at: now,
        end_reason: reason,
        ..episode.clone()
    };
    [
        HistoryWrite::Episode(closed),
        HistoryWrite::Transition(Transition {
            alert_id: episode.id(),
            from: episode.state,
            to,
            at: now,
            value: episode.value,
        }),
    ]
}

/// What a saved state that arrived late (the database did not answer within
/// [`STARTUP_BUDGET`], so evaluation started without it) still owes the
/// receivers: the saved firing alerts that no group holds any more (pending
/// or firing) ended while the evaluator could not know it, so receivers told
/// they fire are told they ended, as resolved alerts for the notifier. An
/// alert a group holds again started over; the merged notification log keeps
/// its firing from being told twice.
///
/// `None` while a group that had saved firing alerts has not been evaluated
/// since `started_at_ms`: its alerts cannot be judged yet (ask again later).
pub fn resolved_by_late_state(
    groups: &[&RuleGroup],
    snapshots: &[AlertSnapshot],
    started_at_ms: i64,
    now: DateTime<Utc>,
) -> Option<Vec<NotifierAlert>> {
    let firing: Vec<&AlertSnapshot> = snapshots
        .iter()
        .filter(|s| s.state == HistoryState::Firing)
        .collect();
    let unevaluated = groups.iter().any(|g| {
        g.last_eval_ms.is_none_or(|at| at < started_at_ms)
            && firing.iter().any(|s| s.group_name == g.name)
    });
    if unevaluated {
        return None;
    }
    let held: HashSet<Fingerprint> = groups
        .iter()
        .flat_map(|g| alerting(g))
        .filter(|a| a.state != AlertState::Inactive)
        .map(|a| Fingerprint::of(&a.labels))
        .collect();
    Some(
        firing
            .into_iter()
            .filter(|s| !held.contains(&s.fingerprint))
            .map(|s| resolved_at(s, now))
            .collect(),
    )
}

/// Saved firing alert `s` as a resolved alert for the notifier, ended `now`.
fn resolved_at(s: &AlertSnapshot, now: DateTime<Utc>) -> NotifierAlert {
    NotifierAlert {
        labels: s.labels.clone(),
        annotations: s.annotations.clone(),
        starts_at: s.fired_at.unwrap_or(s.active_at),
        ends_at: Some(now),
        generator_url: String::new(),
        cooldown: None,
    }
}

fn alerting(group: &RuleGroup) -> impl Iterator<Item = &RuleAlert> {
    group
        .rules
        .iter()
        .flat_map(|entry| match &entry.rule {
            Rule::Alerting(rule) => Some(rule.alerts()),
            Rule::Recording(_) => None,
        })
        .flatten()
}

fn snapshot(group: &RuleGroup, a: &RuleAlert, now: DateTime<Utc>) -> AlertSnapshot {
    AlertSnapshot {
        fingerprint: Fingerprint::of(&a.labels),
        rule: a.name().to_string(),
        group_name: group.name.clone(),
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        state: history_state(a),
        active_at: time(a.active_at_ms),
        fired_at: a.fired_at_ms.map(time),
        resolved_at: a.resolved_at_ms.map(time),
        keep_firing_since: a.keep_firing_since_ms.map(time),
        last_sent_at: a.last_sent_at_ms.map(time),
        value: Some(a.value),
        updated_at: now,
    }
}

/// Puts saved alerts back into the alerting rules of `group` (matched by
/// group name and `alertname`), so a firing alert stays firing and a
/// pending alert keeps its `for` timer. Restored alerts are handed to the
/// notifier again at the first evaluation, which notifies only what the
/// notification log and the outbox do not show as told. Returns
/// how many were restored.
pub fn restore_group(group: &mut RuleGroup, snapshots: &[AlertSnapshot]) -> usize {
    let mut restored = 0;
    for entry in &mut group.rules {
        let Rule::Alerting(rule) = &mut entry.rule else {
            continue;
        };
        let cooldown = rule.spec().cooldown;
        let alerts: Vec<RuleAlert> = snapshots
            .iter()
            .filter(|s| s.group_name == group.name && s.rule == rule.name())
            .map(|s| to_rule_alert(s, cooldown))
            .collect();
        restored += alerts.len();
        rule.restore(alerts);
    }
    restored
}

fn to_rule_alert(s: &AlertSnapshot, cooldown: Option<Duration>) -> RuleAlert {
    let ms = |t: DateTime<Utc>| t.timestamp_millis();
    let state = match s.state {
        HistoryState::Pending => AlertState::Pending,
        HistoryState::Firing => AlertState::Firing,
        HistoryState::Resolved | HistoryState::Inactive => AlertState::Inactive,
    };
    let labels: Labels = s.labels.clone();
    RuleAlert {
        state,
        labels,
        annotations: s.annotations.clone(),
        value: s.value.unwrap_or(f64::NAN),
        active_at_ms: ms(s.active_at),
        fired_at_ms: s.fired_at.map(ms),
        resolved_at_ms: s.resolved_at.map(ms),
        // Handed to the notifier again at the first evaluation: the
        // snapshot is saved before the notification is in the outbox, so
        // "sent to the notifier" says nothing about what a receiver was
        // told. The notifier decides from the notification log and the
        // outbox (restored at start): an alert whose notification is not
        // recorded as delivered or pending is notified at once, one
        // already told is not told again.
        last_sent_at_ms: None,
        valid_until_ms: None,
        keep_firing_since_ms: s.keep_firing_since.map(ms),
        cooldown,
    }
}

/// A notification as stored in the outbox payload: everything needed to
/// deliver it again after a restart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StoredNotification {
    receiver: String,
    group_key: String,
    firing: bool,
    alerts: Vec<StoredAlert>,
    group_labels: BTreeMap<String, String>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    external_url: String,
    truncated_alerts: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StoredAlert {
    firing: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    generator_url: String,
    cooldown_ms: Option<u64>,
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

fn status(firing: bool) -> AlertStatus {
    if firing {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    }
}

/// The outbox payload of `n` (JSON text).
pub fn notification_payload(n: &Notification) -> String {
    let stored = StoredNotification {
        receiver: n.receiver.clone(),
        group_key: n.group_key.clone(),
        firing: n.status == AlertStatus::Firing,
        alerts: n
            .alerts
            .iter()
            .map(|a| StoredAlert {
                firing: a.status == AlertStatus::Firing,
                labels: label_map(&a.alert.labels),
                annotations: a.alert.annotations.clone(),
                starts_at_ms: a.alert.starts_at.timestamp_millis(),
                ends_at_ms: a.alert.ends_at.map(|t| t.timestamp_millis()),
                generator_url: a.alert.generator_url.clone(),
                cooldown_ms: a
                    .alert
                    .cooldown
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect(),
        group_labels: label_map(&n.group_labels),
        common_labels: label_map(&n.common_labels),
        common_annotations: n.common_annotations.clone(),
        external_url: n.external_url.clone(),
        truncated_alerts: n.truncated_alerts,
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// The notification an outbox payload holds; `None` when the payload is not
/// one [`notification_payload`] wrote.
pub fn notification_from_payload(payload: &str) -> Option<Notification> {
    let s: StoredNotification = serde_json::from_str(payload).ok()?;
    Some(Notification {
        receiver: s.receiver,
        group_key: s.group_key,
        status: status(s.firing),
        alerts: s
            .alerts
            .into_iter()
            .map(|a| {
                let alert = NotifierAlert {
                    labels: Labels::from_pairs(a.labels),
                    annotations: a.annotations,
                    starts_at: time(a.starts_at_ms),
                    ends_at: a.ends_at_ms.map(time),
                    generator_url: a.generator_url,
                    cooldown: a.cooldown_ms.map(Duration::from_millis),
                };
                NotifiedAlert {
                    status: status(a.firing),
                    fingerprint: alert.fingerprint(),
                    alert,
                }
            })
            .collect(),
        group_labels: Labels::from_pairs(s.group_labels),
        common_labels: Labels::from_pairs(s.common_labels),
        common_annotations: s.common_annotations,
        external_url: s.external_url,
        truncated_alerts: s.truncated_alerts,
        redelivery: false,
    })
}

/// The notification-log row a delivered notification leaves: which alerts
/// the receiver was told are firing and resolved.
pub fn notify_log_row(n: &Notification, sent_at: DateTime<Utc>) -> NotifyLogRow {
    let of = |want: AlertStatus| {
        n.alerts
            .iter()
            .filter(|a| a.status == want)
            .map(|a| a.fingerprint)
            .collect()
    };
    NotifyLogRow {
        receiver: n.receiver.clone(),
        group_key: n.group_key.clone(),
        firing: of(AlertStatus::Firing),
        resolved: of(AlertStatus::Resolved),
        sent_at,
    }
}

/// The cooldown-ledger rows a delivered notification leaves, one per alert:
/// a firing alert restarts its cooldown and is owed a resolution; a
/// resolved one no longer is (its last firing time stays as stored; a row
/// new to the table takes the alert's start, the earliest it can have fired).
pub fn cooldown_rows(n: &Notification, sent_at: DateTime<Utc>) -> Vec<CooldownRow> {
    n.alerts
        .iter()
        .map(|a| {
            let firing = a.status == AlertStatus::Firing;
            CooldownRow {
                receiver: n.receiver.clone(),
                fingerprint: a.fingerprint,
                last_firing_sent: if firing { sent_at } else { a.alert.starts_at },
                cooldown: a.alert.cooldown.unwrap_or(Duration::ZERO),
                awaiting_resolve: firing,
            }
        })
        .collect()
}

/// How far back delivered outbox entries are read at start, to cover
/// notification-log rows a killed process had not written yet.
const SENT_LOOKBACK: chrono::Duration = chrono::Duration::hours(6);

/// How long start-up waits for the saved state before it starts without
/// it (listener, scraping, evaluation and delivery do not wait longer).
pub const STARTUP_BUDGET: Duration = Duration::from_secs(1);
/// How often the saved state is tried again while the database is down.
const RESTORE_RETRY: Duration = Duration::from_secs(2);

/// What start-up restores from the history: the alert state machine's
/// snapshots, the notification log, the cooldown ledger, and what the
/// outbox says receivers were (or are about to be) told.
#[derive(Debug, Default)]
pub struct SavedState {
    pub snapshots: Vec<AlertSnapshot>,
    log: Vec<NotifyLogRow>,
    cooldowns: Vec<CooldownRow>,
    /// Outbox entries delivered in the last [`SENT_LOOKBACK`] (at their
    /// delivery time) and pending ones (at their creation), oldest first.
    told: Vec<(Notification, DateTime<Utc>)>,
}

/// Reads the saved state at `now`; fails when the database does not answer.
pub async fn load_saved_state(
    store: &HistoryStore,
    now: DateTime<Utc>,
) -> Result<SavedState, HistoryError> {
    let snapshots = store.load_snapshots().await?;
    let log = store.load_notify_log().await?;
    let cooldowns = store.load_cooldowns().await?;
    let pending = store.due(DateTime::<Utc>::MAX_UTC, 100_000).await?;
    let sent = store.sent_since(now - SENT_LOOKBACK, 100_000).await?;
    let mut told: Vec<(DateTime<Utc>, String, Notification)> = sent
        .into_iter()
        .filter_map(|r| {
            let at = r.sent_at.unwrap_or(r.created_at);
            Some((at, r.id, notification_from_payload(&r.payload)?))
        })
        .chain(
            pending
                .into_iter()
                .filter_map(|r| Some((r.created_at, r.id, notification_from_payload(&r.payload)?))),
        )
        .collect();
    told.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(SavedState {
        snapshots,
        log,
        cooldowns,
        told: told.into_iter().map(|(at, _, n)| (n, at)).collect(),
    })
}

/// Loads the saved state within [`STARTUP_BUDGET`]. When the database does
/// not answer in time, marks the restore pending on `store` and returns
/// `None` with the load still running (or retried every
/// [`RESTORE_RETRY`]) in the background: its result arrives on the
/// returned channel once the database answers.
pub async fn load_saved_state_at_start(
    store: &HistoryStore,
    clock: Arc<dyn Clock>,
) -> (
    Option<SavedState>,
    Option<tokio::sync::oneshot::Receiver<SavedState>>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let background = store.clone();
    let mut loading = tokio::spawn(async move {
        let mut logged = false;
        loop {
            match load_saved_state(&background, clock.now()).await {
                Ok(saved) => return saved,
                Err(e) => {
                    if !logged {
                        tracing::error!(error = %e, "cannot load the saved alert state and notification log; retrying until the database answers");
                        logged = true;
                    }
                    tokio::time::sleep(RESTORE_RETRY).await;
                }
            }
        }
    });
    match tokio::time::timeout(STARTUP_BUDGET, &mut loading).await {
        Ok(Ok(saved)) => (Some(saved), None),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "loading the saved state failed; alerts start over");
            (None, None)
        }
        Err(_) => {
            tracing::error!(
                budget_seconds = STARTUP_BUDGET.as_secs_f64(),
                "the history database does not answer: starting without the saved alert state and notification log; they are merged in when it answers"
            );
            store.set_restore_pending(true);
            tokio::spawn(async move {
                if let Ok(saved) = loading.await {
                    let _ = tx.send(saved);
                }
            });
            (None, Some(rx))
        }
    }
}

impl SavedState {
    /// Puts the notification log (completed from the outbox) and the
    /// cooldown ledger into `notifier`; returns how many log entries.
    ///
    /// What the outbox says receivers were (or are about to be) told counts
    /// when newer than the group's log row: entries delivered whose log row
    /// a killed process had not written yet (so they are not sent again),
    /// and entries still pending, which are delivered at start (so the
    /// notifier sends what follows them, e.g. the resolution of an alert
    /// whose firing notification was only pending).
    ///
    /// With `merge` (the state arrived after the notifier started), an
    /// entry never replaces what the notifier recorded itself: a log entry
    /// only where its group's is older or missing, a cooldown only where
    /// the notifier has none.
    pub fn restore_notifier(&self, notifier: &mut Notifier, merge: bool) -> usize {
        let mut cooldowns: HashMap<(String, Fingerprint), CooldownRow> = HashMap::new();
        for row in &self.cooldowns {
            cooldowns.insert((row.receiver.clone(), row.fingerprint), row.clone());
        }
        let mut log: HashMap<(String, String), LogEntry> = self
            .log
            .iter()
            .map(|row| {
                (
                    (row.receiver.clone(), row.group_key.clone()),
                    LogEntry {
                        firing: row.firing.clone(),
                        resolved: row.resolved.clone(),
                        sent_at: row.sent_at,
                    },
                )
            })
            .collect();
        let mut from_outbox = 0;
        for (n, at) in &self.told {
            let row = notify_log_row(n, *at);
            let key = (row.receiver.clone(), row.group_key.clone());
            if log.get(&key).is_some_and(|e| e.sent_at >= *at) {
                continue;
            }
            log.insert(
                key,
                LogEntry {
                    firing: row.firing,
                    resolved: row.resolved,
                    sent_at: row.sent_at,
                },
            );
            for mut c in cooldown_rows(n, *at) {
                let key = (c.receiver.clone(), c.fingerprint);
                if let (false, Some(old)) = (c.awaiting_resolve, cooldowns.get(&key)) {
                    // A resolution keeps the last firing time (as the
                    // cooldowns table does).
                    c.last_firing_sent = old.last_firing_sent;
                }
                cooldowns.insert(key, c);
            }
            from_outbox += 1;
        }
        if from_outbox > 0 {
            tracing::info!(
                notifications = from_outbox,
                "notifications delivered or pending in the outbox but not in the notification log yet count as told"
            );
        }
        for ((receiver, fingerprint), c) in cooldowns {
            if merge && notifier.has_cooldown(&receiver, fingerprint) {
                continue;
            }
            notifier.restore_cooldown(
                &receiver,
                fingerprint,
                c.last_firing_sent,
                c.cooldown,
                c.awaiting_resolve,
            );
        }
        let count = log.len();
        for ((receiver, group_key), entry) in log {
            if merge
                && notifier
                    .log_entry(&receiver, &group_key)
                    .is_some_and(|mine| mine.sent_at >= entry.sent_at)
            {
                continue;
            }
            notifier.restore_log(&receiver, &group_key, entry);
        }
        count
    }
}

/// Waits until every target has finished its first scrape, at most one
/// scrape interval plus timeout (the longest among the targets). After a
/// restart with restored alerts the store is empty: evaluating before the
/// first samples land would resolve every restored alert at once.
pub async fn wait_for_first_scrapes(targets: &[TargetHandle]) {
    let longest = targets
        .iter()
        .map(|t| {
            let s = t.snapshot();
            s.scrape_interval + s.scrape_timeout
        })
        .max()
        .unwrap_or_default();
    let done = || {
        targets
            .iter()
            .all(|t| t.snapshot().last_scrape_duration.is_some())
    };
    let waited = tokio::time::timeout(longest, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if waited.is_err() {
        tracing::warn!(
            "not every target was scraped before the first evaluation; restored alerts may resolve"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use std::path::Path;

    use super::*;
    use crate::rules::fake::{sample, FakeEngine};
    use crate::rules::file::parse_rule_file;
    use crate::rules::group::GroupEnv;

    const SEC: i64 = 1000;
    const RESEND: Duration = Duration::from_secs(60);

    fn group() -> RuleGroup {
        let mut specs = parse_rule_file(
            Path::new("g.yaml"),
            "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: x > 0\n    for: 2s\n",
        )
        .unwrap();
        RuleGroup::new(specs.remove(0), Duration::from_secs(1)).unwrap()
    }

    fn eval(g: &mut RuleGroup, engine: &FakeEngine, ts_ms: i64) {
        let external = Labels::default();
        let env = GroupEnv {
            engine,
            appender: engine,
            external_labels: &external,
            external_url: "",
            resend_delay: RESEND,
            clock: &crate::clock::SystemClock,
        };
        g.eval(ts_ms, &env);
    }

    fn transitions(writes: &[HistoryWrite]) -> Vec<(HistoryState, HistoryState)> {
        writes
            .iter()
            .filter_map(|w| match w {
                HistoryWrite::Transition(t) => Some((t.from, t.to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_state_change_is_one_episode_upsert_and_one_transition_and_nothing_else_repeats() {
        let engine = FakeEngine::new();
        engine.set("x > 0", 0, vec![sample(&[("i", "a")], 1.0)]);
        engine.set("x > 0", 10 * SEC, vec![]);
        let mut g = group();
        let tracker = AlertTracker::default();
        let mut seen = Vec::new();
        for s in 1..=12 {
            eval(&mut g, &engine, s * SEC);
            seen.extend(transitions(&tracker.observe(&g, time(s * SEC))));
        }
        use HistoryState::*;
        assert_eq!(
            seen,
            vec![(Inactive, Pending), (Pending, Firing), (Firing, Resolved)]
        );
        eval(&mut g, &engine, 13 * SEC);
        assert!(
            tracker.observe(&g, time(13 * SEC)).is_empty(),
            "an unchanged alert writes nothing"
        );
    }

    #[test]
    fn a_restored_firing_alert_keeps_firing_without_a_new_transition_and_goes_to_the_notifier_once()
    {
        let engine = FakeEngine::new();
        engine.set("x > 0", 0, vec![sample(&[("i", "a")], 1.0)]);
        let mut before = group();
        let first = AlertTracker::default();
        let mut snapshots = Vec::new();
        for s in 1..=4 {
            eval(&mut before, &engine, s * SEC);
            for w in first.observe(&before, time(s * SEC)) {
                if let HistoryWrite::Snapshot(snap) = w {
                    snapshots.retain(|o: &AlertSnapshot| o.fingerprint != snap.fingerprint);
                    snapshots.push(snap);
                }
            }
        }
        assert_eq!(snapshots.len(), 1);
        assert_eq!(snapshots[0].state, HistoryState::Firing);
        assert!(snapshots[0].last_sent_at.is_some());

        let mut after = group();
        let tracker = AlertTracker::default();
        assert_eq!(tracker.restore(&mut after, &snapshots), 1);
        let external = Labels::default();
        let env = GroupEnv {
            engine: &engine,
            appender: &engine,
            external_labels: &external,
            external_url: "",
            resend_delay: RESEND,
            clock: &crate::clock::SystemClock,
        };
        // Handed to the notifier once more (it may never have reached the
        // outbox before the restart; the notifier's restored log decides
        // whether a receiver hears of it), then not until the resend delay.
        let sent = after.eval(5 * SEC, &env);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].active_at_ms, SEC, "the original start is sent");
        assert!(transitions(&tracker.observe(&after, time(5 * SEC))).is_empty());
        assert!(
            after.eval(6 * SEC, &env).is_empty(),
            "within the resend delay"
        );
        let alert = alerting(&after).next().unwrap();
        assert_eq!(alert.state, AlertState::Firing);
        assert_eq!(alert.active_at_ms, SEC, "the original activation is kept");
    }

    #[test]
    fn a_restored_pending_alert_keeps_its_for_timer() {
        let engine = FakeEngine::new();
        engine.set("x > 0", 0, vec![sample(&[("i", "a")], 1.0)]);
        let mut before = group();
        let first = AlertTracker::default();
        eval(&mut before, &engine, SEC);
        let snapshots: Vec<AlertSnapshot> = first
            .observe(&before, time(SEC))
            .into_iter()
            .filter_map(|w| match w {
                HistoryWrite::Snapshot(s) => Some(s),
                _ => None,
            })
            .collect();
        let mut after = group();
        AlertTracker::default().restore(&mut after, &snapshots);
        eval(&mut after, &engine, 3 * SEC);
        let alert = alerting(&after).next().unwrap();
        assert_eq!(
            alert.state,
            AlertState::Firing,
            "for: 2s counted from the activation before the restart"
        );
    }

    #[test]
    fn an_outbox_payload_gives_back_the_same_notification() {
        let alert = NotifierAlert {
            labels: Labels::from_pairs([("alertname", "High"), ("i", "a")]),
            annotations: BTreeMap::from([("summary".to_string(), "x is 1".to_string())]),
            starts_at: time(1_000),
            ends_at: Some(time(9_000)),
            generator_url: "http://vigil/graph".into(),
            cooldown: Some(Duration::from_secs(30)),
        };
        let n = Notification {
            receiver: "hook".into(),
            group_key: "{}:{alertname=\"High\"}".into(),
            status: AlertStatus::Resolved,
            alerts: vec![NotifiedAlert {
                status: AlertStatus::Resolved,
                fingerprint: alert.fingerprint(),
                alert,
            }],
            group_labels: Labels::from_pairs([("alertname", "High")]),
            common_labels: Labels::from_pairs([("alertname", "High"), ("i", "a")]),
            common_annotations: BTreeMap::new(),
            external_url: "http://vigil".into(),
            truncated_alerts: 2,
            redelivery: false,
        };
        assert_eq!(
            notification_from_payload(&notification_payload(&n)),
            Some(n.clone())
        );
        assert_eq!(notification_from_payload("{not json"), None);
        let row = notify_log_row(&n, time(10_000));
        assert!(row.firing.is_empty());
        assert_eq!(row.resolved.len(), 1);
    }
}
