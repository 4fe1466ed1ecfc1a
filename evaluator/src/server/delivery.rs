//! The delivery task: takes the notifier's notifications off a channel and
//! delivers each to every integration of its receiver through the
//! [`DeliveryStage`] (retries, Slack pacing), concurrently, counting the
//! outcome per receiver and integration.
//!
//! History seam: this is where the SQL outbox goes once `history/` exists
//! (write the notification with its idempotency key before delivery, mark
//! it sent after); until then delivery state lives only in memory.
//!
//! On shutdown the channel closes; deliveries already started get a grace
//! period to finish, then are abandoned with a log line.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::config::ReceiverIntegrations;
use super::metrics::ServerMetrics;
use crate::notify::alert::Notification;
use crate::notify::deliver::DeliveryStage;

/// Runs until `notifications` is closed and every delivery has ended (or
/// `grace` has passed since the close).
pub async fn run_delivery(
    mut notifications: mpsc::UnboundedReceiver<Notification>,
    receivers: watch::Receiver<Arc<ReceiverIntegrations>>,
    stage: DeliveryStage,
    metrics: ServerMetrics,
    grace: Duration,
) {
    let mut running = JoinSet::new();
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
                for integration in integrations {
                    let stage = stage.clone();
                    let metrics = metrics.clone();
                    let notification = Arc::clone(&notification);
                    running.spawn(async move {
                        let outcome = stage.deliver(Arc::clone(&integration.receiver), &notification).await;
                        let Some(outcome) = outcome else { return };
                        let labels = [integration.receiver_name.as_str(), integration.integration];
                        match outcome.last_error() {
                            None => {
                                metrics.notifications_sent.with_label_values(&labels).inc();
                                tracing::info!(
                                    receiver = %integration.receiver_name,
                                    integration = integration.integration,
                                    status = notification.status.as_str(),
                                    alerts = notification.alerts.len(),
                                    attempts = outcome.attempts,
                                    "notification delivered"
                                );
                            }
                            Some(error) => {
                                metrics.notifications_failed.with_label_values(&labels).inc();
                                tracing::error!(
                                    receiver = %integration.receiver_name,
                                    integration = integration.integration,
                                    attempts = outcome.attempts,
                                    error = %error,
                                    "notification delivery failed; giving up"
                                );
                            }
                        }
                    });
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
