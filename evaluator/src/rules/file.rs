//! The rule-file format (Prometheus' `groups:` files plus Vigil's per-rule
//! `cooldown`) and its validation, which reports every problem with file,
//! line, column and field path, and turns a good file into [`GroupSpec`]s.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::template::Template;
use super::text_map::TextMap;
use vigil_common::duration::parse_duration;
pub use vigil_common::problem::Problem;
use vigil_common::yaml_positions::{yaml_error, PositionIndex};

/// A YAML scalar read as text, as Go's YAML decoder does for `string`
/// fields (`severity: 1` is the label value `"1"`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => Ok(Scalar(s)),
            serde_yaml::Value::Number(n) => Ok(Scalar(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(Scalar(b.to_string())),
            serde_yaml::Value::Null => Ok(Scalar(String::new())),
            _ => Err(D::Error::custom(
                "expected a string, found a sequence or mapping",
            )),
        }
    }
}

/// Annotation that sets an alerting rule's cooldown like the `cooldown`
/// field does. Unlike the field, Prometheus and promtool accept it, so rule
/// files shared with them (such as the shipped `rules/*.yaml`) use it.
pub const COOLDOWN_ANNOTATION: &str = "vigil_cooldown";

/// A rule file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<RuleGroupConfig>,
}

/// One `groups[]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroupConfig {
    #[serde(default)]
    pub name: String,
    /// Evaluation interval; the global `evaluation_interval` when absent.
    pub interval: Option<Scalar>,
    /// Shifts every query of the group into the past (Prometheus 2.53+).
    pub query_offset: Option<Scalar>,
    /// Maximum alerts (alerting rule) or series (recording rule) per rule;
    /// 0 or negative = no limit (as Prometheus).
    #[serde(default)]
    pub limit: i64,
    /// Labels added to every rule of the group (Prometheus 3).
    #[serde(default)]
    pub labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One `rules[]` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub record: Option<Scalar>,
    pub alert: Option<Scalar>,
    #[serde(default)]
    pub expr: Scalar,
    #[serde(rename = "for")]
    pub for_: Option<Scalar>,
    pub keep_firing_for: Option<Scalar>,
    #[serde(default)]
    pub labels: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Scalar>,
    /// Vigil: minimum time between two firing notifications of one alert.
    pub cooldown: Option<Scalar>,
}

/// A validated rule group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub file: PathBuf,
    pub name: String,
    pub interval: Option<Duration>,
    pub query_offset: Option<Duration>,
    pub limit: usize,
    pub rules: Vec<RuleSpec>,
}

