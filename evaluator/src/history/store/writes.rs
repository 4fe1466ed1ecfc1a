//! The writes the batched writer applies: idempotent upserts of episodes,
//! transitions, snapshots, notification-log and cooldown rows (fenced by
//! the leader's epoch where only the leader may write), and the sweep that
//! closes episodes the evaluator no longer holds.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::rows::{fingerprints_to_json, labels_to_json, map_to_json, state};
use super::{
    AlertSnapshot, CooldownRow, EndReason, EpisodeRecord, HistoryState, HistoryWrite, NotifyLogRow,
    Transition,
};
use crate::history::db::{column, DbConn};
use crate::history::lease::{fence_condition, Fence};
use crate::history::{to_millis, HistoryError};

pub(super) async fn apply_one(conn: &mut DbConn, write: &HistoryWrite) -> Result<(), HistoryError> {
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
            .bind(crate::history::silences::matchers_to_json(&silence.matchers))
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
        HistoryWrite::Delivered(record) => {
            crate::history::outbox::insert_delivered(conn, record).await
        }
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
pub(super) fn fenced_select(conn: &DbConn, fence: Option<&Fence>, first: usize) -> String {
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
pub(super) async fn save_notify_log(
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
pub(super) async fn save_cooldown(
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

pub(super) async fn upsert_episode(
    conn: &mut DbConn,
    record: &EpisodeRecord,
) -> Result<(), HistoryError> {
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

pub(super) async fn close_episodes_not_held(
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

pub(super) async fn insert_transition(
    conn: &mut DbConn,
    t: &Transition,
) -> Result<(), HistoryError> {
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

pub(super) async fn upsert_snapshot(
    conn: &mut DbConn,
    s: &AlertSnapshot,
) -> Result<(), HistoryError> {
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
