//! Routing compatibility with Alertmanager: random route trees and label sets
//! (seeded, bounded) are routed by both `vigil-evaluator routes test` and
//! `amtool config routes test`, and the printed receivers must be identical;
//! config validation must accept and reject the same generated configs as
//! `amtool check-config`.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support::rng::Rng;
use std::path::Path;
use std::process::{Command, Output};

const CONFIGS: usize = 40;
const LABEL_SETS_PER_CONFIG: usize = 10;
const LABEL_NAMES: [&str; 4] = ["a", "b", "c", "team"];
const VALUES: [&str; 4] = ["x", "y", "z", ""];
/// Regexes whose meaning is the same in Go's RE2 and Rust's regex crate.
const REGEXES: [&str; 7] = ["x|y", "x.*", "[xz]", ".*", "y?", "(x|z)", ".+"];
const RECEIVERS: [&str; 4] = ["r0", "r1", "r2", "r3"];

fn matcher_string(rng: &mut Rng) -> String {
    let name = rng.pick(&LABEL_NAMES);
    let (op, value) = match rng.below(4) {
        0 => ("=", rng.pick(&VALUES)),
        1 => ("!=", rng.pick(&VALUES)),
        2 => ("=~", rng.pick(&REGEXES)),
        _ => ("!~", rng.pick(&REGEXES)),
    };
    let quoted = value.is_empty() || value.contains('|') || rng.chance(50);
    if quoted {
        format!("{name}{op}\"{value}\"")
    } else {
        format!("{name}{op}{value}")
    }
}

/// YAML for one route's matching fields, at `indent`.
fn route_matchers(rng: &mut Rng, indent: &str) -> String {
    let mut out = String::new();
    if rng.chance(50) {
        let entries: Vec<String> = (0..1 + rng.below(2))
            .map(|_| {
                // Sometimes two matchers share one entry, comma-separated.
                let m = if rng.chance(20) {
                    format!("{}, {}", matcher_string(rng), matcher_string(rng))
                } else {
                    matcher_string(rng)
                };
                format!("'{m}'")
            })
            .collect();
        out.push_str(&format!("{indent}matchers: [{}]\n", entries.join(", ")));
    }
    if rng.chance(30) {
        let name = rng.pick(&LABEL_NAMES);
        out.push_str(&format!(
            "{indent}match: {{{name}: '{}'}}\n",
            rng.pick(&VALUES[..3])
        ));
    }
    if rng.chance(25) {
        let name = rng.pick(&LABEL_NAMES);
        out.push_str(&format!(
            "{indent}match_re: {{{name}: '{}'}}\n",
            rng.pick(&REGEXES)
        ));
    }
    out
}

fn route_options(rng: &mut Rng, indent: &str, out: &mut String) {
    if rng.chance(30) {
        let group_by = rng.pick(&["[]", "[a]", "['...']", "[a, team]", "[alertname]"]);
        out.push_str(&format!("{indent}group_by: {group_by}\n"));
    }
    if rng.chance(20) {
        let d = rng.pick(&["10s", "1m", "1h30m", "0s"]);
        out.push_str(&format!("{indent}group_wait: {d}\n"));
    }
    if rng.chance(15) {
        let d = rng.pick(&["1m", "2h", "1d"]);
        out.push_str(&format!("{indent}repeat_interval: {d}\n"));
    }
}

fn child_routes(rng: &mut Rng, depth: usize, indent: &str, out: &mut String) {
    let count = if depth >= 3 { 0 } else { rng.below(4) };
    if count == 0 {
        return;
    }
    out.push_str(&format!("{indent}routes:\n"));
    for _ in 0..count {
        let item = format!("{indent}    ");
        let mut body = String::new();
        if rng.chance(80) {
            body.push_str(&format!("{item}receiver: {}\n", rng.pick(&RECEIVERS)));
        }
        body.push_str(&route_matchers(rng, &item));
        if rng.chance(40) {
            body.push_str(&format!("{item}continue: true\n"));
        }
        route_options(rng, &item, &mut body);
        child_routes(rng, depth + 1, &item, &mut body);
        if body.is_empty() {
            body.push_str(&format!("{item}continue: false\n"));
        }
        // Turn the first line into the list item.
        let body = format!("{indent}  - {}", &body[item.len()..]);
        out.push_str(&body);
    }
}

