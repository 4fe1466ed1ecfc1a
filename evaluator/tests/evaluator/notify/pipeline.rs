//! The notification pipeline end to end on a simulated clock: alerts go in
//! through `Notifier::ingest`, time is stepped, and the notifications that
//! come out of `Notifier::tick` are checked for grouping, timing
//! (group_wait, group_interval, repeat_interval), inhibition, silences,
//! cooldown and the promise that a sent firing alert always gets its
//! resolved notification.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::rng::Rng;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use vigil_evaluator::clock::{Clock, SimClock};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::notify::alert::{Alert, AlertStatus, Notification};
use vigil_evaluator::notify::config::parse;
use vigil_evaluator::notify::matcher::parse_matchers;
use vigil_evaluator::notify::notifier::Notifier;
use vigil_evaluator::notify::silence::Silence;

const CONFIG: &str = "
global:
  resolve_timeout: 5m
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - receiver: audit
      matchers: [audit=yes]
      continue: true
    - receiver: team
      matchers: [audit=yes]
    - receiver: quiet
      matchers: [team=quiet]
receivers:
  - name: team
    console_configs: [{}]
  - name: audit
    webhook_configs: [{url: 'http://127.0.0.1:9/hook'}]
  - name: quiet
    webhook_configs: [{url: 'http://127.0.0.1:9/hook', send_resolved: false}]
inhibit_rules:
  - source_matchers: [severity=critical]
    target_matchers: [severity=warning]
    equal: [cluster]
";

struct Harness {
    clock: SimClock,
    notifier: Notifier,
}

impl Harness {
    fn new() -> Harness {
        let config = parse(CONFIG, Path::new("notify.yaml")).unwrap();
        Harness {
            clock: SimClock::new(DateTime::<Utc>::UNIX_EPOCH),
            notifier: Notifier::new(Arc::new(config)),
        }
    }

    fn at(&self, secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(secs)
    }

    /// Fires (or refreshes) an alert now, valid for `resolve_timeout`.
    fn fire(&mut self, labels: &[(&str, &str)]) {
        self.fire_with_cooldown(labels, None);
    }

    fn fire_with_cooldown(&mut self, labels: &[(&str, &str)], cooldown: Option<Duration>) {
        let now = self.clock.now();
        let alert = Alert {
            labels: Labels::from_pairs(labels.iter().copied()),
            annotations: Default::default(),
            starts_at: now,
            ends_at: None,
            generator_url: String::new(),
            cooldown,
        };
        self.notifier.ingest(vec![alert], now);
    }

    fn resolve(&mut self, labels: &[(&str, &str)]) {
        let now = self.clock.now();
        let alert = Alert {
            labels: Labels::from_pairs(labels.iter().copied()),
            annotations: Default::default(),
            starts_at: now,
            ends_at: Some(now),
            generator_url: String::new(),
            cooldown: None,
        };
        self.notifier.ingest(vec![alert], now);
    }

    /// Silences `matchers` from now until `until` seconds.
    fn silence(&mut self, matchers: &str, until: i64) {
        let now = self.clock.now();
        let silence = Silence {
            id: String::new(),
            matchers: parse_matchers(matchers).unwrap(),
            starts_at: now,
            ends_at: self.at(until),
            created_by: "ops".into(),
            comment: "test".into(),
        };
        self.notifier.silences_mut().upsert(silence, now).unwrap();
    }

    /// Moves the clock to `secs` and flushes what is due.
    fn tick_at(&mut self, secs: i64) -> Vec<Notification> {
        self.clock.set(self.at(secs));
        self.notifier.tick(self.clock.now())
    }

    /// Moves the clock to `secs` without flushing.
    fn wait_until(&mut self, secs: i64) {
        self.clock.set(self.at(secs));
    }
}

fn instances(notification: &Notification) -> Vec<(String, AlertStatus)> {
    notification
        .alerts
        .iter()
        .map(|a| {
            let instance = a.alert.labels.get("instance").unwrap_or("-").to_string();
            (instance, a.status)
        })
        .collect()
}

fn firing(names: &[&str]) -> Vec<(String, AlertStatus)> {
    names
        .iter()
        .map(|n| (n.to_string(), AlertStatus::Firing))
        .collect()
}

const DOWN_A: &[(&str, &str)] = &[("alertname", "Down"), ("instance", "a")];
const DOWN_B: &[(&str, &str)] = &[("alertname", "Down"), ("instance", "b")];

