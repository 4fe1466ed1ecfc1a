//! Unit tests of the notification config: defaults, every problem with its
//! position and field, and what is accepted with a warning.

use super::*;
use crate::notify::matcher::MatchOp;

fn parse_ok(text: &str) -> NotifyConfig {
    match parse(text, Path::new("notify.yaml")) {
        Ok(config) => config,
        Err(err) => panic!("config rejected: {err}"),
    }
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, Path::new("notify.yaml")) {
        Ok(_) => panic!("config accepted"),
        Err(ConfigError::Invalid(problems)) => problems,
        Err(err) => panic!("unexpected error {err}"),
    }
}

#[test]
fn durations_use_prometheus_notation() {
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86400)));
    assert!(parse_duration("30m1h").is_err());
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("1.5h").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn minimal_config_gets_alertmanager_defaults() {
    let config = parse_ok("route: {receiver: r}\nreceivers: [{name: r}]\n");
    assert_eq!(config.global.resolve_timeout, DEFAULT_RESOLVE_TIMEOUT);
    assert_eq!(config.global.smtp_hello, "localhost");
    assert!(config.global.smtp_require_tls);
    assert_eq!(config.route.receiver.as_deref(), Some("r"));
    assert!(config.warnings.is_empty());
}

#[test]
fn every_problem_is_reported_with_line_and_field() {
    let text = "\
route:
  receiver: missing
  group_wait: soon
  routes:
    - matchers: ['a=~\"(\"']
      receiver: r
      colour: blue
receivers:
  - name: r
  - name: r
    rocketchat_configs: [{}]
";
    let problems = problems(text);
    let rendered: Vec<String> = problems.iter().map(Problem::to_string).collect();
    let expect = [
            "notify.yaml:3:3: route.group_wait: invalid duration \"soon\"",
            "notify.yaml:5:18: route.routes[0].matchers[0]: invalid regular expression",
            "notify.yaml:7:7: route.routes[0].colour: unknown field `colour`",
            "notify.yaml:10:5: receivers[1].name: receiver name \"r\" is not unique",
            "notify.yaml:11:5: receivers[1].rocketchat_configs: receiver kind `rocketchat_configs` is not supported",
            "notify.yaml:2:3: route.receiver: undefined receiver \"missing\"",
        ];
    for want in expect {
        assert!(
            rendered.iter().any(|r| r.starts_with(want)),
            "missing {want:?} in {rendered:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{rendered:#?}");
}

#[test]
fn root_route_with_matchers_or_continue_is_rejected() {
    let problems =
        problems("route: {receiver: r, match: {a: b}, continue: true}\nreceivers: [{name: r}]\n");
    assert_eq!(problems.len(), 2);
    assert!(problems[0].message.contains("must not have matchers"));
    assert!(problems[1].message.contains("continue"));
}

#[test]
fn group_by_wildcard_cannot_be_mixed_with_labels() {
    let problems =
        problems("route: {receiver: r, group_by: ['...', a, b, b]}\nreceivers: [{name: r}]\n");
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages
        .iter()
        .any(|m| m.contains("duplicated label \"b\"")));
    assert!(messages.iter().any(|m| m.contains("wildcard")));
}

#[test]
fn undefined_time_intervals_are_errors_and_foreign_globals_are_warnings() {
    let problems = problems("global: {rocketchat_api_url: 'https://x'}\nroute: {receiver: r, routes: [{receiver: r, mute_time_intervals: [night]}]}\nreceivers: [{name: r}]\n");
    let errors: Vec<&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "route.routes[0].mute_time_intervals[0]");
    assert!(
        errors[0]
            .message
            .contains("undefined time interval \"night\""),
        "{}",
        errors[0]
    );
    let config = parse_ok(
        "global: {rocketchat_api_url: 'https://x', pagerduty_url: 'https://pd'}\nroute: {receiver: r}\nreceivers: [{name: r}]\n",
    );
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].field, "global.rocketchat_api_url");
    assert_eq!(config.global.pagerduty_url, "https://pd");
}

#[test]
fn legacy_match_and_matchers_combine_and_accept_numbers() {
    let config = parse_ok("route:\n  receiver: r\n  routes:\n    - receiver: r\n      match: {code: 500}\n      match_re: {sev: 'crit|warn'}\n      matchers: ['team=\"a\", env!=prod']\nreceivers: [{name: r}]\n");
    let names: Vec<(&str, MatchOp, &str)> = config.route.routes[0]
        .matchers
        .iter()
        .map(|m| (m.name.as_str(), m.op, m.value.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("code", MatchOp::Equal, "500"),
            ("env", MatchOp::NotEqual, "prod"),
            ("sev", MatchOp::Regex, "crit|warn"),
            ("team", MatchOp::Equal, "a"),
        ]
    );
}

#[test]
fn email_and_slack_need_a_server_from_themselves_or_global() {
    let problems = problems("route: {receiver: r}\nreceivers:\n  - name: r\n    email_configs: [{to: a@b.c}]\n    slack_configs: [{channel: '#x'}]\n");
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let config = parse_ok("global: {smtp_smarthost: 'mail:25', smtp_from: a@b.c, slack_api_url_file: secrets/slack}\nroute: {receiver: r}\nreceivers:\n  - name: r\n    email_configs: [{to: a@b.c}]\n    slack_configs: [{channel: '#x'}]\n");
    assert_eq!(
        config.global.slack_api_url_file,
        Some(PathBuf::from("secrets/slack"))
    );
    let receiver = config.receiver("r").unwrap();
    assert_eq!(
        receiver.section("email_configs")[0].path,
        "receivers[0].email_configs[0]"
    );
    assert!(!receiver.sends_resolved());
}

