//! Real Prometheus as the oracle for the template engine: expands a set of
//! annotation templates over tricky values with Vigil's engine, writes them
//! as the expected annotations of a promtool unit test, and runs
//! `promtool test rules`, which passes only if Prometheus' Go templates
//! produce the very same strings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use vigil_evaluator::rules::template::{expand, TemplateData, TemplateSample};
use vigil_testkit::external_tool;

const VALUES: &[(&str, f64)] = &[
    ("0", 0.0),
    ("1234567", 1234567.0),
    ("0.000123", 0.000123),
    ("-2500", -2500.0),
    ("1e-9", 1e-9),
    ("12345.678", 12345.678),
    ("0.5", 0.5),
    ("86399.5", 86399.5),
    ("1e21", 1e21),
    ("3", 3.0),
    ("0.125", 0.125),
    ("999.95", 999.95),
    ("-0.0625", -0.0625),
    ("100000", 100000.0),
    ("1000000", 1000000.0),
    ("NaN", f64::NAN),
    ("+Inf", f64::INFINITY),
    ("-Inf", f64::NEG_INFINITY),
    ("1.5e9", 1.5e9),
];

const TEMPLATES: &[&str] = &[
    "{{ $value }}",
    "{{ humanize $value }}",
    "{{ humanize1024 $value }}",
    "{{ humanizeDuration $value }}",
    "{{ humanizePercentage $value }}",
    "{{ printf \"%.2f|%g|%e|%v|%8.3f|%-10.1e|%.0f|%.3g\" $value $value $value $value $value $value $value $value }}",
    "{{ printf \"%d %s %q %5.1f%%\" $value $value $labels.case $value }}",
    "{{ $labels }}",
    "{{ if gt $value 100.0 }}big{{ else if lt $value 0.0 }}negative{{ else }}small{{ end }}",
    "[{{ $labels.missing }}][{{ index $labels \"missing\" }}]",
    "{{ title \"foo bar-baz_qux\" }} {{ toUpper $labels.case }} {{ reReplaceAll \"([0-9])\" \"<$1>\" $labels.case }}",
    "{{ humanizeTimestamp 1435065584.128 }}",
    "{{ humanizeTimestamp $value }}",
    "{{ humanize \"abc\" }}",
    "{{ with query \"tmpl_value{case='3'}\" }}{{ . | first | value | humanize }}{{ end }}",
    "{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}",
    "{{- /* comment */ -}}  {{ len $labels }} {{ $labels.case | len }}  {{- \" end\" }}",
    "{{ $x := \"a\" }}{{ if true }}{{ $x = \"b\" }}{{ end }}{{ $x }} {{ printf \"%v %v\" true 42 }}",
    "{{ printf \"%x|%X|%o|%b|%c|%t|%+d|% d|%05d|%+.1f|%05.1f\" 255 255 8 5 65 true 7 7 -42 $value $value }}",
    "{{ printf \"%10s|%-10s|%.3s|%q|%x|%v|%s\" $labels.case $labels.case \"abcdef\" \"tab\\there\" \"hi\" $labels $externalLabels }}",
    "{{ printf \"%s %d\" }}{{ printf \"x\" 1 \"y\" }}{{ printf \"%!\" }}",
    "{{ printf \"%G|%E|%.3e|%10.4g|%-12g|\" $value $value $value $value $value }}",
    "{{ humanize \"1e3\" }} {{ humanizeDuration \"90\" }} {{ humanizePercentage 1 }} {{ humanize1024 1024 }}",
];

fn labels_for(case: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("__name__".to_string(), "tmpl_value".to_string()),
        ("case".to_string(), case.to_string()),
    ])
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| panic!("cannot quote {s:?}: {e}"))
}

#[test]
fn annotations_expand_exactly_as_prometheus_expands_them() {
    let Some(promtool) = external_tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");

    let mut rules = String::from(
        "groups:\n- name: oracle\n  rules:\n  - alert: T\n    expr: tmpl_value\n    annotations:\n",
    );
    for (i, t) in TEMPLATES.iter().enumerate() {
        writeln!(rules, "      a{i:02}: {}", yaml_str(t)).expect("write");
    }
    std::fs::write(dir.path().join("rules.yaml"), &rules).expect("write rules");

    let query = |q: &str| -> Result<Vec<TemplateSample>, String> {
        assert_eq!(q, "tmpl_value{case='3'}");
        Ok(vec![TemplateSample {
            labels: labels_for("3"),
            value: 3.0,
        }])
    };
    let mut test = String::from(
        "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n",
    );
    for (case, _) in VALUES {
        writeln!(
            test,
            "  - series: 'tmpl_value{{case=\"{case}\"}}'\n    values: '{case}'"
        )
        .expect("write");
    }
    test.push_str("  alert_rule_test:\n  - eval_time: 0m\n    alertname: T\n    exp_alerts:\n");
    for (case, value) in VALUES {
        writeln!(
            test,
            "    - exp_labels: {{case: {}}}\n      exp_annotations:",
            yaml_str(case)
        )
        .expect("write");
        let data = TemplateData {
            labels: labels_for(case),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            value: *value,
        };
        for (i, t) in TEMPLATES.iter().enumerate() {
            // As the alerting rule does with a template error.
            let expanded = expand("__alert_T", t, &data, &query)
                .unwrap_or_else(|e| format!("<error expanding template: {e}>"));
            writeln!(test, "        a{i:02}: {}", yaml_str(&expanded)).expect("write");
        }
    }
    crate::support::promtool_test_rules(
        &promtool,
        dir.path(),
        &test,
        "Prometheus expanded differently",
    );
}
