//! Reading the history: one episode and its events, acknowledgements, the
//! paged history query, per-rule stats and fires per day (the API's and the
//! dashboard's questions).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::rows::{json, labels_from_json, opt_time, state, time};
use super::{
    AckOutcome, AlertEvent, DailyFires, Episode, HistoryQuery, HistoryStore, Page, RuleStats,
    EPISODE_COLUMNS,
};
use crate::history::db::column;
use crate::history::{to_millis, HistoryError};
use crate::notify::alert::Fingerprint;
use crate::notify::matcher::all_match;

impl HistoryStore {
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
}

pub(super) fn episode_from_row(row: &AnyRow) -> Result<Episode, HistoryError> {
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

pub(super) fn parse_cursor(text: &str) -> Result<(i64, String), HistoryError> {
    text.split_once(':')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_string())))
        .ok_or_else(|| HistoryError::BadCursor(text.to_string()))
}
