//! The evaluator as a process: `check config`, and `run` end to end — an
//! in-test target is scraped, a rule fires, the notification reaches an
//! in-test webhook, the resolution follows exactly once; a bad reload is
//! rejected while the old rules keep running; the file watcher reloads
//! changed rule files and shows a broken one on `/-/ready`; SIGTERM exits 0.
//!
//! Every wait polls against a deadline, so a broken build fails instead of
//! hanging.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::cargo_bin;
use common::process::{
    log_of, signal, start_evaluator, wait_for_exit, wait_until, Target, Webhook, DEADLINE,
};
use vigil_testkit::{free_port, wait_for_http, ChildGuard};

/// Writes `vigil.yaml`, `rules.yaml` and `notify.yaml` into `dir`: one rule
/// firing at once with a templated annotation, resolved notifications off.
fn write_config(dir: &Path, target: u16, webhook: u16, listen: u16) -> PathBuf {
    common::process::write_config(
        dir,
        target,
        listen,
        "groups:\n- name: test\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n    for: 0s\n    annotations: {summary: 'value is {{ $value }}'}\n",
        &format!(
            "route: {{receiver: hook, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}\nreceivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{webhook}/hook'}}]\n"
        ),
    )
}

/// Starts `vigil-evaluator run` with its history in the default SQLite file
/// of `dir` (one per test, so no alert state leaks between them).
fn start(config: &Path, dir: &Path) -> ChildGuard {
    start_evaluator(config, dir, "evaluator.log", None)
}

