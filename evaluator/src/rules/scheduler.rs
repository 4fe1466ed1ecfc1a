//! Runs every rule group on its own interval until cancelled. Time comes
//! from an injected [`Clock`], so tests drive evaluations by advancing a
//! [`crate::clock::SimClock`] instead of sleeping. An [`Admission`] decides
//! at each slot whether this process evaluates the group (rule-group
//! sharding: only the replica that owns it does).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::group::{GroupEnv, RuleGroup};
use crate::alerts::state::millis;
use crate::alerts::Alert;
use crate::clock::Clock;
use crate::datasource::Prefetched;

/// Decides at each evaluation slot whether this process evaluates a group.
#[async_trait::async_trait(?Send)]
pub trait Admission {
    /// The slots (unix ms, ascending) at which to evaluate `group` now that
    /// slot `slot_ms` came: none to skip it, `slot_ms` alone as a rule, or
    /// earlier slots first that nobody evaluated (a sharded group that
    /// moved here). May first prepare the group (restore its saved alert
    /// state) or put it aside (when it moved away).
    async fn admit(&self, group: &Mutex<RuleGroup>, slot_ms: i64) -> Vec<i64>;

    /// Whether `group` is evaluated at `slot_ms`, asked right before (its
    /// queries answered): a sharded replica claims the slot in the
    /// database, so that no other replica evaluates it, and a claimed slot
    /// is evaluated even if the group moves on meanwhile (nobody else can
    /// have it). The slots after a refused one are not evaluated either.
    async fn claim(&self, group: &Mutex<RuleGroup>, slot_ms: i64) -> bool;

    /// Told right after `group` was evaluated at a slot (its samples
    /// recorded, its alerts not yet handed on).
    fn evaluated(&self, _group: &RuleGroup) {}
}

/// Every group, always (a single replica, or replicas without sharding).
#[derive(Debug, Clone, Copy, Default)]
pub struct AdmitAll;

#[async_trait::async_trait(?Send)]
impl Admission for AdmitAll {
    async fn admit(&self, _group: &Mutex<RuleGroup>, slot_ms: i64) -> Vec<i64> {
        vec![slot_ms]
    }

    async fn claim(&self, _group: &Mutex<RuleGroup>, _slot_ms: i64) -> bool {
        true
    }
}

/// Receives the alerts to notify after each group evaluation.
pub type AlertSink<'a> = &'a (dyn Fn(&RuleGroup, Vec<Alert>) + Sync);

/// Runs all groups until `cancel` fires. Each group evaluates at
/// `offset + k × interval` (offset from a hash of the group when
/// `aligned`) when `admission` admits it; when an evaluation overruns,
/// missed slots are skipped. All
/// groups run in the calling task (rule evaluation is synchronous), so
/// the engine does not need to be `Send`.
pub async fn run_groups(
    groups: &[Arc<Mutex<RuleGroup>>],
    env: &GroupEnv<'_>,
    clock: &dyn Clock,
    cancel: &CancellationToken,
    aligned: bool,
    admission: &dyn Admission,
    on_alerts: AlertSink<'_>,
) {
    let loops = groups
        .iter()
        .map(|g| run_group(g, env, clock, cancel, aligned, admission, on_alerts));
    futures::future::join_all(loops).await;
}

async fn run_group(
    group: &Mutex<RuleGroup>,
    env: &GroupEnv<'_>,
    clock: &dyn Clock,
    cancel: &CancellationToken,
    aligned: bool,
    admission: &dyn Admission,
    on_alerts: AlertSink<'_>,
) {
    loop {
        let (next, source) = {
            let g = group.lock().unwrap_or_else(|e| e.into_inner());
            let source = g.datasource.clone().map(|client| {
                let exprs: Vec<String> =
                    g.rules.iter().map(|r| r.rule.expr().to_string()).collect();
                (client, exprs, millis(g.query_offset), g.interval)
            });
            (g.next_eval_after(clock.now_ms(), aligned), source)
        };
        let at = |ms: i64| {
            DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            () = clock.sleep_until(at(next)) => {}
        }
        let slots = tokio::select! {
            _ = cancel.cancelled() => return,
            slots = admission.admit(group, next) => slots,
        };
        for slot in slots {
            // A datasource group's queries are answered first, without
            // holding the group (the API reads it meanwhile), retried
            // within its interval at most.
            let fetch_start = clock.monotonic();
            let prefetched = match &source {
                Some((client, exprs, offset_ms, interval)) => {
                    let deadline = at(next + millis(*interval));
                    let query = Prefetched::fetch(
                        client.clone(),
                        exprs.clone(),
                        slot - offset_ms,
                        deadline,
                    );
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        p = query => Some(p),
                    }
                }
                None => None,
            };
            let claimed = tokio::select! {
                _ = cancel.cancelled() => return,
                claimed = admission.claim(group, slot) => claimed,
            };
            if !claimed {
                break;
            }
            let mut g = group.lock().unwrap_or_else(|e| e.into_inner());
            let alerts = match &prefetched {
                Some(answers) => g.eval(
                    slot,
                    &GroupEnv {
                        engine: answers,
                        ..*env
                    },
                ),
                None => g.eval(slot, env),
            };
            if prefetched.is_some() {
                // A datasource group's evaluation time includes its
                // queries, as Prometheus' does.
                g.last_eval_duration = clock.monotonic().saturating_sub(fetch_start);
            }
            admission.evaluated(&g);
            on_alerts(&g, alerts);
        }
    }
}
