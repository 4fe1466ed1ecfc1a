//! Sending to a webhook: Alertmanager's payload (version "4") built from a
//! notification and the one HTTP attempt.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::SecondsFormat;
use serde::Serialize;

use super::config::WebhookSettings;
use crate::labels::Labels;
use crate::notify::alert::Notification;
use crate::notify::receivers::http::{http_client, post_json_report};
use crate::notify::receivers::{DeliveryReport, Receiver, SendError};

/// Go's zero `time.Time`, which Alertmanager sends for an unset `endsAt`.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Alertmanager webhook payload, version 4.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    pub version: &'static str,
    pub group_key: String,
    pub truncated_alerts: usize,
    pub status: &'static str,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
    /// Vigil's addition: the notification's idempotency key.
    pub idempotency_key: String,
}

/// One alert of the webhook payload.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: &'static str,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

/// Builds the payload, keeping at most `max_alerts` alerts (0 = all).
pub fn webhook_message(notification: &Notification, max_alerts: usize) -> WebhookMessage {
    let keep = if max_alerts == 0 {
        notification.alerts.len()
    } else {
        notification.alerts.len().min(max_alerts)
    };
    let alerts = notification.alerts[..keep]
        .iter()
        .map(|a| WebhookAlert {
            status: a.status.as_str(),
            labels: label_map(&a.alert.labels),
            annotations: a.alert.annotations.clone(),
            starts_at: a
                .alert
                .starts_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            ends_at: a
                .alert
                .ends_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                .unwrap_or_else(|| ZERO_TIME.to_string()),
            generator_url: a.alert.generator_url.clone(),
            fingerprint: a.fingerprint.to_string(),
        })
        .collect();
    WebhookMessage {
        version: "4",
        group_key: notification.group_key.clone(),
        truncated_alerts: notification.truncated_alerts + (notification.alerts.len() - keep),
        status: notification.status.as_str(),
        receiver: notification.receiver.clone(),
        group_labels: label_map(&notification.group_labels),
        common_labels: label_map(&notification.common_labels),
        common_annotations: notification.common_annotations.clone(),
        external_url: notification.external_url.clone(),
        alerts,
        idempotency_key: notification.idempotency_key(),
    }
}

/// POSTs notifications to one webhook URL.
#[derive(Debug)]
pub struct WebhookReceiver {
    settings: WebhookSettings,
    client: reqwest::Client,
}

impl WebhookReceiver {
    pub fn new(settings: WebhookSettings) -> Result<WebhookReceiver, reqwest::Error> {
        let client = http_client(settings.timeout, &settings.http)?;
        Ok(WebhookReceiver { settings, client })
    }
}

#[async_trait]
impl Receiver for WebhookReceiver {
    fn integration(&self) -> &'static str {
        "webhook"
    }

    fn send_resolved(&self) -> bool {
        self.settings.send_resolved
    }

    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError> {
        let message = webhook_message(notification, self.settings.max_alerts);
        let s = &self.settings;
        post_json_report(
            "webhook",
            &self.client,
            s.url.expose(),
            &s.http,
            &message,
            notification,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::alert::AlertStatus;
    use crate::notify::receivers::template::tests::{alert, notification};

    #[test]
    fn max_alerts_truncates_and_counts_the_rest() {
        let n = notification(vec![
            alert(&[("alertname", "A"), ("pod", "1")], AlertStatus::Firing),
            alert(&[("alertname", "A"), ("pod", "2")], AlertStatus::Firing),
            alert(&[("alertname", "A"), ("pod", "3")], AlertStatus::Firing),
        ]);
        let message = webhook_message(&n, 2);
        assert_eq!(message.alerts.len(), 2);
        assert_eq!(message.truncated_alerts, 1);
        assert_eq!(webhook_message(&n, 0).alerts.len(), 3);
    }

    #[test]
    fn unset_end_is_go_zero_time() {
        let n = notification(vec![alert(&[("alertname", "A")], AlertStatus::Firing)]);
        let message = webhook_message(&n, 0);
        assert_eq!(message.alerts[0].ends_at, ZERO_TIME);
        assert_eq!(message.alerts[0].starts_at, "2026-01-02T03:04:05Z");
    }

    #[test]
    fn the_body_carries_the_notification_key_whatever_max_alerts_keeps() {
        let n = notification(vec![
            alert(&[("alertname", "A"), ("pod", "1")], AlertStatus::Firing),
            alert(&[("alertname", "A"), ("pod", "2")], AlertStatus::Firing),
        ]);
        let key = n.idempotency_key();
        assert_eq!(webhook_message(&n, 0).idempotency_key, key);
        assert_eq!(webhook_message(&n, 1).idempotency_key, key);
        let json = serde_json::to_value(webhook_message(&n, 0)).unwrap_or_default();
        assert_eq!(json["idempotencyKey"], key.as_str());
    }
}
