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

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::db::{column, Database, DbConn};
use super::lease::{fence_condition, Fence};
use super::{from_millis, to_millis, HistoryError};
use crate::labels::Labels;
use crate::notify::alert::Fingerprint;
use crate::notify::matcher::{all_match, Matcher};
use crate::notify::silence::Silence;

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

    /// The episode with `id`.
    pub async fn episode(&self, id: &str) -> Result<Option<Episode>, HistoryError> {
        let _timer = self.timer("query");
        let sql = format!("SELECT {EPISODE_COLUMNS} FROM alerts WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(HistoryError::db("reading an episode"))?;
        row.as_ref().map(episode_from_row).transpose()
    }

    /// The transitions of an episode, oldest first.
    pub async fn events(&self, alert_id: &str) -> Result<Vec<AlertEvent>, HistoryError> {
        let _timer = self.timer("query");
        let rows = sqlx::query(
            "SELECT alert_id, from_state, to_state, at, value FROM alert_events \
             WHERE alert_id = $1 ORDER BY at, to_state",
        )
        .bind(alert_id)
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(HistoryError::db("reading alert events"))?;
        rows.iter()
            .map(|row| {
                let table = "alert_events";
                Ok(AlertEvent {
                    alert_id: column(row, "alert_id", table)?,
                    from: state(row, "from_state", table)?,
                    to: state(row, "to_state", table)?,
                    at: time(row, "at", table)?,
                    value: column(row, "value", table)?,
                })
            })
            .collect()
    }

    /// Acknowledges an episode: who, when, why. The first acknowledgement
    /// wins.
    pub async fn acknowledge(
        &self,
        id: &str,
        by: &str,
        comment: &str,
        at: DateTime<Utc>,
    ) -> Result<AckOutcome, HistoryError> {
        let _timer = self.timer("ack");
        let mut conn = self.conn().await?;
        let updated = sqlx::query(
            "UPDATE alerts SET acknowledged_by = $1, acknowledged_at = $2, ack_comment = $3 \
             WHERE id = $4 AND acknowledged_at IS NULL",
        )
        .bind(by)
        .bind(to_millis(at))
        .bind(comment)
        .bind(id)
        .execute(&mut conn)
        .await
        .map_err(HistoryError::db("acknowledging an alert"))?;
        if updated.rows_affected() > 0 {
            return Ok(AckOutcome::Acknowledged);
        }
        let row = sqlx::query("SELECT acknowledged_by, acknowledged_at FROM alerts WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut conn)
            .await
            .map_err(HistoryError::db("reading an acknowledgement"))?;
        let Some(row) = row else {
            return Ok(AckOutcome::NotFound);
        };
        Ok(AckOutcome::AlreadyAcknowledged {
            by: column::<Option<String>>(&row, "acknowledged_by", "alerts")?.unwrap_or_default(),
            at: opt_time(&row, "acknowledged_at", "alerts")?.unwrap_or(DateTime::UNIX_EPOCH),
        })
    }

    /// Episodes matching `query`, newest first. Rule, state and time range
    /// are filtered in SQL; label matchers in Rust on the fetched rows.
    pub async fn query(&self, query: &HistoryQuery) -> Result<Page<Episode>, HistoryError> {
        let _timer = self.timer("query");
        let limit = query.limit.clamp(1, 10_000);
        let mut cursor = query.cursor.as_deref().map(parse_cursor).transpose()?;
        let mut items = Vec::new();
        let chunk = if query.matchers.is_empty() {
            limit + 1
        } else {
            (limit * 4).max(200)
        };
        let mut conn = self.conn().await?;
        loop {
            let mut sql = format!("SELECT {EPISODE_COLUMNS} FROM alerts WHERE 1 = 1");
            let mut next_param = 1;
            let mut param = || {
                let p = format!("${next_param}");
                next_param += 1;
                p
            };
            if query.rule.is_some() {
                sql += &format!(" AND rule = {}", param());
            }
            if query.state.is_some() {
                sql += &format!(" AND state = {}", param());
            }
            if query.to.is_some() {
                sql += &format!(" AND starts_at < {}", param());
            }
            if query.from.is_some() {
                sql += &format!(" AND (ends_at IS NULL OR ends_at >= {})", param());
            }
            if cursor.is_some() {
                let (a, b, c) = (param(), param(), param());
                sql += &format!(" AND (starts_at < {a} OR (starts_at = {b} AND id < {c}))");
            }
            sql += &format!(" ORDER BY starts_at DESC, id DESC LIMIT {chunk}");
            let mut q = sqlx::query(&sql);
            if let Some(rule) = &query.rule {
                q = q.bind(rule.as_str());
            }
            if let Some(state) = query.state {
                q = q.bind(state.as_str());
            }
            if let Some(to) = query.to {
                q = q.bind(to_millis(to));
            }
            if let Some(from) = query.from {
                q = q.bind(to_millis(from));
            }
            if let Some((starts_at, id)) = &cursor {
                q = q.bind(*starts_at).bind(*starts_at).bind(id.clone());
            }
            let rows = q
                .fetch_all(&mut conn)
                .await
                .map_err(HistoryError::db("querying alert history"))?;
            let exhausted = rows.len() < chunk;
            for row in &rows {
                let episode = episode_from_row(row)?;
                cursor = Some((to_millis(episode.starts_at), episode.id.clone()));
                if all_match(&query.matchers, &episode.labels) {
                    items.push(episode);
                }
            }
            if items.len() > limit {
                items.truncate(limit);
                let next = items
                    .last()
                    .map(|e| format!("{}:{}", to_millis(e.starts_at), e.id));
                return Ok(Page { items, next });
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
        }
    }

    /// Per-rule episodes, fires, MTTA, MTTR and notifications sent for
    /// episodes that started in `[from, to)` (notifications: sent in it),
    /// noisiest rule first.
    pub async fn rule_stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RuleStats>, HistoryError> {
        let _timer = self.timer("stats");
        let mut conn = self.conn().await?;
        let rows = sqlx::query(
            "SELECT rule, \
               CAST(COUNT(*) AS BIGINT) AS episodes, \
               CAST(SUM(CASE WHEN fired_at IS NOT NULL THEN 1 ELSE 0 END) AS BIGINT) AS fires, \
               CAST(AVG(CASE WHEN fired_at IS NOT NULL AND acknowledged_at IS NOT NULL \
                             THEN acknowledged_at - fired_at END) AS DOUBLE PRECISION) AS mtta_ms, \
               CAST(AVG(CASE WHEN fired_at IS NOT NULL AND ends_at IS NOT NULL \
                             THEN ends_at - fired_at END) AS DOUBLE PRECISION) AS mttr_ms \
             FROM alerts WHERE starts_at >= $1 AND starts_at < $2 GROUP BY rule",
        )
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&mut conn)
        .await
        .map_err(HistoryError::db("computing rule stats"))?;
        let sent_rows = sqlx::query(
            "SELECT na.rule AS rule, CAST(COUNT(DISTINCT n.id) AS BIGINT) AS sent \
             FROM notifications n JOIN notification_alerts na ON na.notification_id = n.id \
             WHERE n.status = 'sent' AND n.sent_at >= $1 AND n.sent_at < $2 GROUP BY na.rule",
        )
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&mut conn)
        .await
        .map_err(HistoryError::db("counting notifications per rule"))?;
        let mut sent = BTreeMap::new();
        for row in &sent_rows {
            let rule: String = column(row, "rule", "notification_alerts")?;
            sent.insert(rule, column::<i64>(row, "sent", "notifications")?);
        }
        let duration = |ms: Option<f64>| {
            ms.filter(|ms| ms.is_finite())
                .map(|ms| std::time::Duration::from_millis(ms.max(0.0).round() as u64))
        };
        let mut stats = Vec::new();
        for row in &rows {
            let rule: String = column(row, "rule", "alerts")?;
            stats.push(RuleStats {
                notifications_sent: sent.remove(&rule).unwrap_or(0),
                episodes: column(row, "episodes", "alerts")?,
                fires: column::<Option<i64>>(row, "fires", "alerts")?.unwrap_or(0),
                mtta: duration(column(row, "mtta_ms", "alerts")?),
                mttr: duration(column(row, "mttr_ms", "alerts")?),
                rule,
            });
        }
        // Rules whose episodes started before the range but were notified in it.
        for (rule, count) in sent {
            stats.push(RuleStats {
                rule,
                episodes: 0,
                fires: 0,
                mtta: None,
                mttr: None,
                notifications_sent: count,
            });
        }
        stats.sort_by(|a, b| {
            (b.fires, b.notifications_sent, &a.rule).cmp(&(a.fires, a.notifications_sent, &b.rule))
        });
        Ok(stats)
    }

    /// The open (pending or firing) episode of the alert with `fingerprint`,
    /// the latest if there are several.
    pub async fn open_episode(
        &self,
        fingerprint: Fingerprint,
    ) -> Result<Option<Episode>, HistoryError> {
        let _timer = self.timer("query");
        let sql = format!(
            "SELECT {EPISODE_COLUMNS} FROM alerts \
             WHERE fingerprint = $1 AND state IN ('pending', 'firing') \
             ORDER BY starts_at DESC, id DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(fingerprint.to_string())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(HistoryError::db("finding an alert's open episode"))?;
        row.as_ref().map(episode_from_row).transpose()
    }

    /// Fires per rule and UTC day for episodes that fired in `[from, to)`,
    /// by rule then day; days without fires are left out.
    pub async fn fires_per_day(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DailyFires>, HistoryError> {
        let _timer = self.timer("stats");
        // Integer division on both databases; fired_at is never negative.
        let rows = sqlx::query(
            "SELECT rule, CAST(fired_at / 86400000 AS BIGINT) AS day, \
               CAST(COUNT(*) AS BIGINT) AS fires \
             FROM alerts WHERE fired_at >= $1 AND fired_at < $2 \
             GROUP BY rule, CAST(fired_at / 86400000 AS BIGINT) ORDER BY rule, day",
        )
        .bind(to_millis(from))
        .bind(to_millis(to))
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(HistoryError::db("counting fires per day"))?;
        rows.iter()
            .map(|row| {
                Ok(DailyFires {
                    rule: column(row, "rule", "alerts")?,
                    day: column(row, "day", "alerts")?,
                    fires: column(row, "fires", "alerts")?,
                })
            })
            .collect()
    }

    /// Saves alert-state snapshots (insert or replace).
    pub async fn save_snapshots(&self, snapshots: &[AlertSnapshot]) -> Result<(), HistoryError> {
        let writes: Vec<HistoryWrite> = snapshots
            .iter()
            .cloned()
            .map(HistoryWrite::Snapshot)
            .collect();
        self.apply(&writes).await
    }

    /// Every saved alert-state snapshot, to restore the state machine at
    /// start.
    pub async fn load_snapshots(&self) -> Result<Vec<AlertSnapshot>, HistoryError> {
        let rows = sqlx::query(
            "SELECT fingerprint, rule, group_name, labels, annotations, state, active_at, \
             fired_at, resolved_at, keep_firing_since, last_sent_at, value, updated_at \
             FROM alert_state ORDER BY fingerprint",
        )
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(HistoryError::db("loading alert state"))?;
        rows.iter()
            .map(|row| {
                let table = "alert_state";
                Ok(AlertSnapshot {
                    fingerprint: fingerprint(row, "fingerprint", table)?,
                    rule: column(row, "rule", table)?,
                    group_name: column(row, "group_name", table)?,
                    labels: labels_from_json(&column::<String>(row, "labels", table)?, table)?,
                    annotations: json(row, "annotations", table)?,
                    state: state(row, "state", table)?,
                    active_at: time(row, "active_at", table)?,
                    fired_at: opt_time(row, "fired_at", table)?,
                    resolved_at: opt_time(row, "resolved_at", table)?,
                    keep_firing_since: opt_time(row, "keep_firing_since", table)?,
                    last_sent_at: opt_time(row, "last_sent_at", table)?,
                    value: column(row, "value", table)?,
                    updated_at: time(row, "updated_at", table)?,
                })
            })
            .collect()
    }

    /// The stored notification log.
    pub async fn load_notify_log(&self) -> Result<Vec<NotifyLogRow>, HistoryError> {
        let rows = sqlx::query(
            "SELECT receiver, group_key, firing, resolved, sent_at FROM notify_log \
             ORDER BY receiver, group_key",
        )
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(HistoryError::db("loading the notification log"))?;
        rows.iter()
            .map(|row| {
                let table = "notify_log";
                Ok(NotifyLogRow {
                    receiver: column(row, "receiver", table)?,
                    group_key: column(row, "group_key", table)?,
                    firing: fingerprints_from_json(&column::<String>(row, "firing", table)?)?,
                    resolved: fingerprints_from_json(&column::<String>(row, "resolved", table)?)?,
                    sent_at: time(row, "sent_at", table)?,
                })
            })
            .collect()
    }

    /// The stored cooldown ledger.
    pub async fn load_cooldowns(&self) -> Result<Vec<CooldownRow>, HistoryError> {
        let rows = sqlx::query(
            "SELECT receiver, fingerprint, last_firing_sent, cooldown_ms, awaiting_resolve \
             FROM cooldowns ORDER BY receiver, fingerprint",
        )
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(HistoryError::db("loading cooldowns"))?;
        rows.iter()
            .map(|row| {
                let table = "cooldowns";
                Ok(CooldownRow {
                    receiver: column(row, "receiver", table)?,
                    fingerprint: fingerprint(row, "fingerprint", table)?,
                    last_firing_sent: time(row, "last_firing_sent", table)?,
                    cooldown: std::time::Duration::from_millis(
                        column::<i64>(row, "cooldown_ms", table)?.max(0) as u64,
                    ),
                    awaiting_resolve: column::<i64>(row, "awaiting_resolve", table)? != 0,
                })
            })
            .collect()
    }

    /// Deletes closed history older than `cutoff`: episodes that ended before
    /// it (with their events), delivered or failed notifications created
    /// before it, silences that ended before it, and notification-log
    /// entries last sent before it. Open episodes, pending notifications and
    /// alert-state snapshots are kept whatever their age.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<PruneReport, HistoryError> {
        let cutoff = to_millis(cutoff);
        let mut tx = self.db.begin().await?;
        let report = PruneReport {
            events: prune_rows(
                &mut tx,
                cutoff,
                "DELETE FROM alert_events WHERE alert_id IN \
                 (SELECT id FROM alerts WHERE ends_at IS NOT NULL AND ends_at < $1)",
            )
            .await?,
            episodes: prune_rows(
                &mut tx,
                cutoff,
                "DELETE FROM alerts WHERE ends_at IS NOT NULL AND ends_at < $1",
            )
            .await?,
            notifications: {
                prune_rows(
                    &mut tx,
                    cutoff,
                    "DELETE FROM notification_alerts WHERE notification_id IN \
                     (SELECT id FROM notifications WHERE status <> 'pending' AND created_at < $1)",
                )
                .await?;
                prune_rows(
                    &mut tx,
                    cutoff,
                    "DELETE FROM notifications WHERE status <> 'pending' AND created_at < $1",
                )
                .await?
            },
            silences: prune_rows(&mut tx, cutoff, "DELETE FROM silences WHERE ends_at < $1")
                .await?,
            notify_log: {
                prune_rows(
                    &mut tx,
                    cutoff,
                    "DELETE FROM cooldowns WHERE awaiting_resolve = 0 AND last_firing_sent < $1",
                )
                .await?;
                prune_rows(&mut tx, cutoff, "DELETE FROM notify_log WHERE sent_at < $1").await?
            },
        };
        tx.commit()
            .await
            .map_err(HistoryError::db("committing the prune"))?;
        Ok(report)
    }

    /// Every stored silence (to fill the in-memory cache at start).
    pub async fn load_silences(&self) -> Result<Vec<(Silence, DateTime<Utc>)>, HistoryError> {
        let rows = sqlx::query(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment, updated_at \
             FROM silences ORDER BY id",
        )
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(HistoryError::db("loading silences"))?;
        rows.iter()
            .map(|row| {
                let table = "silences";
                let id: String = column(row, "id", table)?;
                let matchers =
                    super::silences::matchers_from_json(&column::<String>(row, "matchers", table)?)
                        .map_err(|reason| HistoryError::Corrupt {
                            table,
                            id: id.clone(),
                            reason,
                        })?;
                Ok((
                    Silence {
                        id,
                        matchers,
                        starts_at: time(row, "starts_at", table)?,
                        ends_at: time(row, "ends_at", table)?,
                        created_by: column(row, "created_by", table)?,
                        comment: column(row, "comment", table)?,
                    },
                    time(row, "updated_at", table)?,
                ))
            })
            .collect()
    }
}

/// Prunes history older than `retention` (see [`HistoryStore::prune`]) now
/// and then every `every` (on `clock`) until `shutdown`, reading "now" from
/// `clock`.
/// A failed round is logged and retried at the next one.
pub async fn run_pruner(
    store: HistoryStore,
    retention: std::time::Duration,
    every: std::time::Duration,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let now = clock.now();
        let cutoff = chrono::Duration::from_std(retention)
            .ok()
            .and_then(|r| now.checked_sub_signed(r))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        match store.prune(cutoff).await {
            Ok(report) if report != PruneReport::default() => {
                tracing::info!(?report, %cutoff, "pruned old history");
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "pruning old history failed; retrying later"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = clock.sleep(every) => {}
        }
    }
}

async fn apply_one(conn: &mut DbConn, write: &HistoryWrite) -> Result<(), HistoryError> {
    match write {
        HistoryWrite::Episode(record) => upsert_episode(conn, record).await,
        HistoryWrite::Transition(t) => insert_transition(conn, t).await,
        HistoryWrite::CloseEpisodesNotHeld {
            open,
            held,
            before,
            reason,
        } => close_episodes_not_held(conn, open, held, *before, *reason).await,
        HistoryWrite::Snapshot(s) => upsert_snapshot(conn, s).await,
        HistoryWrite::ForgetSnapshot(fp) => {
            sqlx::query("DELETE FROM alert_state WHERE fingerprint = $1")
                .bind(fp.to_string())
                .execute(conn)
                .await
                .map_err(HistoryError::db("dropping an alert-state snapshot"))?;
            Ok(())
        }
        HistoryWrite::Silence {
            silence,
            updated_at,
        } => {
            sqlx::query(
                "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, \
                   starts_at = excluded.starts_at, ends_at = excluded.ends_at, \
                   created_by = excluded.created_by, comment = excluded.comment, \
                   updated_at = excluded.updated_at \
                 WHERE excluded.updated_at >= silences.updated_at",
            )
            .bind(silence.id.as_str())
            .bind(super::silences::matchers_to_json(&silence.matchers))
            .bind(to_millis(silence.starts_at))
            .bind(to_millis(silence.ends_at))
            .bind(silence.created_by.as_str())
            .bind(silence.comment.as_str())
            .bind(to_millis(*updated_at))
            .execute(conn)
            .await
            .map_err(HistoryError::db("saving a silence"))?;
            Ok(())
        }
        HistoryWrite::NotifyLog(row) => save_notify_log(conn, row, None).await.map(drop),
        HistoryWrite::Cooldown(row) => save_cooldown(conn, row, None).await.map(drop),
        HistoryWrite::Delivered(record) => super::outbox::insert_delivered(conn, record).await,
        HistoryWrite::Fenced { fence, write } => {
            let written = match write.as_ref() {
                HistoryWrite::NotifyLog(row) => save_notify_log(conn, row, Some(fence)).await?,
                HistoryWrite::Cooldown(row) => save_cooldown(conn, row, Some(fence)).await?,
                other => {
                    // Checked under the lease row's lock (Postgres), which the
                    // batch's transaction holds until it commits.
                    let sql = format!(
                        "SELECT 1 AS held WHERE {}",
                        fence_condition(conn.backend(), 1, 2)
                    );
                    let held = sqlx::query(&sql)
                        .bind(fence.lease.as_str())
                        .bind(fence.epoch)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(HistoryError::db("checking a lease's epoch"))?
                        .is_some();
                    if held {
                        Box::pin(apply_one(conn, other)).await?;
                    }
                    held
                }
            };
            if !written {
                tracing::warn!(
                    %fence,
                    write = write.kind(),
                    "history write refused by the database: the lease has a newer epoch (this replica no longer leads); the current leader keeps its own record"
                );
            }
            Ok(())
        }
    }
}

impl HistoryWrite {
    /// What kind of write this is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            HistoryWrite::Episode(_) => "episode",
            HistoryWrite::Transition(_) => "transition",
            HistoryWrite::CloseEpisodesNotHeld { .. } => "episode closing",
            HistoryWrite::Snapshot(_) | HistoryWrite::ForgetSnapshot(_) => "alert state",
            HistoryWrite::Silence { .. } => "silence",
            HistoryWrite::NotifyLog(_) => "notification log",
            HistoryWrite::Cooldown(_) => "cooldown",
            HistoryWrite::Delivered(_) => "delivery record",
            HistoryWrite::Fenced { write, .. } => write.kind(),
        }
    }
}