/// A random config; about one in eight carries a deliberate defect.
fn random_config(rng: &mut Rng) -> String {
    let mut out = String::from("route:\n  receiver: r0\n");
    route_options(rng, "  ", &mut out);
    child_routes(rng, 1, "  ", &mut out);
    out.push_str("receivers:\n");
    for name in RECEIVERS {
        out.push_str(&format!("  - name: {name}\n"));
    }
    if rng.chance(12) {
        let defect = rng.pick(&[
            "  - name: r0\n",
            "inhibit_rules: [{equal: ['1x']}]\n",
            "route2: {}\n",
        ]);
        out.push_str(defect);
    }
    if rng.chance(5) {
        out = out.replacen("receiver: r0", "receiver: nobody", 1);
    }
    out
}

fn random_labels(rng: &mut Rng) -> Vec<String> {
    let mut args = Vec::new();
    for _ in 0..rng.below(5) {
        let name = rng.pick(&LABEL_NAMES);
        let value = rng.pick(&VALUES);
        args.push(if rng.chance(30) {
            format!("{name}=\"{value}\"")
        } else {
            format!("{name}={value}")
        });
    }
    args
}

/// Whether `amtool check-config` accepts the file at `path`, and what
/// Vigil's loader makes of it.
fn check_config_both(
    amtool: &Path,
    path: &Path,
) -> (
    bool,
    Result<
        vigil_evaluator::notify::config::NotifyConfig,
        vigil_evaluator::notify::config::ConfigError,
    >,
) {
    let accepted = run(Command::new(amtool).arg("check-config").arg(path))
        .status
        .success();
    (accepted, vigil_evaluator::notify::config::load_file(path))
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"))
}

fn vigil_routes(config: &Path, labels: &[String]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_vigil-evaluator"))
        .args(["routes", "test", "--notify-config"])
        .arg(config)
        .args(labels))
}

