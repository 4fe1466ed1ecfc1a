//! Restoring from the history at start: the saved alert state machine put
//! back into the rule groups (so a firing alert stays firing and a pending
//! one keeps its `for` timer), the notification log and cooldown ledger put
//! back into the notifier (completed from what the outbox says receivers
//! were told), and, for a saved state that arrived late, the resolutions
//! receivers are still owed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::payload::{cooldown_rows, notification_from_payload};
use super::store::{AlertSnapshot, CooldownRow, HistoryState, NotifyLogRow};
use super::tracker::alerting;
use super::{HistoryError, HistoryStore};
use crate::alerts::state::AlertState;
use crate::alerts::Alert as RuleAlert;
use crate::clock::Clock;
use crate::labels::Labels;
use crate::notify::alert::{Alert as NotifierAlert, Fingerprint, Notification};
use crate::notify::dedup::LogEntry;
use crate::notify::delivery::notify_log_row;
use crate::notify::notifier::Notifier;
use crate::rules::group::{Rule, RuleGroup};

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
pub(super) fn resolved_at(s: &AlertSnapshot, now: DateTime<Utc>) -> NotifierAlert {
    NotifierAlert {
        labels: s.labels.clone(),
        annotations: s.annotations.clone(),
        starts_at: s.fired_at.unwrap_or(s.active_at),
        ends_at: Some(now),
        generator_url: String::new(),
        cooldown: None,
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
    load_with(store, snapshots, now).await
}

/// Reads what was notified (the notification log, cooldowns, the outbox's
/// recent and pending entries), without alert snapshots: what a replica
/// that takes rule groups merges into its notifier, so what their previous
/// owner notified is not notified again. Read after this replica took the
/// groups' leases, so the previous owner's writes are all in; once for all
/// the groups taken in one fleet round, not once per group.
pub async fn load_notification_state(
    store: &HistoryStore,
    now: DateTime<Utc>,
) -> Result<SavedState, HistoryError> {
    load_with(store, Vec::new(), now).await
}

async fn load_with(
    store: &HistoryStore,
    snapshots: Vec<AlertSnapshot>,
    now: DateTime<Utc>,
) -> Result<SavedState, HistoryError> {
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
    let budget_clock = Arc::clone(&clock);
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
                    clock.sleep(RESTORE_RETRY).await;
                }
            }
        }
    });
    let within_budget = tokio::select! {
        loaded = &mut loading => Some(loaded),
        () = budget_clock.sleep(STARTUP_BUDGET) => None,
    };
    match within_budget {
        Some(Ok(saved)) => (Some(saved), None),
        Some(Err(e)) => {
            tracing::error!(error = %e, "loading the saved state failed; alerts start over");
            (None, None)
        }
        None => {
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
