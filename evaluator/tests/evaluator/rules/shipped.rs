//! The shipped rule files (`rules/*.yaml`) and their promtool unit tests
//! (`rules/tests/*.yaml`): real promtool accepts and passes them, Vigil's
//! own checker accepts them, and every alerting rule is tested both firing
//! and not firing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::cargo_bin;
use vigil_evaluator::rules::file::{load_rule_files, RuleSpec};
use vigil_evaluator::rules::unit_test::load_test_file;
use vigil_testkit::{external_tool, workspace_root};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn rule_files() -> Vec<PathBuf> {
    yaml_files(&workspace_root().join("rules"))
}

fn test_files() -> Vec<PathBuf> {
    yaml_files(&workspace_root().join("rules/tests"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn promtool_check_rules_accepts_the_shipped_rules() {
    let Some(promtool) = external_tool("promtool") else {
        return;
    };
    let files = rule_files();
    assert!(
        files.len() >= 4,
        "expected the shipped rule files, found {files:?}"
    );
    let (ok, text) = run(Command::new(promtool)
        .arg("check")
        .arg("rules")
        .args(&files));
    assert!(ok, "promtool check rules failed:\n{text}");
}

#[test]
fn promtool_test_rules_passes_the_shipped_rule_tests() {
    let Some(promtool) = external_tool("promtool") else {
        return;
    };
    let files = test_files();
    assert!(!files.is_empty(), "no rule tests in rules/tests");
    let (ok, text) = run(Command::new(promtool).arg("test").arg("rules").args(&files));
    assert!(ok, "promtool test rules failed:\n{text}");
    assert_eq!(text.matches("SUCCESS").count(), files.len(), "{text}");
}

#[test]
fn vigil_check_rules_accepts_the_shipped_rules_and_rejects_a_broken_file() {
    let bin = cargo_bin("vigil-evaluator");
    let (ok, text) = run(Command::new(&bin)
        .arg("check")
        .arg("rules")
        .args(rule_files()));
    assert!(ok, "vigil-evaluator check rules failed:\n{text}");
    assert!(text.contains("SUCCESS: 9 rules found"), "{text}");

    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: 'rate(x[5m]'\n",
    )
    .expect("write");
    let out = Command::new(&bin)
        .arg("check")
        .arg("rules")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.yaml:5:11: groups[0].rules[0].expr: could not parse expression"),
        "{stdout}"
    );
}

#[test]
fn every_shipped_alert_has_severity_annotations_for_and_cooldown() {
    let groups = load_rule_files(&rule_files()).unwrap_or_else(|e| panic!("{e}"));
    let mut alerts = 0;
    for rule in groups.iter().flat_map(|g| &g.rules) {
        let RuleSpec::Alerting(a) = rule else {
            continue;
        };
        alerts += 1;
        assert!(
            matches!(
                a.labels.get("severity").map(String::as_str),
                Some("warning" | "critical")
            ),
            "{}",
            a.alert
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(a.annotations.contains_key(key), "{} lacks {key}", a.alert);
        }
        assert!(!a.for_.is_zero(), "{} has no `for`", a.alert);
        assert!(a.cooldown.is_some(), "{} has no cooldown", a.alert);
    }
    assert!(alerts >= 8, "only {alerts} alerting rules");
}

#[test]
fn every_shipped_alert_is_tested_firing_and_not_firing() {
    let groups = load_rule_files(&rule_files()).unwrap_or_else(|e| panic!("{e}"));
    let alert_names: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            RuleSpec::Alerting(a) => Some(a.alert.clone()),
            RuleSpec::Recording(_) => None,
        })
        .collect();
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    for file in test_files() {
        let tests = load_test_file(&file).unwrap_or_else(|e| panic!("{e}"));
        for case in tests.tests.iter().flat_map(|t| &t.alert_rule_test) {
            if case.exp_alerts.is_empty() {
                silent.insert(case.alertname.clone());
            } else {
                firing.insert(case.alertname.clone());
            }
        }
    }
    for name in &alert_names {
        assert!(firing.contains(name), "{name} is never tested firing");
        assert!(silent.contains(name), "{name} is never tested not firing");
    }
}
