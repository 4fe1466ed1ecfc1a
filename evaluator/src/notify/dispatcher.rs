//! Aggregation groups: every alert is routed, and for each matching route
//! it joins the group of alerts with the same `group_by` labels. A group is
//! flushed `group_wait` after it was created (at once if its first alert is
//! older than that), then every `group_interval`; whether a flush is actually
//! sent is decided later (dedup). Resolved alerts leave the group after the
//! flush that carried them; an empty group is dropped.
//!
//! The dispatcher has no timers of its own: [`Dispatcher::due`] is called
//! with the current time and [`Dispatcher::next_deadline`] says when to call
//! it next, so it is stepped by a clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::alert::{Alert, Fingerprint};
use super::route::{RouteId, RouteTree};
use crate::clock::add;
use crate::labels::Labels;

/// One aggregation group.
#[derive(Debug, Clone)]
struct AggrGroup {
    key: String,
    alerts: BTreeMap<Fingerprint, Alert>,
    next_flush: DateTime<Utc>,
    has_flushed: bool,
}

/// The alerts of one group at one flush.
#[derive(Debug, Clone, PartialEq)]
pub struct Flush {
    pub route: RouteId,
    pub receiver: String,
    /// `{route key}:{group labels}`, as Alertmanager's group key.
    pub group_key: String,
    pub group_labels: Labels,
    pub repeat_interval: Duration,
    /// The time intervals muting the route now (see
    /// [`super::route::RouteOpts::muted_by`]); empty when it sends.
    pub muted_by: Vec<String>,
    /// The group's alerts, in fingerprint order.
    pub alerts: Vec<Alert>,
}

/// Routes alerts into aggregation groups and says when groups flush.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    tree: RouteTree,
    groups: BTreeMap<(RouteId, Labels), AggrGroup>,
    /// How many groups hold each alert, so [`Dispatcher::contains`] is a
    /// lookup instead of a walk over every group.
    members: HashMap<Fingerprint, usize>,
}

impl Dispatcher {
    pub fn new(tree: RouteTree) -> Dispatcher {
        Dispatcher {
            tree,
            groups: BTreeMap::new(),
            members: HashMap::new(),
        }
    }

    pub fn tree(&self) -> &RouteTree {
        &self.tree
    }

    /// Routes an alert and adds (or updates) it in each matching group.
    pub fn insert(&mut self, alert: &Alert, now: DateTime<Utc>) {
        let fingerprint = alert.fingerprint();
        for node in self.tree.matching(&alert.labels) {
            let group_labels = node.opts.group_labels(&alert.labels);
            let group_wait = node.opts.group_wait;
            let group = self
                .groups
                .entry((node.id, group_labels.clone()))
                .or_insert_with(|| AggrGroup {
                    key: format!("{}:{}", node.key, group_labels),
                    alerts: BTreeMap::new(),
                    next_flush: add(now, group_wait),
                    has_flushed: false,
                });
            if group.alerts.insert(fingerprint, alert.clone()).is_none() {
                *self.members.entry(fingerprint).or_default() += 1;
            }
            // An alert that started long ago need not wait for company.
            if !group.has_flushed && add(alert.starts_at, group_wait) < now {
                group.next_flush = group.next_flush.min(now);
            }
        }
    }