/// ` WHERE <fence>` with the lease and epoch as parameters `first` and
/// `first + 1`; without a fence a condition that always holds (SQLite
/// needs a WHERE between `INSERT … SELECT` and `ON CONFLICT`).
fn fenced_select(conn: &DbConn, fence: Option<&Fence>, first: usize) -> String {
    match fence {
        Some(_) => format!(
            " WHERE {}",
            fence_condition(conn.backend(), first, first + 1)
        ),
        None => " WHERE 1 = 1".to_string(),
    }
}

/// Saves a notification-log entry (under `fence`, when given); false when
/// the database refused it for a stale epoch.
async fn save_notify_log(
    conn: &mut DbConn,
    row: &NotifyLogRow,
    fence: Option<&Fence>,
) -> Result<bool, HistoryError> {
    let sql = format!(
        "INSERT INTO notify_log (receiver, group_key, firing, resolved, sent_at) \
         SELECT $1, $2, $3, $4, $5{} ON CONFLICT (receiver, group_key) DO UPDATE SET \
         firing = excluded.firing, resolved = excluded.resolved, sent_at = excluded.sent_at",
        fenced_select(conn, fence, 6)
    );
    let mut query = sqlx::query(&sql)
        .bind(row.receiver.as_str())
        .bind(row.group_key.as_str())
        .bind(fingerprints_to_json(&row.firing))
        .bind(fingerprints_to_json(&row.resolved))
        .bind(to_millis(row.sent_at));
    if let Some(f) = fence {
        query = query.bind(f.lease.as_str()).bind(f.epoch);
    }
    let done = query
        .execute(conn)
        .await
        .map_err(HistoryError::db("saving the notification log"))?;
    Ok(done.rows_affected() > 0)
}

