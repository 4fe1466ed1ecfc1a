//! The state a restart or a fail-over reads back: alert-state snapshots,
//! the notifier's log and cooldown ledger, and the stored silences.

use chrono::{DateTime, Utc};

use super::rows::{
    fingerprint, fingerprints_from_json, json, labels_from_json, opt_time, state, time,
};
use super::{AlertSnapshot, CooldownRow, HistoryStore, HistoryWrite, NotifyLogRow};
use crate::history::db::column;
use crate::history::HistoryError;
use crate::notify::silence::Silence;

impl HistoryStore {
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
        self.snapshots_where(None).await
    }

    /// The saved alert-state snapshots of the rule groups named
    /// `group_name` (a group that moved to this replica).
    pub async fn load_group_snapshots(
        &self,
        group_name: &str,
    ) -> Result<Vec<AlertSnapshot>, HistoryError> {
        self.snapshots_where(Some(group_name)).await
    }

    async fn snapshots_where(
        &self,
        group_name: Option<&str>,
    ) -> Result<Vec<AlertSnapshot>, HistoryError> {
        let condition = match group_name {
            Some(_) => "WHERE group_name = $1 ",
            None => "",
        };
        let sql = format!(
            "SELECT fingerprint, rule, group_name, labels, annotations, state, active_at, \
             fired_at, resolved_at, keep_firing_since, last_sent_at, value, updated_at \
             FROM alert_state {condition}ORDER BY fingerprint"
        );
        let mut query = sqlx::query(&sql);
        if let Some(name) = group_name {
            query = query.bind(name);
        }
        let rows = query
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

    /// The names of the rule groups that have saved alert state.
    pub async fn saved_group_names(&self) -> Result<Vec<String>, HistoryError> {
        let rows = sqlx::query("SELECT DISTINCT group_name FROM alert_state ORDER BY group_name")
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(HistoryError::db(
                "listing the rule groups with saved alerts",
            ))?;
        rows.iter()
            .map(|row| column(row, "group_name", "alert_state"))
            .collect()
    }

    /// Deletes the saved state of alert `fingerprint` of group
    /// `group_name`; true when this call deleted it. Of several replicas
    /// sweeping the same removed group, only one claims each alert, and it
    /// alone closes the alert's episode and notifies its end.
    pub async fn claim_snapshot(
        &self,
        fingerprint: crate::notify::alert::Fingerprint,
        group_name: &str,
    ) -> Result<bool, HistoryError> {
        let deleted =
            sqlx::query("DELETE FROM alert_state WHERE fingerprint = $1 AND group_name = $2")
                .bind(fingerprint.to_string())
                .bind(group_name)
                .execute(&mut self.conn().await?)
                .await
                .map_err(HistoryError::db(
                    "claiming a removed rule group's saved alert",
                ))?;
        Ok(deleted.rows_affected() == 1)
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
                let matchers = crate::history::silences::matchers_from_json(&column::<String>(
                    row, "matchers", table,
                )?)
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
