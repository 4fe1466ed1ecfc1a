//! Alertmanager's v2 API on the evaluator's port, so that a real Prometheus
//! (`alerting.alertmanagers`), `amtool` and Alertmanager dashboards talk to
//! Vigil as if it were an Alertmanager:
//!
//! - `POST /api/v2/alerts` puts alerts into the same [`Notifier`] as the
//!   rule alerts (routing, grouping, inhibition, silences, receivers) and
//!   records their episodes and transitions in the history;
//! - `GET /api/v2/alerts` lists what the notifier holds, rule alerts and
//!   posted ones alike, with Alertmanager's filters and status;
//! - `GET/POST /api/v2/silences`, `GET/DELETE /api/v2/silence/{id}` manage
//!   the notifier's silences with Alertmanager's update rules (a change that
//!   would rewrite history expires the old silence and creates a new one);
//! - `GET /api/v2/status`: not clustered, version, the notification config
//!   (secrets masked), uptime.
//!
//! Errors use Alertmanager's two shapes: request binding and schema
//! failures answer `{"code": N, "message": "..."}` (400 for unreadable
//! JSON, 422 for a missing required field), handler failures answer the
//! message as a JSON string (400, or 404 for an unknown silence; a silence
//! id that is not a UUID is 422 like any badly typed parameter).
//!
//! # Admission of posted alerts (backpressure)
//!
//! A posted batch is either taken whole (200: every valid alert is in the
//! notifier and will be notified) or refused whole with 429 and a
//! `Retry-After` header, never accepted and then lost. It is refused when
//! the pipeline is behind:
//!
//! - the history writer's backlog is at its capacity (database slow or
//!   down; see [`crate::history::writer`]), so the batch's episodes would
//!   only grow the spill;
//! - the notifier's lock is not free within [`ADMIT_WAIT`];
//! - an aggregation group has been due for more than [`MAX_LAG`] without
//!   being flushed (an alert taken now could time out, `resolve_timeout`,
//!   before its first notification and never be sent as firing: this is
//!   how half of 100,000 posted alerts were lost while readers held the
//!   notifier's lock for minutes);
//! - the notifier would hold more than [`MAX_ALERTS`] alerts (alerts it
//!   already holds are always taken again, so senders can refresh and
//!   resolve them).
//!
//! Prometheus counts a refused batch as a failed send and posts its firing
//! alerts again at its next resend; other clients should wait `Retry-After`
//! seconds and post the batch again.
//!
//! [`crate::history::sync`] is the background half: it merges silences
//! other replicas wrote to the shared database, and records posted alerts
//! that resolved by timing out (no `endsAt` refresh) in the history.
//!
//! The handlers are split by resource: [`alerts`], [`silences`],
//! [`status`]; [`error`] holds the two error shapes and [`params`] the
//! time and query-parameter formats they share.

mod alerts;
mod error;
mod params;
mod silences;
mod status;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::history::store::HistoryWrite;
use crate::history::sync::SyncTarget;
use crate::history::tracker::{OpenEpisode, PostedAlerts};
use crate::history::writer::HistoryWriter;
use crate::notify::notifier::Notifier;

pub use alerts::{decode_posted_alerts, get_alerts, post_alerts, GettableAlert};
pub use error::AmError;
pub use silences::{
    decode_posted_silence, delete_silence, get_silence, get_silences, post_silences,
    GettableSilence,
};
pub use status::{get_status, mask_secrets};

/// What the Alertmanager API works on: the running notifier, a clock, the
/// history writer for posted alerts, and what `/status` reports.
pub struct AlertmanagerApi {
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    clock: Arc<dyn Clock>,
    history: Option<HistoryWriter>,
    posted: Mutex<PostedAlerts>,
    config_text: RwLock<String>,
    started: DateTime<Utc>,
    /// Posts are being refused (logged when this changes, not per post).
    refusing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AlertmanagerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerApi")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl AlertmanagerApi {
    /// The API over `notifier`; posted alerts are recorded into `history`
    /// when given. `notify_text` is the notification config as written.
    pub fn new(
        notifier: Arc<tokio::sync::Mutex<Notifier>>,
        clock: Arc<dyn Clock>,
        history: Option<HistoryWriter>,
        notify_text: &str,
    ) -> AlertmanagerApi {
        let started = clock.now();
        AlertmanagerApi {
            notifier,
            clock,
            history,
            posted: Mutex::new(PostedAlerts::default()),
            config_text: RwLock::new(mask_secrets(notify_text)),
            started,
            refusing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The notifier the API reads and feeds.
    pub fn notifier(&self) -> &Arc<tokio::sync::Mutex<Notifier>> {
        &self.notifier
    }

    /// Shows a reloaded notification config in `/status`.
    pub fn set_config_text(&self, notify_text: &str) {
        *self.config_text.write().unwrap_or_else(|e| e.into_inner()) = mask_secrets(notify_text);
    }

    /// The clock the API reads "now" from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Remembers the posted alerts whose episodes are still open in the
    /// history (after a restart), so a sender re-posting them continues
    /// those episodes instead of recording a second start.
    pub fn restore_open_episodes(&self, episodes: impl IntoIterator<Item = OpenEpisode>) {
        self.posted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .restore(episodes);
    }

    /// Records into the history what `change` makes of the posted alerts
    /// (taken under their lock, written after it is released).
    pub fn record_posted(&self, change: impl FnOnce(&mut PostedAlerts) -> Vec<HistoryWrite>) {
        let writes = change(&mut self.posted.lock().unwrap_or_else(|e| e.into_inner()));
        let Some(writer) = &self.history else { return };
        for write in writes {
            // Never refused for room (the writer spills); a stopped writer
            // (shutdown) is logged and counted by the writer.
            let _ = writer.record(write);
        }
    }

    /// A refusal of a posted batch, logged when posts start being refused.
    fn refuse(&self, reason: String) -> AmError {
        if !self
            .refusing
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(%reason, "posted alerts refused with 429 until the pipeline catches up");
        }
        AmError::Busy {
            retry_after: RETRY_AFTER.as_secs(),
            message: format!(
                "{reason}; nothing in this batch was taken, post it again in {} s",
                RETRY_AFTER.as_secs()
            ),
        }
    }

    fn admitted(&self) {
        if self
            .refusing
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("posted alerts admitted again");
        }
    }
}

impl SyncTarget for AlertmanagerApi {
    fn clock(&self) -> &Arc<dyn Clock> {
        AlertmanagerApi::clock(self)
    }

    fn notifier(&self) -> &Arc<tokio::sync::Mutex<Notifier>> {
        AlertmanagerApi::notifier(self)
    }

    fn sweep_posted(&self, now: DateTime<Utc>) {
        self.record_posted(|posted| posted.sweep(now));
    }
}

/// Longest a posted batch waits for the notifier before it is refused.
pub const ADMIT_WAIT: Duration = Duration::from_secs(2);
/// Longest an aggregation group may be overdue before posts are refused.
pub const MAX_LAG: Duration = Duration::from_secs(10);
/// Most alerts the notifier holds before new posted alerts are refused.
pub const MAX_ALERTS: usize = 200_000;
/// The `Retry-After` of a refused batch.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);