#[test]
fn two_alerts_in_one_group_make_one_notification_after_group_wait() {
    let mut h = Harness::new();
    h.fire(DOWN_A);
    h.wait_until(10);
    h.fire(DOWN_B);
    assert!(h.tick_at(29).is_empty(), "group_wait has not passed");
    let sent = h.tick_at(30);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].receiver, "team");
    assert_eq!(sent[0].status, AlertStatus::Firing);
    assert_eq!(instances(&sent[0]), firing(&["a", "b"]));
    assert_eq!(
        sent[0].group_labels,
        Labels::from_pairs([("alertname", "Down")])
    );
    assert_eq!(
        sent[0].common_labels,
        Labels::from_pairs([("alertname", "Down")])
    );
}

#[test]
fn a_new_alert_in_a_flushed_group_waits_for_the_group_interval() {
    let mut h = Harness::new();
    h.fire(DOWN_A);
    assert_eq!(h.tick_at(30).len(), 1);
    h.wait_until(60);
    h.fire(DOWN_A);
    h.fire(DOWN_B);
    assert!(h.tick_at(329).is_empty());
    let sent = h.tick_at(330);
    assert_eq!(sent.len(), 1);
    assert_eq!(instances(&sent[0]), firing(&["a", "b"]));
    assert_eq!(h.notifier.next_deadline(), Some(h.at(630)));
}

#[test]
fn an_unchanged_firing_group_is_repeated_after_repeat_interval() {
    let mut h = Harness::new();
    h.fire(DOWN_A);
    assert_eq!(h.tick_at(30).len(), 1);
    let mut sends = Vec::new();
    // Keep the alert alive and flush at every group interval for 5 hours.
    let mut t = 30;
    while t < 5 * 3600 {
        t += 300;
        h.wait_until(t);
        h.fire(DOWN_A);
        if !h.tick_at(t).is_empty() {
            sends.push(t);
        }
    }
    // The first flush strictly after 30s + 4h.
    assert_eq!(sends, [30 + 4 * 3600 + 300]);
}

#[test]
fn resolved_alerts_are_sent_with_their_group_and_then_dropped() {
    let mut h = Harness::new();
    h.fire(DOWN_A);
    h.fire(DOWN_B);
    assert_eq!(h.tick_at(30).len(), 1);
    h.wait_until(100);
    h.resolve(DOWN_A);
    h.fire(DOWN_B);
    let sent = h.tick_at(330);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        instances(&sent[0]),
        [
            ("a".to_string(), AlertStatus::Resolved),
            ("b".to_string(), AlertStatus::Firing)
        ]
    );
    h.wait_until(600);
    h.fire(DOWN_B);
    assert!(
        h.tick_at(630).is_empty(),
        "nothing changed; a is gone from the group"
    );
}

#[test]
fn an_alert_not_refreshed_resolves_after_resolve_timeout() {
    let mut h = Harness::new();
    h.fire(DOWN_A);
    assert_eq!(h.tick_at(30).len(), 1);
    assert!(h.tick_at(299).is_empty());
    let sent = h.tick_at(330);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].status, AlertStatus::Resolved);
    assert_eq!(h.notifier.next_deadline(), None, "the empty group is gone");
}

#[test]
fn a_critical_alert_inhibits_warnings_in_its_cluster() {
    let mut h = Harness::new();
    let critical = [
        ("alertname", "Down"),
        ("instance", "a"),
        ("severity", "critical"),
        ("cluster", "eu"),
    ];
    let warning_eu = [
        ("alertname", "Down"),
        ("instance", "b"),
        ("severity", "warning"),
        ("cluster", "eu"),
    ];
    let warning_us = [
        ("alertname", "Down"),
        ("instance", "c"),
        ("severity", "warning"),
        ("cluster", "us"),
    ];
    h.fire(&critical);
    h.fire(&warning_eu);
    h.fire(&warning_us);
    let sent = h.tick_at(30);
    assert_eq!(instances(&sent[0]), firing(&["a", "c"]));
}

#[test]
fn a_silenced_alert_is_sent_once_its_silence_expires() {
    let mut h = Harness::new();
    h.silence("instance=a", 200);
    h.fire(DOWN_A);
    h.fire(DOWN_B);
    let sent = h.tick_at(30);
    assert_eq!(instances(&sent[0]), firing(&["b"]));
    h.wait_until(250);
    h.fire(DOWN_A);
    h.fire(DOWN_B);
    let sent = h.tick_at(330);
    assert_eq!(instances(&sent[0]), firing(&["a", "b"]));
}

