//! Whole-system notification test: the exporter's demo endpoint produces
//! errors, the evaluator scrapes it, fires HighErrorRate and notifies a
//! Slack-like webhook server and a real SMTP server (python aiosmtpd); once
//! the errors stop, the alert resolves and each receiver gets exactly one
//! resolved message. This is the path an operator relies on, from a metric
//! to a page and back, with no part of it replaced by a test double except
//! the Slack endpoint itself.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use vigil_testkit::{cargo_bin, external_tool, free_port, wait_for_http, ChildGuard};

/// SMTP sink: appends one JSON line (envelope and headers) per message.
const SMTP_SINK: &str = r#"
import email, email.policy, json, logging, sys, threading, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from aiosmtpd.controller import Controller

port, out = int(sys.argv[1]), sys.argv[2]

class Sink:
    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message.get("Subject", "")),
        }
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"

controller = Controller(Sink(), hostname="127.0.0.1", port=port)
controller.start()
print("ready", flush=True)
threading.Event().wait()
"#;

const RULES: &str = r#"groups:
  - name: e2e
    rules:
      - alert: HighErrorRate
        expr: sum by (route) (rate(http_requests_total{status=~"5.."}[5s])) / sum by (route) (rate(http_requests_total[5s])) > 0.2
        for: 0s
        labels:
          severity: critical
        annotations:
          summary: "Error rate above 20% on {{ $labels.route }}"
"#;

/// Starts the SMTP sink, or returns `None` (test skipped) when python3 or
/// aiosmtpd is missing on a developer machine.
fn start_smtp(dir: &Path) -> Option<(u16, PathBuf, ChildGuard)> {
    let python = external_tool("python3")?;
    let has_aiosmtpd = Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_aiosmtpd {
        if std::env::var(vigil_testkit::REQUIRE_TOOLS_ENV).is_ok_and(|v| v == "1") {
            panic!("python module aiosmtpd is required but missing: pip install aiosmtpd");
        }
        eprintln!("SKIPPED: python module aiosmtpd is not installed");
        return None;
    }
    let script = dir.join("smtp_sink.py");
    std::fs::write(&script, SMTP_SINK).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("mail.jsonl");
    let port = free_port();
    let mut guard = ChildGuard::spawn(
        Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    if let Some(stdout) = guard.0.stdout.take() {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "SMTP server did not start");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "SMTP server not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((port, out, guard))
}

fn mails(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

type Posts = Arc<Mutex<Vec<Value>>>;

/// A Slack-like incoming-webhook server on loopback that keeps every body.
async fn start_slack() -> (u16, Posts) {
    async fn hook(State(posts): State<Posts>, body: String) -> &'static str {
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("Slack body is not JSON ({e}): {body}"));
        posts.lock().unwrap_or_else(|p| p.into_inner()).push(json);
        "ok"
    }
    let posts: Posts = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("cannot bind the Slack server: {e}"));
    let port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(posts.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, posts)
}

fn slack_posts(posts: &Posts) -> Vec<Value> {
    posts.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// "firing" or "resolved", from the first attachment's title, or the text.
fn slack_status(post: &Value) -> &'static str {
    let title = post["attachments"][0]["title"]
        .as_str()
        .or_else(|| post["text"].as_str())
        .unwrap_or("");
    if title.starts_with("[FIRING") {
        "firing"
    } else if title.starts_with("[RESOLVED") {
        "resolved"
    } else {
        "unknown"
    }
}

fn count_slack(posts: &Posts, status: &str) -> usize {
    slack_posts(posts)
        .iter()
        .filter(|p| slack_status(p) == status)
        .count()
}

fn count_mail(out: &Path, marker: &str) -> usize {
    mails(out)
        .iter()
        .filter(|m| m["subject"].as_str().is_some_and(|s| s.contains(marker)))
        .count()
}

/// Hits the exporter's demo endpoints every 100 ms (half of them errors when
/// `errors` is true) until `done` holds or `timeout` passes.
async fn drive_until(
    client: &reqwest::Client,
    exporter: &str,
    errors: bool,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    let mut tick = 0u64;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        let path = if errors && tick % 2 == 0 {
            "demo/error"
        } else {
            "demo/ok"
        };
        let _ = client.get(format!("{exporter}/{path}")).send().await;
        tick += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// What the Slack server and the SMTP sink have received, since the test
/// started.
struct Receivers<'a> {
    posts: &'a Posts,
    mail_out: &'a Path,
    started: Instant,
}

