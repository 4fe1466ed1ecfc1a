//! The delivery task: takes the notifier's notifications off a channel and
//! delivers each to every integration of its receiver through the
//! [`DeliveryStage`] (retries, Slack pacing), concurrently, counting the
//! outcome per receiver and integration.
//!
//! Durable delivery (with an [`Outbox`]): each notification is written to
//! the SQL outbox for each integration, under its idempotency key, before
//! it is sent, and marked sent or failed after the delivery stage's
//! outcome; a delivered one also leaves its notification-log row, so a
//! restart neither repeats it nor forgets to send its resolution. At start,
//! and whenever this replica becomes the leader, outbox entries still
//! pending are delivered before new notifications. Only the leader sends:
//! a standby queues notifications in the outbox and leaves them there.
//! A database that does not answer does not stop delivery: the
//! notification is sent without its outbox row, and that is logged.
//!
//! On shutdown the channel closes; deliveries already started get a grace
//! period to finish, then are abandoned with a log line.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::config::ReceiverIntegrations;
use super::durability::{notification_from_payload, notification_payload, notify_log_row};
use super::metrics::ServerMetrics;
use crate::history::outbox::{idempotency_key, OutboxEntry};
use crate::history::store::HistoryWrite;
use crate::history::writer::HistoryWriter;
use crate::history::HistoryStore;
use crate::notify::alert::Notification;
use crate::notify::deliver::DeliveryStage;
use crate::notify::receivers::config::Integration;

/// How long one outbox operation may wait for the database before delivery
/// goes on without it.
const OUTBOX_TIMEOUT: Duration = Duration::from_secs(5);
/// Most pending outbox entries resumed at once.
const RESUME_LIMIT: usize = 10_000;

/// Where notifications are queued before they are sent, and whether this
/// replica sends.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub store: HistoryStore,
    pub writer: HistoryWriter,
    pub leader: watch::Receiver<bool>,
}

/// The outbox name of an integration: `webhook[0]`, `slack[1]`, …
fn integration_name(integration: &Integration) -> String {
    format!("{}[{}]", integration.integration, integration.index)
}

/// Outbox ids whose delivery runs in this process, so a resume does not
/// start a second delivery of the same entry.
type InFlight = Arc<Mutex<HashSet<String>>>;

