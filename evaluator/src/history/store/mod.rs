//! [`HistoryStore`]: the async API over the history tables — alert episodes
//! and their transitions, acknowledgements, history queries and per-rule
//! stats, alert-state snapshots for restarts, the notifier's log and
//! cooldowns, and retention pruning. The outbox lives in [`super::outbox`]
//! on the same type.
//!
//! Every write is an idempotent upsert keyed by data the caller already has
//! (an episode's id is derived from its fingerprint and start), so the
//! batched writer can retry a batch and HA replicas can record the same
//! transition without creating duplicates.
//!
//! This file holds the row types and the store itself; by role:
//! [`writes`] (what the batched writer applies), [`queries`] (the API's
//! reads), [`restart_state`] (what a restart reads back), [`retention`]
//! (pruning) and [`rows`] (column encodings).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::db::{Database, DbConn};
use super::lease::Fence;
use super::{to_millis, HistoryError};
use crate::labels::Labels;
use crate::notify::alert::Fingerprint;
use crate::notify::matcher::Matcher;
use crate::notify::silence::Silence;

mod queries;
mod restart_state;
mod retention;
mod rows;
mod writes;

pub use retention::run_pruner;
pub use rows::labels_to_json;
pub(crate) use rows::{opt_time, time};
use writes::{apply_one, insert_transition, upsert_episode};

/// An alert's state as the history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HistoryState {
    Inactive,
    Pending,
    Firing,
    Resolved,
}

impl HistoryState {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryState::Inactive => "inactive",
            HistoryState::Pending => "pending",
            HistoryState::Firing => "firing",
            HistoryState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<HistoryState> {
        Some(match text {
            "inactive" => HistoryState::Inactive,
            "pending" => HistoryState::Pending,
            "firing" => HistoryState::Firing,
            "resolved" => HistoryState::Resolved,
            _ => return None,
        })
    }

    /// Whether an episode in this state is over.
    pub fn is_closed(self) -> bool {
        matches!(self, HistoryState::Inactive | HistoryState::Resolved)
    }

    /// Pending or firing: the episode has not ended.
    pub fn is_open(self) -> bool {
        matches!(self, HistoryState::Pending | HistoryState::Firing)
    }
}

/// The id of the episode of alert `fingerprint` that started at
/// `starts_at`: derived, so every writer (and every replica) agrees on it
/// without a round trip to the database.
pub fn episode_id(fingerprint: Fingerprint, starts_at: DateTime<Utc>) -> String {
    format!("{fingerprint}-{}", to_millis(starts_at))
}

/// What the alert state machine reports about an episode; written with
/// [`HistoryStore::upsert_episode`] (or through the batched writer) on
/// every state change.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRecord {
    pub fingerprint: Fingerprint,
    /// The alerting rule's name (its `alertname`).
    pub rule: String,
    /// The rule group's name.
    pub group_name: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: HistoryState,
    /// When the alert became active (pending, or firing straight away).
    pub starts_at: DateTime<Utc>,
    /// When it first fired; `None` while pending.
    pub fired_at: Option<DateTime<Utc>>,
    /// When it resolved (or went back to inactive).
    pub ends_at: Option<DateTime<Utc>>,
    /// The expression's last value.
    pub value: Option<f64>,
    /// The evaluation time of this report: an older report never overwrites
    /// a newer one.
    pub updated_at: DateTime<Utc>,
    /// Why the episode ended, when not the ordinary way (see [`EndReason`]).
    pub end_reason: Option<EndReason>,
}

/// Why an episode ended other than by its condition no longer holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// A configuration reload removed its rule (or renamed it, moved it to
    /// another group, or changed it so that it no longer holds this alert).
    RuleRemoved,
    /// At start, its rule was no longer in the configuration.
    RuleGoneAtStart,
    /// At start, the evaluator found no saved state for the alert (a crash
    /// lost it), so the alert starts over as a new episode if it still holds.
    StateLost,
    /// The rule's `limit` was exceeded, which drops all of its alerts.
    LimitExceeded,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::RuleRemoved => "rule removed or changed by a configuration reload",
            EndReason::RuleGoneAtStart => "rule no longer configured when the evaluator started",
            EndReason::StateLost => "evaluator restarted without the alert's saved state",
            EndReason::LimitExceeded => "the rule's alert limit was exceeded",
        }
    }
}