#[test]
fn check_config_prints_success_or_every_problem_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), 1, 2, 3);
    let out = Command::new(cargo_bin("vigil-evaluator"))
        .args(["check", "config"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("SUCCESS: 1 scrape configs, 1 rule files (1 rules)"),
        "{text}"
    );

    std::fs::write(
        dir.path().join("rules.yaml"),
        "groups:\n- name: test\n  rules:\n  - alert: X\n    expr: 'rate(x[5m'\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "global:\n  evaluation_interval: soon\nrule_files: [rules.yaml]\nweb: {listen: 'localhost'}\n",
    )
    .unwrap();
    let out = Command::new(cargo_bin("vigil-evaluator"))
        .args(["check", "config"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("bad.yaml:2:24: global.evaluation_interval: invalid duration"),
        "{text}"
    );
    assert!(text.contains("bad.yaml:4:15: web.listen"), "{text}");
    assert!(
        text.contains("rules.yaml:5:11: groups[0].rules[0].expr"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_sqlite_file_is_next_to_the_config_whatever_the_working_directory() {
    let conf = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let listen = free_port();
    let config = conf.path().join("vigil.yaml");
    std::fs::write(
        &config,
        format!("storage: {{database_url: 'sqlite://history.db'}}\nweb: {{listen: '127.0.0.1:{listen}'}}\n"),
    )
    .unwrap();
    let out = Command::new(cargo_bin("vigil-evaluator"))
        .args(["check", "config"])
        .arg(&config)
        .current_dir(elsewhere.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "history database: SQLite file {} (from storage.database_url",
            conf.path().join("history.db").display()
        )),
        "{text}"
    );
    let evaluator = start_evaluator(&config, elsewhere.path(), "evaluator.log", None);
    let expected = conf.path().join("history.db");
    wait_until(
        "the history database next to vigil.yaml",
        elsewhere.path(),
        || expected.is_file(),
    )
    .await;
    // On glibc the server started again in place (the same process) with
    // one malloc arena and smaller mmap and trim thresholds.
    if cfg!(target_env = "gnu") {
        let environ = std::fs::read(format!("/proc/{}/environ", evaluator.0.id())).unwrap();
        for expected in [
            &b"MALLOC_ARENA_MAX=1"[..],
            b"MALLOC_MMAP_THRESHOLD_=65536",
            b"MALLOC_TRIM_THRESHOLD_=65536",
            b"MALLOC_TOP_PAD_=0",
        ] {
            assert!(
                environ.split(|b| *b == 0).any(|var| var == expected),
                "{} is not in the evaluator's environment",
                String::from_utf8_lossy(expected)
            );
        }
    }
    assert!(
        !elsewhere.path().join("history.db").exists(),
        "a second history in the working directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_reaches_the_webhook_and_resolves_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = write_config(dir.path(), target.port, webhook.port, listen);
    target.set(3.0);
    let mut child = start(&config, dir.path());
    wait_for_http(&format!("http://127.0.0.1:{listen}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir.path())));

    wait_until("the firing notification", dir.path(), || {
        webhook.count("firing") >= 1
    })
    .await;
    let firing = &webhook.payloads()[0];
    assert_eq!(firing["alerts"][0]["labels"]["alertname"], "ValueHigh");
    assert_eq!(firing["alerts"][0]["labels"]["job"], "app");
    assert_eq!(firing["alerts"][0]["annotations"]["summary"], "value is 3");

    target.set(0.0);
    wait_until("the resolved notification", dir.path(), || {
        webhook.count("resolved") >= 1
    })
    .await;
    // Several more evaluations and group intervals: nothing is sent again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(webhook.count("resolved"), 1, "{:#?}", webhook.payloads());
    assert_eq!(webhook.count("firing"), 1, "{:#?}", webhook.payloads());

    let metrics = reqwest::get(format!("http://127.0.0.1:{listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "vigil_notifications_sent_total{integration=\"webhook\",receiver=\"hook\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_scrape_target_up{instance=\"127.0.0.1:"),
        "{metrics}"
    );
    // Every family the README promises, each with at least one series.
    for series in [
        "vigil_rule_group_duration_seconds_bucket{rule_group=\"test\"",
        "vigil_rule_evaluation_failures_total{rule_group=\"test\"} 0",
        "vigil_scrape_target_duration_seconds{",
        "vigil_notifications_failed_total{integration=\"webhook\",receiver=\"hook\"} 0",
        "vigil_notifications_retried_total{integration=\"webhook\",receiver=\"hook\"} 0",
        "vigil_outbox_pending 0",
        "vigil_history_backlog ",
        "vigil_history_db_duration_seconds_bucket{operation=\"write\"",
        "vigil_history_db_duration_seconds_bucket{operation=\"outbox\"",
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }

    if let Some(promtool) = vigil_testkit::external_tool("promtool") {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        check
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && said.is_empty(), "{said}");
    } else {
        println!("SKIPPED: promtool check metrics (promtool not installed)");
    }

    signal(&child, "TERM");
    let status = wait_for_exit(&mut child).expect("the evaluator did not stop after SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", log_of(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_is_rejected_and_the_old_rules_keep_firing() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = write_config(dir.path(), target.port, webhook.port, listen);
    target.set(1.0);
    let mut child = start(&config, dir.path());
    wait_for_http(&format!("http://127.0.0.1:{listen}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir.path())));
    wait_until("the firing notification", dir.path(), || {
        webhook.count("firing") >= 1
    })
    .await;

    std::fs::write(
        dir.path().join("rules.yaml"),
        "groups:\n- name: test\n  rules:\n  - alert: ValueHigh\n    expr: 'vigil_test_value >'\n",
    )
    .unwrap();
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://127.0.0.1:{listen}/-/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("rules.yaml:5:11: groups[0].rules[0].expr"),
        "{body}"
    );

    // The old rule keeps evaluating: the alert neither resolves nor is the
    // group lost.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(webhook.count("resolved"), 0, "{:#?}", webhook.payloads());
    let metrics = client
        .get(format!("http://127.0.0.1:{listen}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vigil_config_last_reload_successful 0"),
        "{metrics}"
    );

    // A good rules file on SIGHUP is taken, and the new group evaluates.
    std::fs::write(
        dir.path().join("rules.yaml"),
        "groups:\n- name: test\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n- name: added\n  rules:\n  - record: job:vigil_test_value:max\n    expr: max by (job) (vigil_test_value)\n",
    )
    .unwrap();
    signal(&child, "HUP");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = client
            .get(format!("http://127.0.0.1:{listen}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("vigil_rule_group_evaluations_total{rule_group=\"added\"}")
            && text.contains("vigil_config_last_reload_successful 1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the added group never evaluated; log:\n{}",
            log_of(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(webhook.count("resolved"), 0, "{:#?}", webhook.payloads());

    signal(&child, "TERM");
    let status = wait_for_exit(&mut child).expect("the evaluator did not stop after SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", log_of(dir.path()));
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// `reload.watch_interval`: a changed rule file is reloaded without SIGHUP;
/// a broken one is rejected (old rules keep firing, the error is on
/// `/-/ready` and in the metrics) until it is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reloads_changed_rule_files_and_keeps_the_old_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::start().await;
    let webhook = Webhook::start().await;
    let listen = free_port();
    let config = write_config(dir.path(), target.port, webhook.port, listen);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("reload: {watch_interval: 200ms}\n");
    std::fs::write(&config, text).unwrap();
    target.set(1.0);
    let mut child = start(&config, dir.path());
    let base = format!("http://127.0.0.1:{listen}");
    wait_for_http(&format!("{base}/-/ready"), DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir.path())));
    wait_until("the firing notification", dir.path(), || {
        webhook.count("firing") >= 1
    })
    .await;
    let client = reqwest::Client::new();

    std::fs::write(
        dir.path().join("rules.yaml"),
        "groups:\n- name: test\n  rules:\n  - alert: ValueHigh\n    expr: 'vigil_test_value >'\n",
    )
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let ready = loop {
        let response = client.get(format!("{base}/-/ready")).send().await.unwrap();
        assert_eq!(response.status(), 200, "a rejected reload keeps it ready");
        let body = response.text().await.unwrap();
        if body.contains("last configuration reload failed") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "the broken rule file was never reloaded; log:\n{}",
            log_of(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        ready.contains("rules.yaml:5:11: groups[0].rules[0].expr"),
        "{ready}"
    );
    let metrics = get_text(&client, &format!("{base}/metrics")).await;
    assert!(
        metrics.contains("vigil_config_last_reload_successful 0"),
        "{metrics}"
    );
    assert!(
        log_of(dir.path()).contains("groups[0].rules[0].expr"),
        "the error is logged too:\n{}",
        log_of(dir.path())
    );
    // The old rule keeps evaluating: its group's evaluation count grows.
    let evaluations = |metrics: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with("vigil_rule_group_evaluations_total{rule_group=\"test\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let before = evaluations(&metrics).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while evaluations(&get_text(&client, &format!("{base}/metrics")).await).unwrap() <= before {
        assert!(
            Instant::now() < deadline,
            "the old group stopped evaluating"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(webhook.count("resolved"), 0, "{:#?}", webhook.payloads());

    // Fixed: the new rules are loaded without any signal.
    std::fs::write(
        dir.path().join("rules.yaml"),
        "groups:\n- name: test\n  rules:\n  - alert: ValueHigh\n    expr: vigil_test_value > 0\n- name: added\n  rules:\n  - record: job:vigil_test_value:max\n    expr: max by (job) (vigil_test_value)\n",
    )
    .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = get_text(&client, &format!("{base}/metrics")).await;
        if text.contains("vigil_rule_group_evaluations_total{rule_group=\"added\"}")
            && text.contains("vigil_config_last_reload_successful 1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fixed rule file was never loaded; log:\n{}",
            log_of(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = get_text(&client, &format!("{base}/-/ready")).await;
    assert_eq!(ready, "Vigil evaluator is Ready.\n");
    assert_eq!(webhook.count("resolved"), 0, "{:#?}", webhook.payloads());

    signal(&child, "TERM");
    let status = wait_for_exit(&mut child).expect("the evaluator did not stop after SIGTERM");
    assert_eq!(status.code(), Some(0), "log:\n{}", log_of(dir.path()));
}

#[test]
fn version_names_the_commit_and_help_documents_every_flag() {
    let out = Command::new(cargo_bin("vigil-evaluator"))
        .arg("--version")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("vigil-evaluator {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = stdout
        .trim()
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(')'));
    assert!(
        commit.is_some_and(
            |c| c == "unknown" || (!c.is_empty() && c.chars().all(|ch| ch.is_ascii_hexdigit()))
        ),
        "{stdout:?}"
    );

    let help = |args: &[&str]| {
        let out = Command::new(cargo_bin("vigil-evaluator"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = help(&["--help"]);
    for word in [
        "--config",
        "--log-format",
        "--version",
        "run",
        "check",
        "test",
        "routes",
        "promql-test",
        "RUST_LOG",
        "DATABASE_URL",
        "VIGIL_API_TOKEN",
        "SIGHUP",
    ] {
        assert!(top.contains(word), "--help does not mention {word}:\n{top}");
    }
    // Every argument of every subcommand has a description.
    for (args, words) in [
        (
            &["check", "config", "--help"][..],
            &["<FILE>", "vigil.yaml"][..],
        ),
        (&["check", "rules", "--help"], &["<FILES>...", "Rule files"]),
        (
            &["test", "rules", "--help"],
            &["<FILES>...", "Unit-test files"],
        ),
        (
            &["routes", "test", "--help"],
            &["--notify-config", "LABEL=VALUE"],
        ),
        (&["run", "--help"], &["--config", "--log-format"]),
    ] {
        let text = help(args);
        for word in words {
            assert!(text.contains(word), "{args:?} lacks {word}:\n{text}");
        }
    }
}