/// Saves a cooldown-ledger entry (under `fence`, when given); false when
/// the database refused it for a stale epoch.
async fn save_cooldown(
    conn: &mut DbConn,
    row: &CooldownRow,
    fence: Option<&Fence>,
) -> Result<bool, HistoryError> {
    let sql = format!(
        "INSERT INTO cooldowns (receiver, fingerprint, last_firing_sent, cooldown_ms, awaiting_resolve) \
         SELECT $1, $2, $3, $4, $5{} ON CONFLICT (receiver, fingerprint) DO UPDATE SET \
         last_firing_sent = CASE WHEN excluded.awaiting_resolve = 1 \
           THEN excluded.last_firing_sent ELSE cooldowns.last_firing_sent END, \
         cooldown_ms = excluded.cooldown_ms, \
         awaiting_resolve = excluded.awaiting_resolve",
        fenced_select(conn, fence, 6)
    );
    let mut query = sqlx::query(&sql)
        .bind(row.receiver.as_str())
        .bind(row.fingerprint.to_string())
        .bind(to_millis(row.last_firing_sent))
        .bind(i64::try_from(row.cooldown.as_millis()).unwrap_or(i64::MAX))
        .bind(i64::from(row.awaiting_resolve));
    if let Some(f) = fence {
        query = query.bind(f.lease.as_str()).bind(f.epoch);
    }
    let done = query
        .execute(conn)
        .await
        .map_err(HistoryError::db("saving a cooldown"))?;
    Ok(done.rows_affected() > 0)
}

