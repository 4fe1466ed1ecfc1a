//! Inhibition: a firing alert that matches a rule's source matchers mutes
//! the alerts that match its target matchers and carry the same values for
//! the rule's `equal` labels, as in Alertmanager.
//!
//! Checks never scan all pairs of alerts: [`Inhibitor::index`] files the
//! firing alerts once, per rule, under the values of that rule's `equal`
//! labels ([`SourceIndex`]). Rules with the same target matchers and the
//! same `equal` labels share one table, so a target is checked with one
//! lookup per such class whose target side it matches (a hundred rules
//! muting the same warnings cost one lookup, not a hundred), then only
//! the rules that have sources under its values. Rules and classes are
//! themselves picked by one of their `name="value"` matchers, so an alert
//! is only tested against those that can apply to it. Building the index
//! costs one pass over the firing alerts; a check costs one pass over the
//! alert's labels and the candidate classes.

use std::collections::HashMap;

use super::alert::Fingerprint;
use super::config::InhibitRuleConfig;
use super::matcher::{all_match, MatchOp, Matcher};
use crate::labels::Labels;

/// One inhibit rule.
#[derive(Debug, Clone)]
pub struct InhibitRule {
    pub source: Vec<Matcher>,
    pub target: Vec<Matcher>,
    pub equal: Vec<String>,
}

impl From<&InhibitRuleConfig> for InhibitRule {
    fn from(config: &InhibitRuleConfig) -> Self {
        InhibitRule {
            source: config.source_matchers.clone(),
            target: config.target_matchers.clone(),
            equal: config.equal.clone(),
        }
    }
}

/// Picks the rules one side of which can match a label set: each rule is
/// filed under one of its `name="value"` matchers (non-empty value), which
/// any matching label set must carry; rules without one are always tried.
#[derive(Debug, Clone, Default)]
struct RuleSelector {
    by_label: HashMap<String, HashMap<String, Vec<usize>>>,
    always: Vec<usize>,
}

impl RuleSelector {
    fn new<'a>(sides: impl Iterator<Item = &'a [Matcher]>) -> RuleSelector {
        let mut selector = RuleSelector::default();
        for (i, matchers) in sides.enumerate() {
            let key = matchers
                .iter()
                .find(|m| m.op == MatchOp::Equal && !m.value.is_empty());
            match key {
                Some(m) => selector
                    .by_label
                    .entry(m.name.clone())
                    .or_default()
                    .entry(m.value.clone())
                    .or_default()
                    .push(i),
                None => selector.always.push(i),
            }
        }
        selector
    }

    /// Calls `f` with each rule that may apply to `labels` (each once).
    fn each(&self, labels: &Labels, mut f: impl FnMut(usize)) {
        self.always.iter().for_each(|&i| f(i));
        if self.by_label.is_empty() {
            return;
        }
        for label in labels.iter() {
            if let Some(rules) = self
                .by_label
                .get(label.name)
                .and_then(|values| values.get(label.value))
            {
                rules.iter().for_each(|&i| f(i));
            }
        }
    }
}

/// Decides whether an alert is inhibited by the currently firing alerts.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
    /// The rules grouped by target side and `equal` labels.
    classes: Vec<TargetClass>,
    /// The class of each rule.
    class_of: Vec<usize>,
    /// Over the rules.
    by_source: RuleSelector,
    /// Over the classes.
    by_target: RuleSelector,
}

/// Rules with the same target matchers and the same `equal` labels (a
/// common shape: one rule per team or cluster, each muting the same
/// warnings). A target is checked once per class, with one lookup of its
/// `equal` values, instead of once per rule: with a hundred such rules a
/// check costs one lookup, not a hundred.
#[derive(Debug, Clone)]
struct TargetClass {
    target: Vec<Matcher>,
    equal: Vec<String>,
}

impl TargetClass {
    /// The values of the class's `equal` labels in `labels` (a missing
    /// label is `None`, which equals another missing label, as in
    /// Alertmanager).
    fn equal_key(&self, labels: &Labels) -> Vec<Option<String>> {
        self.equal
            .iter()
            .map(|name| labels.get(name).map(str::to_string))
            .collect()
    }
}

