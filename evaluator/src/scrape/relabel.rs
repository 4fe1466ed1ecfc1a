//! `metric_relabel_configs`: the Prometheus relabelling rules applied to
//! every scraped series before it is stored, so users can keep, drop and
//! rewrite series with the configs they already have.
//!
//! Regexes are fully anchored, as in Prometheus; `replacement` and
//! `target_label` expand `$1`, `${1}` and `${name}`.

use std::fmt;

use md5::{Digest, Md5};
use regex::Regex;
use serde::Deserialize;

use super::parser::is_valid_label_name;
use crate::labels::Labels;

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    #[default]
    Replace,
    Keep,
    Drop,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
}

impl fmt::Display for RelabelAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::HashMod => "hashmod",
            RelabelAction::LabelMap => "labelmap",
            RelabelAction::LabelDrop => "labeldrop",
            RelabelAction::LabelKeep => "labelkeep",
        })
    }
}

/// One relabel rule as written in the config file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` and matched.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joins the source values; default `;`.
    pub separator: Option<String>,
    /// Matched against the joined value (or label names for labelmap,
    /// labeldrop, labelkeep); fully anchored; default `(.*)`.
    pub regex: Option<String>,
    /// For hashmod.
    pub modulus: Option<u64>,
    /// The label written by replace and hashmod.
    pub target_label: Option<String>,
    /// Written to `target_label` (replace) or used as the new name
    /// (labelmap); default `$1`.
    pub replacement: Option<String>,
    /// Default `replace`.
    #[serde(default)]
    pub action: RelabelAction,
}

/// A validated, compiled rule.
#[derive(Debug, Clone)]
pub struct Relabeler {
    source_labels: Vec<String>,
    separator: String,
    regex: Regex,
    modulus: u64,
    target_label: String,
    replacement: String,
    action: RelabelAction,
}

impl RelabelConfig {
    /// Checks the rule and compiles it; every problem is reported as
    /// `(field, message)`.
    pub fn compile(&self) -> Result<Relabeler, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let pattern = self.regex.as_deref().unwrap_or("(.*)");
        let regex = match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push((
                    "regex",
                    format!("invalid regular expression {pattern:?}: {e}"),
                ));
                None
            }
        };
        let target = self.target_label.clone().unwrap_or_default();
        let action = self.action;
        match action {
            RelabelAction::Replace | RelabelAction::HashMod if target.is_empty() => {
                errors.push(("target_label", format!("required for action {action}")));
            }
            RelabelAction::Replace if !is_valid_target_template(&target) => {
                errors.push((
                    "target_label",
                    format!("{target:?} is not a valid label name (or $-template of one)"),
                ));
            }
            RelabelAction::HashMod if !is_valid_label_name(&target) => {
                errors.push((
                    "target_label",
                    format!("{target:?} is not a valid label name"),
                ));
            }
            _ => {}
        }
        if action == RelabelAction::HashMod && self.modulus.unwrap_or(0) == 0 {
            errors.push((
                "modulus",
                "must be set to a positive number for action hashmod".into(),
            ));
        }
        if matches!(action, RelabelAction::LabelDrop | RelabelAction::LabelKeep) {
            let stray = [
                ("source_labels", !self.source_labels.is_empty()),
                ("target_label", self.target_label.is_some()),
                ("modulus", self.modulus.is_some()),
                ("separator", self.separator.is_some()),
                ("replacement", self.replacement.is_some()),
            ];
            for (field, set) in stray {
                if set {
                    errors.push((field, format!("must not be set for action {action}")));
                }
            }
        }
        for name in &self.source_labels {
            if !is_valid_label_name(name) {
                errors.push((
                    "source_labels",
                    format!("{name:?} is not a valid label name"),
                ));
            }
        }
        match regex {
            Some(regex) if errors.is_empty() => Ok(Relabeler {
                source_labels: self.source_labels.clone(),
                separator: self.separator.clone().unwrap_or_else(|| ";".to_string()),
                regex,
                modulus: self.modulus.unwrap_or(0),
                target_label: target,
                replacement: self.replacement.clone().unwrap_or_else(|| "$1".to_string()),
                action,
            }),
            _ => Err(errors),
        }
    }
}

/// A target label for replace: a label name whose parts may be `$n`,
/// `${name}` references.
fn is_valid_target_template(target: &str) -> bool {
    if is_valid_label_name(target) {
        return true;
    }
    target.contains('$')
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'{' | b'}'))
}

impl Relabeler {
    /// Applies this rule; `false` means the series is dropped.
    pub fn apply(&self, labels: &mut Labels) -> bool {
        match self.action {
            RelabelAction::Keep => self.regex.is_match(&self.source_value(labels)),
            RelabelAction::Drop => !self.regex.is_match(&self.source_value(labels)),
            RelabelAction::Replace => {
                let value = self.source_value(labels);
                if let Some(caps) = self.regex.captures(&value) {
                    let mut target = String::new();
                    caps.expand(&self.target_label, &mut target);
                    let mut result = String::new();
                    caps.expand(&self.replacement, &mut result);
                    if is_valid_label_name(&target) {
                        // An empty result removes the label, as in Prometheus.
                        labels.set(&target, &result);
                    }
                }
                true
            }
            RelabelAction::HashMod => {
                let value = self.source_value(labels);
                let digest = Md5::digest(value.as_bytes());
                let mut low = [0u8; 8];
                low.copy_from_slice(&digest[8..16]);
                let bucket = u64::from_be_bytes(low) % self.modulus.max(1);
                labels.set(&self.target_label, &bucket.to_string());
                true
            }
            RelabelAction::LabelMap => {
                let renamed: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|l| {
                        let caps = self.regex.captures(l.name)?;
                        let mut name = String::new();
                        caps.expand(&self.replacement, &mut name);
                        Some((name, l.value.to_string()))
                    })
                    .collect();
                for (name, value) in renamed {
                    if is_valid_label_name(&name) {
                        labels.set(&name, &value);
                    }
                }
                true
            }
            RelabelAction::LabelDrop | RelabelAction::LabelKeep => {
                let keep_matching = self.action == RelabelAction::LabelKeep;
                let doomed: Vec<String> = labels
                    .iter()
                    .filter(|l| self.regex.is_match(l.name) != keep_matching)
                    .map(|l| l.name.to_string())
                    .collect();
                for name in doomed {
                    labels.remove(&name);
                }
                true
            }
        }
    }

    fn source_value(&self, labels: &Labels) -> String {
        let mut value = String::new();
        for (i, name) in self.source_labels.iter().enumerate() {
            if i > 0 {
                value.push_str(&self.separator);
            }
            value.push_str(labels.get(name).unwrap_or(""));
        }
        value
    }
}

