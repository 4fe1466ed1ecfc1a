//! Time intervals against Alertmanager: `amtool check-config` and Vigil's
//! loader accept and refuse the same time-interval configs, `routes test`
//! prints the receivers amtool prints (its first line; amtool does not
//! evaluate time) and then, per matched route with time intervals,
//! whether they mute it at `--at`, across a DST change.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use std::process::Command;

const ROUTES: &str = "route:
  receiver: default
  routes:
  - receiver: oncall
    matchers: [severity=critical]
    continue: true
    mute_time_intervals: [maintenance]
  - receiver: office
    matchers: [team=web]
    active_time_intervals: [office-hours]
    mute_time_intervals: [holidays]
    routes:
    - receiver: web-child
      matchers: [service=api]
receivers: [{name: default}, {name: oncall}, {name: office}, {name: web-child}]
";

const INTERVALS: &str = "time_intervals:
- name: office-hours
  time_intervals:
  - times: [{start_time: '09:00', end_time: '17:00'}]
    weekdays: ['monday:friday']
    location: Europe/Berlin
- name: holidays
  time_intervals:
  - {months: [december], days_of_month: ['24:26']}
mute_time_intervals:
- name: maintenance
  time_intervals:
  - {weekdays: [sunday], times: [{start_time: '02:00', end_time: '04:00'}]}
";

/// (config, whether amtool accepts it): the shared config with one more
/// time interval `x` (`x`'s `time_intervals` list given as YAML flow).
fn cases() -> Vec<(String, bool)> {
    let with_x = |list: &str| {
        let x = format!("time_intervals:\n- name: x\n  time_intervals: {list}\n");
        format!("{}{ROUTES}", INTERVALS.replacen("time_intervals:\n", &x, 1))
    };
    vec![
        (format!("{INTERVALS}{ROUTES}"), true),
        (with_x("[{weekdays: ['mondy']}]"), false),
        (with_x("[{weekdays: ['friday:monday']}]"), false),
        (with_x("[{weekdays: ['Saturday', 'SUNDAY']}]"), true),
        (with_x("[{days_of_month: ['0']}]"), false),
        (with_x("[{days_of_month: ['-32:-1']}]"), false),
        (with_x("[{days_of_month: ['7:-7', '-3:-1', '1']}]"), true),
        (with_x("[{days_of_month: ['5:2']}]"), false),
        (with_x("[{months: ['smarch']}]"), false),
        // Alertmanager checks no month number's range.
        (with_x("[{months: ['13', '0:2']}]"), true),
        (with_x("[{months: ['december:january']}]"), false),
        (with_x("[{months: ['1:march', 'december']}]"), true),
        (
            with_x("[{times: [{start_time: '17:00', end_time: '09:00'}]}]"),
            false,
        ),
        (
            with_x("[{times: [{start_time: '00:00', end_time: '24:00'}]}]"),
            true,
        ),
        (
            with_x("[{times: [{start_time: '25:00', end_time: '26:00'}]}]"),
            false,
        ),
        (with_x("[{location: Mars/Olympus}]"), false),
        (
            with_x("[{location: America/New_York, years: ['2024:2030']}]"),
            true,
        ),
        (with_x("[{years: ['2030:2024']}]"), false),
        (with_x("[]"), true),
        // One name across both lists.
        (
            format!("{INTERVALS}{ROUTES}").replace("- name: maintenance", "- name: holidays"),
            false,
        ),
        // Names a route uses must be defined.
        (ROUTES.to_string(), false),
        // Not on the root route.
        (
            format!(
                "{INTERVALS}{}",
                ROUTES.replace(
                    "  receiver: default\n",
                    "  receiver: default\n  mute_time_intervals: [holidays]\n"
                )
            ),
            false,
        ),
        (
            format!(
                "{INTERVALS}{}",
                ROUTES.replace(
                    "  receiver: default\n",
                    "  receiver: default\n  active_time_intervals: [holidays]\n"
                )
            ),
            false,
        ),
    ]
}

#[test]
fn check_config_agrees_with_amtool_on_time_intervals() {
    let Some(amtool) = vigil_testkit::external_tool("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (i, (yaml, expected)) in cases().into_iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.yml"));
        std::fs::write(&path, &yaml).unwrap();
        let amtool_ok = Command::new(&amtool)
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap()
            .status
            .success();
        assert_eq!(
            amtool_ok, expected,
            "case {i}: amtool's verdict is not what the case says:\n{yaml}"
        );
        let ours = vigil_evaluator::notify::config::load_file(&path);
        assert_eq!(
            ours.is_ok(),
            amtool_ok,
            "case {i}: amtool {} but Vigil {}:\n{yaml}\n{:?}",
            if amtool_ok { "accepts" } else { "refuses" },
            if ours.is_ok() { "accepts" } else { "refuses" },
            ours.err().map(|e| e.to_string())
        );
    }
}

#[test]
fn routes_test_routes_like_amtool_and_says_which_routes_are_muted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertmanager.yml");
    std::fs::write(&path, format!("{INTERVALS}{ROUTES}")).unwrap();
    let amtool = vigil_testkit::external_tool("amtool");
    let routes = |labels: &[&str], at: &str| -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil-evaluator"))
            .args(["routes", "test", "--notify-config"])
            .arg(&path)
            .args(["--at", at])
            .args(labels)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(amtool) = &amtool {
            let theirs = Command::new(amtool)
                .args(["config", "routes", "test", "--config.file"])
                .arg(&path)
                .args(labels)
                .output()
                .unwrap();
            let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
            assert_eq!(
                text.lines().next(),
                theirs.lines().next(),
                "routing of {labels:?}"
            );
        }
        text.lines().map(str::to_string).collect()
    };
    // Monday 30 March 2026, 07:30 UTC: 09:30 in Berlin (CEST since the
    // day before), inside office hours; an hour earlier, outside.
    let lines = routes(&["team=web", "service=db"], "2026-03-30T07:30:00Z");
    assert_eq!(lines[0], "office");
    assert!(
        lines[1].starts_with("office (route.routes[1]): sends at 2026-03-30T07:30:00Z"),
        "{lines:?}"
    );
    let lines = routes(&["team=web", "service=db"], "2026-03-30T06:30:00Z");
    assert!(
        lines[1].contains("muted at 2026-03-30T06:30:00Z by office-hours"),
        "{lines:?}"
    );
    // The same wall time the Friday before (CET): 08:30 UTC is 09:30.
    let lines = routes(&["team=web"], "2026-03-27T08:30:00Z");
    assert!(lines[1].contains("sends"), "{lines:?}");
    // A child does not inherit its parent's intervals (as Alertmanager).
    let lines = routes(&["team=web", "service=api"], "2026-03-30T06:30:00Z");
    assert_eq!(lines, ["web-child"]);
    // Two routes matched (continue): each says its own.
    let lines = routes(&["severity=critical", "team=web"], "2026-03-29T02:30:00Z");
    assert_eq!(lines[0], "oncall,office");
    assert!(
        lines[1].starts_with("oncall (route.routes[0]): muted")
            && lines[1].contains("by maintenance"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("office (route.routes[1]): muted")
            && lines[2].contains("by office-hours"),
        "{lines:?}"
    );
    let lines = routes(&["team=web"], "2026-12-24T10:00:00Z");
    assert!(
        lines[1].contains("by holidays"),
        "mute before active: {lines:?}"
    );
}