/// A validated rule (group labels already merged into `labels`).
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSpec {
    Recording(RecordingSpec),
    Alerting(AlertingSpec),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordingSpec {
    pub record: String,
    pub expr: String,
    pub labels: TextMap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AlertingSpec {
    pub alert: String,
    pub expr: String,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    /// Label templates.
    pub labels: TextMap,
    /// Annotation templates.
    pub annotations: TextMap,
    pub cooldown: Option<Duration>,
}

impl RuleSpec {
    pub fn name(&self) -> &str {
        match self {
            RuleSpec::Recording(r) => &r.record,
            RuleSpec::Alerting(a) => &a.alert,
        }
    }
}

/// Why rule files could not be loaded: every problem found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct RuleFileError {
    pub problems: Vec<Problem>,
}

/// Whether `s` is a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`).
pub fn is_valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `s` is a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Checker<'a> {
    file: &'a Path,
    positions: PositionIndex,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, field: &str, message: impl Into<String>) {
        let pos = self.positions.value(field);
        self.problems
            .push(Problem::new(self.file, pos, field, message));
    }

    fn duration(&mut self, field: &str, value: &Option<Scalar>) -> Option<Duration> {
        let v = value.as_ref()?;
        match parse_duration(&v.0) {
            Ok(d) => Some(d),
            Err(e) => {
                self.report(
                    field,
                    format!(
                        "not a valid duration string {:?}: {}",
                        e.input(),
                        e.reason()
                    ),
                );
                None
            }
        }
    }

    fn labels(
        &mut self,
        field: &str,
        labels: &BTreeMap<String, Scalar>,
        templated: Option<&str>,
    ) -> TextMap {
        let mut out = BTreeMap::new();
        for (name, value) in labels {
            let path = format!("{field}.{name}");
            if !is_valid_label_name(name) || name == "__name__" {
                self.report(&path, format!("invalid label name {name:?} (must match [a-zA-Z_][a-zA-Z0-9_]* and not be __name__)"));
            }
            if let Some(tmpl_name) = templated {
                if let Err(e) = Template::parse(tmpl_name, &value.0) {
                    self.report(&path, format!("invalid template: {e}"));
                }
            }
            out.insert(name.clone(), value.0.clone());
        }
        out.into()
    }

    fn annotations(
        &mut self,
        field: &str,
        annotations: &BTreeMap<String, Scalar>,
        tmpl_name: &str,
    ) -> TextMap {
        let mut out = BTreeMap::new();
        for (name, value) in annotations {
            let path = format!("{field}.{name}");
            if !is_valid_label_name(name) {
                self.report(
                    &path,
                    format!("invalid annotation name {name:?} (must match [a-zA-Z_][a-zA-Z0-9_]*)"),
                );
            }
            if let Err(e) = Template::parse(tmpl_name, &value.0) {
                self.report(&path, format!("invalid template: {e}"));
            }
            out.insert(name.clone(), value.0.clone());
        }
        out.into()
    }

    fn rule(
        &mut self,
        path: &str,
        rule: &RuleConfig,
        group_labels: &BTreeMap<String, Scalar>,
    ) -> Option<RuleSpec> {
        let expr = rule.expr.0.trim().to_string();
        let expr_ok = if expr.is_empty() {
            self.report(&format!("{path}.expr"), "field 'expr' must be set in rule");
            false
        } else if let Err(e) = promql_parser::parser::parse(&expr) {
            self.report(
                &format!("{path}.expr"),
                format!("could not parse expression: {}", e.trim()),
            );
            false
        } else {
            true
        };
        let mut labels_in = group_labels.clone();
        labels_in.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        match (&rule.record, &rule.alert) {
            (Some(_), Some(_)) => {
                self.report(path, "only one of 'record' and 'alert' must be set");
                None
            }
            (None, None) => {
                self.report(path, "one of 'record' or 'alert' must be set");
                None
            }
            (Some(record), None) => {
                let record = record.0.clone();
                if !is_valid_metric_name(&record) {
                    self.report(
                        &format!("{path}.record"),
                        format!("invalid recording rule name {record:?} (must be a metric name: [a-zA-Z_:][a-zA-Z0-9_:]*)"),
                    );
                }
                // Like Prometheus, a zero `for`/`keep_firing_for` is
                // tolerated on a recording rule (it means nothing there).
                let set_nonzero = |v: &Option<Scalar>| {
                    v.as_ref()
                        .is_some_and(|s| parse_duration(&s.0).map_or(true, |d| !d.is_zero()))
                };
                for (field, set) in [
                    ("for", set_nonzero(&rule.for_)),
                    ("keep_firing_for", set_nonzero(&rule.keep_firing_for)),
                    ("annotations", !rule.annotations.is_empty()),
                    ("cooldown", rule.cooldown.is_some()),
                ] {
                    if set {
                        self.report(
                            &format!("{path}.{field}"),
                            format!("invalid field '{field}' in recording rule (it applies to alerting rules only)"),
                        );
                    }
                }
                let labels = self.labels(&format!("{path}.labels"), &labels_in, None);
                let ok = expr_ok && is_valid_metric_name(&record);
                ok.then_some(RuleSpec::Recording(RecordingSpec {
                    record,
                    expr,
                    labels,
                }))
            }
            (None, Some(alert)) => {
                let alert = alert.0.clone();
                if alert.is_empty() {
                    self.report(&format!("{path}.alert"), "alert name must not be empty");
                }
                let tmpl_name = format!("__alert_{alert}");
                let for_ = self.duration(&format!("{path}.for"), &rule.for_);
                let keep = self.duration(&format!("{path}.keep_firing_for"), &rule.keep_firing_for);
                let mut cooldown = self.duration(&format!("{path}.cooldown"), &rule.cooldown);
                if let Some(annotation) = rule.annotations.get(COOLDOWN_ANNOTATION) {
                    let field = format!("{path}.annotations.{COOLDOWN_ANNOTATION}");
                    if rule.cooldown.is_some() {
                        self.report(&field, format!("set either 'cooldown' or the {COOLDOWN_ANNOTATION} annotation, not both"));
                    }
                    cooldown = self.duration(&field, &Some(annotation.clone()));
                }
                let labels = self.labels(&format!("{path}.labels"), &labels_in, Some(&tmpl_name));
                let annotations = self.annotations(
                    &format!("{path}.annotations"),
                    &rule.annotations,
                    &tmpl_name,
                );
                Some(RuleSpec::Alerting(AlertingSpec {
                    alert,
                    expr,
                    for_: for_.unwrap_or_default(),
                    keep_firing_for: keep.unwrap_or_default(),
                    labels,
                    annotations,
                    cooldown,
                }))
            }
        }
    }
}