async fn upsert_episode(conn: &mut DbConn, record: &EpisodeRecord) -> Result<(), HistoryError> {
    sqlx::query(
        "INSERT INTO alerts (id, fingerprint, rule, group_name, labels, annotations, severity, \
           state, starts_at, fired_at, ends_at, last_value, updated_at, end_reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, \
           annotations = excluded.annotations, \
           fired_at = COALESCE(alerts.fired_at, excluded.fired_at), \
           ends_at = excluded.ends_at, last_value = excluded.last_value, \
           updated_at = excluded.updated_at, end_reason = excluded.end_reason \
         WHERE excluded.updated_at >= alerts.updated_at",
    )
    .bind(record.id())
    .bind(record.fingerprint.to_string())
    .bind(record.rule.as_str())
    .bind(record.group_name.as_str())
    .bind(labels_to_json(&record.labels))
    .bind(map_to_json(&record.annotations))
    .bind(record.labels.get("severity").unwrap_or(""))
    .bind(record.state.as_str())
    .bind(to_millis(record.starts_at))
    .bind(record.fired_at.map(to_millis))
    .bind(record.ends_at.map(to_millis))
    .bind(record.value)
    .bind(to_millis(record.updated_at))
    .bind(record.end_reason.map(EndReason::as_str))
    .execute(conn)
    .await
    .map_err(HistoryError::db("saving an alert episode"))?;
    Ok(())
}

