//! `promtool check rules` as the oracle for rule-file validation: for a
//! corpus of valid and broken rule files, Vigil accepts exactly the files
//! promtool accepts.

use std::path::Path;
use std::process::Command;

use vigil_evaluator::rules::file::load_rule_file;
use vigil_testkit::external_tool;

const HEAD: &str = "groups:\n- name: g\n  rules:\n";

/// (case name, rules of group `g`) — or a whole file when it starts with `groups:`.
const CASES: &[(&str, &str)] = &[
    ("valid", "  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: Down\n    expr: up == 0\n    for: 5m\n    keep_firing_for: 2m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.job }} {{ $value | humanize }} {{ $externalLabels.cluster }}'}\n"),
    ("numbers as label values", "  - alert: A\n    expr: up\n    labels: {priority: 1, urgent: true}\n"),
    ("record and alert", "  - record: a\n    alert: A\n    expr: up\n"),
    ("neither record nor alert", "  - expr: up\n"),
    ("missing expr", "  - alert: A\n"),
    ("unparsable expr", "  - alert: A\n    expr: 'sum(rate(x[5m])'\n"),
    ("bad range", "  - record: a\n    expr: 'rate(x[5x])'\n"),
    ("for on recording rule", "  - record: a\n    expr: up\n    for: 5m\n"),
    ("zero for on recording rule", "  - record: a\n    expr: up\n    for: 0s\n"),
    ("keep_firing_for on recording rule", "  - record: a\n    expr: up\n    keep_firing_for: 5m\n"),
    ("annotations on recording rule", "  - record: a\n    expr: up\n    annotations: {x: y}\n"),
    ("invalid record name", "  - record: 'a-b'\n    expr: up\n"),
    ("record name with colon", "  - record: 'a:b:c'\n    expr: up\n"),
    ("invalid label name", "  - alert: A\n    expr: up\n    labels: {'a-b': x}\n"),
    // Issue 16 thought promtool rejects alert names that are not metric
    // names; promtool 2.42 accepts them (the name becomes the value of
    // `alertname`, and any label value is valid), and so does Vigil.
    ("alert name with spaces and punctuation", "  - alert: 'bad name!'\n    expr: up\n"),
    ("alert name starting with a digit", "  - alert: '9lives'\n    expr: up\n"),
    ("__name__ label", "  - alert: A\n    expr: up\n    labels: {__name__: x}\n"),
    ("invalid annotation name", "  - alert: A\n    expr: up\n    annotations: {'a b': x}\n"),
    ("unclosed template", "  - alert: A\n    expr: up\n    annotations: {s: '{{ $labels.x'}\n"),
    ("undefined function", "  - alert: A\n    expr: up\n    annotations: {s: '{{ nosuch 1 }}'}\n"),
    ("undefined variable", "  - alert: A\n    expr: up\n    labels: {s: '{{ $nosuch }}'}\n"),
    ("if without end", "  - alert: A\n    expr: up\n    annotations: {s: '{{ if true }}x'}\n"),
    ("break outside range", "  - alert: A\n    expr: up\n    annotations: {s: '{{ break }}'}\n"),
    ("template syntax in recording rule label", "  - record: a\n    expr: up\n    labels: {s: '{{ oops'}\n"),
    ("unknown rule field", "  - alert: A\n    expr: up\n    severity: high\n"),
    ("bad for duration", "  - alert: A\n    expr: up\n    for: 5 minutes\n"),
    ("rich template", "  - alert: A\n    expr: up\n    annotations: {s: '{{ range $k, $v := $labels }}{{ $k }}={{ $v | toUpper }}{{ else }}none{{ end }}{{ with query \"up\" }}{{ . | first | value | printf \"%.1f\" }}{{ end }}{{- /* c */ -}}'}\n"),
    ("duplicate group", "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n"),
    ("empty group name", "groups:\n- name: ''\n  rules: []\n"),
    ("bad interval", "groups:\n- name: g\n  interval: often\n  rules: []\n"),
    ("unknown group field", "groups:\n- name: g\n  colour: blue\n  rules: []\n"),
    ("empty file", ""),
    ("zero interval", "groups:\n- name: g\n  interval: 0s\n  rules: []\n"),
    ("negative limit", "groups:\n- name: g\n  limit: -1\n  rules: []\n"),
    ("rules not a list", "groups:\n- name: g\n  rules: {a: b}\n"),
    ("groups not a list", "groups: x\n"),
    ("top level list", "- name: g\n"),
    ("expr as number", "  - record: a\n    expr: 1\n"),
];

#[test]
fn vigil_accepts_exactly_the_rule_files_promtool_accepts() {
    let Some(promtool) = external_tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut disagreements = Vec::new();
    for (i, (name, body)) in CASES.iter().enumerate() {
        let text = if body.starts_with("groups:") || body.starts_with("- name") || body.is_empty() {
            body.to_string()
        } else {
            format!("{HEAD}{body}")
        };
        let path = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&path, &text).expect("write case");
        let promtool_ok = Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(&path)
            .output()
            .expect("run promtool")
            .status
            .success();
        let vigil = load_rule_file(Path::new(&path));
        if promtool_ok != vigil.is_ok() {
            disagreements.push(format!(
                "{name}: promtool ok={promtool_ok}, vigil={vigil:?}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "disagreements:\n{}",
        disagreements.join("\n")
    );
}
