//! Runs every rule group on its own interval until cancelled. Time comes
//! from an injected [`Clock`], so tests drive evaluations by advancing a
//! [`SimClock`] instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::group::{GroupEnv, RuleGroup};
use crate::alerts::Alert;

/// A source of time in milliseconds since the epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
    /// Completes once `now_ms() >= t_ms`.
    fn sleep_until(&self, t_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn sleep_until(&self, t_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = u64::try_from(t_ms - self.now_ms()).unwrap_or(0);
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(wait)))
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct SimClock {
    now: watch::Sender<i64>,
}

impl SimClock {
    pub fn new(start_ms: i64) -> SimClock {
        SimClock {
            now: watch::Sender::new(start_ms),
        }
    }

    /// Moves time forward by `ms`, waking sleepers whose time has come.
    pub fn advance(&self, ms: i64) {
        self.now.send_modify(|t| *t += ms);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, t_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, so `changed` only fails
            // when the clock is gone, and then there is nothing to wait for.
            while *rx.borrow_and_update() < t_ms {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
    }
}

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
            _ = clock.sleep_until(next) => {}
        }
        let mut g = group.lock().unwrap_or_else(|e| e.into_inner());
        let alerts = g.eval(next, env);
        on_alerts(&g, alerts);
    }
}
