//! The stored form of a notification (the outbox payload, JSON text) and
//! the cooldown-ledger rows a delivered notification leaves: the formats the
//! history owns, read back at a restart, a fail-over or a resume.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::from_millis_or_epoch as time;
use super::store::CooldownRow;
use crate::labels::Labels;
use crate::notify::alert::{Alert, AlertStatus, Notification, NotifiedAlert};

/// A notification as stored in the outbox payload: everything needed to
/// deliver it again after a restart.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StoredNotification {
    receiver: String,
    group_key: String,
    firing: bool,
    alerts: Vec<StoredAlert>,
    group_labels: BTreeMap<String, String>,
    common_labels: BTreeMap<String, String>,
    common_annotations: BTreeMap<String, String>,
    external_url: String,
    truncated_alerts: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StoredAlert {
    firing: bool,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
    generator_url: String,
    cooldown_ms: Option<u64>,
}

fn label_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

fn status(firing: bool) -> AlertStatus {
    if firing {
        AlertStatus::Firing
    } else {
        AlertStatus::Resolved
    }
}

/// The outbox payload of `n` (JSON text).
pub fn notification_payload(n: &Notification) -> String {
    let stored = StoredNotification {
        receiver: n.receiver.clone(),
        group_key: n.group_key.clone(),
        firing: n.status == AlertStatus::Firing,
        alerts: n
            .alerts
            .iter()
            .map(|a| StoredAlert {
                firing: a.status == AlertStatus::Firing,
                labels: label_map(&a.alert.labels),
                annotations: a.alert.annotations.clone(),
                starts_at_ms: a.alert.starts_at.timestamp_millis(),
                ends_at_ms: a.alert.ends_at.map(|t| t.timestamp_millis()),
                generator_url: a.alert.generator_url.clone(),
                cooldown_ms: a
                    .alert
                    .cooldown
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect(),
        group_labels: label_map(&n.group_labels),
        common_labels: label_map(&n.common_labels),
        common_annotations: n.common_annotations.clone(),
        external_url: n.external_url.clone(),
        truncated_alerts: n.truncated_alerts,
    };
    serde_json::to_string(&stored).unwrap_or_default()
}

/// The notification an outbox payload holds; `None` when the payload is not
/// one [`notification_payload`] wrote.
pub fn notification_from_payload(payload: &str) -> Option<Notification> {
    let s: StoredNotification = serde_json::from_str(payload).ok()?;
    Some(Notification {
        receiver: s.receiver,
        group_key: s.group_key,
        status: status(s.firing),
        alerts: s
            .alerts
            .into_iter()
            .map(|a| {
                let alert = Alert {
                    labels: Labels::from_pairs(a.labels),
                    annotations: a.annotations,
                    starts_at: time(a.starts_at_ms),
                    ends_at: a.ends_at_ms.map(time),
                    generator_url: a.generator_url,
                    cooldown: a.cooldown_ms.map(Duration::from_millis),
                };
                NotifiedAlert {
                    status: status(a.firing),
                    fingerprint: alert.fingerprint(),
                    alert,
                }
            })
            .collect(),
        group_labels: Labels::from_pairs(s.group_labels),
        common_labels: Labels::from_pairs(s.common_labels),
        common_annotations: s.common_annotations,
        external_url: s.external_url,
        truncated_alerts: s.truncated_alerts,
        redelivery: false,
    })
}

/// The cooldown-ledger rows a delivered notification leaves, one per alert:
/// a firing alert restarts its cooldown and is owed a resolution; a
/// resolved one no longer is (its last firing time stays as stored; a row
/// new to the table takes the alert's start, the earliest it can have fired).
pub fn cooldown_rows(n: &Notification, sent_at: DateTime<Utc>) -> Vec<CooldownRow> {
    n.alerts
        .iter()
        .map(|a| {
            let firing = a.status == AlertStatus::Firing;
            CooldownRow {
                receiver: n.receiver.clone(),
                fingerprint: a.fingerprint,
                last_firing_sent: if firing { sent_at } else { a.alert.starts_at },
                cooldown: a.alert.cooldown.unwrap_or(Duration::ZERO),
                awaiting_resolve: firing,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::delivery::notify_log_row;

    #[test]
    fn an_outbox_payload_gives_back_the_same_notification() {
        let alert = Alert {
            labels: Labels::from_pairs([("alertname", "High"), ("i", "a")]),
            annotations: BTreeMap::from([("summary".to_string(), "x is 1".to_string())]),
            starts_at: time(1_000),
            ends_at: Some(time(9_000)),
            generator_url: "http://vigil/graph".into(),
            cooldown: Some(Duration::from_secs(30)),
        };
        let n = Notification {
            receiver: "hook".into(),
            group_key: "{}:{alertname=\"High\"}".into(),
            status: AlertStatus::Resolved,
            alerts: vec![NotifiedAlert {
                status: AlertStatus::Resolved,
                fingerprint: alert.fingerprint(),
                alert,
            }],
            group_labels: Labels::from_pairs([("alertname", "High")]),
            common_labels: Labels::from_pairs([("alertname", "High"), ("i", "a")]),
            common_annotations: BTreeMap::new(),
            external_url: "http://vigil".into(),
            truncated_alerts: 2,
            redelivery: false,
        };
        assert_eq!(
            notification_from_payload(&notification_payload(&n)),
            Some(n.clone())
        );
        assert_eq!(notification_from_payload("{not json"), None);
        let row = notify_log_row(&n, time(10_000));
        assert!(row.firing.is_empty());
        assert_eq!(row.resolved.len(), 1);
    }
}
