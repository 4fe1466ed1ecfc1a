//! The alert as the notifier sees it, and the notification a receiver gets:
//! Alertmanager's data model, independent of the rules engine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::labels::Labels;

/// Whether an alert (or a whole notification) is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    /// `firing` or `resolved`, as in Alertmanager payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// One alert entering the notifier. `ends_at` in the past means resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Identity: the alert's labels (including `alertname`).
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// When the alert stops being valid (for firing alerts a time in the
    /// future, refreshed on every re-send), or when it resolved.
    pub ends_at: Option<DateTime<Utc>>,
    pub generator_url: String,
    /// Vigil's per-rule `cooldown`: minimum time between two firing
    /// notifications for this alert. `None` when the producer set none.
    pub cooldown: Option<std::time::Duration>,
}

impl Alert {
    /// Alertmanager's rule: resolved once `ends_at` is not after `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> AlertStatus {
        match self.ends_at {
            Some(ends_at) if ends_at <= now => AlertStatus::Resolved,
            _ => AlertStatus::Firing,
        }
    }

    /// Stable 64-bit fingerprint of the label set, printed as 16 hex digits
    /// (the same role as Alertmanager's fingerprint; not the same digits).
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels)
    }
}

/// A stable hash of a label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl Fingerprint {
    /// FNV-1a over `name\xffvalue\xff` pairs in label order: stable across
    /// processes and versions, which the history tables rely on.
    pub fn of(labels: &Labels) -> Fingerprint {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        for label in labels.iter() {
            for byte in label
                .name
                .bytes()
                .chain([0xff])
                .chain(label.value.bytes())
                .chain([0xff])
            {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(PRIME);
            }
        }
        Fingerprint(hash)
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a receiver is asked to deliver: one aggregation group's alerts at one
/// flush, as in Alertmanager's webhook payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// Name of the receiver (from the notification config).
    pub receiver: String,
    /// Alertmanager-style group key (`{}/{route}:{group labels}`).
    pub group_key: String,
    /// Firing if any alert in the group is firing.
    pub status: AlertStatus,
    pub alerts: Vec<NotifiedAlert>,
    pub group_labels: Labels,
    pub common_labels: Labels,
    pub common_annotations: BTreeMap<String, String>,
    /// Link back to the evaluator's dashboard/API.
    pub external_url: String,
    /// Alerts left out of `alerts` by a receiver's `max_alerts`.
    pub truncated_alerts: usize,
}

/// One alert inside a notification, with its status at flush time.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifiedAlert {
    pub status: AlertStatus,
    pub alert: Alert,
    pub fingerprint: Fingerprint,
}