/// Parses and validates one rule file's text; `file` names it in problems.
pub fn parse_rule_file(file: &Path, src: &str) -> Result<Vec<GroupSpec>, RuleFileError> {
    let parsed: RuleFile = if src.trim().is_empty() {
        RuleFile::default()
    } else {
        match serde_yaml::from_str(src) {
            Ok(f) => f,
            Err(e) => {
                let (position, _) = yaml_error(&e);
                let message = format!("{e} (see the Prometheus rule-file format: groups[].rules[] with record|alert, expr, ...)");
                return Err(RuleFileError {
                    problems: vec![Problem::new(file, position, "", message)],
                });
            }
        }
    };
    let mut checker = Checker {
        file,
        positions: PositionIndex::build(src),
        problems: Vec::new(),
    };
    let mut seen = HashSet::new();
    let mut groups = Vec::new();
    for (gi, group) in parsed.groups.iter().enumerate() {
        let gpath = format!("groups[{gi}]");
        if group.name.is_empty() {
            checker.report(&format!("{gpath}.name"), "group name must not be empty");
        } else if !seen.insert(group.name.clone()) {
            checker.report(
                &format!("{gpath}.name"),
                format!("group name {:?} is repeated in the same file", group.name),
            );
        }
        // As in Prometheus, `interval: 0s` means the global interval.
        let interval = checker
            .duration(&format!("{gpath}.interval"), &group.interval)
            .filter(|d| !d.is_zero());
        let query_offset = checker.duration(&format!("{gpath}.query_offset"), &group.query_offset);
        for name in group.labels.keys() {
            if !is_valid_label_name(name) {
                checker.report(
                    &format!("{gpath}.labels.{name}"),
                    format!("invalid label name {name:?}"),
                );
            }
        }
        let mut rules = Vec::new();
        for (ri, rule) in group.rules.iter().enumerate() {
            if let Some(spec) = checker.rule(&format!("{gpath}.rules[{ri}]"), rule, &group.labels) {
                rules.push(spec);
            }
        }
        groups.push(GroupSpec {
            file: file.to_path_buf(),
            name: group.name.clone(),
            interval,
            query_offset,
            limit: usize::try_from(group.limit).unwrap_or(0),
            rules,
        });
    }
    if checker.problems.is_empty() {
        Ok(groups)
    } else {
        // In reading order, so the report walks down the file.
        let mut problems = checker.problems;
        problems.sort_by_key(|p| (p.line, p.column));
        Err(RuleFileError { problems })
    }
}

/// Reads and validates one rule file.
pub fn load_rule_file(file: &Path) -> Result<Vec<GroupSpec>, RuleFileError> {
    let src = std::fs::read_to_string(file).map_err(|e| RuleFileError {
        problems: vec![Problem::new(
            file,
            None,
            "",
            format!("cannot read rule file: {e}"),
        )],
    })?;
    parse_rule_file(file, &src)
}