#[test]
fn cooldown_holds_back_a_flapping_alert_until_it_has_passed() {
    let mut h = Harness::new();
    let hour = Some(Duration::from_secs(3600));
    h.fire_with_cooldown(DOWN_A, hour);
    assert_eq!(h.tick_at(30).len(), 1, "first firing");
    h.wait_until(60);
    h.resolve(DOWN_A);
    let sent = h.tick_at(330);
    assert_eq!(sent[0].status, AlertStatus::Resolved);
    // Re-fires ten minutes later and keeps firing.
    let mut firing_sends = Vec::new();
    let mut t = 600;
    while t < 2 * 3600 {
        h.wait_until(t);
        h.fire_with_cooldown(DOWN_A, hour);
        for n in h.tick_at(t + 30) {
            firing_sends.push((t + 30, n.status));
        }
        t += 60;
    }
    // Nothing before 30s + 1h (the last firing notification plus cooldown).
    let first = firing_sends.first().copied();
    assert!(
        matches!(first, Some((t, AlertStatus::Firing)) if (3630..3630 + 300).contains(&t)),
        "{firing_sends:?}"
    );
}

#[test]
fn a_resolved_notification_is_never_swallowed_by_a_silence() {
    let mut h = Harness::new();
    h.fire(DOWN_A);
    assert_eq!(h.tick_at(30).len(), 1);
    h.wait_until(60);
    h.silence("alertname=Down", 100_000);
    h.resolve(DOWN_A);
    let sent = h.tick_at(330);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        instances(&sent[0]),
        [("a".to_string(), AlertStatus::Resolved)]
    );
}

#[test]
fn a_resolved_notification_is_never_swallowed_by_inhibition_or_cooldown() {
    let mut h = Harness::new();
    let warning = [
        ("alertname", "Down"),
        ("instance", "w"),
        ("severity", "warning"),
    ];
    let critical = [
        ("alertname", "Disk"),
        ("instance", "c"),
        ("severity", "critical"),
    ];
    h.fire_with_cooldown(&warning, Some(Duration::from_secs(100_000)));
    assert_eq!(h.tick_at(30).len(), 1);
    h.wait_until(60);
    h.fire(&critical);
    h.resolve(&warning);
    let sent: Vec<Notification> = h.tick_at(330);
    let down = sent
        .iter()
        .find(|n| n.group_labels.get("alertname") == Some("Down"))
        .unwrap();
    assert_eq!(instances(down), [("w".to_string(), AlertStatus::Resolved)]);
}

#[test]
fn a_silenced_alert_that_never_fired_sends_no_resolved_notification() {
    let mut h = Harness::new();
    h.silence("instance=a", 100_000);
    h.fire(DOWN_A);
    assert!(h.tick_at(30).is_empty());
    h.resolve(DOWN_A);
    assert!(h.tick_at(330).is_empty());
}

#[test]
fn receivers_without_send_resolved_get_no_partial_resolved_updates() {
    let mut h = Harness::new();
    let a = [("alertname", "Q"), ("instance", "a"), ("team", "quiet")];
    let b = [("alertname", "Q"), ("instance", "b"), ("team", "quiet")];
    h.fire(&a);
    h.fire(&b);
    let sent = h.tick_at(30);
    assert_eq!(sent[0].receiver, "quiet");
    h.wait_until(60);
    h.resolve(&a);
    h.fire(&b);
    assert!(
        h.tick_at(330).is_empty(),
        "b still fires, a's resolve is not wanted"
    );
}

#[test]
fn continue_sends_one_alert_to_two_receivers() {
    let mut h = Harness::new();
    h.fire(&[("alertname", "Down"), ("audit", "yes")]);
    let sent = h.tick_at(30);
    let receivers: Vec<&str> = sent.iter().map(|n| n.receiver.as_str()).collect();
    assert_eq!(receivers, ["audit", "team"]);
}