    /// The groups whose timer has expired at `now`; their timers restart
    /// with `group_interval`.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<Flush> {
        let mut flushes = Vec::new();
        for ((route, group_labels), group) in &mut self.groups {
            if group.next_flush > now {
                continue;
            }
            let opts = &self.tree.node(*route).opts;
            group.next_flush = add(now, opts.group_interval);
            group.has_flushed = true;
            flushes.push(Flush {
                route: *route,
                receiver: opts.receiver.clone(),
                group_key: group.key.clone(),
                group_labels: group_labels.clone(),
                repeat_interval: opts.repeat_interval,
                muted_by: opts.muted_by(now),
                alerts: group.alerts.values().cloned().collect(),
            });
        }
        flushes
    }

    /// After a flush was handled: removes the alerts it carried that were
    /// resolved and have not changed since, and drops the group if empty.
    pub fn flushed(&mut self, flush: &Flush, now: DateTime<Utc>) {
        let key = (flush.route, flush.group_labels.clone());
        let Some(group) = self.groups.get_mut(&key) else {
            return;
        };
        for alert in &flush.alerts {
            let fingerprint = alert.fingerprint();
            let unchanged = group.alerts.get(&fingerprint) == Some(alert);
            if unchanged && alert.ends_at.is_some_and(|end| end <= now) {
                group.alerts.remove(&fingerprint);
                if let Some(count) = self.members.get_mut(&fingerprint) {
                    *count -= 1;
                    if *count == 0 {
                        self.members.remove(&fingerprint);
                    }
                }
            }
        }
        if group.alerts.is_empty() {
            self.groups.remove(&key);
        }
    }

    /// Takes the alert out of every group without a flush (its rule group
    /// moved to another replica, which notifies it from now on); groups
    /// left empty go.
    pub fn forget(&mut self, fingerprint: Fingerprint) {
        if self.members.remove(&fingerprint).is_none() {
            return;
        }
        self.groups.retain(|_, group| {
            group.alerts.remove(&fingerprint);
            !group.alerts.is_empty()
        });
    }

    /// When the next group is due, if any group exists.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// Whether any group holds the alert.
    pub fn contains(&self, fingerprint: Fingerprint) -> bool {
        self.members.contains_key(&fingerprint)
    }

    /// Number of aggregation groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {

    use super::*;
    use crate::notify::fixtures::notify_config;
    use crate::notify::fixtures::t;

    fn dispatcher() -> Dispatcher {
        let config = notify_config("route: {receiver: r, group_by: [alertname], group_wait: 30s, group_interval: 5m}\nreceivers: [{name: r}]\n");
        Dispatcher::new(RouteTree::new(&config.route))
    }

    fn alert(name: &str, instance: &str, starts: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", name), ("instance", instance)]),
            annotations: Default::default(),
            starts_at: t(starts),
            ends_at: None,
            generator_url: String::new(),
            cooldown: None,
        }
    }

    #[test]
    fn alerts_with_the_same_group_labels_share_one_group() {
        let mut d = dispatcher();
        d.insert(&alert("Down", "a", 0), t(0));
        d.insert(&alert("Down", "b", 10), t(10));
        d.insert(&alert("Slow", "a", 10), t(10));
        assert_eq!(d.group_count(), 2);
        assert!(d.due(t(29)).is_empty());
        let flushes = d.due(t(30));
        assert_eq!(flushes.len(), 1, "the Slow group was created later");
        assert_eq!(flushes[0].alerts.len(), 2);
        assert_eq!(flushes[0].group_key, "{}:{alertname=\"Down\"}");
        assert_eq!(d.due(t(40)).len(), 1);
    }

    #[test]
    fn group_keys_are_written_as_alertmanager_writes_them() {
        // The expected key is what Alertmanager 0.25 put in its webhook
        // payload for the same config and alert.
        let config = notify_config("route:\n  receiver: r\n  group_by: [alertname, cluster]\n  routes:\n    - matchers: ['team=\"x\"', 'sev=~\"crit|warn\"']\nreceivers: [{name: r}]\n");
        let mut d = Dispatcher::new(RouteTree::new(&config.route));
        let mut a = alert("Down", "i", 0);
        a.labels = Labels::from_pairs([
            ("alertname", "Down"),
            ("cluster", "eu"),
            ("team", "x"),
            ("sev", "crit"),
        ]);
        d.insert(&a, t(0));
        let flushes = d.due(t(30));
        assert_eq!(
            flushes[0].group_key,
            r#"{}/{sev=~"crit|warn",team="x"}:{alertname="Down", cluster="eu"}"#
        );
    }

    #[test]
    fn after_the_first_flush_groups_flush_every_group_interval() {
        let mut d = dispatcher();
        d.insert(&alert("Down", "a", 0), t(0));
        assert_eq!(d.due(t(30)).len(), 1);
        d.insert(&alert("Down", "b", 60), t(60));
        assert!(
            d.due(t(329)).is_empty(),
            "a new alert waits for the group interval"
        );
        assert_eq!(d.due(t(330))[0].alerts.len(), 2);
        assert_eq!(d.next_deadline(), Some(t(630)));
    }

    #[test]
    fn an_old_alert_flushes_its_new_group_at_once() {
        let mut d = dispatcher();
        d.insert(&alert("Down", "a", 0), t(100));
        assert_eq!(d.due(t(100)).len(), 1);
    }

    #[test]
    fn resolved_alerts_leave_after_their_flush_and_empty_groups_go() {
        let mut d = dispatcher();
        let mut a = alert("Down", "a", 0);
        d.insert(&a, t(0));
        let flush = d.due(t(30)).remove(0);
        d.flushed(&flush, t(30));
        assert!(d.contains(a.fingerprint()), "still firing");
        a.ends_at = Some(t(40));
        d.insert(&a, t(40));
        let flush = d.due(t(330)).remove(0);
        d.flushed(&flush, t(330));
        assert_eq!(d.group_count(), 0);
    }
}
