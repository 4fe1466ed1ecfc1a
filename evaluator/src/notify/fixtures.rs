//! Builders the notify stages' unit tests share: a time as seconds after
//! the epoch, an alert `High` of one pod, a notification to receiver `r`
//! carrying such alerts, and a notification config from YAML.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::alert::{Alert, AlertStatus, Notification, NotifiedAlert};
use super::config::{parse, NotifyConfig};
use crate::labels::Labels;

/// `secs` seconds after the Unix epoch.
pub fn t(secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
}

/// Alert `High{pod}` started at `t(starts)`, with `status` at flush time.
pub fn notified(pod: &str, status: AlertStatus, starts: i64) -> NotifiedAlert {
    let alert = Alert {
        labels: Labels::from_pairs([("alertname", "High"), ("pod", pod)]),
        annotations: BTreeMap::new(),
        starts_at: t(starts),
        ends_at: None,
        generator_url: String::new(),
        cooldown: None,
    };
    NotifiedAlert {
        status,
        fingerprint: alert.fingerprint(),
        alert,
    }
}

/// A firing notification of group `{}:{alertname="High"}` to receiver `r`.
pub fn notification(alerts: Vec<NotifiedAlert>) -> Notification {
    Notification {
        receiver: "r".into(),
        group_key: "{}:{alertname=\"High\"}".into(),
        status: AlertStatus::Firing,
        alerts,
        group_labels: Labels::default(),
        common_labels: Labels::default(),
        common_annotations: BTreeMap::new(),
        external_url: String::new(),
        truncated_alerts: 0,
        redelivery: false,
    }
}

/// The notification config in `yaml`, which must be valid.
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
pub fn notify_config(yaml: &str) -> NotifyConfig {
    parse(yaml, std::path::Path::new("t.yaml")).unwrap()
}