#[test]
fn secret_files_are_resolved_against_the_config_folder() {
    let config = parse(
        "global: {smtp_auth_password_file: pw}\nroute: {receiver: r}\nreceivers: [{name: r}]\n",
        Path::new("/etc/vigil/notify.yaml"),
    )
    .unwrap();
    assert_eq!(
        config.global.smtp_auth_password_file,
        Some(PathBuf::from("/etc/vigil/pw"))
    );
}

#[test]
fn anchors_and_merge_keys_are_applied() {
    let config = parse_ok("route:\n  receiver: r\n  routes:\n    - &team {receiver: r, group_wait: 1m, matchers: [a=c]}\n    - <<: *team\n      matchers: [a=b]\nreceivers: [{name: r}]\n");
    let merged = &config.route.routes[1];
    assert_eq!(merged.group_wait, Some(Duration::from_secs(60)));
    assert_eq!(
        merged.matchers[0].value, "b",
        "own keys win over merged ones"
    );
}

#[test]
fn missing_route_is_reported() {
    let problems = problems("receivers: [{name: r}]\n");
    assert_eq!(problems[0].field, "route");
}

#[test]
fn yaml_syntax_errors_carry_a_location() {
    let problems = problems("route:\n  receiver: [\n");
    assert!(problems[0].position().is_some());
    assert!(problems[0].message.starts_with("invalid YAML"));
}

#[test]
fn template_files_load_from_globs_next_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tmpl")).unwrap();
    std::fs::write(
        dir.path().join("tmpl/team.tmpl"),
        "{{ define \"team.title\" }}[{{ .Status }}] {{ .GroupLabels.alertname }}{{ end }}",
    )
    .unwrap();
    let file = dir.path().join("notify.yml");
    let base = "route: {receiver: r}\nreceivers: [{name: r}]\n";
    let config = parse(
        &format!("templates: ['tmpl/*.tmpl', 'none/*.tmpl']\n{base}"),
        &file,
    )
    .unwrap();
    assert!(config.templates.contains("team.title"));
    assert!(config.templates.contains("slack.default.title"));
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert_eq!(config.warnings[0].field, "templates[1]");

    std::fs::write(
        dir.path().join("tmpl/broken.tmpl"),
        "{{ define \"x\" }}{{ .X",
    )
    .unwrap();
    let Err(ConfigError::Invalid(problems)) =
        parse(&format!("templates: ['tmpl/*.tmpl']\n{base}"), &file)
    else {
        panic!("a template file that does not parse must be refused");
    };
    assert_eq!(problems[0].field, "templates");
    assert!(
        problems[0].message.contains("broken.tmpl:1:"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_field_template_that_cannot_render_is_a_warning_not_a_refusal() {
    let config = parse_ok(
        "route: {receiver: r}\nreceivers:\n  - name: r\n    slack_configs:\n      - api_url: 'http://127.0.0.1:1/x'\n        title: '{{ .Foo'\n        text: '{{ template \"nope\" . }}'\n",
    );
    let (receivers, warnings) = build_receivers(&config).unwrap();
    assert_eq!(receivers["r"].len(), 1);
    let fields: Vec<&str> = warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "receivers[0].slack_configs[0].title",
            "receivers[0].slack_configs[0].text"
        ]
    );
    assert!(warnings.iter().all(Problem::is_warning));
    assert!(
        warnings[1].message.contains("no such template \"nope\""),
        "{}",
        warnings[1]
    );
    assert!(
        warnings[0].line.is_some(),
        "placed in the file: {}",
        warnings[0]
    );
}

#[test]
fn time_intervals_are_named_once_and_not_on_the_root_route() {
    let problems = problems(
        "time_intervals:\n- name: night\n  time_intervals: [{times: [{start_time: '22:00', end_time: '24:00'}]}]\nmute_time_intervals:\n- name: night\n  time_intervals: []\nroute: {receiver: r, mute_time_intervals: [night], active_time_intervals: [night]}\nreceivers: [{name: r}]\n",
    );
    let fields: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.field.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(fields.len(), 3, "{fields:?}");
    assert!(fields[0].0 == "mute_time_intervals[0].name" && fields[0].1.contains("not unique"));
    assert_eq!(fields[1].0, "route.mute_time_intervals");
    assert!(fields[1]
        .1
        .contains("root route must not have any mute time intervals"));
    assert!(fields[2]
        .1
        .contains("root route must not have any active time intervals"));
    let config = parse_ok(
        "time_intervals:\n- name: night\n  time_intervals: [{times: [{start_time: '22:00', end_time: '24:00'}], location: Europe/Berlin}]\nroute: {receiver: r, routes: [{receiver: r, active_time_intervals: [night]}]}\nreceivers: [{name: r}]\n",
    );
    assert_eq!(
        config.route.routes[0].active_time_intervals[0].name,
        "night"
    );
}
