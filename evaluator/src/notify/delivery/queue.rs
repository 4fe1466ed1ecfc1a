//! What the leader sends: each new notification queued in the outbox per
//! integration and handed to its lane, the outbox entries that are due
//! (its own retries, and what an old leader or process left pending), and
//! on becoming the leader the held notifications the notification log does
//! not show as told.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::held::{covered, load_told, tell, Held, ToldMap};
use super::key::idempotency_key;
use super::outbox::{NotificationOutbox, Outcome};
use super::send::{deliver_one, Attempt};
use super::shared::Shared;
use super::{OUTBOX_TIMEOUT, RESUME_LIMIT};
use crate::notify::alert::Notification;

/// Becoming the leader: the entries an old leader (or this replica before a
/// restart) left pending first, then the held notifications the receiver
/// was not told yet according to the notification log and those entries.
pub(super) async fn take_over(
    shared: &Arc<Shared>,
    held: &mut VecDeque<Held>,
    running: &mut JoinSet<()>,
) {
    let Some(outbox) = &shared.outbox else {
        return;
    };
    let mut told = match load_told(outbox.as_ref(), held).await {
        Ok(t) => t,
        Err(_) if held.is_empty() => ToldMap::new(),
        Err(e) => {
            tracing::warn!(
                error = %e,
                notifications = held.len(),
                "held notifications are sent as they are"
            );
            ToldMap::new()
        }
    };
    if let Err(e) = resume(shared, running, Some(&mut told)).await {
        tracing::error!(error = %e, "pending notifications not resumed; retried while running");
    }
    let mut sent = 0;
    let mut skipped = 0;
    for h in held.drain(..) {
        if covered(&told, &h) {
            skipped += 1;
            continue;
        }
        tell(&mut told, &h.notification, h.at);
        dispatch(shared, h, running);
        sent += 1;
    }
    if sent + skipped > 0 {
        tracing::info!(
            sent,
            already_sent = skipped,
            "notifications held while not the leader"
        );
    }
}

/// Sends `held`'s notification to each integration of its receiver it is
/// owed to: queued in the outbox, then delivered in its lane's turn.
pub(super) fn dispatch(shared: &Arc<Shared>, held: Held, running: &mut JoinSet<()>) {
    let Held {
        notification,
        at,
        integration: only,
    } = held;
    let Some(integrations) = shared.integrations(&notification.receiver) else {
        tracing::warn!(receiver = %notification.receiver, "notification for a receiver that is no longer configured; dropped");
        return;
    };
    for integration in integrations {
        let name = integration.name();
        if only.as_ref().is_some_and(|only| *only != name) {
            continue;
        }
        let lane = (
            notification.receiver.clone(),
            name.clone(),
            notification.group_key.clone(),
        );
        let ticket = shared.lanes.ticket(&lane);
        let key = idempotency_key(&notification, &name, at);
        // Claimed before the row exists, so a resume never sees it unclaimed.
        shared.claim(&key);
        let shared = Arc::clone(shared);
        let notification = Arc::clone(&notification);
        running.spawn(async move {
            let id = match &shared.outbox {
                Some(o) => enqueue(o.as_ref(), &notification, &name, &key, at).await,
                None => None,
            };
            if let Some(id) = &id {
                shared.own(id, true);
            }
            let turn = shared.lanes.turn(lane, ticket).await;
            let sent = deliver_one(
                &shared,
                &integration,
                &notification,
                id.as_deref(),
                at,
                turn,
            )
            .await;
            shared.forget(&key);
            if sent == Attempt::NotSent && id.is_none() {
                // Neither sent nor in the outbox for the next leader: held
                // again until this replica leads.
                let _ = shared.requeue.send(Held {
                    notification,
                    at,
                    integration: Some(name),
                });
            }
        });
    }
}

/// A standby that forwards ([`NotificationOutbox::forwards`]): queues
/// `held`'s notification in the outbox for each integration it is owed to,
/// where the leader's next retry round finds it due and sends it; handed
/// back (held, and forwarded again at the next round) when the outbox does
/// not take it.
pub(super) fn forward(shared: &Arc<Shared>, held: Held, running: &mut JoinSet<()>) {
    let Held {
        notification,
        at,
        integration: only,
    } = held;
    let Some(outbox) = shared.outbox.clone() else {
        return;
    };
    let Some(integrations) = shared.integrations(&notification.receiver) else {
        tracing::warn!(receiver = %notification.receiver, "notification for a receiver that is no longer configured; dropped");
        return;
    };
    for integration in integrations {
        let name = integration.name();
        if only.as_ref().is_some_and(|only| *only != name) {
            continue;
        }
        let key = idempotency_key(&notification, &name, at);
        let shared = Arc::clone(shared);
        let outbox = Arc::clone(&outbox);
        let notification = Arc::clone(&notification);
        running.spawn(async move {
            if enqueue(outbox.as_ref(), &notification, &name, &key, at)
                .await
                .is_none()
            {
                let _ = shared.requeue.send(Held {
                    notification,
                    at,
                    integration: Some(name),
                });
            }
        });
    }
}

