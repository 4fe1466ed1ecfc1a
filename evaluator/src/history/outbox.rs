//! The durable notification outbox: a notification is written to the
//! `notifications` table (status `pending`) before anyone tries to deliver
//! it, and delivery marks it `sent` or `failed`. After a restart (or a
//! fail-over to another replica) [`HistoryStore::due`] hands back what was
//! not delivered yet, so nothing is lost; the idempotency key makes a second
//! enqueue of the same notification a no-op, so nothing is queued twice.
//!
//! The same rows are the delivery log the API and dashboard show per alert.
//!
//! Fencing: the leader claims an entry ([`HistoryStore::claim`]) right
//! before sending it and records the outcome, both under its lease epoch
//! ([`Fence`]); the database refuses either once the lease has passed to a
//! newer epoch, so a replica that lost the leadership (frozen, cut off)
//! neither starts a delivery nor overwrites the new leader's record. The
//! claim leaves the epoch on the row (`epoch`, `claimed_at`): an entry still
//! pending with an epoch set was being sent when its leader went away.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;

use super::db::{column, DbConn};
use super::lease::{fence_condition, Fence};
use super::store::{opt_time, time, Episode};
use super::{new_id, to_millis, HistoryError, HistoryStore};
use crate::notify::alert::{AlertStatus, Fingerprint, Notification};
use crate::notify::delivery::Claim;

/// A notification to queue for one receiver integration.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub receiver: String,
    /// Which integration of the receiver: `slack[0]`, `webhook[1]`, …
    pub integration: String,
    pub group_key: String,
    /// What the integration will send (JSON text: the webhook body, the
    /// Slack message, the e-mail's fields).
    pub payload: String,
    /// The alerts carried: fingerprint, rule (`alertname`), status.
    pub alerts: Vec<(Fingerprint, String, AlertStatus)>,
    pub created_at: DateTime<Utc>,
}

impl OutboxEntry {
    /// An entry for `notification` delivered by `integration`, carrying
    /// `payload`.
    pub fn for_notification(
        notification: &Notification,
        integration: &str,
        payload: String,
        created_at: DateTime<Utc>,
    ) -> OutboxEntry {
        OutboxEntry {
            receiver: notification.receiver.clone(),
            integration: integration.to_string(),
            group_key: notification.group_key.clone(),
            payload,
            alerts: notification
                .alerts
                .iter()
                .map(|a| {
                    let rule = a.alert.labels.get("alertname").unwrap_or("").to_string();
                    (a.fingerprint, rule, a.status)
                })
                .collect(),
            created_at,
        }
    }
}

/// Delivery status of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    /// Not delivered yet; due at `next_attempt_at`.
    Pending,
    Sent,
    /// Gave up.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Sent => "sent",
            OutboxStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<OutboxStatus> {
        Some(match text {
            "pending" => OutboxStatus::Pending,
            "sent" => OutboxStatus::Sent,
            "failed" => OutboxStatus::Failed,
            _ => return None,
        })
    }
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    pub id: String,
    pub idempotency_key: String,
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
    pub payload: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub response_code: Option<u16>,
    pub message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The lease epoch of the leader that last claimed it for sending
    /// (`None`: never claimed, or claimed by an unfenced single replica).
    pub claimed_epoch: Option<i64>,
}

/// What [`HistoryStore::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued under this id.
    New(String),
    /// A notification with the same key was already queued (under this id);
    /// nothing changed.
    Duplicate(String),
}

impl Enqueued {
    pub fn id(&self) -> &str {
        match self {
            Enqueued::New(id) | Enqueued::Duplicate(id) => id,
        }
    }
}

/// A notification delivered without an outbox row (the database was down
/// when it was queued), to add to the delivery log later through the
/// batched writer ([`super::store::HistoryWrite::Delivered`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveredRecord {
    /// Chosen when recorded, so a replayed batch inserts nothing twice.
    pub id: String,
    pub idempotency_key: String,
    pub entry: OutboxEntry,
    /// `Sent` or `Failed`.
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub response_code: Option<u16>,
    pub message_id: Option<String>,
    pub finished_at: DateTime<Utc>,
}

