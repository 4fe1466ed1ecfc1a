//! What the history saved, brought back into a starting evaluator: the
//! alert state of the rule groups, the silences, the notification log and
//! cooldowns, and the open episodes of posted alerts; or, when the database
//! does not answer within the start-up budget, merged in later once it
//! does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::config::ValidatedConfig;
use crate::api::AppState;
use crate::clock::Clock;
use crate::history;
use crate::history::lifecycle::Durability;
use crate::history::restore::{load_saved_state_at_start, resolved_by_late_state, SavedState};
use crate::history::tracker::AlertTracker;
use crate::notify::alert::Alert;
use crate::notify::notifier::Notifier;
use crate::rules::group::RuleGroup;

/// How many one-second rounds a late saved state waits for every group
/// concerned to be evaluated before its resolutions are judged anyway.
const LATE_STATE_WAIT_ROUNDS: u32 = 120;

/// What the saved state gave at start.
#[derive(Debug)]
pub struct Restored {
    /// The saved state, if the database answered within the start-up
    /// budget.
    pub saved: Option<SavedState>,
    /// The saved state still on its way (see [`merge_late_saved_state`]).
    pub late: Option<oneshot::Receiver<SavedState>>,
    /// Follows the rule alerts into the history from now on.
    pub tracker: AlertTracker,
    /// How many rule alerts got their state back.
    pub alerts: usize,
    /// Firing alerts whose rules are no longer configured: to be resolved
    /// at the receivers.
    pub resolved: Vec<Alert>,
    pub started_at: DateTime<Utc>,
}

/// Loads the saved state (within the start-up budget) and gives `groups`
/// their alerts back. Episodes of alerts that were not restored can no
/// longer end by evaluation: they are closed now (and the firing ones
/// resolved at the receivers, [`Restored::resolved`]).
///
/// Sharded (`sharded`), the groups are left alone: each is restored when
/// this replica takes it, and the saved alerts of groups other replicas
/// hold are theirs, so nothing is closed or resolved here.
pub async fn restore_alert_state(
    durability: &Durability,
    groups: &[Arc<Mutex<RuleGroup>>],
    clock: &Arc<dyn Clock>,
    sharded: bool,
) -> Restored {
    let (saved, late) = load_saved_state_at_start(&durability.store, Arc::clone(clock)).await;
    let tracker = AlertTracker::default();
    let mut alerts = 0;
    let started_at = DateTime::<Utc>::from_timestamp_millis(clock.now_ms()).unwrap_or_default();
    if sharded {
        return Restored {
            saved,
            late,
            tracker,
            alerts,
            resolved: Vec::new(),
            started_at,
        };
    }
    if let Some(saved) = &saved {
        for g in groups {
            let mut g = g.lock().unwrap_or_else(|e| e.into_inner());
            alerts += tracker.restore(&mut g, &saved.snapshots);
        }
    }
    if alerts > 0 {
        tracing::info!(alerts, "alert state restored from history");
    }
    // Without the saved state (database down at start) nothing is held:
    // every episode open before this start is closed once it answers.
    let snapshots = saved.as_ref().map_or(&[][..], |s| &s.snapshots[..]);
    let (closing, resolved) = tracker.after_restore(snapshots, started_at);
    for write in closing {
        let _ = durability.writer.record(write);
    }
    Restored {
        saved,
        late,
        tracker,
        alerts,
        resolved,
        started_at,
    }
}

/// The notifier of `cfg`, with the silences kept in (and shared through)
/// the history database, and the notification log and cooldowns of
/// `saved`.
pub async fn restore_notifier(
    cfg: &ValidatedConfig,
    durability: &Durability,
    saved: Option<&SavedState>,
) -> Notifier {
    let silences = match saved {
        Some(_) => durability.load_silences().await,
        // Merged in by the periodic sync once the database answers.
        None => durability.silences_without_database(),
    };
    let mut notifier = Notifier::with_silences(Arc::clone(&cfg.notify), Box::new(silences));
    notifier.set_external_url(cfg.web.external_url.clone());
    if let Some(saved) = saved {
        let entries = saved.restore_notifier(&mut notifier, false);
        if entries > 0 {
            tracing::info!(
                entries,
                "notification log and cooldowns restored from history"
            );
        }
    }
    notifier
}

/// The saved state that arrived after start (the database did not answer
/// within the start-up budget): its notification log and cooldowns are
/// merged into the notifier, the open episodes into the Alertmanager API,
/// and, once every group concerned has been evaluated since start, the
/// saved firing alerts no group holds any more are resolved at the
/// receivers (see [`resolved_by_late_state`]). Alerts a group holds again
/// started over. The Alertmanager API, the history store and the clock are
/// `state`'s. Sharded (`sharded`), only the notification log and the
/// episodes are merged (the saved alerts are their groups' owners').
pub async fn merge_late_saved_state(
    late: oneshot::Receiver<SavedState>,
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    state: Arc<AppState>,
    alerts: mpsc::UnboundedSender<Vec<Alert>>,
    started_at_ms: i64,
    sharded: bool,
) {
    let Ok(saved) = late.await else { return };
    let (store, clock) = (&state.history, &state.clock);
    let entries = saved.restore_notifier(&mut *notifier.lock().await, true);
    state
        .alertmanager
        .restore_open_episodes(history::sync::load_open_episodes(store, clock.now()).await);
    store.set_restore_pending(false);
    if sharded {
        // The saved alerts belong to whichever replica holds their group.
        tracing::info!(
            entries,
            "the history database answers: notification log and cooldowns merged in"
        );
        return;
    }
    // Bounded: a group that never finishes an evaluation does not keep the
    // resolutions back for ever.
    let mut resolved = None;
    for _ in 0..LATE_STATE_WAIT_ROUNDS {
        resolved = {
            let groups = state.current_rule_groups();
            let locked: Vec<_> = groups
                .iter()
                .map(|g| g.lock().unwrap_or_else(|e| e.into_inner()))
                .collect();
            let refs: Vec<&RuleGroup> = locked.iter().map(|g| &**g).collect();
            resolved_by_late_state(&refs, &saved.snapshots, started_at_ms, clock.now())
        };
        if resolved.is_some() {
            break;
        }
        clock.sleep(Duration::from_secs(1)).await;
    }
    let resolved = resolved.unwrap_or_default();
    tracing::info!(
        entries,
        resolved = resolved.len(),
        "the history database answers: notification log and cooldowns merged in; saved firing alerts that ended meanwhile are resolved at the receivers (the alerts still active started over at start)"
    );
    if !resolved.is_empty() {
        let _ = alerts.send(resolved);
    }
}