/// An alert's labels and its cooldown in seconds.
type PoolEntry = (&'static [(&'static str, &'static str)], Option<u64>);

const POOL: [PoolEntry; 6] = [
    (
        &[
            ("alertname", "Down"),
            ("instance", "a"),
            ("severity", "critical"),
            ("cluster", "eu"),
        ],
        None,
    ),
    (
        &[
            ("alertname", "Down"),
            ("instance", "b"),
            ("severity", "warning"),
            ("cluster", "eu"),
        ],
        None,
    ),
    (
        &[
            ("alertname", "Slow"),
            ("instance", "c"),
            ("severity", "warning"),
            ("audit", "yes"),
        ],
        None,
    ),
    (
        &[
            ("alertname", "Slow"),
            ("instance", "d"),
            ("severity", "warning"),
            ("team", "quiet"),
        ],
        None,
    ),
    (
        &[
            ("alertname", "Flap"),
            ("instance", "e"),
            ("severity", "warning"),
            ("cluster", "us"),
        ],
        Some(1200),
    ),
    (
        &[
            ("alertname", "Flap"),
            ("instance", "f"),
            ("severity", "critical"),
            ("audit", "yes"),
        ],
        Some(600),
    ),
];

/// Random flapping, silences and inhibitions over simulated hours; then
/// everything resolves. Every receiver that wants resolved notifications
/// must end knowing every alert it was told about as resolved, and no alert
/// may re-fire at a receiver within its cooldown.
#[test]
fn random_flaps_never_lose_a_resolve_or_break_a_cooldown() {
    for seed in 0..20u64 {
        let mut rng = Rng(seed);
        let mut h = Harness::new();
        let mut active = [false; POOL.len()];
        let mut sent: Vec<(i64, Notification)> = Vec::new();
        let mut t = 0;
        for _ in 0..240 {
            t += 60;
            h.wait_until(t);
            for (i, (labels, cooldown)) in POOL.iter().enumerate() {
                let cooldown = cooldown.map(Duration::from_secs);
                if active[i] && rng.chance(15) {
                    h.resolve(labels);
                    active[i] = false;
                } else if active[i] || rng.chance(15) {
                    h.fire_with_cooldown(labels, cooldown);
                    active[i] = true;
                }
            }
            if rng.chance(5) {
                let instance = ["a", "b", "c", "d", "e", "f"][rng.below(6)];
                h.silence(
                    &format!("instance={instance}"),
                    t + 120 + 60 * rng.below(20) as i64,
                );
            }
            sent.extend(h.tick_at(t).into_iter().map(|n| (t, n)));
        }
        for (i, (labels, _)) in POOL.iter().enumerate() {
            if active[i] {
                h.resolve(labels);
            }
        }
        for _ in 0..120 {
            t += 60;
            sent.extend(h.tick_at(t).into_iter().map(|n| (t, n)));
        }
        check_history(seed, &sent);
    }
}

fn check_history(seed: u64, sent: &[(i64, Notification)]) {
    use std::collections::HashMap;
    // (receiver, instance) -> [(time, status)]
    let mut history: HashMap<(String, String), Vec<(i64, AlertStatus)>> = HashMap::new();
    for (t, n) in sent {
        assert!(
            !n.alerts.is_empty(),
            "seed {seed}: empty notification at {t}"
        );
        for a in &n.alerts {
            let instance = a.alert.labels.get("instance").unwrap().to_string();
            history
                .entry((n.receiver.clone(), instance))
                .or_default()
                .push((*t, a.status));
        }
    }
    let firings = history
        .values()
        .flatten()
        .filter(|(_, s)| *s == AlertStatus::Firing)
        .count();
    assert!(
        firings > 10,
        "seed {seed}: the scenario sent almost nothing"
    );
    for ((receiver, instance), events) in &history {
        if receiver != "quiet" {
            assert_eq!(
                events.last().map(|e| e.1),
                Some(AlertStatus::Resolved),
                "seed {seed}: {receiver} never heard that {instance} resolved: {events:?}"
            );
        }
        let cooldown = POOL
            .iter()
            .find(|(labels, _)| labels.contains(&("instance", instance.as_str())))
            .and_then(|(_, c)| *c);
        let Some(cooldown) = cooldown else { continue };
        let mut last_firing: Option<i64> = None;
        let mut resolved_since = false;
        for (t, status) in events {
            match status {
                AlertStatus::Resolved => resolved_since = true,
                AlertStatus::Firing => {
                    if let (Some(last), true) = (last_firing, resolved_since) {
                        assert!(
                            t - last >= cooldown as i64,
                            "seed {seed}: {instance} re-fired at {receiver} after {}s, cooldown {cooldown}s",
                            t - last
                        );
                    }
                    last_firing = Some(*t);
                    resolved_since = false;
                }
            }
        }
    }
}
