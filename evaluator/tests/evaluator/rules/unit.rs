//! `vigil-evaluator test rules`: the shipped rule tests pass, and each
//! feature of the promtool unit-test format behaves as promtool 2.42's
//! (alert checks of firing alerts only, the step an `eval_time` between
//! steps is checked against, `keep_firing_for`, recording rules feeding
//! alerts in `group_eval_order`, staleness, templates, exact float
//! comparison, the output layout and the exit status).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::cargo_bin;
use vigil_evaluator::rules::unit_test::{run_test_file, FileReport};
use vigil_testkit::workspace_root;

const RULES: &str = r#"groups:
- name: rec
  rules:
  - record: job:m:sum
    expr: sum by (job) (m)
- name: alerts
  rules:
  - alert: High
    expr: m > 1
    for: 2m
    labels:
      severity: page
      owner: '{{ $labels.inst }}-team'
    annotations:
      summary: '{{ $labels.inst }} is {{ $value | humanize }}'
      link: '{{ $externalURL }}/{{ $externalLabels.site }}'
      vigil_cooldown: 10m
  - alert: Sticky
    expr: m > 1
    keep_firing_for: 2m
  - alert: SumHigh
    expr: job:m:sum > 3
"#;

/// Writes the rule file and a test file with `tests` (YAML list items,
/// indented by two) into a fresh directory and runs it.
fn run_tests(tests: &str) -> (tempfile::TempDir, PathBuf, FileReport) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), RULES).expect("write rules");
    let path = dir.path().join("test.yaml");
    let text = format!(
        "rule_files: ['rul*.yaml']\nevaluation_interval: 1m\ngroup_eval_order: [rec, alerts]\ntests:\n{tests}"
    );
    std::fs::write(&path, text).expect("write test");
    let report = run_test_file(&path);
    (dir, path, report)
}

fn assert_passes(tests: &str) {
    let (_dir, _path, report) = run_tests(tests);
    assert!(
        report.passed(),
        "expected success, got {:#?}",
        report.errors
    );
}

fn assert_fails(tests: &str) -> String {
    let (_dir, _path, report) = run_tests(tests);
    assert!(!report.passed(), "expected a failure");
    report.errors.join("\n")
}

const INPUT: &str = r#"- interval: 1m
  external_labels: {site: eu}
  external_url: http://vigil.example
  input_series:
  - series: 'm{job="j", inst="a"}'
    values: '0 2 2 2 2 2 0 0 0 0'
  - series: 'm{job="j", inst="b"}'
    values: '1 1 1 1 stale _ 1 1 1 1'
"#;

const HIGH_A: &str = r#"    - exp_labels: {severity: page, owner: a-team, inst: a, job: j}
      exp_annotations:
        summary: a is 2
        link: http://vigil.example/eu
        vigil_cooldown: 10m
"#;

#[test]
fn shipped_rule_tests_pass() {
    let dir = workspace_root().join("rules/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("rules/tests exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "shipped test files: {files:?}");
    for f in &files {
        let report = run_test_file(f);
        assert!(report.passed(), "{}: {:#?}", f.display(), report.errors);
    }
}

#[test]
fn alert_fires_only_once_for_has_elapsed() {
    // Active from 1m with for: 2m: pending at 2m, firing at 3m.
    assert_passes(&format!(
        "{INPUT}  alert_rule_test:\n  - eval_time: 2m\n    alertname: High\n  - eval_time: 3m\n    alertname: High\n    exp_alerts:\n{HIGH_A}"
    ));
    let failure = assert_fails(&format!(
        "{INPUT}  alert_rule_test:\n  - eval_time: 2m\n    alertname: High\n    exp_alerts:\n{HIGH_A}"
    ));
    assert!(failure.contains("alertname: High, time: 2m"), "{failure}");
    assert!(failure.contains("got:[]"), "{failure}");
}

#[test]
fn eval_time_between_steps_is_checked_against_the_step_before() {
    // 2m59s is checked against the 2m step, where High is still pending.
    assert_passes(&format!(
        "{INPUT}  alert_rule_test:\n  - eval_time: 2m59s\n    alertname: High\n"
    ));
}