fn amtool_routes(amtool: &Path, config: &Path, labels: &[String]) -> Output {
    run(Command::new(amtool)
        .args(["config", "routes", "test", "--config.file"])
        .arg(config)
        .args(labels))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn random_route_trees_route_like_amtool() {
    let Some(amtool) = vigil_testkit::external_tool("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x5eed_0001);
    let (mut compared, mut accepted_configs, mut multi, mut rejected) = (0, 0, 0, 0);
    for case in 0..CONFIGS {
        let yaml = random_config(&mut rng);
        let path = dir.path().join(format!("config-{case}.yaml"));
        std::fs::write(&path, &yaml).unwrap();
        let (amtool_ok, ours) = check_config_both(&amtool, &path);
        assert_eq!(
            ours.is_ok(),
            amtool_ok,
            "case {case}: amtool check-config {} but we {}:\n{yaml}\n{:?}",
            if amtool_ok { "accepts" } else { "rejects" },
            if ours.is_ok() { "accept" } else { "reject" },
            ours.err().map(|e| e.to_string()),
        );
        if !amtool_ok {
            rejected += 1;
            continue;
        }
        accepted_configs += 1;
        for _ in 0..LABEL_SETS_PER_CONFIG {
            let labels = random_labels(&mut rng);
            let theirs = amtool_routes(&amtool, &path, &labels);
            let ours = vigil_routes(&path, &labels);
            assert!(theirs.status.success(), "amtool failed on {labels:?}");
            assert!(
                ours.status.success(),
                "case {case} {labels:?}: {}",
                String::from_utf8_lossy(&ours.stderr)
            );
            assert_eq!(
                stdout(&ours),
                stdout(&theirs),
                "case {case}, labels {labels:?}, config:\n{yaml}"
            );
            compared += 1;
            multi += usize::from(stdout(&theirs).contains(','));
        }
    }
    // Guards against a generator that only produces broken configs.
    assert!(
        accepted_configs >= CONFIGS / 2,
        "only {accepted_configs} configs were valid"
    );
    // ... and against one whose trees never send an alert to two receivers.
    assert!(multi > 0, "no label set reached two receivers");
    eprintln!("compared {compared} label sets over {accepted_configs} configs ({multi} with several receivers); {rejected} configs rejected by both");
}

const HAND_WRITTEN: &str = "
route:
  receiver: default
  routes:
    - receiver: db
      matchers: ['service=~\"mysql|postgres\"']
      continue: true
    - receiver: db
      match: {service: postgres}
    - receiver: frontend
      matchers: [team=web, 'severity!=info']
      routes:
        - receiver: pager
          matchers: ['severity=\"critical\"']
receivers:
  - name: default
  - name: db
  - name: frontend
  - name: pager
";

#[test]
fn hand_written_cases_match_amtool() {
    let Some(amtool) = vigil_testkit::external_tool("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.yaml");
    std::fs::write(&path, HAND_WRITTEN).unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&[], "default\n"),
        (&["service=postgres"], "db,db\n"),
        (&["service=mysql"], "db\n"),
        (&["team=web", "severity=critical"], "pager\n"),
        (&["team=web", "severity=info"], "default\n"),
        (&["team=web", "severity=\"warning\""], "frontend\n"),
        (&["service=mysql", "service=redis"], "default\n"),
    ];
    for (labels, expected) in cases {
        let labels: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            stdout(&amtool_routes(&amtool, &path, &labels)),
            expected,
            "amtool {labels:?}"
        );
        assert_eq!(
            stdout(&vigil_routes(&path, &labels)),
            expected,
            "vigil {labels:?}"
        );
    }
}

#[test]
fn labels_amtool_rejects_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.yaml");
    std::fs::write(&path, HAND_WRITTEN).unwrap();
    for bad in ["team", "team!=web", "team=\"web", "1x=y"] {
        let output = vigil_routes(&path, &[bad.to_string()]);
        assert!(!output.status.success(), "{bad} was accepted");
        assert!(String::from_utf8_lossy(&output.stderr).contains("cannot parse label"));
    }
}

/// The shipped example: Vigil accepts it without warnings, and amtool
/// accepts it once the Vigil-only `console_configs` are taken out.
#[test]
fn shipped_example_is_valid_for_vigil_and_for_amtool() {
    let example = vigil_testkit::workspace_root().join("examples/notify.yaml");
    let config =
        vigil_evaluator::notify::config::load_file(&example).unwrap_or_else(|err| panic!("{err}"));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let Some(amtool) = vigil_testkit::external_tool("amtool") else {
        return;
    };
    let mut document: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    for receiver in document["receivers"].as_sequence_mut().unwrap() {
        receiver.as_mapping_mut().unwrap().remove("console_configs");
    }
    let dir = tempfile::tempdir().unwrap();
    let stripped = dir.path().join("notify.yaml");
    std::fs::write(&stripped, serde_yaml::to_string(&document).unwrap()).unwrap();
    let check = run(Command::new(&amtool).arg("check-config").arg(&stripped));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let labels = [
        "alertname=Down".to_string(),
        "severity=critical".to_string(),
    ];
    assert_eq!(stdout(&vigil_routes(&example, &labels)), "archive,oncall\n");
    assert_eq!(
        stdout(&amtool_routes(&amtool, &stripped, &labels)),
        "archive,oncall\n"
    );
}