async fn close_episodes_not_held(
    conn: &mut DbConn,
    open: &BTreeSet<String>,
    held: &BTreeSet<String>,
    before: DateTime<Utc>,
    reason: EndReason,
) -> Result<(), HistoryError> {
    let saved = sqlx::query("SELECT fingerprint, active_at FROM alert_state WHERE updated_at < $1")
        .bind(to_millis(before))
        .fetch_all(&mut *conn)
        .await
        .map_err(HistoryError::db("finding saved alert states"))?;
    for row in &saved {
        let fingerprint: String = column(row, "fingerprint", "alert_state")?;
        let active_at: i64 = column(row, "active_at", "alert_state")?;
        if held.contains(&format!("{fingerprint}-{active_at}")) {
            continue;
        }
        sqlx::query("DELETE FROM alert_state WHERE fingerprint = $1 AND updated_at < $2")
            .bind(fingerprint.as_str())
            .bind(to_millis(before))
            .execute(&mut *conn)
            .await
            .map_err(HistoryError::db("dropping an alert-state snapshot"))?;
    }
    let episodes = sqlx::query(
        "SELECT id, state, last_value FROM alerts \
         WHERE state IN ('pending', 'firing') AND starts_at < $1 \
           AND group_name <> 'api' AND group_name NOT LIKE 'api/%'",
    )
    .bind(to_millis(before))
    .fetch_all(&mut *conn)
    .await
    .map_err(HistoryError::db("finding open episodes"))?;
    for row in &episodes {
        let id: String = column(row, "id", "alerts")?;
        if open.contains(&id) {
            continue;
        }
        let from = state(row, "state", "alerts")?;
        let to = if from == HistoryState::Pending {
            HistoryState::Inactive
        } else {
            HistoryState::Resolved
        };
        sqlx::query(
            "UPDATE alerts SET state = $2, ends_at = $3, end_reason = $4, \
               updated_at = CASE WHEN updated_at > $3 THEN updated_at ELSE $3 END \
             WHERE id = $1 AND state IN ('pending', 'firing')",
        )
        .bind(id.as_str())
        .bind(to.as_str())
        .bind(to_millis(before))
        .bind(reason.as_str())
        .execute(&mut *conn)
        .await
        .map_err(HistoryError::db("closing an episode"))?;
        let value: Option<f64> = column(row, "last_value", "alerts")?;
        let transition = Transition {
            alert_id: id,
            from,
            to,
            at: before,
            value,
        };
        insert_transition(&mut *conn, &transition).await?;
    }
    Ok(())
}