impl Inhibitor {
    pub fn new(rules: Vec<InhibitRule>) -> Inhibitor {
        let mut classes: Vec<TargetClass> = Vec::new();
        let class_of = rules
            .iter()
            .map(|rule| {
                match classes
                    .iter()
                    .position(|c| c.target == rule.target && c.equal == rule.equal)
                {
                    Some(c) => c,
                    None => {
                        classes.push(TargetClass {
                            target: rule.target.clone(),
                            equal: rule.equal.clone(),
                        });
                        classes.len() - 1
                    }
                }
            })
            .collect();
        Inhibitor {
            by_source: RuleSelector::new(rules.iter().map(|r| r.source.as_slice())),
            by_target: RuleSelector::new(classes.iter().map(|c| c.target.as_slice())),
            classes,
            class_of,
            rules,
        }
    }

    /// Builds the inhibitor from the config's `inhibit_rules`.
    pub fn from_config(rules: &[InhibitRuleConfig]) -> Inhibitor {
        Inhibitor::new(rules.iter().map(InhibitRule::from).collect())
    }

    /// Whether there are no rules (nothing is ever inhibited).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Files `firing` (every alert firing now, with its fingerprint) for
    /// the checks of [`SourceIndex`].
    pub fn index<'a>(
        &self,
        firing: impl IntoIterator<Item = (Fingerprint, &'a Labels)>,
    ) -> SourceIndex {
        let mut per_class: Vec<HashMap<Vec<Option<String>>, Vec<RuleSources>>> =
            vec![HashMap::new(); self.classes.len()];
        if !self.rules.is_empty() {
            for (fingerprint, labels) in firing {
                self.by_source.each(labels, |i| {
                    let rule = &self.rules[i];
                    if !all_match(&rule.source, labels) {
                        return;
                    }
                    let class = self.class_of[i];
                    let by_rule = per_class[class]
                        .entry(self.classes[class].equal_key(labels))
                        .or_default();
                    let sources = match by_rule.iter().position(|r| r.rule == i) {
                        Some(at) => &mut by_rule[at],
                        None => {
                            by_rule.push(RuleSources {
                                rule: i,
                                all: Vec::new(),
                                not_target: Vec::new(),
                            });
                            let last = by_rule.len() - 1;
                            &mut by_rule[last]
                        }
                    };
                    sources.all.push(fingerprint);
                    if !all_match(&rule.target, labels) {
                        sources.not_target.push(fingerprint);
                    }
                });
            }
        }
        SourceIndex { per_class }
    }

    /// Whether `target` is muted by one of `firing` (the labels of every
    /// alert firing now). When the target also matches a rule's source side,
    /// sources that match the target side are not counted, so an alert never
    /// inhibits itself and two alerts matching both sides don't mute each
    /// other.
    pub fn is_inhibited(&self, target: &Labels, firing: &[Labels]) -> bool {
        let index = self.index(firing.iter().map(|l| (Fingerprint::of(l), l)));
        index.is_inhibited(self, target)
    }

    /// Calls `f` with the sources of each rule that mutes `target`.
    fn each_muting(&self, index: &SourceIndex, target: &Labels, mut f: impl FnMut(&[Fingerprint])) {
        self.by_target.each(target, |c| {
            let class = &self.classes[c];
            let Some(by_key) = index.per_class.get(c) else {
                return;
            };
            if by_key.is_empty() || !all_match(&class.target, target) {
                return;
            }
            let Some(by_rule) = by_key.get(&class.equal_key(target)) else {
                return;
            };
            for sources in by_rule {
                // A target that is also a source is only muted by sources
                // that are not targets themselves (so never by itself).
                let muting = if all_match(&self.rules[sources.rule].source, target) {
                    &sources.not_target
                } else {
                    &sources.all
                };
                if !muting.is_empty() {
                    f(muting);
                }
            }
        });
    }
}

/// The firing alerts of one moment filed by [`Inhibitor::index`]: per
/// target class, under the values of its `equal` labels, the sources of
/// each rule of the class that has some.
#[derive(Debug, Clone, Default)]
pub struct SourceIndex {
    per_class: Vec<HashMap<Vec<Option<String>>, Vec<RuleSources>>>,
}