/// Inserts a [`DeliveredRecord`] and its alert links; a row already there
/// (same id or idempotency key) is left as it is.
pub(super) async fn insert_delivered(
    conn: &mut DbConn,
    record: &DeliveredRecord,
) -> Result<(), HistoryError> {
    let entry = &record.entry;
    let sent_at = (record.status == OutboxStatus::Sent).then(|| to_millis(record.finished_at));
    let inserted = sqlx::query(
        "INSERT INTO notifications (id, idempotency_key, receiver, integration, group_key, \
           payload, status, attempts, last_error, response_code, message_id, created_at, \
           next_attempt_at, sent_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT DO NOTHING",
    )
    .bind(record.id.as_str())
    .bind(record.idempotency_key.as_str())
    .bind(entry.receiver.as_str())
    .bind(entry.integration.as_str())
    .bind(entry.group_key.as_str())
    .bind(entry.payload.as_str())
    .bind(record.status.as_str())
    .bind(record.attempts)
    .bind(record.last_error.as_deref())
    .bind(record.response_code.map(i64::from))
    .bind(record.message_id.as_deref())
    .bind(to_millis(entry.created_at))
    .bind(to_millis(record.finished_at))
    .bind(sent_at)
    .execute(&mut *conn)
    .await
    .map_err(HistoryError::db(
        "recording a notification delivered without an outbox row",
    ))?;
    if inserted.rows_affected() == 0 {
        return Ok(());
    }
    for (fingerprint, rule, status) in &entry.alerts {
        sqlx::query(
            "INSERT INTO notification_alerts (notification_id, fingerprint, rule, alert_status) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (notification_id, fingerprint) DO NOTHING",
        )
        .bind(record.id.as_str())
        .bind(fingerprint.to_string())
        .bind(rule.as_str())
        .bind(status.as_str())
        .execute(&mut *conn)
        .await
        .map_err(HistoryError::db("linking a notification to its alerts"))?;
    }
    Ok(())
}

const NOTIFICATION_COLUMNS: &str = "id, idempotency_key, receiver, integration, group_key, payload, status, attempts, last_error, response_code, message_id, created_at, next_attempt_at, sent_at, epoch";

/// ` AND <fence>` with the lease name and epoch as parameters `first` and
/// `first + 1`, or nothing without a fence.
fn fence_clause(conn: &DbConn, fence: Option<&Fence>, first: usize) -> String {
    match fence {
        Some(_) => format!(" AND {}", fence_condition(conn.backend(), first, first + 1)),
        None => String::new(),
    }
}

/// Binds the fence's lease name and epoch (when there is one).
fn bind_fence<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    fence: Option<&'q Fence>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match fence {
        Some(f) => query.bind(f.lease.as_str()).bind(f.epoch),
        None => query,
    }
}

impl HistoryStore {
    /// Queues a notification, due at once. A second enqueue with the same
    /// `idempotency_key` changes nothing and returns the first one's id.
    pub async fn enqueue(
        &self,
        entry: &OutboxEntry,
        idempotency_key: &str,
    ) -> Result<Enqueued, HistoryError> {
        self.enqueue_firing(entry, idempotency_key, &[]).await
    }

    /// [`HistoryStore::enqueue`], and in the same transaction the saved
    /// state of each alert in `fired` (fingerprint, time it fired) that is
    /// still saved as pending of the same episode (activated no later than
    /// it fired) becomes firing: the firing state and the notification
    /// telling it become durable together. The state machine's own
    /// snapshot reaches the database through the batched writer a moment
    /// later; killed in between, a restart would otherwise restore the
    /// alert as pending and, if it cleared meanwhile, never send the
    /// resolution of a firing notification the receiver got.
    pub async fn enqueue_firing(
        &self,
        entry: &OutboxEntry,
        idempotency_key: &str,
        fired: &[(Fingerprint, DateTime<Utc>)],
    ) -> Result<Enqueued, HistoryError> {
        let _timer = self.timer("outbox");
        let id = new_id(entry.created_at);
        let mut tx = self.database().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO notifications (id, idempotency_key, receiver, integration, group_key, \
               payload, status, attempts, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(id.as_str())
        .bind(idempotency_key)
        .bind(entry.receiver.as_str())
        .bind(entry.integration.as_str())
        .bind(entry.group_key.as_str())
        .bind(entry.payload.as_str())
        .bind(to_millis(entry.created_at))
        .bind(to_millis(entry.created_at))
        .execute(&mut tx)
        .await
        .map_err(HistoryError::db("queueing a notification"))?;
        if inserted.rows_affected() == 0 {
            let row = sqlx::query("SELECT id FROM notifications WHERE idempotency_key = $1")
                .bind(idempotency_key)
                .fetch_one(&mut tx)
                .await
                .map_err(HistoryError::db("reading a queued notification"))?;
            return Ok(Enqueued::Duplicate(column(&row, "id", "notifications")?));
        }
        for (fingerprint, rule, status) in &entry.alerts {
            sqlx::query(
                "INSERT INTO notification_alerts (notification_id, fingerprint, rule, alert_status) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (notification_id, fingerprint) DO NOTHING",
            )
            .bind(id.as_str())
            .bind(fingerprint.to_string())
            .bind(rule.as_str())
            .bind(status.as_str())
            .execute(&mut tx)
            .await
            .map_err(HistoryError::db("linking a notification to its alerts"))?;
        }
        for (fingerprint, fired_at) in fired {
            sqlx::query(
                "UPDATE alert_state SET state = 'firing', fired_at = $1 \
                 WHERE fingerprint = $2 AND state = 'pending' AND active_at <= $1",
            )
            .bind(to_millis(*fired_at))
            .bind(fingerprint.to_string())
            .execute(&mut tx)
            .await
            .map_err(HistoryError::db(
                "saving the firing state with its notification",
            ))?;
        }
        tx.commit()
            .await
            .map_err(HistoryError::db("committing a queued notification"))?;
        Ok(Enqueued::New(id))
    }

    /// Pending notifications due at `now`, the longest-waiting first.
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, HistoryError> {
        let _timer = self.timer("outbox");
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT {}",
            limit.clamp(1, 100_000)
        );
        let rows = sqlx::query(&sql)
            .bind(to_millis(now))
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(HistoryError::db("reading due notifications"))?;
        rows.iter().map(notification_from_row).collect()
    }