impl EpisodeRecord {
    pub fn id(&self) -> String {
        episode_id(self.fingerprint, self.starts_at)
    }
}

/// One state transition of an episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// [`episode_id`] of the episode.
    pub alert_id: String,
    pub from: HistoryState,
    pub to: HistoryState,
    pub at: DateTime<Utc>,
    pub value: Option<f64>,
}

/// An episode as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub id: String,
    /// 16 hex digits, as [`Fingerprint`] prints.
    pub fingerprint: String,
    pub rule: String,
    pub group_name: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    /// The `severity` label, empty when there is none.
    pub severity: String,
    pub state: HistoryState,
    pub starts_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// Why it ended, when not the ordinary way ([`EndReason::as_str`]).
    pub end_reason: Option<String>,
    pub last_value: Option<f64>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub ack_comment: Option<String>,
}

/// A stored transition.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEvent {
    pub alert_id: String,
    pub from: HistoryState,
    pub to: HistoryState,
    pub at: DateTime<Utc>,
    pub value: Option<f64>,
}

/// The result of [`HistoryStore::acknowledge`].
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    Acknowledged,
    /// Someone acknowledged it first; their acknowledgement stands.
    AlreadyAcknowledged {
        by: String,
        at: DateTime<Utc>,
    },
    NotFound,
}

/// Filters for [`HistoryStore::query`]. Every field narrows the result;
/// the default returns everything, newest first, 100 per page.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub rule: Option<String>,
    /// Alertmanager-style matchers on the episode's labels.
    pub matchers: Vec<Matcher>,
    pub state: Option<HistoryState>,
    /// Episodes active at some time in `[from, to)`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: usize,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            rule: None,
            matchers: Vec::new(),
            state: None,
            from: None,
            to: None,
            limit: 100,
            cursor: None,
        }
    }
}

/// One page of results and the cursor of the next page, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// Per-rule figures over a time range (episodes that started in it).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleStats {
    pub rule: String,
    /// Episodes, fired or not.
    pub episodes: i64,
    /// Episodes that fired.
    pub fires: i64,
    /// Mean time from firing to acknowledgement, over acknowledged episodes.
    pub mtta: Option<std::time::Duration>,
    /// Mean time from firing to resolution, over resolved episodes.
    pub mttr: Option<std::time::Duration>,
    /// Notifications carrying this rule's alerts that were delivered in the
    /// range.
    pub notifications_sent: i64,
}

/// The alert state machine's state for one alert, saved so that a restart
/// resumes `for` timers, fired times and `keep_firing_for` instead of
/// starting over.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSnapshot {
    pub fingerprint: Fingerprint,
    pub rule: String,
    pub group_name: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: HistoryState,
    pub active_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub keep_firing_since: Option<DateTime<Utc>>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub value: Option<f64>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of the notifier's notification log (declared by the delivery
/// tail, which reads it back through [`crate::notify::delivery::NotificationOutbox`]).
pub use crate::notify::delivery::NotifyLogRow;

/// One entry of the notifier's cooldown ledger. Saved with
/// `awaiting_resolve: false` (a resolved notification went out) it keeps
/// the stored `last_firing_sent`, which is set only by a firing one.
#[derive(Debug, Clone, PartialEq)]
pub struct CooldownRow {
    pub receiver: String,
    pub fingerprint: Fingerprint,
    pub last_firing_sent: DateTime<Utc>,
    pub cooldown: std::time::Duration,
    pub awaiting_resolve: bool,
}

/// What [`HistoryStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub episodes: u64,
    pub events: u64,
    pub notifications: u64,
    pub silences: u64,
    pub notify_log: u64,
}