/// Runs until `notifications` is closed and every delivery has ended (or
/// `grace` has passed since the close).
pub async fn run_delivery(
    mut notifications: mpsc::UnboundedReceiver<Notification>,
    receivers: watch::Receiver<Arc<ReceiverIntegrations>>,
    stage: DeliveryStage,
    metrics: ServerMetrics,
    grace: Duration,
    outbox: Option<Outbox>,
) {
    let mut running = JoinSet::new();
    let in_flight: InFlight = Arc::default();
    let mut leader = outbox.as_ref().map(|o| o.leader.clone());
    if let Some(o) = &outbox {
        if *o.leader.borrow() {
            resume(o, &receivers, &stage, &metrics, &in_flight, &mut running).await;
        }
    }
    loop {
        tokio::select! {
            next = notifications.recv() => {
                let Some(notification) = next else { break };
                let integrations = receivers.borrow().get(&notification.receiver).cloned();
                let Some(integrations) = integrations else {
                    tracing::warn!(receiver = %notification.receiver, "notification for a receiver that is no longer configured; dropped");
                    continue;
                };
                let notification = Arc::new(notification);
                let received_at = Utc::now();
                for integration in integrations {
                    let stage = stage.clone();
                    let metrics = metrics.clone();
                    let notification = Arc::clone(&notification);
                    let outbox = outbox.clone();
                    let in_flight = Arc::clone(&in_flight);
                    running.spawn(async move {
                        let name = integration_name(&integration);
                        let id = match &outbox {
                            Some(o) => enqueue(o, &notification, &name, received_at, &in_flight).await,
                            None => None,
                        };
                        if let Some(o) = &outbox {
                            if !*o.leader.borrow() {
                                if id.is_some() {
                                    tracing::debug!(receiver = %integration.receiver_name, "not the leader: notification left in the outbox");
                                } else {
                                    tracing::warn!(receiver = %integration.receiver_name, "not the leader and the outbox is unreachable: notification dropped");
                                }
                                forget(&in_flight, id.as_deref());
                                return;
                            }
                        }
                        deliver_one(&stage, &metrics, &integration, &notification, outbox.as_ref(), id.as_deref()).await;
                        forget(&in_flight, id.as_deref());
                    });
                }
            }
            changed = async {
                match leader.as_mut() {
                    Some(l) => l.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    leader = None;
                    continue;
                }
                let leads = leader.as_mut().is_some_and(|l| *l.borrow_and_update());
                if leads {
                    if let Some(o) = &outbox {
                        tracing::info!("became the leader: resuming pending notifications");
                        resume(o, &receivers, &stage, &metrics, &in_flight, &mut running).await;
                    }
                }
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
    if running.is_empty() {
        return;
    }
    tracing::info!(
        deliveries = running.len(),
        grace_seconds = grace.as_secs_f64(),
        "waiting for in-flight deliveries"
    );
    let drained = tokio::time::timeout(grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            deliveries = running.len(),
            "deliveries still running after the shutdown grace period; abandoned"
        );
        running.abort_all();
    }
}

fn forget(in_flight: &InFlight, id: Option<&str>) {
    if let Some(id) = id {
        in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// Queues `notification` for `integration`; its outbox id, or `None` when
/// the database did not take it (logged).
async fn enqueue(
    outbox: &Outbox,
    notification: &Notification,
    integration: &str,
    received_at: chrono::DateTime<Utc>,
    in_flight: &InFlight,
) -> Option<String> {
    let key = idempotency_key(notification, integration, received_at);
    let entry = OutboxEntry::for_notification(
        notification,
        integration,
        notification_payload(notification),
        received_at,
    );
    match tokio::time::timeout(OUTBOX_TIMEOUT, outbox.store.enqueue(&entry, &key)).await {
        Ok(Ok(enqueued)) => {
            let id = enqueued.id().to_string();
            in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone());
            Some(id)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, receiver = %notification.receiver, "cannot queue the notification in the outbox; delivering it without a durable record");
            None
        }
        Err(_) => {
            tracing::error!(receiver = %notification.receiver, "the outbox did not answer in time; delivering the notification without a durable record");
            None
        }
    }
}

/// Delivers the outbox entries still pending (oldest first) that no
/// delivery in this process is handling.
async fn resume(
    outbox: &Outbox,
    receivers: &watch::Receiver<Arc<ReceiverIntegrations>>,
    stage: &DeliveryStage,
    metrics: &ServerMetrics,
    in_flight: &InFlight,
    running: &mut JoinSet<()>,
) {
    let due = match tokio::time::timeout(OUTBOX_TIMEOUT, outbox.store.due(Utc::now(), RESUME_LIMIT))
        .await
    {
        Ok(Ok(due)) => due,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read pending notifications from the outbox");
            return;
        }
        Err(_) => {
            tracing::error!("the outbox did not answer in time; pending notifications not resumed");
            return;
        }
    };
    let mut resumed = 0;
    for record in due {
        {
            let mut busy = in_flight.lock().unwrap_or_else(|e| e.into_inner());
            if !busy.insert(record.id.clone()) {
                continue;
            }
        }
        let integration = receivers.borrow().get(&record.receiver).and_then(|list| {
            list.iter()
                .find(|i| integration_name(i) == record.integration)
                .cloned()
        });
        let (Some(integration), Some(notification)) =
            (integration, notification_from_payload(&record.payload))
        else {
            let reason =
                "its receiver integration is no longer configured, or its payload is unreadable";
            tracing::warn!(id = %record.id, receiver = %record.receiver, integration = %record.integration, "pending notification cannot be resumed: {reason}");
            let _ = outbox
                .store
                .mark_failed(&record.id, reason, None, None)
                .await;
            forget(in_flight, Some(&record.id));
            continue;
        };
        resumed += 1;
        let stage = stage.clone();
        let metrics = metrics.clone();
        let outbox = outbox.clone();
        let in_flight = Arc::clone(in_flight);
        running.spawn(async move {
            deliver_one(
                &stage,
                &metrics,
                &integration,
                &notification,
                Some(&outbox),
                Some(&record.id),
            )
            .await;
            forget(&in_flight, Some(&record.id));
        });
    }
    if resumed > 0 {
        tracing::info!(
            notifications = resumed,
            "resuming notifications left pending in the outbox"
        );
    }
}

/// One delivery through the stage, counted, logged and (with an outbox id)
/// marked in the outbox.
async fn deliver_one(
    stage: &DeliveryStage,
    metrics: &ServerMetrics,
    integration: &Integration,
    notification: &Notification,
    outbox: Option<&Outbox>,
    id: Option<&str>,
) {
    let outcome = stage
        .deliver(Arc::clone(&integration.receiver), notification)
        .await;
    let mark = |sent: Result<(), (String, Option<u16>)>,
                code: Option<u16>,
                message_id: Option<String>| async move {
        let (Some(o), Some(id)) = (outbox, id) else {
            return;
        };
        let now = Utc::now();
        let marked = match sent {
            Ok(()) => {
                let _ = o
                    .writer
                    .record(HistoryWrite::NotifyLog(notify_log_row(notification, now)));
                o.store
                    .mark_sent(id, code, message_id.as_deref(), now)
                    .await
            }
            Err((error, code)) => o.store.mark_failed(id, &error, code, None).await,
        };
        if let Err(e) = marked {
            tracing::error!(error = %e, id, "cannot record the delivery outcome in the outbox; the notification may be sent again after a restart");
        }
    };
    let Some(outcome) = outcome else {
        // `send_resolved: false`: nothing to send, and nothing left to do.
        mark(Ok(()), None, None).await;
        return;
    };
    match outcome.last_error() {
        None => {
            metrics.record_delivery(
                &integration.receiver_name,
                integration.integration,
                outcome.attempts,
                true,
            );
            tracing::info!(
                receiver = %integration.receiver_name,
                integration = integration.integration,
                status = notification.status.as_str(),
                alerts = notification.alerts.len(),
                attempts = outcome.attempts,
                "notification delivered"
            );
            mark(
                Ok(()),
                outcome.response_code(),
                outcome.message_id().map(str::to_string),
            )
            .await;
        }
        Some(error) => {
            metrics.record_delivery(
                &integration.receiver_name,
                integration.integration,
                outcome.attempts,
                false,
            );
            tracing::error!(
                receiver = %integration.receiver_name,
                integration = integration.integration,
                attempts = outcome.attempts,
                error = %error,
                "notification delivery failed; giving up"
            );
            mark(
                Err((error.to_string(), outcome.response_code())),
                outcome.response_code(),
                None,
            )
            .await;
        }
    }
}
