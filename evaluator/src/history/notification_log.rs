//! The history's side of the notification pipeline's delivery tail: the SQL
//! outbox and notification log behind [`NotificationOutbox`], which
//! [`crate::notify::delivery`] declares. Queueing writes the outbox row (and
//! the firing state it tells) under the idempotency key; claims and
//! outcomes carry the leader's fence; the notification-log, cooldown and
//! delivery-log rows go through the batched [`HistoryWriter`], which
//! buffers them while the database does not answer.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::lease::Fence;
use super::outbox::{DeliveredRecord, OutboxEntry, OutboxStatus};
use super::payload::{cooldown_rows, notification_from_payload, notification_payload};
use super::store::HistoryWrite;
use super::writer::HistoryWriter;
use super::{new_id, HistoryStore};
use crate::notify::alert::{AlertStatus, Fingerprint, Notification};
use crate::notify::delivery::{
    idempotency_key, notify_log_row, Claim, Leadership, NotificationOutbox, NotifyLogRow,
    OutboxError, Outcome, PendingEntry, Term,
};

/// Where notifications are queued before they are sent, and whether this
/// replica sends.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub store: HistoryStore,
    pub writer: HistoryWriter,
    pub leader: watch::Receiver<Leadership>,
    /// A standby queues its notifications for the leader (rule-group
    /// sharding) instead of holding them.
    pub forward: bool,
}

impl Outbox {
    /// `write`, fenced by `term`'s epoch when it has one.
    fn fenced(term: Option<&Term>, write: HistoryWrite) -> HistoryWrite {
        match term.and_then(Fence::of) {
            Some(fence) => HistoryWrite::Fenced {
                fence,
                write: Box::new(write),
            },
            None => write,
        }
    }
}

#[async_trait]
impl NotificationOutbox for Outbox {
    fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leader.clone()
    }

    fn forwards(&self) -> bool {
        self.forward
    }

    async fn enqueue(
        &self,
        notification: &Notification,
        integration: &str,
        key: &str,
        received_at: DateTime<Utc>,
    ) -> Result<String, OutboxError> {
        let entry = OutboxEntry::for_notification(
            notification,
            integration,
            notification_payload(notification),
            received_at,
        );
        // The firing state goes with the notification telling it (the
        // notifier's `startsAt` of a firing alert is the time it fired).
        let fired: Vec<(Fingerprint, DateTime<Utc>)> = notification
            .alerts
            .iter()
            .filter(|a| a.status == AlertStatus::Firing)
            .map(|a| (a.fingerprint, a.alert.starts_at))
            .collect();
        let enqueued = self.store.enqueue_firing(&entry, key, &fired).await?;
        Ok(enqueued.id().to_string())
    }

    async fn claim(&self, id: &str, term: &Term, now: DateTime<Utc>) -> Result<Claim, OutboxError> {
        Ok(self.store.claim(id, Fence::of(term).as_ref(), now).await?)
    }

    async fn record(
        &self,
        id: &str,
        outcome: &Outcome,
        now: DateTime<Utc>,
        term: Option<&Term>,
    ) -> Result<bool, OutboxError> {
        let fence = term.and_then(Fence::of);
        let fence = fence.as_ref();
        let marked = match outcome {
            Outcome::Sent { code, message_id } => {
                self.store
                    .mark_sent(id, *code, message_id.as_deref(), now, fence)
                    .await
            }
            Outcome::Retry { error, code, at } => {
                self.store
                    .mark_failed(id, error, *code, Some(*at), fence)
                    .await
            }
            Outcome::Failed { error, code } => {
                self.store.mark_failed(id, error, *code, None, fence).await
            }
        };
        Ok(marked?)
    }

    async fn due(
        &self,
        horizon: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingEntry>, OutboxError> {
        let records = self.store.due(horizon, limit).await?;
        Ok(records
            .into_iter()
            .map(|r| PendingEntry {
                notification: notification_from_payload(&r.payload),
                id: r.id,
                idempotency_key: r.idempotency_key,
                receiver: r.receiver,
                integration: r.integration,
                group_key: r.group_key,
                created_at: r.created_at,
                next_attempt_at: r.next_attempt_at,
                claimed: r.claimed_epoch.is_some() || r.attempts > 0,
            })
            .collect())
    }

    async fn sent_since(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(Notification, DateTime<Utc>)>, OutboxError> {
        let records = self.store.sent_since(since, limit).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let at = r.sent_at.unwrap_or(r.created_at);
                Some((notification_from_payload(&r.payload)?, at))
            })
            .collect())
    }

    async fn notify_log(&self) -> Result<Vec<NotifyLogRow>, OutboxError> {
        Ok(self.store.load_notify_log().await?)
    }

    fn log_delivered(&self, notification: &Notification, now: DateTime<Utc>, term: Option<&Term>) {
        let log = HistoryWrite::NotifyLog(notify_log_row(notification, now));
        let _ = self.writer.record(Outbox::fenced(term, log));
        for row in cooldown_rows(notification, now) {
            let _ = self
                .writer
                .record(Outbox::fenced(term, HistoryWrite::Cooldown(row)));
        }
    }

    fn log_without_entry(
        &self,
        notification: &Notification,
        integration: &str,
        created_at: DateTime<Utc>,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) {
        let (status, last_error, response_code, message_id) = match outcome {
            Outcome::Sent { code, message_id } => {
                (OutboxStatus::Sent, None, *code, message_id.clone())
            }
            Outcome::Retry { error, code, .. } | Outcome::Failed { error, code } => {
                (OutboxStatus::Failed, Some(error.clone()), *code, None)
            }
        };
        let record = DeliveredRecord {
            id: new_id(created_at),
            idempotency_key: idempotency_key(notification, integration, created_at),
            entry: OutboxEntry::for_notification(
                notification,
                integration,
                notification_payload(notification),
                created_at,
            ),
            status,
            attempts: 1,
            last_error,
            response_code,
            message_id,
            finished_at: now,
        };
        if let Err(e) = self.writer.record(HistoryWrite::Delivered(record)) {
            tracing::error!(error = %e, receiver = %notification.receiver, "the delivery of a notification cannot be recorded in the history");
        }
    }
}
