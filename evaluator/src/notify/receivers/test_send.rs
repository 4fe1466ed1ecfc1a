//! Test notifications: one made-up firing alert sent once through each
//! integration of a receiver (or of every receiver), so an operator learns
//! whether a webhook URL, an SMTP login or a Slack token works before a
//! real page depends on it. Used by `vigil-evaluator receivers test` and
//! `POST /api/vigil/v1/receivers/{name}/test`.
//!
//! A test goes straight to the integrations: no routing, grouping,
//! silences, retries or outbox, and nothing is written to the history. Each
//! integration gets one attempt, bounded by [`TEST_TIMEOUT`]; they run at
//! the same time, and the results come back in configuration order.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Integration;
use crate::labels::Labels;
use crate::notify::alert::{Alert, AlertStatus, Notification, NotifiedAlert};
use crate::notify::config::ReceiverIntegrations;

/// Longest one integration's test attempt may take.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The `alertname` of a test notification unless the caller gives one.
pub const TEST_ALERTNAME: &str = "VigilReceiverTest";

/// How one integration's test attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialResult {
    pub receiver: String,
    /// `webhook[0]`, `slack[1]`: the kind and its position in the receiver.
    pub integration: String,
    /// `None` when the endpoint took the notification; otherwise what went
    /// wrong (with the HTTP status and the start of the answer's body
    /// where there was one).
    pub error: Option<String>,
}

/// A receiver name that is not in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("there is no receiver {name:?} in the notification config; configured: {configured}")]
pub struct UnknownReceiver {
    pub name: String,
    /// The configured receiver names, comma-separated.
    pub configured: String,
}

/// The test notification for `receiver`: one firing alert with `labels`
/// (`alertname` [`TEST_ALERTNAME`] unless given), a summary and a
/// description saying it is a test, started `now`.
pub fn test_notification(
    receiver: &str,
    labels: &Labels,
    now: DateTime<Utc>,
    external_url: &str,
) -> Notification {
    let mut pairs: Vec<(String, String)> = labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect();
    if labels.get("alertname").is_none() {
        pairs.push(("alertname".into(), TEST_ALERTNAME.into()));
    }
    let labels = Labels::from_pairs(pairs);
    let alert = Alert {
        labels: labels.clone(),
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                format!("Test notification to receiver {receiver}"),
            ),
            (
                "description".to_string(),
                "Sent by Vigil to check this receiver's integrations; no alert is firing."
                    .to_string(),
            ),
        ]),
        starts_at: now,
        ends_at: None,
        generator_url: String::new(),
        cooldown: None,
    };
    let alertname = labels.get("alertname").unwrap_or(TEST_ALERTNAME);
    Notification {
        receiver: receiver.to_string(),
        group_key: format!("{{}}:{{alertname=\"{alertname}\"}}"),
        status: AlertStatus::Firing,
        group_labels: Labels::from_pairs([("alertname", alertname)]),
        common_labels: labels,
        common_annotations: alert.annotations.clone(),
        alerts: vec![NotifiedAlert {
            status: AlertStatus::Firing,
            fingerprint: alert.fingerprint(),
            alert,
        }],
        external_url: external_url.to_string(),
        truncated_alerts: 0,
        redelivery: false,
    }
}

/// Sends a test notification (with `labels`, see [`test_notification`])
/// through every integration of `receiver`, or of every receiver (by name)
/// when `None`; one result per integration, in configuration order.
pub async fn send_test(
    receivers: &ReceiverIntegrations,
    receiver: Option<&str>,
    labels: &Labels,
    now: DateTime<Utc>,
    external_url: &str,
) -> Result<Vec<TrialResult>, UnknownReceiver> {
    let mut names: Vec<&String> = match receiver {
        Some(name) => vec![receivers
            .get_key_value(name)
            .map(|(k, _)| k)
            .ok_or_else(|| UnknownReceiver {
                name: name.to_string(),
                configured: configured(receivers),
            })?],
        None => receivers.keys().collect(),
    };
    names.sort();
    let attempts = names.into_iter().flat_map(|name| {
        let notification = test_notification(name, labels, now, external_url);
        receivers[name]
            .iter()
            .map(move |integration| attempt(integration.clone(), notification.clone()))
    });
    Ok(futures::future::join_all(attempts).await)
}

async fn attempt(integration: Integration, notification: Notification) -> TrialResult {
    let sent = tokio::time::timeout(TEST_TIMEOUT, integration.receiver.send(&notification)).await;
    let error = match sent {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "{}: no answer within {}s; check that the endpoint is up and reachable from here",
            integration.integration,
            TEST_TIMEOUT.as_secs()
        )),
    };
    TrialResult {
        receiver: integration.receiver_name.clone(),
        integration: integration.name(),
        error,
    }
}

fn configured(receivers: &ReceiverIntegrations) -> String {
    let mut names: Vec<&str> = receivers.keys().map(String::as_str).collect();
    names.sort_unstable();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::fixtures::t;

    #[test]
    fn the_test_alert_is_named_unless_the_caller_names_it() {
        let n = test_notification("team", &Labels::default(), t(5), "http://vigil");
        assert_eq!(n.alerts.len(), 1);
        assert_eq!(
            n.alerts[0].alert.labels.get("alertname"),
            Some(TEST_ALERTNAME)
        );
        assert_eq!(n.status, AlertStatus::Firing);
        assert_eq!(n.alerts[0].alert.starts_at, t(5));
        assert_eq!(n.receiver, "team");

        let given = Labels::from_pairs([("alertname", "DiskFull"), ("severity", "page")]);
        let n = test_notification("team", &given, t(5), "");
        assert_eq!(n.alerts[0].alert.labels, given);
        assert_eq!(
            n.group_labels,
            Labels::from_pairs([("alertname", "DiskFull")])
        );
        assert_eq!(n.common_labels, given);
    }
}
