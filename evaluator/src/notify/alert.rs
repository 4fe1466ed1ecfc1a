//! The alert as the notifier sees it, and the notification a receiver gets:
//! Alertmanager's data model, independent of the rules engine.

use std::collections::BTreeMap;
use std::hash::Hasher;

use chrono::{DateTime, Utc};

use crate::hash::StableHasher;
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
        let mut hasher = StableHasher::default();
        for label in labels.iter() {
            hasher.write(label.name.as_bytes());
            hasher.write_u8(0xff);
            hasher.write(label.value.as_bytes());
            hasher.write_u8(0xff);
        }
        Fingerprint(hasher.finish())
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
    /// This delivery repeats one that a previous process (or leader) had
    /// already started: resumed from the outbox after a crash or a
    /// fail-over, so the receiver may have got it already. Receivers mark
    /// it (`X-Vigil-Redelivery: true`, "re-sent after restart").
    pub redelivery: bool,
}

/// What receivers show on a redelivered notification's human-facing text
/// (Slack title, e-mail subject, console).
pub const REDELIVERY_MARK: &str = "(re-sent after restart)";

impl Notification {
    /// The notification's idempotency key, the same for every attempt and
    /// every re-send of it, across restarts and fail-overs: a hash of the
    /// receiver, the group key and each alert's fingerprint, status and
    /// start (so the firing and the resolved notification of an episode,
    /// and two episodes of one alert, have different keys). Not the flush
    /// or receive time, which a restarted process does not know. A
    /// reminder after `repeat_interval` for an unchanged group carries the
    /// same key as the first notification (as PagerDuty's `dedup_key`).
    /// `vigil-` and 16 hex digits.
    pub fn idempotency_key(&self) -> String {
        let mut hasher = StableHasher::default();
        hasher.write(self.receiver.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(self.group_key.as_bytes());
        hasher.write_u8(0xff);
        let mut alerts: Vec<(Fingerprint, AlertStatus, i64)> = self
            .alerts
            .iter()
            .map(|a| {
                (
                    a.fingerprint,
                    a.status,
                    a.alert.starts_at.timestamp_millis(),
                )
            })
            .collect();
        alerts.sort_by_key(|(fp, _, _)| *fp);
        for (fp, status, starts_at) in alerts {
            hasher.write(&fp.0.to_le_bytes());
            hasher.write(status.as_str().as_bytes());
            hasher.write(&starts_at.to_le_bytes());
        }
        format!("vigil-{:016x}", hasher.finish())
    }
}

/// One alert inside a notification, with its status at flush time.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifiedAlert {
    pub status: AlertStatus,
    pub alert: Alert,
    pub fingerprint: Fingerprint,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::fixtures::{notification, notified, t};

    #[test]
    fn the_idempotency_key_names_the_group_alerts_and_transition_not_the_send() {
        use AlertStatus::{Firing, Resolved};
        let a = notification(vec![notified("a", Firing, 10), notified("b", Firing, 12)]);
        let key = a.idempotency_key();
        assert!(key.starts_with("vigil-") && key.len() == 22, "{key}");
        // The same notification re-sent: another order, a redelivery, a
        // different annotation or end time give the same key.
        let mut again = notification(vec![notified("b", Firing, 12), notified("a", Firing, 10)]);
        again.redelivery = true;
        again.alerts[0].alert.ends_at = Some(t(99));
        again.external_url = "http://other".into();
        assert_eq!(again.idempotency_key(), key);
        // A transition, another alert set, another episode: another key.
        let resolved = notification(vec![notified("a", Resolved, 10), notified("b", Firing, 12)]);
        let fewer = notification(vec![notified("a", Firing, 10)]);
        let later = notification(vec![notified("a", Firing, 50), notified("b", Firing, 12)]);
        let mut other_receiver = a.clone();
        other_receiver.receiver = "s".into();
        for other in [resolved, fewer, later, other_receiver] {
            assert_ne!(other.idempotency_key(), key, "{other:?}");
        }
    }
}
