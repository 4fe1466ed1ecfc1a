//! The text of unit-test failures, laid out like promtool's (label sets in
//! Go's `{a="b"}` form, floats in Go's `%E` form, nested indentation), so
//! people and scripts that read promtool's output can read ours.

use std::time::Duration;

use crate::labels::Labels;
use crate::rules::template::gofmt::{format_float, go_quote};
use vigil_common::duration::format_duration;

/// A label set or an annotation set as compared by promtool: sorted pairs,
/// empty values kept (an expected `x: ""` is not the same as no `x`).
pub type Pairs = Vec<(String, String)>;

/// Converts a label set into comparable pairs.
pub fn pairs_of(labels: &Labels) -> Pairs {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

/// Go's `labels.Labels.String()`: `{__name__="m", a="b"}`.
pub fn pairs_string(pairs: &Pairs) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{n}={}", go_quote(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `3E-01`, `1.5E+01`, `NaN`.
pub fn float_e(v: f64) -> String {
    let s = format_float(v, 'e', None);
    if v.is_finite() {
        s.to_uppercase()
    } else {
        s
    }
}

/// Go's `time.Duration.String()`: `0s`, `1m0s`, `1h2m3.5s`, `500ms`.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let (s, frac) = (ms / 1000 % 60, ms % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

/// Prometheus' `model.Duration.String()` for eval times.
pub fn model_duration(d: Duration) -> String {
    format_duration(d)
}

/// Indents every line after the first, as promtool's `indentLines`.
fn indent_lines(text: &str, indent: &str) -> String {
    text.replace('\n', &format!("\n{indent}"))
}

/// One alert as promtool compares it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertView {
    pub labels: Pairs,
    pub annotations: Pairs,
}

/// promtool's list rendering of alerts: `[]`, or numbered entries.
fn alerts_string(alerts: &[AlertView]) -> String {
    if alerts.is_empty() {
        return "[]".into();
    }
    let mut s = String::from("[");
    for (i, a) in alerts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let entry = format!(
            "\nLabels:{}\nAnnotations:{}",
            pairs_string(&a.labels),
            pairs_string(&a.annotations)
        );
        s.push_str(&format!("\n{i}:{}", indent_lines(&entry, "  ")));
    }
    s.push_str("\n]");
    s
}

/// The failure text of an alert test.
pub fn alert_failure(
    group_name: Option<&str>,
    alertname: &str,
    eval_time: Duration,
    exp: &[AlertView],
    got: &[AlertView],
) -> String {
    let name = group_name
        .filter(|n| !n.is_empty())
        .map(|n| format!("    name: {n},\n"))
        .unwrap_or_default();
    let indent = "            ";
    format!(
        "{name}    alertname: {alertname}, time: {}, \n        exp:{}, \n        got:{}",
        model_duration(eval_time),
        indent_lines(&alerts_string(exp), indent),
        indent_lines(&alerts_string(got), indent)
    )
}

/// One sample as promtool compares it.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleView {
    pub labels: Pairs,
    pub value: f64,
}

fn samples_string(samples: &[SampleView]) -> String {
    if samples.is_empty() {
        return "nil".into();
    }
    samples
        .iter()
        .map(|s| format!("{} {}", pairs_string(&s.labels), float_e(s.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The failure text of a PromQL test whose result differs.
pub fn promql_failure(
    expr: &str,
    eval_time: Duration,
    exp: &[SampleView],
    got: &[SampleView],
) -> String {
    format!(
        "    expr: {}, time: {},\n        exp: {}\n        got: {}",
        go_quote(expr),
        model_duration(eval_time),
        samples_string(exp),
        samples_string(got)
    )
}

/// The failure text of a PromQL test that could not run.
pub fn promql_error(expr: &str, eval_time: Duration, err: &str) -> String {
    format!(
        "    expr: {}, time: {}, err: {err}",
        go_quote(expr),
        model_duration(eval_time)
    )
}

/// The failure text of a rule that failed to evaluate.
pub fn rule_error(rule: &str, at: Duration, err: &str) -> String {
    format!("    rule: {rule}, time: {}, err: {err}", go_duration(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Pairs {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn floats_print_in_go_exponent_form() {
        assert_eq!(float_e(0.3), "3E-01");
        assert_eq!(float_e(0.30000000000000004), "3.0000000000000004E-01");
        assert_eq!(float_e(11.0), "1.1E+01");
        assert_eq!(float_e(f64::NAN), "NaN");
        assert_eq!(float_e(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_millis(3_723_500)), "1h2m3.5s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(model_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn alert_failure_matches_promtool_layout() {
        let got = [AlertView {
            labels: p(&[("alertname", "A"), ("i", "a")]),
            annotations: p(&[("e", ""), ("summary", "v=6")]),
        }];
        let text = alert_failure(Some("grp1"), "A", Duration::from_secs(300), &[], &got);
        let expected = "    name: grp1,\n    alertname: A, time: 5m, \n        exp:[], \n        got:[\n            0:\n              Labels:{alertname=\"A\", i=\"a\"}\n              Annotations:{e=\"\", summary=\"v=6\"}\n            ]";
        assert_eq!(text, expected);
    }

    #[test]
    fn promql_failure_matches_promtool_layout() {
        let exp = [SampleView {
            labels: p(&[("__name__", "m"), ("i", "a")]),
            value: 11.0,
        }];
        let text = promql_failure("m", Duration::from_secs(180), &exp, &[]);
        assert_eq!(
            text,
            "    expr: \"m\", time: 3m,\n        exp: {__name__=\"m\", i=\"a\"} 1.1E+01\n        got: nil"
        );
    }
}