#[derive(Debug, Clone)]
struct RuleSources {
    /// The rule (index in [`Inhibitor`]'s rules).
    rule: usize,
    /// Every source alert of the rule with these `equal` values.
    all: Vec<Fingerprint>,
    /// Those of them that do not match the rule's target side.
    not_target: Vec<Fingerprint>,
}

impl SourceIndex {
    /// Whether `target` is inhibited (`inhibitor` must be the one that
    /// built the index).
    pub fn is_inhibited(&self, inhibitor: &Inhibitor, target: &Labels) -> bool {
        let mut muted = false;
        inhibitor.each_muting(self, target, |_| muted = true);
        muted
    }

    /// The fingerprints of the firing alerts that inhibit `target`, sorted,
    /// each once (the alerts API's `inhibitedBy`).
    pub fn inhibited_by(&self, inhibitor: &Inhibitor, target: &Labels) -> Vec<Fingerprint> {
        let mut sources = Vec::new();
        inhibitor.each_muting(self, target, |muting| sources.extend_from_slice(muting));
        sources.sort();
        sources.dedup();
        sources
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::notify::matcher::parse_matchers;

    fn rule(source: &str, target: &str, equal: &[&str]) -> Inhibitor {
        Inhibitor::new(vec![InhibitRule {
            source: parse_matchers(source).unwrap(),
            target: parse_matchers(target).unwrap(),
            equal: equal.iter().map(|s| s.to_string()).collect(),
        }])
    }

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn critical_alert_inhibits_warning_in_the_same_cluster() {
        let inhibitor = rule("severity=critical", "severity=warning", &["cluster"]);
        let firing = [l(&[("severity", "critical"), ("cluster", "eu")])];
        assert!(inhibitor.is_inhibited(&l(&[("severity", "warning"), ("cluster", "eu")]), &firing));
        assert!(!inhibitor.is_inhibited(&l(&[("severity", "warning"), ("cluster", "us")]), &firing));
    }

    #[test]
    fn missing_equal_labels_count_as_equal() {
        let inhibitor = rule("severity=critical", "severity=warning", &["cluster"]);
        let firing = [l(&[("severity", "critical")])];
        assert!(inhibitor.is_inhibited(&l(&[("severity", "warning")]), &firing));
    }

    #[test]
    fn an_alert_matching_both_sides_does_not_inhibit_itself() {
        let inhibitor = rule("alertname=Down", "alertname=~Down|Slow", &[]);
        let down = l(&[("alertname", "Down")]);
        assert!(!inhibitor.is_inhibited(&down, std::slice::from_ref(&down)));
        let slow = l(&[("alertname", "Slow")]);
        assert!(inhibitor.is_inhibited(&slow, &[down]));
    }

    /// The rule as Alertmanager states it, checked pair by pair: the
    /// reference the index must agree with.
    fn muted_by_pairs(rules: &[InhibitRule], target: &Labels, source: &Labels) -> bool {
        rules.iter().any(|rule| {
            all_match(&rule.target, target)
                && all_match(&rule.source, source)
                && rule.equal.iter().all(|n| source.get(n) == target.get(n))
                && !(all_match(&rule.source, target) && all_match(&rule.target, source))
        })
    }

    /// Checks the index over `firing` against the pairwise rule for every
    /// alert of `alerts`; returns how many are muted.
    fn agree_with_pairs(
        inhibitor: &Inhibitor,
        rules: &[InhibitRule],
        alerts: &[Labels],
        firing: &[Labels],
    ) -> usize {
        let index = inhibitor.index(firing.iter().map(|l| (Fingerprint::of(l), l)));
        let mut muted = 0;
        for target in alerts {
            let mut want: Vec<Fingerprint> = firing
                .iter()
                .filter(|source| muted_by_pairs(rules, target, source))
                .map(Fingerprint::of)
                .collect();
            want.sort();
            want.dedup();
            assert_eq!(index.inhibited_by(inhibitor, target), want, "{target:?}");
            assert_eq!(index.is_inhibited(inhibitor, target), !want.is_empty());
            muted += usize::from(!want.is_empty());
        }
        muted
    }

    #[test]
    fn the_index_agrees_with_the_pairwise_rule_on_every_pair() {
        let rules: Vec<InhibitRule> = [
            ("severity=critical", "severity=warning", &["cluster"][..]),
            ("alertname=NodeDown", "alertname=~\"Node.*\"", &["node"][..]),
            (
                "team!=db",
                "severity=~\"warning|info\"",
                &["cluster", "node"][..],
            ),
            ("severity=\"\"", "severity=info", &[][..]),
        ]
        .iter()
        .map(|(source, target, equal)| InhibitRule {
            source: parse_matchers(source).unwrap(),
            target: parse_matchers(target).unwrap(),
            equal: equal.iter().map(|s| s.to_string()).collect(),
        })
        .collect();
        let inhibitor = Inhibitor::new(rules.clone());
        let mut alerts = Vec::new();
        for name in ["NodeDown", "NodeSlow", "Other"] {
            for severity in ["critical", "warning", "info", ""] {
                for cluster in ["eu", "us", ""] {
                    for node in ["n1", "n2"] {
                        for team in ["db", "web"] {
                            alerts.push(Labels::from_pairs([
                                ("alertname", name),
                                ("severity", severity),
                                ("cluster", cluster),
                                ("node", node),
                                ("team", team),
                            ]));
                        }
                    }
                }
            }
        }
        // Every other alert fires, so some targets have no source at all.
        let firing: Vec<Labels> = alerts.iter().step_by(2).cloned().collect();
        let muted = agree_with_pairs(&inhibitor, &rules, &alerts, &firing);
        assert!(
            muted > 0 && muted < alerts.len(),
            "{muted} of {}",
            alerts.len()
        );
    }

    /// One rule per team muting the same warnings (the shape of the
    /// Alertmanager side-by-side bench, smaller): the rules share one
    /// target class, and the index still agrees with the pairwise rule,
    /// also with a rule of the class whose source side matches warnings too.
    #[test]
    fn rules_sharing_a_target_side_share_a_class_and_agree_with_the_pairwise_rule() {
        let mut rules: Vec<InhibitRule> = (0..10)
            .map(|t| InhibitRule {
                source: parse_matchers(&format!("severity=critical,team=t{t}")).unwrap(),
                target: parse_matchers("severity=warning").unwrap(),
                equal: vec!["instance".to_string()],
            })
            .collect();
        // Same target and equal labels, source matching warnings as well.
        rules.push(InhibitRule {
            source: parse_matchers("team=t3").unwrap(),
            target: parse_matchers("severity=warning").unwrap(),
            equal: vec!["instance".to_string()],
        });
        // Same target, other equal labels: a class of its own.
        rules.push(InhibitRule {
            source: parse_matchers("severity=critical,team=t4").unwrap(),
            target: parse_matchers("severity=warning").unwrap(),
            equal: vec!["team".to_string()],
        });
        let inhibitor = Inhibitor::new(rules.clone());
        assert_eq!(inhibitor.classes.len(), 2);
        assert_eq!(inhibitor.class_of, [vec![0; 11], vec![1]].concat());

        let mut alerts = Vec::new();
        for i in 0..400 {
            let critical = i % 2 == 0;
            let instance = if i % 4 < 2 {
                format!("host{}", i / 2)
            } else {
                format!("host{i}")
            };
            alerts.push(Labels::from_pairs([
                (
                    "severity",
                    if critical { "critical" } else { "warning" }.to_string(),
                ),
                ("team", format!("t{}", (i / 2) % 10)),
                ("instance", instance),
                ("series", format!("s{i}")),
            ]));
        }
        // Every third alert is not firing.
        let firing: Vec<Labels> = alerts
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, l)| l.clone())
            .collect();
        let muted = agree_with_pairs(&inhibitor, &rules, &alerts, &firing);
        assert!(muted > 0 && muted < 200, "{muted} muted");
    }

    #[test]
    fn nothing_is_inhibited_without_a_firing_source() {
        let inhibitor = rule("severity=critical", "severity=warning", &[]);
        assert!(!inhibitor.is_inhibited(&l(&[("severity", "warning")]), &[]));
    }
}