#[test]
fn annotations_must_match_after_templating_including_vigil_cooldown() {
    let without_cooldown = HIGH_A.replace("        vigil_cooldown: 10m\n", "");
    let failure = assert_fails(&format!(
        "{INPUT}  alert_rule_test:\n  - eval_time: 4m\n    alertname: High\n    exp_alerts:\n{without_cooldown}"
    ));
    assert!(
        failure.contains(r#"vigil_cooldown="10m""#),
        "got side shows the annotation: {failure}"
    );
}

#[test]
fn keep_firing_for_holds_an_alert_after_its_condition_clears() {
    // m{inst="a"} drops at 6m; Sticky keeps firing until 8m.
    let sticky = "    - exp_labels: {inst: a, job: j}\n";
    assert_passes(&format!(
        "{INPUT}  alert_rule_test:\n  - eval_time: 7m\n    alertname: Sticky\n    exp_alerts:\n{sticky}  - eval_time: 8m\n    alertname: Sticky\n"
    ));
}

#[test]
fn recording_rule_output_feeds_an_alert_in_the_same_step() {
    // a=2 and b=1 from 1m: the sum 3 is not above 3; at 0m the sum is 1.
    // b is stale at 4m, so only a=2 counts then.
    assert_passes(&format!(
        "{INPUT}  alert_rule_test:\n  - eval_time: 3m\n    alertname: SumHigh\n  promql_expr_test:\n  - expr: job:m:sum\n    eval_time: 3m\n    exp_samples:\n    - labels: 'job:m:sum{{job=\"j\"}}'\n      value: 3\n  - expr: job:m:sum\n    eval_time: 4m\n    exp_samples:\n    - labels: 'job:m:sum{{job=\"j\"}}'\n      value: 2\n"
    ));
}

#[test]
fn stale_marker_hides_a_series_until_its_next_sample() {
    assert_passes(&format!(
        "{INPUT}  promql_expr_test:\n  - expr: m{{inst=\"b\"}}\n    eval_time: 5m\n  - expr: m{{inst=\"b\"}}\n    eval_time: 6m\n    exp_samples:\n    - labels: 'm{{job=\"j\", inst=\"b\"}}'\n      value: 1\n"
    ));
}

#[test]
fn float_comparison_is_exact_and_nan_never_matches() {
    let failure = assert_fails(&format!(
        "{INPUT}  promql_expr_test:\n  - expr: m{{inst=\"a\"}} + 0.1 + 0.2\n    eval_time: 0m\n    exp_samples:\n    - labels: '{{job=\"j\", inst=\"a\"}}'\n      value: 0.3\n  - expr: m{{inst=\"b\"}} * NaN\n    eval_time: 0m\n    exp_samples:\n    - labels: '{{job=\"j\", inst=\"b\"}}'\n      value: .NaN\n"
    ));
    assert!(
        failure.contains(r#"exp: {inst="a", job="j"} 3E-01"#),
        "{failure}"
    );
    assert!(failure.contains("3.0000000000000004E-01"), "{failure}");
    assert!(
        failure.contains(r#"got: {inst="b", job="j"} NaN"#),
        "{failure}"
    );
}

#[test]
fn sample_order_does_not_matter_but_labels_do() {
    assert_passes(&format!(
        "{INPUT}  promql_expr_test:\n  - expr: m\n    eval_time: 0m\n    exp_samples:\n    - labels: 'm{{job=\"j\", inst=\"b\"}}'\n      value: 1\n    - labels: 'm{{job=\"j\", inst=\"a\"}}'\n      value: 0\n"
    ));
    assert_fails(&format!(
        "{INPUT}  promql_expr_test:\n  - expr: m\n    eval_time: 0m\n    exp_samples:\n    - labels: 'm{{job=\"j\", inst=\"b\"}}'\n      value: 1\n    - labels: 'm{{job=\"k\", inst=\"a\"}}'\n      value: 0\n"
    ));
}

#[test]
fn without_an_interval_every_value_lands_at_time_zero() {
    // promtool 2.42 does not default `interval`: all values share t=0 and
    // the first one is kept.
    assert_passes(
        "- input_series:\n  - series: 'm{job=\"j\", inst=\"a\"}'\n    values: '5 6 7'\n  promql_expr_test:\n  - expr: m\n    eval_time: 2m\n    exp_samples:\n    - labels: 'm{job=\"j\", inst=\"a\"}'\n      value: 5\n",
    );
}

#[test]
fn a_test_without_alertname_is_rejected_with_the_group_name() {
    let failure = assert_fails(&format!(
        "{INPUT}  name: named\n  alert_rule_test:\n  - eval_time: 1m\n"
    ));
    assert!(
        failure
            .contains("misses required attribute alertname at eval_time 1m (in TestGroup named)"),
        "{failure}"
    );
}

fn cli(files: &[&Path]) -> (i32, String, String) {
    let out = Command::new(cargo_bin("vigil-evaluator"))
        .args(["test", "rules"])
        .args(files)
        .output()
        .expect("run vigil-evaluator");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_reports_like_promtool_and_exits_1_on_any_failure() {
    let (dir, passing, _) = run_tests(&format!(
        "{INPUT}  alert_rule_test:\n  - eval_time: 2m\n    alertname: High\n"
    ));
    let (code, stdout, stderr) = cli(&[&passing]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        stdout,
        format!("Unit Testing:  {}\n  SUCCESS\n\n", passing.display())
    );

    let failing = dir.path().join("failing.yaml");
    std::fs::write(
        &failing,
        format!(
            "rule_files: [rules.yaml]\ntests:\n{INPUT}  name: grp\n  alert_rule_test:\n  - eval_time: 5m\n    alertname: High\n"
        ),
    )
    .expect("write");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "tests: [{unknown_field: 1}]\n").expect("write");
    let (code, stdout, stderr) = cli(&[&passing, &failing, &broken]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("Unit Testing:  {}\n", failing.display())));
    assert!(stdout.contains(&format!("Unit Testing:  {}\n", broken.display())));
    assert!(
        stderr.starts_with("  FAILED:\n    name: grp,\n    alertname: High, time: 5m, \n        exp:[], \n        got:[\n            0:\n"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown_field"), "{stderr}");
}

#[test]
fn later_input_line_replaces_a_series_and_only_samples_up_to_the_last_step_load() {
    // Steps run at 0m and 1m (evaluation_interval 1m, eval_time 1m30s), so
    // the values at 1m30s are never loaded, as in promtool.
    assert_passes(
        "- interval: 30s\n  input_series:\n  - series: 'm{job=\"j\", inst=\"a\"}'\n    values: '1 2 3 4'\n  - series: 'm{job=\"j\", inst=\"a\"}'\n    values: '7 8 _ 9'\n  - series: 'n'\n    values: '1 _ _ 4'\n  promql_expr_test:\n  - expr: m\n    eval_time: 90s\n    exp_samples:\n    - labels: 'm{job=\"j\", inst=\"a\"}'\n      value: 8\n  - expr: n\n    eval_time: 90s\n    exp_samples:\n    - labels: n\n      value: 1\n",
    );
}

#[test]
fn rule_file_pattern_matching_nothing_is_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("test.yaml");
    std::fs::write(&path, "rule_files: ['none*.yaml']\ntests: []\n").expect("write");
    let report = run_test_file(&path);
    assert!(report.passed(), "{:#?}", report.errors);
    assert_eq!(
        report.warnings,
        [format!(
            "no file match pattern {}",
            dir.path().join("none*.yaml").display()
        )]
    );
}

#[test]
fn a_missing_eval_time_means_time_zero() {
    assert_passes(&format!(
        "{INPUT}  promql_expr_test:\n  - expr: m{{inst=\"b\"}}\n    exp_samples:\n    - labels: 'm{{job=\"j\", inst=\"b\"}}'\n      value: 1\n"
    ));
}