impl Receivers<'_> {
    /// Drives the exporter (with errors or without) until both receivers
    /// have a `status` message (an e-mail whose subject contains
    /// `mail_marker`); fails if that takes more than 40 s, and says when
    /// it happened.
    async fn drive_until_notified(
        &self,
        client: &reqwest::Client,
        exporter: &str,
        errors: bool,
        status: &str,
        mail_marker: &str,
    ) {
        let notified = drive_until(client, exporter, errors, Duration::from_secs(40), || {
            count_slack(self.posts, status) >= 1 && count_mail(self.mail_out, mail_marker) >= 1
        })
        .await;
        assert!(
            notified,
            "no {status} notification within 40 s; Slack: {:?}; mail: {:?}",
            slack_posts(self.posts),
            mails(self.mail_out)
        );
        eprintln!(
            "{status} notifications received after {:?}",
            self.started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_burst_sends_one_slack_and_one_email_then_one_resolved_of_each() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some((smtp_port, mail_out, _smtp)) = start_smtp(dir.path()) else {
        return;
    };
    let (slack_port, posts) = start_slack().await;

    // The exporter, serving the demo endpoints and its own request metrics.
    let exporter_port = free_port();
    let exporter_config = dir.path().join("exporter.yaml");
    std::fs::write(
        &exporter_config,
        format!("listen: 127.0.0.1:{exporter_port}\ndemo: true\n"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let _exporter = ChildGuard::spawn(
        Command::new(cargo_bin("vigil-exporter"))
            .arg("--config")
            .arg(&exporter_config),
    );
    let exporter = format!("http://127.0.0.1:{exporter_port}");
    wait_for_http(&format!("{exporter}/metrics"), Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("exporter did not start: {e}"));

    // The evaluator, with fast timers and both receivers on one route.
    std::fs::write(dir.path().join("rules.yaml"), RULES).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("notify.yaml"),
        format!(
            "route:
  receiver: team
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: team
    slack_configs:
      - api_url: http://127.0.0.1:{slack_port}/hook
        send_resolved: true
    email_configs:
      - to: oncall@example.com
        from: vigil@example.com
        smarthost: 127.0.0.1:{smtp_port}
        require_tls: false
        send_resolved: true
"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let web_port = free_port();
    let vigil_config = dir.path().join("vigil.yaml");
    std::fs::write(
        &vigil_config,
        format!(
            "global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: vigil-exporter
    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]
rule_files: [rules.yaml]
notify_config_file: notify.yaml
storage:
  database_url: sqlite://{}/vigil.db
web:
  listen: 127.0.0.1:{web_port}
",
            dir.path().display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let evaluator_bin = cargo_bin("vigil-evaluator");
    let check = Command::new(&evaluator_bin)
        .args(["check", "config"])
        .arg(&vigil_config)
        .output()
        .unwrap_or_else(|e| panic!("cannot run vigil-evaluator check config: {e}"));
    assert!(
        check.status.success(),
        "the test's evaluator config is invalid:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let _evaluator = ChildGuard::spawn(
        Command::new(&evaluator_bin)
            .arg("run")
            .arg("--config")
            .arg(&vigil_config)
            .env("RUST_LOG", "warn"),
    );
    wait_for_http(
        &format!("http://127.0.0.1:{web_port}/-/ready"),
        Duration::from_secs(20),
    )
    .await
    .unwrap_or_else(|e| panic!("evaluator did not become ready: {e}"));

    eprintln!("evaluator ready after {:?}", started.elapsed());

    // Errors: one firing message on each receiver.
    let client = reqwest::Client::new();
    let receivers = Receivers {
        posts: &posts,
        mail_out: &mail_out,
        started,
    };
    receivers
        .drive_until_notified(&client, &exporter, true, "firing", "[FIRING")
        .await;

    // No more errors: one resolved message on each receiver.
    receivers
        .drive_until_notified(&client, &exporter, false, "resolved", "RESOLVED")
        .await;

    // Quiet period: nothing repeated or duplicated.
    drive_until(&client, &exporter, false, Duration::from_secs(3), || false).await;
    let slack = slack_posts(&posts);
    let mail = mails(&mail_out);
    eprintln!(
        "observed: {} Slack messages {:?}, {} e-mails {:?}",
        slack.len(),
        slack.iter().map(slack_status).collect::<Vec<_>>(),
        mail.len(),
        mail.iter()
            .map(|m| m["subject"].clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(
        slack.iter().map(slack_status).collect::<Vec<_>>(),
        ["firing", "resolved"],
        "Slack messages: {slack:?}"
    );
    for post in &slack {
        assert!(
            post.get("attachments").is_some() || post.get("text").is_some(),
            "Slack body without attachments or text: {post}"
        );
        let title = post["attachments"][0]["title"].as_str().unwrap_or("");
        assert!(title.contains("HighErrorRate"), "{post}");
    }
    assert_eq!(slack[0]["attachments"][0]["color"], "danger", "{slack:?}");
    assert_eq!(slack[1]["attachments"][0]["color"], "good", "{slack:?}");
    assert_eq!(mail.len(), 2, "e-mails: {mail:?}");
    let subjects: Vec<&str> = mail
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or(""))
        .collect();
    assert!(
        subjects[0].starts_with("[FIRING:1] HighErrorRate"),
        "{subjects:?}"
    );
    assert!(
        subjects[1].starts_with("[RESOLVED] HighErrorRate"),
        "{subjects:?}"
    );
    for m in &mail {
        assert_eq!(m["mail_from"], "vigil@example.com");
        assert_eq!(m["rcpt_tos"], serde_json::json!(["oncall@example.com"]));
    }
}