/// One write, as the batched writer queues it; [`HistoryStore::apply`]
/// writes a list of them in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub enum HistoryWrite {
    Episode(EpisodeRecord),
    Transition(Transition),
    Snapshot(AlertSnapshot),
    /// The alert is gone from the state machine: drop its snapshot.
    ForgetSnapshot(Fingerprint),
    Silence {
        silence: Silence,
        updated_at: DateTime<Utc>,
    },
    NotifyLog(NotifyLogRow),
    Cooldown(CooldownRow),
    /// At start: every open episode of a rule alert that began before
    /// `before` and is not among `open` (the ids of the open episodes whose
    /// alerts the evaluator restored) is closed at `before` with `reason`:
    /// the evaluator no longer holds its alert, so nothing else would close
    /// it. Saved alert states written before `before` whose episode id is
    /// not among `held` (every alert restored, open or resolved) are
    /// dropped, so a later restart cannot bring back an alert this one
    /// never held. Posted alerts' episodes (group `api`) are left to their
    /// own expiry.
    CloseEpisodesNotHeld {
        open: BTreeSet<String>,
        held: BTreeSet<String>,
        before: DateTime<Utc>,
        reason: EndReason,
    },
    /// A notification delivered (or given up on) that has no outbox row:
    /// the database did not take it when it was queued. Added to the
    /// delivery log once the database answers.
    Delivered(super::outbox::DeliveredRecord),
    /// `write`, done only while lease `fence.lease` still has epoch
    /// `fence.epoch`: the leader's notification-log and cooldown writes.
    /// With a stale epoch the database refuses it (the rest of the batch is
    /// written) and the refusal is logged.
    Fenced {
        fence: Fence,
        write: Box<HistoryWrite>,
    },
}

/// The history database API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HistoryStore {
    db: Database,
    /// `vigil_history_db_duration_seconds{operation}` once
    /// [`HistoryStore::with_metrics`] registered it.
    latency: Option<prometheus::HistogramVec>,
    /// Set while the saved state (alert state, notification log) could not
    /// be loaded at start, shared by the clones (`/-/ready` shows it).
    restore_pending: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Fires of one rule on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyFires {
    pub rule: String,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub fires: i64,
}

const EPISODE_COLUMNS: &str = "id, fingerprint, rule, group_name, labels, annotations, severity, state, starts_at, fired_at, ends_at, end_reason, last_value, acknowledged_by, acknowledged_at, ack_comment";

impl HistoryStore {
    /// Connects to `url` and migrates.
    pub async fn connect(url: &str) -> Result<HistoryStore, HistoryError> {
        Ok(HistoryStore::new(Database::connect(url).await?))
    }

    pub fn new(db: Database) -> HistoryStore {
        HistoryStore {
            db,
            latency: None,
            restore_pending: Default::default(),
        }
    }

    /// Whether the saved state is still waiting for the database (see
    /// [`HistoryStore::set_restore_pending`]).
    pub fn restore_pending(&self) -> bool {
        self.restore_pending
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the saved state as not loaded yet (`true`) or loaded.
    pub fn set_restore_pending(&self, pending: bool) {
        self.restore_pending
            .store(pending, std::sync::atomic::Ordering::Release);
    }

    /// Times every database operation of this store (and its clones) in
    /// the histogram `vigil_history_db_duration_seconds{operation}`,
    /// registered in `registry`, so a slow database shows on `/metrics`.
    pub fn with_metrics(
        mut self,
        registry: &prometheus::Registry,
    ) -> Result<HistoryStore, HistoryError> {
        let latency = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "vigil_history_db_duration_seconds",
                "Time history database operations took, by operation (write, query, ack, stats, outbox).",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["operation"],
        )?;
        registry.register(Box::new(latency.clone()))?;
        self.latency = Some(latency);
        Ok(self)
    }

    /// Observes the time until it is dropped under `operation`.
    pub(crate) fn timer(&self, operation: &str) -> Option<prometheus::HistogramTimer> {
        self.latency
            .as_ref()
            .map(|h| h.with_label_values(&[operation]).start_timer())
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// A connection, once the schema is current (see [`DbConn`]).
    pub(super) async fn conn(&self) -> Result<DbConn, HistoryError> {
        self.db.conn().await
    }

    /// Writes `writes` in order, in one transaction: all or nothing.
    pub async fn apply(&self, writes: &[HistoryWrite]) -> Result<(), HistoryError> {
        let _timer = self.timer("write");
        let mut tx = self.db.begin().await?;
        for write in writes {
            apply_one(&mut tx, write).await?;
        }
        tx.commit()
            .await
            .map_err(HistoryError::db("committing a batch"))
    }

    /// Inserts or updates an episode. Acknowledgements are kept, the first
    /// firing time is kept, and a report older than the stored one is
    /// ignored.
    pub async fn upsert_episode(&self, record: &EpisodeRecord) -> Result<(), HistoryError> {
        upsert_episode(&mut self.conn().await?, record).await
    }

    /// Records a transition (a second identical one is a no-op).
    pub async fn record_transition(&self, transition: &Transition) -> Result<(), HistoryError> {
        insert_transition(&mut self.conn().await?, transition).await
    }
}
