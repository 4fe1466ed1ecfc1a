//! A scrape target and its observable state, as the targets API shows it:
//! health, last scrape time and duration, and the last error; and waiting
//! for every target's first scrape, so that alerts restored at a restart are
//! not judged on a store that is still empty.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::labels::Labels;

/// Whether the last scrape worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not scraped yet.
    Unknown,
    Up,
    Down,
}

impl Health {
    /// The spelling of Prometheus' `/api/v1/targets`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// What the targets API reports for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetState {
    /// The job name (Prometheus' `scrapePool`).
    pub job: String,
    pub scrape_url: String,
    /// The labels attached to every series of the target (`job`,
    /// `instance` and static labels).
    pub labels: Labels,
    pub health: Health,
    /// Start of the last scrape.
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration: Option<Duration>,
    /// Why the last scrape failed (HTTP status, timeout, parse error with its
    /// line...); `None` after a good scrape.
    pub last_error: Option<String>,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

/// One target to scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub job: String,
    pub url: String,
    pub labels: Labels,
}

/// A shared, read-only view of a running target's state.
#[derive(Debug, Clone)]
pub struct TargetHandle {
    state: Arc<RwLock<TargetState>>,
}

impl TargetHandle {
    pub(crate) fn new(state: TargetState) -> TargetHandle {
        TargetHandle {
            state: Arc::new(RwLock::new(state)),
        }
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> TargetState {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut TargetState)) {
        match self.state.write() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
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