async fn insert_transition(conn: &mut DbConn, t: &Transition) -> Result<(), HistoryError> {
    sqlx::query(
        "INSERT INTO alert_events (alert_id, at, to_state, from_state, value) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (alert_id, at, to_state) DO NOTHING",
    )
    .bind(t.alert_id.as_str())
    .bind(to_millis(t.at))
    .bind(t.to.as_str())
    .bind(t.from.as_str())
    .bind(t.value)
    .execute(conn)
    .await
    .map_err(HistoryError::db("recording an alert transition"))?;
    Ok(())
}

async fn upsert_snapshot(conn: &mut DbConn, s: &AlertSnapshot) -> Result<(), HistoryError> {
    sqlx::query(
        "INSERT INTO alert_state (fingerprint, rule, group_name, labels, annotations, state, \
           active_at, fired_at, resolved_at, keep_firing_since, last_sent_at, value, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (fingerprint) DO UPDATE SET rule = excluded.rule, \
           group_name = excluded.group_name, labels = excluded.labels, \
           annotations = excluded.annotations, state = excluded.state, \
           active_at = excluded.active_at, fired_at = excluded.fired_at, \
           resolved_at = excluded.resolved_at, keep_firing_since = excluded.keep_firing_since, \
           last_sent_at = excluded.last_sent_at, value = excluded.value, \
           updated_at = excluded.updated_at \
         WHERE excluded.updated_at >= alert_state.updated_at",
    )
    .bind(s.fingerprint.to_string())
    .bind(s.rule.as_str())
    .bind(s.group_name.as_str())
    .bind(labels_to_json(&s.labels))
    .bind(map_to_json(&s.annotations))
    .bind(s.state.as_str())
    .bind(to_millis(s.active_at))
    .bind(s.fired_at.map(to_millis))
    .bind(s.resolved_at.map(to_millis))
    .bind(s.keep_firing_since.map(to_millis))
    .bind(s.last_sent_at.map(to_millis))
    .bind(s.value)
    .bind(to_millis(s.updated_at))
    .execute(conn)
    .await
    .map_err(HistoryError::db("saving an alert-state snapshot"))?;
    Ok(())
}

