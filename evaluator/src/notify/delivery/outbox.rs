//! What the delivery tail needs from durable storage, declared here and
//! implemented by the SQL history (its `notification_log` module),
//! as Alertmanager's notify declares the notification log its nflog
//! implements: the outbox a notification is queued in before it is sent,
//! the claim and outcome of each delivery under the leader's term, and the
//! notification-log and cooldown rows a delivered notification leaves.
//!
//! It exists so that the notification pipeline reads top to bottom in
//! `notify/` and crosses into the history only through this trait.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::term::{Leadership, Term};
use crate::notify::alert::{AlertStatus, Fingerprint, Notification};

/// Why an outbox operation failed; shown in log lines as it is.
pub type OutboxError = Box<dyn std::error::Error + Send + Sync>;

/// What a claim of an outbox entry found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Claimed under the term's epoch: send it.
    Claimed,
    /// Refused: the lease has moved on to `current` (or is gone); this
    /// replica no longer leads and must not send.
    StaleEpoch { current: Option<i64> },
    /// Not pending any more (delivered or given up) or unknown.
    NotPending,
}

/// How the delivery of one outbox entry ended, to record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Sent {
        code: Option<u16>,
        message_id: Option<String>,
    },
    /// Retryable: due again at this time.
    Retry {
        error: String,
        code: Option<u16>,
        at: DateTime<Utc>,
    },
    Failed {
        error: String,
        code: Option<u16>,
    },
}

/// An outbox entry not delivered yet.
#[derive(Debug, Clone)]
pub struct PendingEntry {
    pub id: String,
    pub idempotency_key: String,
    pub receiver: String,
    /// The integration's outbox name (`webhook[0]`).
    pub integration: String,
    pub group_key: String,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    /// `None` when the stored payload cannot be read back.
    pub notification: Option<Notification>,
    /// Whether a leader claimed it for sending or recorded an attempt
    /// before (under a fenced term), so it may have reached the receiver;
    /// false for an entry a forwarding standby queued and nobody sent yet.
    pub claimed: bool,
}

/// One entry of the notification log: what a receiver was last told about
/// a group (stored by the history as its `notify_log` row).
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyLogRow {
    pub receiver: String,
    pub group_key: String,
    pub firing: BTreeSet<Fingerprint>,
    pub resolved: BTreeSet<Fingerprint>,
    pub sent_at: DateTime<Utc>,
}

/// The durable outbox and notification log the delivery tail writes to.
/// Every write that only the leader may make carries its [`Term`]; the
/// store refuses it once another replica holds a newer one.
#[async_trait]
pub trait NotificationOutbox: Send + Sync + 'static {
    /// Whether this replica leads, as the leader election publishes it.
    fn leadership(&self) -> watch::Receiver<Leadership>;

    /// Whether a replica that does not lead queues its notifications here
    /// for the leader to send (rule-group sharding: the leader does not
    /// evaluate this replica's groups, so it would never produce them
    /// itself) instead of holding them until it leads.
    fn forwards(&self) -> bool {
        false
    }

    /// Queues `notification` for `integration` under idempotency `key`,
    /// received at `received_at`; returns its id.
    async fn enqueue(
        &self,
        notification: &Notification,
        integration: &str,
        key: &str,
        received_at: DateTime<Utc>,
    ) -> Result<String, OutboxError>;

    /// Claims entry `id` for sending under `term`, right before it is sent.
    async fn claim(&self, id: &str, term: &Term, now: DateTime<Utc>) -> Result<Claim, OutboxError>;

    /// Records the outcome of entry `id`; `false` when the store did not
    /// take it (no longer pending, or a newer term).
    async fn record(
        &self,
        id: &str,
        outcome: &Outcome,
        now: DateTime<Utc>,
        term: Option<&Term>,
    ) -> Result<bool, OutboxError>;

    /// Pending entries due by `horizon`, at most `limit`.
    async fn due(
        &self,
        horizon: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<PendingEntry>, OutboxError>;

    /// Notifications delivered since `since` (at most `limit`), with the
    /// time each was sent; entries whose payload cannot be read are left
    /// out.
    async fn sent_since(
        &self,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<(Notification, DateTime<Utc>)>, OutboxError>;

    /// The notification log: what each receiver was last told per group.
    async fn notify_log(&self) -> Result<Vec<NotifyLogRow>, OutboxError>;

    /// Leaves the notification-log and cooldown rows of `notification`,
    /// delivered at `now` under `term`, without waiting for the store
    /// (buffered while it does not answer).
    fn log_delivered(&self, notification: &Notification, now: DateTime<Utc>, term: Option<&Term>);

    /// Records the delivery of `notification` to `integration` that has no
    /// outbox entry (the store did not take it when it was queued), without
    /// waiting for the store.
    fn log_without_entry(
        &self,
        notification: &Notification,
        integration: &str,
        created_at: DateTime<Utc>,
        outcome: &Outcome,
        now: DateTime<Utc>,
    );
}

/// The notification-log row a delivered notification leaves: which alerts
/// the receiver was told are firing and resolved.
pub fn notify_log_row(n: &Notification, sent_at: DateTime<Utc>) -> NotifyLogRow {
    let of = |want: AlertStatus| {
        n.alerts
            .iter()
            .filter(|a| a.status == want)
            .map(|a| a.fingerprint)
            .collect()
    };
    NotifyLogRow {
        receiver: n.receiver.clone(),
        group_key: n.group_key.clone(),
        firing: of(AlertStatus::Firing),
        resolved: of(AlertStatus::Resolved),
        sent_at,
    }
}