    /// Notifications delivered and created at or after `since`, oldest
    /// first: what a new leader counts as told besides the notification
    /// log (whose rows are written a moment later, in batches).
    pub async fn sent_since(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, HistoryError> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications \
             WHERE status = 'sent' AND created_at >= $1 \
             ORDER BY created_at, id LIMIT {}",
            limit.clamp(1, 100_000)
        );
        let rows = sqlx::query(&sql)
            .bind(to_millis(since))
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(HistoryError::db("reading delivered notifications"))?;
        rows.iter().map(notification_from_row).collect()
    }

    /// Claims pending notification `id` for sending under `fence` (the
    /// leader's lease epoch; `None` for an unfenced single replica): the
    /// row takes the epoch, unless the lease has moved on to a newer epoch,
    /// in which case the database refuses and nothing changes.
    pub async fn claim(
        &self,
        id: &str,
        fence: Option<&Fence>,
        at: DateTime<Utc>,
    ) -> Result<Claim, HistoryError> {
        let _timer = self.timer("outbox");
        let mut conn = self.conn().await?;
        let sql = format!(
            "UPDATE notifications SET epoch = $1, claimed_at = $2 \
             WHERE id = $3 AND status = 'pending'{}",
            fence_clause(&conn, fence, 4)
        );
        let query = sqlx::query(&sql)
            .bind(fence.map(|f| f.epoch))
            .bind(to_millis(at))
            .bind(id);
        let done = bind_fence(query, fence)
            .execute(&mut conn)
            .await
            .map_err(HistoryError::db("claiming a notification"))?;
        if done.rows_affected() > 0 {
            return Ok(Claim::Claimed);
        }
        self.why_refused(&mut conn, id, fence).await
    }

    /// Why a fenced update of pending notification `id` changed nothing.
    async fn why_refused(
        &self,
        conn: &mut DbConn,
        id: &str,
        fence: Option<&Fence>,
    ) -> Result<Claim, HistoryError> {
        let pending = sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM notifications WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await
        .map_err(HistoryError::db("reading a notification's status"))?;
        match fence {
            Some(f) if pending > 0 => {
                let current =
                    sqlx::query_scalar::<_, i64>("SELECT epoch FROM leases WHERE name = $1")
                        .bind(f.lease.as_str())
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(HistoryError::db("reading a lease's epoch"))?;
                Ok(Claim::StaleEpoch { current })
            }
            _ => Ok(Claim::NotPending),
        }
    }

    /// Marks a notification delivered, under `fence` (see
    /// [`HistoryStore::claim`]). Returns false when no pending notification
    /// has this id (already marked, or unknown) or the fence is stale.
    pub async fn mark_sent(
        &self,
        id: &str,
        response_code: Option<u16>,
        message_id: Option<&str>,
        at: DateTime<Utc>,
        fence: Option<&Fence>,
    ) -> Result<bool, HistoryError> {
        let _timer = self.timer("outbox");
        let mut conn = self.conn().await?;
        let sql = format!(
            "UPDATE notifications SET status = 'sent', attempts = attempts + 1, \
               response_code = $1, message_id = $2, sent_at = $3 \
             WHERE id = $4 AND status = 'pending'{}",
            fence_clause(&conn, fence, 5)
        );
        let query = sqlx::query(&sql)
            .bind(response_code.map(i64::from))
            .bind(message_id)
            .bind(to_millis(at))
            .bind(id);
        let done = bind_fence(query, fence)
            .execute(&mut conn)
            .await
            .map_err(HistoryError::db("marking a notification sent"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a failed attempt. With `next_attempt_at` the notification
    /// stays pending and is due again then; without, delivery gave up and it
    /// is marked `failed`. Under `fence` like [`HistoryStore::mark_sent`].
    /// Returns false when no pending notification has this id or the fence
    /// is stale.
    pub async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        response_code: Option<u16>,
        next_attempt_at: Option<DateTime<Utc>>,
        fence: Option<&Fence>,
    ) -> Result<bool, HistoryError> {
        let _timer = self.timer("outbox");
        let (status, next) = match next_attempt_at {
            Some(at) => (OutboxStatus::Pending, Some(to_millis(at))),
            None => (OutboxStatus::Failed, None),
        };
        let mut conn = self.conn().await?;
        let sql = format!(
            "UPDATE notifications SET status = $1, attempts = attempts + 1, last_error = $2, \
               response_code = $3, next_attempt_at = COALESCE($4, next_attempt_at) \
             WHERE id = $5 AND status = 'pending'{}",
            fence_clause(&conn, fence, 6)
        );
        let query = sqlx::query(&sql)
            .bind(status.as_str())
            .bind(error)
            .bind(response_code.map(i64::from))
            .bind(next)
            .bind(id);
        let done = bind_fence(query, fence)
            .execute(&mut conn)
            .await
            .map_err(HistoryError::db("marking a notification failed"))?;
        Ok(done.rows_affected() > 0)
    }

    /// How many notifications wait in the outbox (pending, due or not).
    pub async fn outbox_backlog(&self) -> Result<i64, HistoryError> {
        let _timer = self.timer("outbox");
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS pending FROM notifications WHERE status = 'pending'",
        )
        .fetch_one(&mut self.conn().await?)
        .await
        .map_err(HistoryError::db("counting pending notifications"))?;
        column(&row, "pending", "notifications")
    }

    /// One notification by id.
    pub async fn notification(&self, id: &str) -> Result<Option<NotificationRecord>, HistoryError> {
        let sql = format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(HistoryError::db("reading a notification"))?;
        row.as_ref().map(notification_from_row).transpose()
    }

    /// The notifications that carried an episode's alert: those created from
    /// its start until the next episode of the same alert started, oldest
    /// first. Includes the resolved notification sent after it ended.
    pub async fn notifications_for_episode(
        &self,
        episode: &Episode,
    ) -> Result<Vec<NotificationRecord>, HistoryError> {
        let _timer = self.timer("query");
        let mut conn = self.conn().await?;
        let next_start = sqlx::query(
            "SELECT MIN(starts_at) AS next_start FROM alerts \
             WHERE fingerprint = $1 AND starts_at > $2",
        )
        .bind(episode.fingerprint.as_str())
        .bind(to_millis(episode.starts_at))
        .fetch_one(&mut conn)
        .await
        .map_err(HistoryError::db("finding the next episode"))?;
        let until: Option<i64> = column(&next_start, "next_start", "alerts")?;
        let columns = NOTIFICATION_COLUMNS
            .split(", ")
            .map(|c| format!("n.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM notifications n \
             JOIN notification_alerts na ON na.notification_id = n.id \
             WHERE na.fingerprint = $1 AND n.created_at >= $2 AND n.created_at < $3 \
             ORDER BY n.created_at, n.id"
        );
        let rows = sqlx::query(&sql)
            .bind(episode.fingerprint.as_str())
            .bind(to_millis(episode.starts_at))
            .bind(until.unwrap_or(i64::MAX))
            .fetch_all(&mut conn)
            .await
            .map_err(HistoryError::db("reading an episode's notifications"))?;
        rows.iter().map(notification_from_row).collect()
    }
}

fn notification_from_row(row: &AnyRow) -> Result<NotificationRecord, HistoryError> {
    let table = "notifications";
    let id: String = column(row, "id", table)?;
    let status_text: String = column(row, "status", table)?;
    let status = OutboxStatus::parse(&status_text).ok_or_else(|| HistoryError::Corrupt {
        table,
        id: id.clone(),
        reason: format!("unknown status {status_text:?}"),
    })?;
    Ok(NotificationRecord {
        idempotency_key: column(row, "idempotency_key", table)?,
        receiver: column(row, "receiver", table)?,
        integration: column(row, "integration", table)?,
        group_key: column(row, "group_key", table)?,
        payload: column(row, "payload", table)?,
        status,
        attempts: column(row, "attempts", table)?,
        last_error: column(row, "last_error", table)?,
        response_code: column::<Option<i64>>(row, "response_code", table)?
            .and_then(|c| u16::try_from(c).ok()),
        message_id: column(row, "message_id", table)?,
        created_at: time(row, "created_at", table)?,
        next_attempt_at: time(row, "next_attempt_at", table)?,
        sent_at: opt_time(row, "sent_at", table)?,
        claimed_epoch: column(row, "epoch", table)?,
        id,
    })
}
