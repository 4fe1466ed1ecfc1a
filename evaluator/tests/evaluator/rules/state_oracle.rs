//! Real Prometheus as the oracle for the alert state machine and group
//! write-back: flapping series are run through Vigil's rule group (with a
//! scripted engine), and every minute's firing alerts, `ALERTS` and
//! `ALERTS_FOR_STATE` series become the expectations of a promtool unit
//! test, which passes only if Prometheus computes the same (`for`,
//! `keep_firing_for`, resolution, re-firing, staleness markers).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use vigil_evaluator::labels::Labels;
use vigil_evaluator::rules::engine::Sample;
use vigil_evaluator::rules::fake::{sample, FakeEngine};
use vigil_evaluator::rules::file::parse_rule_file;
use vigil_evaluator::rules::group::{GroupEnv, RuleGroup};
use vigil_evaluator::stale::is_stale;
use vigil_testkit::external_tool;

const MIN: i64 = 60_000;
/// Minutes evaluated: one per pattern character.
const MINUTES: i64 = 30;
/// Prometheus' default lookback for instant queries.
const LOOKBACK: i64 = 5 * MIN;

/// Per instance, whether `flap > 0` holds at each minute.
const PATTERNS: &[(&str, &str)] = &[
    ("steady", "111111111111111111111111111111"),
    ("blip", "010000000000000000000000000000"),
    ("flappy", "011101110111111000110000111000"),
    ("late", "000000000001111111111111100000"),
    ("gaps", "111011011110111110000001111111"),
];

const RULES: &str = "groups:
- name: oracle
  interval: 1m
  rules:
  - alert: Flap
    expr: flap > 0
    for: 2m
    keep_firing_for: 3m
    labels: {severity: '{{ if eq $labels.inst \"steady\" }}page{{ else }}ticket{{ end }}'}
    annotations: {summary: '{{ $labels.inst }} is {{ $value }}'}
  - alert: Instant
    expr: flap > 0
";

fn pattern_value(p: &str, minute: i64) -> bool {
    p.as_bytes().get(minute as usize) == Some(&b'1')
}

/// What a store would answer for `metric` at `t`: the latest sample per
/// series within the lookback, unless that sample is a staleness marker.
fn visible(appended: &[Sample], metric: &str, t: i64) -> BTreeMap<Labels, f64> {
    let mut latest: BTreeMap<Labels, (i64, f64)> = BTreeMap::new();
    for s in appended
        .iter()
        .filter(|s| s.labels.metric_name() == Some(metric))
    {
        if s.t_ms <= t
            && s.t_ms > t - LOOKBACK
            && latest.get(&s.labels).is_none_or(|(lt, _)| *lt <= s.t_ms)
        {
            latest.insert(s.labels.clone(), (s.t_ms, s.value));
        }
    }
    latest
        .into_iter()
        .filter(|(_, (_, v))| !is_stale(*v))
        .map(|(l, (_, v))| (l, v))
        .collect()
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| panic!("cannot quote {s:?}: {e}"))
}

fn selector(labels: &Labels) -> String {
    let name = labels.metric_name().unwrap_or("");
    let pairs: Vec<String> = labels
        .iter()
        .filter(|l| l.name != "__name__")
        .map(|l| format!("{}={}", l.name, quoted(l.value)))
        .collect();
    format!("{name}{{{}}}", pairs.join(", "))
}

#[test]
fn alert_states_and_alerts_series_match_prometheus_minute_by_minute() {
    let Some(promtool) = external_tool("promtool") else {
        return;
    };

    let engine = FakeEngine::new();
    for minute in 0..MINUTES {
        let vector = PATTERNS
            .iter()
            .filter(|(_, p)| pattern_value(p, minute))
            .map(|(inst, _)| sample(&[("__name__", "flap"), ("inst", inst)], 1.0))
            .collect();
        engine.set("flap > 0", minute * MIN, vector);
    }
    let mut specs = parse_rule_file(Path::new("oracle.yaml"), RULES).expect("valid rules");
    let mut group = RuleGroup::new(specs.remove(0), Duration::from_secs(60)).expect("group");
    let external = Labels::default();
    let env = GroupEnv {
        engine: &engine,
        appender: &engine,
        external_labels: &external,
        external_url: "",
        resend_delay: Duration::from_secs(60),
        clock: &vigil_evaluator::clock::SystemClock,
    };

    let mut alert_cases = String::new();
    let mut expr_cases = String::new();
    for minute in 0..MINUTES {
        let t = minute * MIN;
        group.eval(t, &env);
        for rule in &group.rules {
            let vigil_evaluator::rules::group::Rule::Alerting(alerting) = &rule.rule else {
                continue;
            };
            writeln!(
                alert_cases,
                "  - eval_time: {minute}m\n    alertname: {}",
                alerting.name()
            )
            .expect("write");
            let firing: Vec<_> = alerting
                .active_alerts()
                .filter(|a| a.state == vigil_evaluator::alerts::AlertState::Firing)
                .collect();
            if firing.is_empty() {
                alert_cases.push_str("    exp_alerts: []\n");
                continue;
            }
            alert_cases.push_str("    exp_alerts:\n");
            for a in firing {
                let labels: Vec<String> = a
                    .labels
                    .iter()
                    .filter(|l| l.name != "alertname")
                    .map(|l| format!("{}: {}", l.name, quoted(l.value)))
                    .collect();
                let annotations: Vec<String> = a
                    .annotations
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", quoted(v)))
                    .collect();
                writeln!(
                    alert_cases,
                    "    - exp_labels: {{{}}}\n      exp_annotations: {{{}}}",
                    labels.join(", "),
                    annotations.join(", ")
                )
                .expect("write");
            }
        }
        for metric in ["ALERTS", "ALERTS_FOR_STATE"] {
            let series = visible(&engine.appended(), metric, t);
            writeln!(expr_cases, "  - expr: {metric}\n    eval_time: {minute}m").expect("write");
            if series.is_empty() {
                expr_cases.push_str("    exp_samples: []\n");
                continue;
            }
            expr_cases.push_str("    exp_samples:\n");
            for (labels, value) in series {
                writeln!(
                    expr_cases,
                    "    - labels: {}\n      value: {value}",
                    quoted(&selector(&labels))
                )
                .expect("write");
            }
        }
    }

    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("write rules");
    let mut test = String::from("rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n");
    for (inst, p) in PATTERNS {
        let values: Vec<&str> = p
            .chars()
            .map(|c| if c == '1' { "1" } else { "0" })
            .collect();
        writeln!(
            test,
            "  - series: 'flap{{inst=\"{inst}\"}}'\n    values: '{}'",
            values.join(" ")
        )
        .expect("write");
    }
    test.push_str("  alert_rule_test:\n");
    test.push_str(&alert_cases);
    test.push_str("  promql_expr_test:\n");
    test.push_str(&expr_cases);
    crate::support::promtool_test_rules(&promtool, dir.path(), &test, "Prometheus disagrees");
}
