//! The notification log: per receiver and aggregation group, which alerts
//! were last sent as firing and as resolved, and when. A flush is delivered
//! only when it tells the receiver something new, or when `repeat_interval`
//! has passed (Alertmanager's `needsUpdate`).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::alert::Fingerprint;
use crate::clock::add;

/// How long a log entry is kept after its last notification (Alertmanager's
/// default data retention).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(120 * 3600);

/// The last notification sent for one (receiver, group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub firing: BTreeSet<Fingerprint>,
    pub resolved: BTreeSet<Fingerprint>,
    pub sent_at: DateTime<Utc>,
}

/// Whether a flush with these firing and resolved alerts must be sent.
///
/// - never notified: only if something fires;
/// - a firing alert the receiver has not been told about: yes;
/// - nothing fires any more: yes if the last notification had firing alerts
///   (so the receiver hears that all resolved), otherwise no;
/// - newly resolved alerts: yes if the receiver wants resolved notifications;
/// - otherwise only once `repeat_interval` has passed since the last one.
pub fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<Fingerprint>,
    resolved: &BTreeSet<Fingerprint>,
    send_resolved: bool,
    repeat_interval: Duration,
    now: DateTime<Utc>,
) -> bool {
    let Some(entry) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    add(entry.sent_at, repeat_interval) < now
}

/// Log entries keyed by (receiver, group key).
#[derive(Debug, Clone)]
pub struct NotificationLog {
    entries: HashMap<(String, String), LogEntry>,
    retention: Duration,
}

impl Default for NotificationLog {
    fn default() -> Self {
        NotificationLog::new(DEFAULT_RETENTION)
    }
}

impl NotificationLog {
    pub fn new(retention: Duration) -> NotificationLog {
        NotificationLog {
            entries: HashMap::new(),
            retention,
        }
    }

    pub fn get(&self, receiver: &str, group_key: &str) -> Option<&LogEntry> {
        self.entries
            .get(&(receiver.to_string(), group_key.to_string()))
    }

    pub fn record(&mut self, receiver: &str, group_key: &str, entry: LogEntry) {
        self.entries
            .insert((receiver.to_string(), group_key.to_string()), entry);
    }

    /// Drops entries older than the retention.
    pub fn gc(&mut self, now: DateTime<Utc>) {
        let retention = self.retention;
        self.entries.retain(|_, e| add(e.sent_at, retention) > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::fixtures::t;

    fn set(ids: &[u64]) -> BTreeSet<Fingerprint> {
        ids.iter().map(|&i| Fingerprint(i)).collect()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn entry(firing: &[u64], resolved: &[u64]) -> LogEntry {
        LogEntry {
            firing: set(firing),
            resolved: set(resolved),
            sent_at: t(0),
        }
    }

    #[test]
    fn first_notification_needs_a_firing_alert() {
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, HOUR, t(0)));
        assert!(!needs_update(None, &set(&[]), &set(&[1]), true, HOUR, t(0)));
    }

    #[test]
    fn unchanged_group_waits_for_the_repeat_interval() {
        let e = entry(&[1], &[]);
        assert!(!needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[]),
            true,
            HOUR,
            t(3600)
        ));
        assert!(needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[]),
            true,
            HOUR,
            t(3601)
        ));
    }

    #[test]
    fn new_firing_alert_is_sent_at_once() {
        let e = entry(&[1], &[]);
        assert!(needs_update(
            Some(&e),
            &set(&[1, 2]),
            &set(&[]),
            false,
            HOUR,
            t(1)
        ));
    }

    #[test]
    fn newly_resolved_alert_is_sent_only_to_receivers_that_want_it() {
        let e = entry(&[1, 2], &[]);
        assert!(needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[2]),
            true,
            HOUR,
            t(1)
        ));
        assert!(!needs_update(
            Some(&e),
            &set(&[1]),
            &set(&[2]),
            false,
            HOUR,
            t(1)
        ));
    }

    #[test]
    fn all_resolved_is_sent_once() {
        let e = entry(&[1], &[]);
        assert!(needs_update(
            Some(&e),
            &set(&[]),
            &set(&[1]),
            false,
            HOUR,
            t(1)
        ));
        let e = entry(&[], &[1]);
        assert!(!needs_update(
            Some(&e),
            &set(&[]),
            &set(&[1]),
            true,
            HOUR,
            t(1)
        ));
    }

    #[test]
    fn old_entries_are_forgotten() {
        let mut log = NotificationLog::new(HOUR);
        log.record("r", "g", entry(&[1], &[]));
        log.gc(t(3599));
        assert_eq!(log.entries.len(), 1);
        log.gc(t(3600));
        assert!(log.entries.is_empty());
    }
}
