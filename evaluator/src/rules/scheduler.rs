//! Runs every rule group on its own interval until cancelled. Time comes
//! from an injected [`Clock`], so tests drive evaluations by advancing a
//! [`crate::clock::SimClock`] instead of sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::group::{GroupEnv, RuleGroup};
use crate::alerts::Alert;
use crate::clock::Clock;

/// Receives the alerts to notify after each group evaluation.
pub type AlertSink<'a> = &'a (dyn Fn(&RuleGroup, Vec<Alert>) + Sync);

/// Runs all groups until `cancel` fires. Each group evaluates at
/// `offset + k × interval` (offset from a hash of the group when
/// `aligned`); when an evaluation overruns, missed slots are skipped. All
/// groups run in the calling task (rule evaluation is synchronous), so
/// the engine does not need to be `Send`.
pub async fn run_groups(
    groups: &[Arc<Mutex<RuleGroup>>],
    env: &GroupEnv<'_>,
    clock: &dyn Clock,
    cancel: &CancellationToken,
    aligned: bool,
    on_alerts: AlertSink<'_>,
) {
    let loops = groups
        .iter()
        .map(|g| run_group(g, env, clock, cancel, aligned, on_alerts));
    futures::future::join_all(loops).await;
}

async fn run_group(
    group: &Mutex<RuleGroup>,
    env: &GroupEnv<'_>,
    clock: &dyn Clock,
    cancel: &CancellationToken,
    aligned: bool,
    on_alerts: AlertSink<'_>,
) {
    loop {
        let next = {
            let g = group.lock().unwrap_or_else(|e| e.into_inner());
            g.next_eval_after(clock.now_ms(), aligned)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = clock.sleep_until(
                DateTime::<Utc>::from_timestamp_millis(next).unwrap_or(DateTime::<Utc>::MAX_UTC),
            ) => {}
        }
        let mut g = group.lock().unwrap_or_else(|e| e.into_inner());
        let alerts = g.eval(next, env);
        on_alerts(&g, alerts);
    }
}
