//! Notifications held while this replica does not lead (or handed back by a
//! delivery that could neither send them nor leave them in the outbox), and
//! what the notification log says receivers were told, which decides which
//! held notifications a new leader still sends.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::outbox::{notify_log_row, NotificationOutbox, NotifyLogRow};
use super::{OUTBOX_TIMEOUT, RESUME_LIMIT};
use crate::notify::alert::Notification;

/// Most notifications a standby holds; beyond, the oldest are dropped
/// (logged).
const HOLD_LIMIT: usize = 10_000;

/// A notification produced while this replica did not lead, or handed back
/// by a delivery that could neither send it nor leave it in the outbox.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) notification: Arc<Notification>,
    pub(super) at: DateTime<Utc>,
    /// The one integration (by outbox name) it is still owed to; `None`:
    /// every integration of its receiver.
    pub(super) integration: Option<String>,
}

/// What each receiver was last told per group, by (receiver, group key).
pub(super) type ToldMap = HashMap<(String, String), NotifyLogRow>;

/// Whether the receiver was already told what `held` says: the log has an
/// entry for its group at least as new, or one with the same alerts.
pub(super) fn covered(told: &ToldMap, held: &Held) -> bool {
    let n = &held.notification;
    let Some(entry) = told.get(&(n.receiver.clone(), n.group_key.clone())) else {
        return false;
    };
    let row = notify_log_row(n, held.at);
    held.at <= entry.sent_at || (row.firing == entry.firing && row.resolved == entry.resolved)
}

/// Enters `n`, sent at `at`, as told, unless a newer entry is there.
pub(super) fn tell(told: &mut ToldMap, n: &Notification, at: DateTime<Utc>) {
    let row = notify_log_row(n, at);
    let key = (row.receiver.clone(), row.group_key.clone());
    if told.get(&key).is_some_and(|t| t.sent_at > at) {
        return;
    }
    told.insert(key, row);
}

/// What receivers were told, or why the outbox did not answer: the
/// notification log, and the outbox entries delivered since `held`'s oldest
/// notification (a leader killed right after a delivery has marked it sent
/// but may not have written its log row yet).
pub(super) async fn load_told(
    outbox: &dyn NotificationOutbox,
    held: &VecDeque<Held>,
) -> Result<ToldMap, String> {
    let mut told = load_log(outbox).await?;
    let Some(oldest) = held.iter().map(|h| h.at).min() else {
        return Ok(told);
    };
    let since = oldest - chrono::Duration::minutes(1);
    let sent = tokio::time::timeout(OUTBOX_TIMEOUT, outbox.sent_since(since, RESUME_LIMIT))
        .await
        .map_err(|_| "the outbox did not answer in time".to_string())?
        .map_err(|e| format!("cannot read delivered notifications: {e}"))?;
    for (n, at) in sent {
        tell(&mut told, &n, at);
    }
    Ok(told)
}

async fn load_log(outbox: &dyn NotificationOutbox) -> Result<ToldMap, String> {
    match tokio::time::timeout(OUTBOX_TIMEOUT, outbox.notify_log()).await {
        Ok(Ok(rows)) => Ok(rows
            .into_iter()
            .map(|r| ((r.receiver.clone(), r.group_key.clone()), r))
            .collect()),
        Ok(Err(e)) => Err(format!("cannot read the notification log: {e}")),
        Err(_) => Err("the notification log did not answer in time".to_string()),
    }
}

/// Holds `h` in the order the notifier produced it (a handed-back delivery
/// can be older than what is held already), so a take-over sends a group's
/// notifications in their order.
pub(super) fn hold(held: &mut VecDeque<Held>, h: Held) {
    if held.len() >= HOLD_LIMIT {
        held.pop_front();
        tracing::error!(
            limit = HOLD_LIMIT,
            "too many notifications held while not the leader; the oldest is dropped"
        );
    }
    let at = held.partition_point(|x| x.at <= h.at);
    held.insert(at, h);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use crate::notify::fixtures::{self, t};

    fn notification(pod: &str, status: AlertStatus) -> Notification {
        let mut n = fixtures::notification(vec![fixtures::notified(pod, status, 0)]);
        n.group_key = format!("{{}}:{{pod=\"{pod}\"}}");
        n.status = status;
        n
    }

    fn held(pod: &str, status: AlertStatus, at: i64) -> Held {
        Held {
            notification: Arc::new(notification(pod, status)),
            at: t(at),
            integration: None,
        }
    }

    #[test]
    fn a_held_notification_is_covered_by_a_newer_or_equal_log_entry_only() {
        let mut told = ToldMap::new();
        tell(&mut told, &notification("a", AlertStatus::Firing), t(10));
        assert!(covered(&told, &held("a", AlertStatus::Firing, 9)), "older");
        assert!(
            covered(&told, &held("a", AlertStatus::Firing, 12)),
            "same alerts, flushed a bit later by the standby"
        );
        assert!(
            !covered(&told, &held("a", AlertStatus::Resolved, 12)),
            "the resolution the old leader never sent"
        );
        assert!(
            !covered(&told, &held("b", AlertStatus::Firing, 1)),
            "another group"
        );
        tell(&mut told, &notification("a", AlertStatus::Resolved), t(12));
        assert!(covered(&told, &held("a", AlertStatus::Resolved, 12)));
        tell(&mut told, &notification("a", AlertStatus::Firing), t(11));
        assert!(
            covered(&told, &held("a", AlertStatus::Resolved, 13)),
            "an older entry does not replace a newer one"
        );
    }

    #[test]
    fn a_handed_back_notification_is_held_in_the_order_it_was_produced() {
        let mut queue = VecDeque::new();
        hold(&mut queue, held("a", AlertStatus::Resolved, 20));
        hold(&mut queue, held("b", AlertStatus::Firing, 30));
        hold(&mut queue, held("a", AlertStatus::Firing, 10));
        hold(&mut queue, held("c", AlertStatus::Firing, 20));
        let order: Vec<(i64, AlertStatus)> = queue
            .iter()
            .map(|h| (h.at.timestamp(), h.notification.status))
            .collect();
        assert_eq!(
            order,
            vec![
                (10, AlertStatus::Firing),
                (20, AlertStatus::Resolved),
                (20, AlertStatus::Firing),
                (30, AlertStatus::Firing),
            ]
        );
    }
}