fn episode_from_row(row: &AnyRow) -> Result<Episode, HistoryError> {
    let table = "alerts";
    let id: String = column(row, "id", table)?;
    let corrupt = |err: HistoryError| match err {
        HistoryError::Corrupt { table, reason, .. } => HistoryError::Corrupt {
            table,
            id: id.clone(),
            reason,
        },
        other => other,
    };
    let read = || -> Result<Episode, HistoryError> {
        Ok(Episode {
            id: id.clone(),
            fingerprint: column(row, "fingerprint", table)?,
            rule: column(row, "rule", table)?,
            group_name: column(row, "group_name", table)?,
            labels: labels_from_json(&column::<String>(row, "labels", table)?, table)?,
            annotations: json(row, "annotations", table)?,
            severity: column(row, "severity", table)?,
            state: state(row, "state", table)?,
            starts_at: time(row, "starts_at", table)?,
            fired_at: opt_time(row, "fired_at", table)?,
            ends_at: opt_time(row, "ends_at", table)?,
            end_reason: column(row, "end_reason", table)?,
            last_value: column(row, "last_value", table)?,
            acknowledged_by: column(row, "acknowledged_by", table)?,
            acknowledged_at: opt_time(row, "acknowledged_at", table)?,
            ack_comment: column(row, "ack_comment", table)?,
        })
    };
    read().map_err(corrupt)
}

