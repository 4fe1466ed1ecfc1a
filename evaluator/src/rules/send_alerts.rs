//! Prometheus' "send alerts" step: the alerts a group evaluation wants
//! sent, as the notifier's alert model, with the link back to the rule
//! that produced each one (its file, group and position, not its alert
//! name: two rules may share one).

use chrono::{DateTime, TimeZone, Utc};

use super::group::{Rule, RuleGroup};
use crate::alerts;
use crate::notify::alert::Alert;

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters
/// stay as they are).
pub fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where an alerting rule is defined, and its expression: the rule's
/// identity in links (`/graph?g0.rule_file=...`) and in
/// `GET /api/vigil/v1/rule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSource {
    /// The group's file as `/api/v1/rules` shows it.
    pub file: String,
    pub group: String,
    /// The rule's position in its group, from 0.
    pub index: usize,
    pub expr: String,
}

impl RuleSource {
    /// The source of rule `index` of `group`.
    pub fn of(group: &RuleGroup, index: usize) -> RuleSource {
        RuleSource {
            file: group.file.display().to_string(),
            group: group.name.clone(),
            index,
            expr: group
                .rules
                .get(index)
                .map(|e| e.rule.expr().to_string())
                .unwrap_or_default(),
        }
    }

    /// The query string naming the rule: `g0.expr`, `g0.tab=0` (graph),
    /// `g0.rule_file`, `g0.rule_group` and `g0.rule_index`.
    pub fn graph_query(&self) -> String {
        format!(
            "g0.expr={}&g0.tab=0&g0.rule_file={}&g0.rule_group={}&g0.rule_index={}",
            query_escape(&self.expr),
            query_escape(&self.file),
            query_escape(&self.group),
            self.index
        )
    }
}

/// The link back to the rule: the evaluator's graph view of its
/// expression (Prometheus' `g0.*` parameters), which also draws the rule's
/// threshold and when its alerts were pending and firing.
pub fn generator_url(external_url: &str, source: &RuleSource) -> String {
    format!(
        "{}/graph?{}",
        external_url.trim_end_matches('/'),
        source.graph_query()
    )
}

/// The position in `group` of the alerting rule holding alert `a`: the
/// rule whose alerts include `a`'s label set (rules sharing an alert name
/// differ in their labels), else the first rule of that name.
pub fn rule_index_of(group: &RuleGroup, a: &alerts::Alert) -> Option<usize> {
    let alerting = || {
        group
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| match &entry.rule {
                Rule::Alerting(rule) if rule.name() == a.name() => Some((i, rule)),
                _ => None,
            })
    };
    alerting()
        .find(|(_, rule)| rule.alerts().any(|held| held.labels == a.labels))
        .or_else(|| alerting().next())
        .map(|(i, _)| i)
}

/// Converts the alerts a group evaluation wants sent into notifier alerts:
/// `starts_at` is when the alert fired (its activation time before that),
/// `ends_at` the resolve time or the validity of this send.
pub fn to_notifier_alerts(
    group: &RuleGroup,
    alerts: Vec<alerts::Alert>,
    external_url: &str,
) -> Vec<Alert> {
    alerts
        .into_iter()
        .map(|a| match rule_index_of(group, &a) {
            Some(index) => to_notifier_alert(a, &RuleSource::of(group, index), external_url),
            // No rule of its name (cannot happen for an alert the group
            // just evaluated): the graph view, empty, rather than a link
            // naming the wrong rule.
            None => {
                let mut alert = to_notifier_alert(a, &RuleSource::of(group, 0), external_url);
                alert.generator_url = format!("{}/graph", external_url.trim_end_matches('/'));
                alert
            }
        })
        .collect()
}

/// The notifier's view of alert `a` of the rule at `source`.
pub fn to_notifier_alert(a: alerts::Alert, source: &RuleSource, external_url: &str) -> Alert {
    Alert {
        starts_at: time(a.fired_at_ms.unwrap_or(a.active_at_ms)),
        ends_at: a.ends_at_ms().map(time),
        generator_url: generator_url(external_url, source),
        cooldown: a.cooldown,
        labels: a.labels,
        annotations: a.annotations,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::rules::fake::{sample, FakeEngine};
    use crate::rules::file::parse_rule_file;
    use crate::rules::group::GroupEnv;

    #[test]
    fn generator_url_escapes_the_expression_and_names_the_rule() {
        let source = RuleSource {
            file: "rules/a b.yaml".into(),
            group: "g&h".into(),
            index: 2,
            expr: "up{job=\"a b\"} == 0".into(),
        };
        assert_eq!(
            generator_url("http://h:9320/", &source),
            "http://h:9320/graph?g0.expr=up%7Bjob%3D%22a%20b%22%7D%20%3D%3D%200&g0.tab=0\
             &g0.rule_file=rules%2Fa%20b.yaml&g0.rule_group=g%26h&g0.rule_index=2"
        );
    }

    /// Two rules named `High` at two thresholds, as `rules/http.yaml` has.
    fn two_levels() -> RuleGroup {
        let mut specs = parse_rule_file(
            Path::new("rules/two.yaml"),
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: x\n  \
             - alert: High\n    expr: x > 1\n    labels: {severity: warning}\n  \
             - alert: High\n    expr: x > 5\n    labels: {severity: critical}\n",
        )
        .unwrap();
        RuleGroup::new(specs.remove(0), Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn each_alert_links_to_the_rule_that_holds_it_when_two_rules_share_its_name() {
        let engine = FakeEngine::new();
        engine.set("x > 1", 0, vec![sample(&[("i", "a")], 9.0)]);
        engine.set("x > 5", 0, vec![sample(&[("i", "a")], 9.0)]);
        let mut group = two_levels();
        let sent = group.eval(1000, &GroupEnv::local(&engine));
        assert_eq!(sent.len(), 2);
        let alerts = to_notifier_alerts(&group, sent, "http://vigil:9320");
        for a in &alerts {
            let (expr, index) = match a.labels.get("severity") {
                Some("warning") => ("x%20%3E%201", 1),
                Some("critical") => ("x%20%3E%205", 2),
                other => panic!("unexpected severity {other:?}"),
            };
            assert_eq!(
                a.generator_url,
                format!(
                    "http://vigil:9320/graph?g0.expr={expr}&g0.tab=0&g0.rule_file=rules%2Ftwo.yaml\
                     &g0.rule_group=g&g0.rule_index={index}"
                )
            );
        }
    }
}