/// Queues `notification` for `integration`; its outbox id, or `None` when
/// the database did not take it (logged).
async fn enqueue(
    outbox: &dyn NotificationOutbox,
    notification: &Notification,
    integration: &str,
    key: &str,
    received_at: DateTime<Utc>,
) -> Option<String> {
    let enqueue = outbox.enqueue(notification, integration, key, received_at);
    match tokio::time::timeout(OUTBOX_TIMEOUT, enqueue).await {
        Ok(Ok(id)) => Some(id),
        Ok(Err(e)) => {
            tracing::error!(error = %e, receiver = %notification.receiver, "cannot queue the notification in the outbox; delivering it now and recording it in the history once the database answers");
            None
        }
        Err(_) => {
            tracing::error!(receiver = %notification.receiver, "the outbox did not answer in time; delivering the notification now and recording it in the history once the database answers");
            None
        }
    }
}

/// Delivers the outbox entries that are due and that no delivery in this
/// process is handling, oldest first. With `told`, also every pending
/// entry (due or not) is entered there as told, since it will be sent.
/// Fails (with the reason) only when the outbox could not be read.
pub(super) async fn resume(
    shared: &Arc<Shared>,
    running: &mut JoinSet<()>,
    told: Option<&mut ToldMap>,
) -> Result<(), String> {
    let Some(outbox) = &shared.outbox else {
        return Ok(());
    };
    let now = shared.clock.now();
    let horizon = if told.is_some() {
        DateTime::<Utc>::MAX_UTC
    } else {
        now
    };
    let mut pending =
        match tokio::time::timeout(OUTBOX_TIMEOUT, outbox.due(horizon, RESUME_LIMIT)).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => return Err(format!("cannot read pending notifications: {e}")),
            Err(_) => return Err("the outbox did not answer in time".to_string()),
        };
    pending.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    if let Some(told) = told {
        for entry in &pending {
            if let Some(n) = &entry.notification {
                tell(told, n, entry.created_at);
            }
        }
    }
    let mut resumed = 0;
    let mut redelivered = 0;
    for mut record in pending {
        if record.next_attempt_at > now || !shared.claim(&record.idempotency_key) {
            continue;
        }
        // Not queued by this process: a previous process or leader may
        // have sent it already (killed before recording the outcome) —
        // unless a forwarding standby queued it and nobody claimed it yet
        // (in a sharded fleet every claim is fenced, so it shows).
        if let Some(n) = &mut record.notification {
            n.redelivery = !shared.owns(&record.id) && (record.claimed || !outbox.forwards());
            redelivered += usize::from(n.redelivery);
        }
        let integration = shared
            .integrations(&record.receiver)
            .and_then(|list| list.into_iter().find(|i| i.name() == record.integration));
        let (Some(integration), Some(notification)) = (integration, record.notification.take())
        else {
            let reason =
                "its receiver integration is no longer configured, or its payload is unreadable";
            tracing::warn!(id = %record.id, receiver = %record.receiver, integration = %record.integration, "pending notification cannot be resumed: {reason}");
            let failed = Outcome::Failed {
                error: reason.to_string(),
                code: None,
            };
            let term = shared.term();
            let _ = outbox.record(&record.id, &failed, now, term.as_ref()).await;
            shared.forget(&record.idempotency_key);
            continue;
        };
        resumed += 1;
        let lane = (
            record.receiver.clone(),
            record.integration.clone(),
            record.group_key.clone(),
        );
        let ticket = shared.lanes.ticket(&lane);
        let shared = Arc::clone(shared);
        running.spawn(async move {
            let turn = shared.lanes.turn(lane, ticket).await;
            // An entry not sent stays pending in the outbox.
            let _ = deliver_one(
                &shared,
                &integration,
                &notification,
                Some(&record.id),
                record.created_at,
                turn,
            )
            .await;
            shared.forget(&record.idempotency_key);
        });
    }
    if resumed > 0 {
        tracing::info!(
            notifications = resumed,
            redelivered,
            "delivering notifications left pending in the outbox (redelivered: started by a previous process or leader, marked as re-sent)"
        );
    }
    Ok(())
}
