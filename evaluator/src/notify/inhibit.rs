//! Inhibition: a firing alert that matches a rule's source matchers mutes
//! the alerts that match its target matchers and carry the same values for
//! the rule's `equal` labels, as in Alertmanager.

use super::config::InhibitRuleConfig;
use super::matcher::{all_match, Matcher};
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

/// Decides whether an alert is inhibited by the currently firing alerts.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
}

impl Inhibitor {
    pub fn new(rules: Vec<InhibitRule>) -> Inhibitor {
        Inhibitor { rules }
    }

    /// Builds the inhibitor from the config's `inhibit_rules`.
    pub fn from_config(rules: &[InhibitRuleConfig]) -> Inhibitor {
        Inhibitor::new(rules.iter().map(InhibitRule::from).collect())
    }

    /// Whether `target` is muted by one of `firing` (the labels of every
    /// alert firing now). When the target also matches a rule's source side,
    /// sources that match the target side are not counted, so an alert never
    /// inhibits itself and two alerts matching both sides don't mute each
    /// other.
    pub fn is_inhibited(&self, target: &Labels, firing: &[Labels]) -> bool {
        self.rules.iter().any(|rule| {
            if !all_match(&rule.target, target) {
                return false;
            }
            let target_is_source = all_match(&rule.source, target);
            firing.iter().any(|source| {
                all_match(&rule.source, source)
                    && rule.equal.iter().all(|n| source.get(n) == target.get(n))
                    && !(target_is_source && all_match(&rule.target, source))
            })
        })
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

    #[test]
    fn nothing_is_inhibited_without_a_firing_source() {
        let inhibitor = rule("severity=critical", "severity=warning", &[]);
        assert!(!inhibitor.is_inhibited(&l(&[("severity", "warning")]), &[]));
    }
}