async fn prune_rows(conn: &mut DbConn, cutoff: i64, sql: &str) -> Result<u64, HistoryError> {
    sqlx::query(sql)
        .bind(cutoff)
        .execute(conn)
        .await
        .map(|r| r.rows_affected())
        .map_err(HistoryError::db("pruning old history"))
}

fn parse_cursor(text: &str) -> Result<(i64, String), HistoryError> {
    text.split_once(':')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_string())))
        .ok_or_else(|| HistoryError::BadCursor(text.to_string()))
}

pub(crate) fn time(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<DateTime<Utc>, HistoryError> {
    let ms: i64 = column(row, name, table)?;
    from_millis(ms).ok_or_else(|| HistoryError::Corrupt {
        table,
        id: String::new(),
        reason: format!("column {name}: {ms} is not a valid timestamp"),
    })
}

pub(crate) fn opt_time(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<Option<DateTime<Utc>>, HistoryError> {
    match column::<Option<i64>>(row, name, table)? {
        None => Ok(None),
        Some(ms) => from_millis(ms)
            .map(Some)
            .ok_or_else(|| HistoryError::Corrupt {
                table,
                id: String::new(),
                reason: format!("column {name}: {ms} is not a valid timestamp"),
            }),
    }
}

fn state(row: &AnyRow, name: &str, table: &'static str) -> Result<HistoryState, HistoryError> {
    let text: String = column(row, name, table)?;
    HistoryState::parse(&text).ok_or_else(|| HistoryError::Corrupt {
        table,
        id: String::new(),
        reason: format!("column {name}: unknown state {text:?}"),
    })
}

fn fingerprint(row: &AnyRow, name: &str, table: &'static str) -> Result<Fingerprint, HistoryError> {
    let text: String = column(row, name, table)?;
    parse_fingerprint(&text).ok_or_else(|| HistoryError::Corrupt {
        table,
        id: text.clone(),
        reason: format!("column {name}: {text:?} is not a 16-digit hex fingerprint"),
    })
}

pub(crate) fn parse_fingerprint(text: &str) -> Option<Fingerprint> {
    u64::from_str_radix(text, 16).ok().map(Fingerprint)
}

fn json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    name: &str,
    table: &'static str,
) -> Result<T, HistoryError> {
    let text: String = column(row, name, table)?;
    serde_json::from_str(&text).map_err(|err| HistoryError::Corrupt {
        table,
        id: String::new(),
        reason: format!("column {name}: {err}"),
    })
}

/// Labels as a JSON object (`{"alertname":"Down",…}`), sorted by name.
pub fn labels_to_json(labels: &Labels) -> String {
    let map: BTreeMap<&str, &str> = labels.iter().map(|l| (l.name, l.value)).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_string())
}

fn labels_from_json(text: &str, table: &'static str) -> Result<Labels, HistoryError> {
    let map: BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|err| HistoryError::Corrupt {
            table,
            id: String::new(),
            reason: format!("labels: {err}"),
        })?;
    Ok(Labels::from_pairs(map))
}

pub(crate) fn map_to_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).unwrap_or_else(|_| "{}".to_string())
}

fn fingerprints_to_json(set: &BTreeSet<Fingerprint>) -> String {
    let list: Vec<String> = set.iter().map(Fingerprint::to_string).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_string())
}

fn fingerprints_from_json(text: &str) -> Result<BTreeSet<Fingerprint>, HistoryError> {
    let corrupt = |reason: String| HistoryError::Corrupt {
        table: "notify_log",
        id: String::new(),
        reason,
    };
    let list: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    list.iter()
        .map(|f| parse_fingerprint(f).ok_or_else(|| corrupt(format!("bad fingerprint {f:?}"))))
        .collect()
}
