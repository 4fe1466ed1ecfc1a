//! Per-alert cooldown (a Vigil addition) and the record of what each
//! receiver was last told about each alert.
//!
//! Cooldown: once a receiver got a firing notification for an alert, a
//! *re-fire* of that alert (after it was resolved, or before it was ever
//! sent) is held back from that receiver until `Alert::cooldown` has passed
//! since the last firing notification, so a flapping alert does not page
//! every few minutes. An alert the receiver already knows as firing is never
//! held back (its repeats follow `repeat_interval`).
//!
//! The same record says which alerts a receiver was told are firing and has
//! not yet been told are resolved: those resolved notifications are owed and
//! no silence, inhibition or cooldown may swallow them.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::alert::{Alert, AlertStatus, Fingerprint, NotifiedAlert};
use crate::clock::add;

#[derive(Debug, Clone, Copy)]
struct Entry {
    last_firing_sent: DateTime<Utc>,
    cooldown: Duration,
    /// The receiver's last word about the alert was "firing".
    awaiting_resolve: bool,
}

/// What each receiver was last told about each alert.
#[derive(Debug, Clone, Default)]
pub struct CooldownLedger {
    entries: HashMap<(String, Fingerprint), Entry>,
}

impl CooldownLedger {
    pub fn new() -> CooldownLedger {
        CooldownLedger::default()
    }

    /// Whether the firing `alert` must be left out of a notification to
    /// `receiver` at `now` because of its cooldown.
    pub fn holds_back(&self, receiver: &str, alert: &Alert, now: DateTime<Utc>) -> bool {
        let Some(cooldown) = alert.cooldown else {
            return false;
        };
        match self
            .entries
            .get(&(receiver.to_string(), alert.fingerprint()))
        {
            Some(entry) if !entry.awaiting_resolve => now < add(entry.last_firing_sent, cooldown),
            _ => false,
        }
    }

    /// Whether `receiver` was told the alert fires and not yet that it resolved.
    pub fn owes_resolved(&self, receiver: &str, fingerprint: Fingerprint) -> bool {
        self.entries
            .get(&(receiver.to_string(), fingerprint))
            .is_some_and(|e| e.awaiting_resolve)
    }

    /// Records a notification handed to the delivery stage.
    pub fn record_sent(&mut self, receiver: &str, alerts: &[NotifiedAlert], now: DateTime<Utc>) {
        for notified in alerts {
            let key = (receiver.to_string(), notified.fingerprint);
            match notified.status {
                AlertStatus::Firing => {
                    self.entries.insert(
                        key,
                        Entry {
                            last_firing_sent: now,
                            cooldown: notified.alert.cooldown.unwrap_or(Duration::ZERO),
                            awaiting_resolve: true,
                        },
                    );
                }
                AlertStatus::Resolved => {
                    if let Some(entry) = self.entries.get_mut(&key) {
                        entry.awaiting_resolve = false;
                    }
                }
            }
        }
    }

    /// Puts back an entry saved before a restart (the history's cooldown
    /// rows).
    pub fn restore(
        &mut self,
        receiver: &str,
        fingerprint: Fingerprint,
        last_firing_sent: DateTime<Utc>,
        cooldown: Duration,
        awaiting_resolve: bool,
    ) {
        self.entries.insert(
            (receiver.to_string(), fingerprint),
            Entry {
                last_firing_sent,
                cooldown,
                awaiting_resolve,
            },
        );
    }

    /// Whether there is an entry for the alert and receiver.
    pub fn contains(&self, receiver: &str, fingerprint: Fingerprint) -> bool {
        self.entries
            .contains_key(&(receiver.to_string(), fingerprint))
    }

    /// Forgets alerts that are resolved and out of cooldown.
    pub fn gc(&mut self, now: DateTime<Utc>) {
        self.entries
            .retain(|_, e| e.awaiting_resolve || now < add(e.last_firing_sent, e.cooldown));
    }

    /// Number of (receiver, alert) pairs remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::labels::Labels;
    use crate::notify::fixtures::t;

    fn alert(cooldown_secs: u64) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", "Flappy")]),
            annotations: BTreeMap::new(),
            starts_at: t(0),
            ends_at: None,
            generator_url: String::new(),
            cooldown: Some(Duration::from_secs(cooldown_secs)),
        }
    }

    fn notified(alert: &Alert, status: AlertStatus) -> NotifiedAlert {
        NotifiedAlert {
            status,
            alert: alert.clone(),
            fingerprint: alert.fingerprint(),
        }
    }

    #[test]
    fn refire_within_cooldown_is_held_back_until_it_passes() {
        let a = alert(600);
        let mut ledger = CooldownLedger::new();
        assert!(
            !ledger.holds_back("r", &a, t(0)),
            "first firing is never held back"
        );
        ledger.record_sent("r", &[notified(&a, AlertStatus::Firing)], t(0));
        ledger.record_sent("r", &[notified(&a, AlertStatus::Resolved)], t(60));
        assert!(ledger.holds_back("r", &a, t(120)));
        assert!(ledger.holds_back("r", &a, t(599)));
        assert!(!ledger.holds_back("r", &a, t(600)));
        assert!(
            !ledger.holds_back("other", &a, t(120)),
            "cooldown is per receiver"
        );
    }

    #[test]
    fn alert_known_as_firing_is_not_held_back() {
        let a = alert(600);
        let mut ledger = CooldownLedger::new();
        ledger.record_sent("r", &[notified(&a, AlertStatus::Firing)], t(0));
        assert!(!ledger.holds_back("r", &a, t(300)));
        assert!(ledger.owes_resolved("r", a.fingerprint()));
    }

    #[test]
    fn resolved_and_cooled_down_alerts_are_forgotten() {
        let a = alert(600);
        let mut ledger = CooldownLedger::new();
        ledger.record_sent("r", &[notified(&a, AlertStatus::Firing)], t(0));
        ledger.gc(t(10_000));
        assert_eq!(ledger.len(), 1, "an owed resolve is kept");
        ledger.record_sent("r", &[notified(&a, AlertStatus::Resolved)], t(10_000));
        ledger.gc(t(10_000));
        assert!(ledger.is_empty());
    }
}
