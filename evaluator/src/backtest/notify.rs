//! Counts the notifications a backtest's alerts would have sent: the live
//! [`Notifier`] (routing, grouping with `group_wait`/`group_interval`/
//! `repeat_interval`, time intervals, inhibition, cooldown, dedup) stepped
//! on the simulated clock, its notifications counted per rule and receiver
//! instead of delivered.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::alerts;
use crate::notify::config::{self, NotifyConfig};
use crate::notify::notifier::Notifier;
use crate::rules::send_alerts::{to_notifier_alert, RuleSource};

/// The annotation that tells which replayed rule an alert came from. It
/// exists only inside the simulation (nothing is delivered).
const RULE_ANNOTATION: &str = "__vigil_backtest_rule";

/// The config used without `--notify-config`: one receiver, grouped by
/// alert name, Alertmanager's default timers. The receiver needs an
/// integration (one without any is a black hole that is never notified);
/// nothing is delivered in a backtest, so its URL is never called.
pub const DEFAULT_NOTIFY_CONFIG: &str = "route:\n  receiver: default\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 4h\nreceivers:\n  - name: default\n    webhook_configs: [{url: 'http://backtest.invalid/', send_resolved: true}]\n";

/// A notification config for a backtest: the file, or the default.
pub fn load_config(file: Option<&Path>) -> Result<Arc<NotifyConfig>, String> {
    let config = match file {
        Some(path) => config::load_file(path).map_err(|e| e.to_string())?,
        None => config::parse(DEFAULT_NOTIFY_CONFIG, Path::new("<default>"))
            .map_err(|e| format!("the built-in notification config is invalid: {e}"))?,
    };
    Ok(Arc::new(config))
}

/// The notifier of one simulation and what it sent.
pub struct NotifySim {
    notifier: Notifier,
    /// Notifications per rule (index) and receiver.
    counts: BTreeMap<(usize, String), u64>,
}

impl NotifySim {
    pub fn new(config: Arc<NotifyConfig>) -> NotifySim {
        NotifySim {
            notifier: Notifier::new(config),
            counts: BTreeMap::new(),
        }
    }

    /// Flushes every aggregation group due at or before `t_ms`, each at its
    /// own due time, as the live notifier's timer does.
    pub fn advance_to(&mut self, t_ms: i64) {
        let until = time(t_ms);
        while let Some(due) = self.notifier.next_deadline() {
            if due > until {
                break;
            }
            for notification in self.notifier.tick(due) {
                let rules: BTreeSet<usize> = notification
                    .alerts
                    .iter()
                    .filter_map(|a| a.alert.annotations.get(RULE_ANNOTATION)?.parse().ok())
                    .collect();
                for rule in rules {
                    *self
                        .counts
                        .entry((rule, notification.receiver.clone()))
                        .or_default() += 1;
                }
            }
        }
    }

    /// Hands the alerts rule `rule` (index) sends at `t_ms` to the notifier.
    pub fn send(&mut self, rule: usize, source: &RuleSource, sent: Vec<alerts::Alert>, t_ms: i64) {
        if sent.is_empty() {
            return;
        }
        let alerts = sent
            .into_iter()
            .map(|mut a| {
                a.annotations
                    .insert(RULE_ANNOTATION.to_string(), rule.to_string());
                to_notifier_alert(a, source, "")
            })
            .collect();
        self.notifier.ingest(alerts, time(t_ms));
    }

    /// Notifications of rule `rule` per receiver.
    pub fn counts_of(&self, rule: usize) -> BTreeMap<String, u64> {
        self.counts
            .range((rule, String::new())..)
            .take_while(|((r, _), _)| *r == rule)
            .map(|((_, receiver), n)| (receiver.clone(), *n))
            .collect()
    }
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::alerts::AlertState;
    use crate::labels::Labels;

    fn firing(at_ms: i64, resolved_ms: Option<i64>) -> alerts::Alert {
        alerts::Alert {
            state: if resolved_ms.is_some() {
                AlertState::Inactive
            } else {
                AlertState::Firing
            },
            labels: Labels::from_pairs([("alertname", "A")]),
            annotations: BTreeMap::new(),
            value: 1.0,
            active_at_ms: at_ms,
            fired_at_ms: Some(at_ms),
            resolved_at_ms: resolved_ms,
            last_sent_at_ms: None,
            valid_until_ms: Some(at_ms + 240_000),
            keep_firing_since_ms: None,
            cooldown: None,
        }
    }

    fn source() -> RuleSource {
        RuleSource {
            file: "rules.yaml".into(),
            group: "g".into(),
            index: 0,
            expr: "x > 1".into(),
        }
    }

    #[test]
    fn one_episode_is_a_firing_and_a_resolved_notification() {
        let config = load_config(None).unwrap();
        let mut sim = NotifySim::new(config);
        sim.send(0, &source(), vec![firing(0, None)], 0);
        sim.advance_to(29_000);
        assert!(sim.counts_of(0).is_empty(), "group_wait is 30s");
        sim.advance_to(30_000);
        assert_eq!(sim.counts_of(0).get("default"), Some(&1));
        sim.send(0, &source(), vec![firing(0, Some(60_000))], 60_000);
        sim.advance_to(30_000 + 300_000);
        assert_eq!(sim.counts_of(0).get("default"), Some(&2));
        assert!(sim.counts_of(1).is_empty());
    }
}