/// Applies rules in order; `None` when a rule drops the series.
pub fn relabel(mut labels: Labels, rules: &[Relabeler]) -> Option<Labels> {
    for rule in rules {
        if !rule.apply(&mut labels) {
            return None;
        }
    }
    Some(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Relabeler {
        let config: RelabelConfig = match serde_yaml::from_str(yaml) {
            Ok(c) => c,
            Err(e) => panic!("bad test yaml: {e}"),
        };
        match config.compile() {
            Ok(r) => r,
            Err(e) => panic!("rule does not compile: {e:?}"),
        }
    }

    fn series() -> Labels {
        Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("code", "500"),
            ("path", "/api/v1/users"),
            ("pod", "web-7"),
        ])
    }

    #[test]
    fn keep_drops_series_whose_value_does_not_match() {
        let r = rule("{action: keep, source_labels: [code], regex: '5..'}");
        assert!(relabel(series(), std::slice::from_ref(&r)).is_some());
        let r = rule("{action: keep, source_labels: [code], regex: '2..'}");
        assert!(relabel(series(), &[r]).is_none());
    }

    #[test]
    fn regex_is_fully_anchored() {
        let r = rule("{action: keep, source_labels: [code], regex: '5'}");
        assert!(relabel(series(), &[r]).is_none());
    }

    #[test]
    fn drop_removes_matching_series() {
        let r = rule("{action: drop, source_labels: [__name__, code], regex: 'http_.*;500'}");
        assert!(relabel(series(), &[r]).is_none());
    }

    #[test]
    fn replace_expands_capture_groups_in_both_syntaxes() {
        let r = rule(
            "{source_labels: [pod], regex: '(.*)-(\\d+)', target_label: replica, replacement: '${1}_$2'}",
        );
        let out = relabel(series(), &[r]);
        assert_eq!(out.as_ref().and_then(|l| l.get("replica")), Some("web_7"));
    }

    #[test]
    fn replace_with_empty_result_removes_the_label() {
        let r = rule("{source_labels: [code], target_label: path, replacement: ''}");
        let out = relabel(series(), &[r]);
        assert_eq!(out.as_ref().and_then(|l| l.get("path")), None);
    }

    #[test]
    fn replace_without_match_changes_nothing() {
        let r = rule("{source_labels: [code], regex: '2..', target_label: class, replacement: ok}");
        assert_eq!(relabel(series(), &[r]), Some(series()));
    }

    #[test]
    fn labeldrop_and_labelkeep_filter_label_names() {
        let r = rule("{action: labeldrop, regex: 'p(od|ath)'}");
        let out = relabel(series(), &[r]);
        assert_eq!(out.as_ref().and_then(|l| l.get("pod")), None);
        assert_eq!(out.as_ref().and_then(|l| l.get("path")), None);
        let r = rule("{action: labelkeep, regex: '__name__|code'}");
        let out = relabel(series(), &[r]);
        assert_eq!(out.map(|l| l.len()), Some(2));
    }

    #[test]
    fn labelmap_copies_matching_labels_under_new_names() {
        let r = rule("{action: labelmap, regex: 'p(.*)', replacement: 'x_$1'}");
        let out = relabel(series(), &[r]);
        assert_eq!(out.as_ref().and_then(|l| l.get("x_od")), Some("web-7"));
        assert_eq!(out.as_ref().and_then(|l| l.get("pod")), Some("web-7"));
    }

    #[test]
    fn hashmod_is_stable_and_below_modulus() {
        let r = rule("{action: hashmod, source_labels: [pod], modulus: 8, target_label: shard}");
        let a = relabel(series(), std::slice::from_ref(&r));
        let b = relabel(series(), &[r]);
        let shard = a.as_ref().and_then(|l| l.get("shard")).map(str::to_string);
        assert_eq!(shard.as_deref(), b.as_ref().and_then(|l| l.get("shard")));
        let n: u64 = shard.and_then(|s| s.parse().ok()).unwrap_or(99);
        assert!(n < 8);
    }

    #[test]
    fn invalid_rules_report_every_problem() {
        let config: RelabelConfig =
            serde_yaml::from_str("{action: hashmod, regex: '(', source_labels: ['1x']}")
                .unwrap_or_default();
        let errors = config.compile().err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["regex", "target_label", "modulus", "source_labels"]
        );
    }

    #[test]
    fn unknown_action_is_rejected() {
        let parsed: Result<RelabelConfig, _> = serde_yaml::from_str("{action: explode}");
        assert!(parsed.is_err());
    }
}