/// Hand-picked configs at the edges of validation; each must be accepted or
/// rejected by us exactly when `amtool check-config` accepts or rejects it.
const EDGE_CASES: &[&str] = &[
    "route: {receiver: r, routes: [{match: {code: 500}}]}",
    "route: {receiver: r, routes: [{group_wait: 5x}]}",
    "route: {receiver: r, routes: [{group_interval: 0s}]}",
    "route: {receiver: r, routes: [{repeat_interval: 0}]}",
    "route: {receiver: r, routes: [{group_wait: 0s}]}",
    "route: {receiver: r, routes: [{matchers: ['a=~(']}]}",
    "route: {receiver: r, routes: [{matchers: ['a']}]}",
    "route: {receiver: r, routes: [{matchers: ['a=\"b']}]}",
    "route: {receiver: r, routes: [{matchers: ['a=b,c=~\"x|y\"']}]}",
    "route: {receiver: r, routes: [{matchers: ['{a=b}']}]}",
    "route: {receiver: r, routes: [{matchers: ['']}]}",
    "route: {receiver: r, routes: [{matchers: 'a=b'}]}",
    "route: {receiver: r, routes: [{match_re: {a: '('}}]}",
    "route: {receiver: r, routes: [{match: {1a: b}}]}",
    "route: {receiver: r, routes: [{continue: yes}]}",
    "route: {receiver: r, routes: [{group_wait: 1h30m}, {group_wait: 90}]}",
    "route: {receiver: r, routes: [{group_wait: 1.5h}]}",
    "route: {receiver: r, routes: [{receiver: ''}]}",
    "route: {receiver: r, routes: null}",
    "route: {receiver: r, group_by: ['...', a]}",
    "route: {receiver: r, group_by: [a, a]}",
    "route: {receiver: r, group_by: [a-b]}",
    "route: {receiver: r, group_by: []}",
    "route: {receiver: r, matchers: [a=b]}",
    "route: {receiver: r, continue: true}",
    "route: {receiver: r, foo: 1}",
    "route: {}",
    "receivers2: []\nroute: {receiver: r}",
    "route: {receiver: r}\ninhibit_rules: [{source_matchers: ['a=~(']}]",
    "route: {receiver: r}\ninhibit_rules: [{equal: [a-b]}]",
    "route: {receiver: r}\ninhibit_rules: [{source_match: {1a: b}}]",
    "route: {receiver: r}\ninhibit_rules: [{target_match_re: {a: 'x|y'}, source_match: {b: c}, equal: [d]}]",
    "route: {receiver: r}\nglobal: {resolve_timeout: 1x}",
    "route: {receiver: r}\nglobal: {smtp_smarthost: nohost}",
    "route: {receiver: r}\nglobal: {slack_api_url: 'ftp://x'}",
    "route: {receiver: r}\nglobal: {slack_api_url: 'http://x', slack_api_url_file: /x}",
    "route: {receiver: r}\nglobal: {smtp_require_tls: 1}",
    "route: {receiver: r, routes: [{receiver: s}]}",
    "route: {receiver: r, routes: [&t {receiver: r, matchers: [a=c]}, {<<: *t, matchers: [a=b]}]}",
    "route: {receiver: r, routes: [&t {receiver: r, matchers: [a=c]}, {<<: *t, colour: red}]}",
];

#[test]
fn validation_agrees_with_amtool_check_config_on_edge_cases() {
    let Some(amtool) = vigil_testkit::external_tool("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let extra: [&str; 3] = [
        "receivers: [{name: r}]\n",
        "receivers: [{name: r}, {name: r}]\n",
        "receivers: [{}]\n",
    ];
    let mut cases = Vec::new();
    for case in EDGE_CASES {
        cases.push(format!("{case}\n{}", extra[0]));
    }
    cases.push(format!("route: {{receiver: r}}\n{}", extra[1]));
    cases.push(format!("route: {{receiver: r}}\n{}", extra[2]));
    for (i, yaml) in cases.iter().enumerate() {
        let path = dir.path().join(format!("edge-{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let (amtool_ok, ours) = check_config_both(&amtool, &path);
        assert_eq!(
            ours.is_ok(),
            amtool_ok,
            "{yaml}\nours: {:?}",
            ours.err().map(|e| e.to_string())
        );
    }
}
