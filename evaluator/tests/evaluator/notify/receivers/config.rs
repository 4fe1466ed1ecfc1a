//! Receiver configuration as users write it: Alertmanager field names and
//! defaults, `global:` fallbacks, secrets from files and the environment,
//! and every problem reported with its field path, never with a secret.

use crate::support as common;

use std::sync::{Arc, Mutex};

use vigil_evaluator::notify::alert::AlertStatus;
use vigil_evaluator::notify::receivers::console::ConsoleSettings;
use vigil_evaluator::notify::receivers::console::{render, ConsoleReceiver};
use vigil_evaluator::notify::receivers::{GlobalReceiverDefaults, Receiver};

use common::{alert, build, notification};

#[test]
fn every_problem_is_reported_with_its_field_path() {
    let yaml = "
slack_configs:
  - channel: '#x'
  - api_url: 'not a url'
    colour: red
email_configs:
  - from: vigil@example.com
webhook_configs:
  - url: 'http://127.0.0.1:1/'
    url_file: /etc/hook
    timeout: soon
console_configs: {}
";
    let error = build(yaml, &GlobalReceiverDefaults::default())
        .err()
        .unwrap_or_default();

    for expected in [
        "receivers[0].slack_configs[0].api_url: no Slack webhook URL",
        "receivers[0].slack_configs[1]: unknown field `colour`",
        "receivers[0].email_configs[0].to: missing `to` address",
        "receivers[0].email_configs[0].smarthost: missing `smarthost`",
        "receivers[0].webhook_configs[0].url: at most one of url and url_file",
        "receivers[0].webhook_configs[0].timeout: `soon` is not a positive duration",
        "receivers[0].console_configs: must be a list",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
}

#[test]
fn invalid_secret_url_is_reported_without_echoing_it() {
    let yaml = "slack_configs:\n  - api_url: 'hooks.slack.com/services/T0/B0/SECRETPART'\n";
    let error = build(yaml, &GlobalReceiverDefaults::default())
        .err()
        .unwrap_or_default();

    assert!(
        error.contains("slack_configs[0].api_url: is not an absolute http(s) URL"),
        "{error}"
    );
    assert!(!error.contains("SECRETPART"), "{error}");
}

#[test]
fn missing_secret_file_names_the_file_and_field() {
    let yaml = "webhook_configs:\n  - url_file: /nonexistent/vigil-hook-url\n";
    let error = build(yaml, &GlobalReceiverDefaults::default())
        .err()
        .unwrap_or_default();

    assert!(
        error.contains("webhook_configs[0].url_file: cannot read /nonexistent/vigil-hook-url"),
        "{error}"
    );
}

#[test]
fn slack_falls_back_to_global_api_url_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url_file = dir.path().join("slack-url");
    std::fs::write(&url_file, "https://hooks.slack.com/services/T0/B0/TOKEN\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let global = GlobalReceiverDefaults {
        slack_api_url_file: Some(url_file),
        ..GlobalReceiverDefaults::default()
    };

    let receivers = build("slack_configs:\n  - channel: '#alerts'\n", &global);

    let receivers = receivers.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(receivers.len(), 1);
    assert_eq!(receivers[0].integration(), "slack");
    assert!(!format!("{:?}", receivers[0]).contains("TOKEN"));
}

#[test]
fn global_section_deserialises_with_alertmanager_defaults() {
    let global: GlobalReceiverDefaults = serde_yaml::from_str(
        "smtp_smarthost: 'mail:587'\nsmtp_from: a@example.com\nresolve_timeout: 5m\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    assert!(global.smtp_require_tls);
    assert_eq!(global.smtp_hello, "localhost");
    assert_eq!(global.smtp_smarthost.as_deref(), Some("mail:587"));
    // The global defaults complete an e-mail config that names only `to`.
    let receivers = build("email_configs:\n  - to: b@example.com\n", &global);
    assert!(receivers.is_ok(), "{receivers:?}");
}

#[test]
fn secret_can_come_from_an_environment_variable() {
    // A variable name unique to this test; set before any config is read.
    std::env::set_var("VIGIL_TEST_WEBHOOK_TOKEN_7F3A", "env-token-value");
    let yaml = "webhook_configs:\n  - url: 'http://127.0.0.1:1/'\n    http_config:\n      authorization:\n        credentials: '${VIGIL_TEST_WEBHOOK_TOKEN_7F3A}'\n";
    let missing = "webhook_configs:\n  - url: 'http://127.0.0.1:1/'\n    http_config:\n      bearer_token: '${VIGIL_TEST_UNSET_VARIABLE_7F3A}'\n";

    let ok = build(yaml, &GlobalReceiverDefaults::default());
    let error = build(missing, &GlobalReceiverDefaults::default())
        .err()
        .unwrap_or_default();

    assert!(ok.is_ok(), "{ok:?}");
    assert!(
        error.contains("http_config.bearer_token: environment variable VIGIL_TEST_UNSET_VARIABLE_7F3A is not set"),
        "{error}"
    );
}

#[test]
fn email_headers_colliding_case_insensitively_are_rejected() {
    let yaml = "email_configs:\n  - to: a@example.com\n    from: b@example.com\n    smarthost: 'mail:25'\n    headers: {subject: one, Subject: two}\n";
    let error = build(yaml, &GlobalReceiverDefaults::default())
        .err()
        .unwrap_or_default();

    assert!(error.contains("duplicate header Subject"), "{error}");
}

#[tokio::test]
async fn console_prints_a_readable_block_per_notification() {
    let buffer: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let receiver = ConsoleReceiver::with_sink(
        ConsoleSettings {
            send_resolved: true,
        },
        buffer.clone(),
    );
    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Resolved),
    ]);

    let report = receiver.send(&n).await;

    assert!(report.is_ok());
    let printed =
        String::from_utf8(buffer.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
    assert_eq!(printed, render(&n));
    assert!(
        printed.contains("[FIRING:1] HighErrorRate (/x critical)"),
        "{printed}"
    );
    assert!(
        printed.contains("1 firing, 1 resolved — receiver team-a"),
        "{printed}"
    );
    assert!(
        printed.contains("[RESOLVED] Error rate above 5% on b"),
        "{printed}"
    );
    assert!(printed.contains("    - runbook_url = https://runbooks.example/high-error-rate"));
}