/// Reads and validates several rule files, collecting the problems of all.
pub fn load_rule_files(files: &[PathBuf]) -> Result<Vec<GroupSpec>, RuleFileError> {
    let mut groups = Vec::new();
    let mut problems = Vec::new();
    for f in files {
        match load_rule_file(f) {
            Ok(g) => groups.extend(g),
            Err(e) => problems.extend(e.problems),
        }
    }
    if problems.is_empty() {
        Ok(groups)
    } else {
        Err(RuleFileError { problems })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(src: &str) -> Vec<String> {
        match parse_rule_file(Path::new("r.yaml"), src) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn valid_file_yields_typed_groups() {
        let src = "groups:\n- name: g\n  interval: 30s\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: Down\n    expr: up == 0\n    for: 5m\n    keep_firing_for: 1m\n    cooldown: 1h\n    labels: {severity: critical}\n    annotations: {summary: '{{ $labels.job }} down'}\n";
        let groups = parse_rule_file(Path::new("r.yaml"), src).expect("valid");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].interval, Some(Duration::from_secs(30)));
        let RuleSpec::Alerting(a) = &groups[0].rules[1] else {
            panic!("second rule is an alert")
        };
        assert_eq!(a.for_, Duration::from_secs(300));
        assert_eq!(a.cooldown, Some(Duration::from_secs(3600)));
        assert_eq!(a.labels["severity"], "critical");
    }

    #[test]
    fn every_problem_is_reported_with_position_and_field() {
        let src = "groups:\n- name: g\n  rules:\n  - record: 'bad name'\n    expr: sum(\n    for: 5m\n  - alert: A\n    record: b\n    expr: up\n  - alert: B\n    expr: up\n    labels:\n      severity: '{{ $labels.x'\n- name: g\n  rules: []\n";
        let got = problems(src);
        let want_fragments = [
            "r.yaml:4:13: groups[0].rules[0].record: invalid recording rule name \"bad name\"",
            "r.yaml:5:11: groups[0].rules[0].expr: could not parse expression",
            "r.yaml:6:10: groups[0].rules[0].for: invalid field 'for' in recording rule",
            "r.yaml:7:5: groups[0].rules[1]: only one of 'record' and 'alert' must be set",
            "r.yaml:13:17: groups[0].rules[2].labels.severity: invalid template",
            "r.yaml:14:9: groups[1].name: group name \"g\" is repeated in the same file",
        ];
        for want in want_fragments {
            assert!(
                got.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {got:#?}"
            );
        }
        assert_eq!(got.len(), want_fragments.len(), "{got:#?}");
    }

    #[test]
    fn zero_for_on_a_recording_rule_is_tolerated_like_prometheus() {
        assert!(problems(
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    for: 0s\n"
        )
        .is_empty());
        assert_eq!(problems("groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n    keep_firing_for: 1m\n").len(), 1);
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_location() {
        let got = problems(
            "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    severity: high\n",
        );
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("r.yaml:6:5: "), "{got:?}");
        assert!(got[0].contains("unknown field `severity`"), "{got:?}");
    }

    #[test]
    fn neither_record_nor_alert_and_missing_expr_are_reported() {
        let got = problems("groups:\n- name: g\n  rules:\n  - labels: {a: b}\n");
        assert!(
            got.iter()
                .any(|p| p.contains("one of 'record' or 'alert' must be set")),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|p| p.contains("groups[0].rules[0].expr: field 'expr' must be set")),
            "{got:?}"
        );
    }

    #[test]
    fn cooldown_can_come_from_the_vigil_cooldown_annotation() {
        let src = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations: {vigil_cooldown: 30m}\n";
        let groups = parse_rule_file(Path::new("r.yaml"), src).expect("valid");
        let RuleSpec::Alerting(a) = &groups[0].rules[0] else {
            panic!("an alerting rule")
        };
        assert_eq!(a.cooldown, Some(Duration::from_secs(1800)));
        let got = problems("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    cooldown: 1m\n    annotations: {vigil_cooldown: soon}\n");
        assert!(got.iter().any(|p| p.contains("not both")), "{got:?}");
        assert!(
            got.iter()
                .any(|p| p.contains("annotations.vigil_cooldown: not a valid duration")),
            "{got:?}"
        );
    }

    #[test]
    fn bad_durations_and_label_names_are_reported() {
        let got = problems("groups:\n- name: g\n  interval: 1x\n  rules:\n  - alert: A\n    expr: up\n    for: soon\n    cooldown: 5\n    labels: {'bad-name': x}\n");
        for want in [
            "groups[0].interval: not a valid duration",
            "groups[0].rules[0].for: not a valid duration",
            "groups[0].rules[0].cooldown: not a valid duration",
            "groups[0].rules[0].labels.bad-name: invalid label name",
        ] {
            assert!(
                got.iter().any(|p| p.contains(want)),
                "missing {want:?} in {got:#?}"
            );
        }
    }
}
