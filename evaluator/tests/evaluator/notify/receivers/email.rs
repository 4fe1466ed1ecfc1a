//! E-mail receiver against a real SMTP server (python aiosmtpd on loopback):
//! the received bytes must be a well-formed MIME message with the right
//! envelope, headers and both a text and an HTML part.

use crate::support as common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_evaluator::notify::alert::AlertStatus;
use vigil_evaluator::notify::receivers::Receiver;
use vigil_testkit::{external_tool, free_port, ChildGuard};

use common::{alert, build_one, notification};

/// The SMTP server: stores each message with its envelope, and what
/// Python's own MIME parser makes of it, as one JSON line.
const SERVER: &str = r#"
import base64, email, email.policy, json, logging, ssl, sys, threading, warnings
warnings.simplefilter("ignore")
logging.disable(logging.CRITICAL)
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, out, credentials, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

class Sink:
    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in message.walk():
            if part.is_multipart():
                continue
            parts.append({"type": part.get_content_type(), "content": part.get_content()})
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "raw": base64.b64encode(raw).decode(),
            "content_type": message.get_content_type(),
            "defects": [str(d) for d in message.defects],
            "headers": {k: str(v) for k, v in message.items()},
            "parts": parts,
            "authenticated_as": session.auth_data if isinstance(session.auth_data, str) else None,
            "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
        }
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK"

def authenticate(server, session, envelope, mechanism, auth_data):
    user, password = credentials.split(":", 1)
    if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user \
            and auth_data.password.decode() == password:
        return AuthResult(success=True, auth_data=user)
    return AuthResult(success=False, handled=False)

options = {}
if credentials:
    options = dict(authenticator=authenticate, auth_require_tls=False, auth_required=True)
if mode != "plain":
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[5], sys.argv[6])
    if mode == "starttls":
        options.update(tls_context=context, require_starttls=True)
    else:
        options.update(ssl_context=context)
controller = Controller(Sink(), hostname="127.0.0.1", port=port, **options)
controller.start()
print("ready", flush=True)
threading.Event().wait()
"#;

pub(crate) struct SmtpServer {
    pub(crate) port: u16,
    pub(crate) out: PathBuf,
    /// PEM of the server's self-signed certificate (TLS modes).
    ca_file: PathBuf,
    _guard: ChildGuard,
    _dir: tempfile::TempDir,
}

/// Starts the server, or returns `None` (test skipped) when python3 or
/// aiosmtpd is missing on a developer machine.
pub(crate) fn start_smtp(credentials: &str) -> Option<SmtpServer> {
    start_smtp_mode(credentials, "plain")
}

/// `mode`: `plain`, `starttls` (STARTTLS required) or `implicit` (SMTPS),
/// with a fresh self-signed certificate for `localhost` and 127.0.0.1.
fn start_smtp_mode(credentials: &str, mode: &str) -> Option<SmtpServer> {
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
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let script = dir.path().join("smtp_sink.py");
    std::fs::write(&script, SERVER).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("received.jsonl");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap_or_else(|e| panic!("{e}"));
    let ca_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&ca_file, certified.cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&key_file, certified.signing_key.serialize_pem())
        .unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let mut command = Command::new(python);
    command
        .arg(&script)
        .arg(port.to_string())
        .arg(&out)
        .arg(credentials)
        .arg(mode)
        .arg(&ca_file)
        .arg(&key_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut guard = ChildGuard::spawn(&mut command);
    wait_until_ready(&mut guard, port);
    Some(SmtpServer {
        port,
        out,
        ca_file,
        _guard: guard,
        _dir: dir,
    })
}

fn wait_until_ready(guard: &mut ChildGuard, port: u16) {
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
}

pub(crate) fn received(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn header<'a>(raw_headers: &'a str, name: &str) -> Option<&'a str> {
    raw_headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then_some(value.trim())
    })
}

#[tokio::test]
async fn email_is_a_multipart_message_with_subject_recipients_and_custom_headers() {
    let Some(server) = start_smtp("") else {
        return;
    };
    let receiver = build_one(&format!(
        "email_configs:
  - to: 'oncall@example.com, Lead <lead@example.com>'
    from: 'Vigil <vigil@example.com>'
    smarthost: '127.0.0.1:{}'
    require_tls: false
    send_resolved: true
    headers:
      x-team: payments
      Reply-To: sre@example.com
    text: |
      {{{{ range .Alerts }}}}[{{{{ .Status | toUpper }}}}] {{{{ .Annotations.summary }}}}
      {{{{ range .Labels.SortedPairs }}}}- {{{{ .Name }}}} = {{{{ .Value }}}}
      {{{{ end }}}}{{{{ end }}}}
",
        server.port
    ));
    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Resolved),
    ]);

    let report = receiver.send(&n).await;

    let report = report.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.response_code, Some(250));
    let messages = received(&server.out);
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message["mail_from"], "vigil@example.com");
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["oncall@example.com", "lead@example.com"])
    );
    assert_eq!(message["defects"], serde_json::json!([]));
    assert_eq!(message["content_type"], "multipart/alternative");
    let headers = &message["headers"];
    assert_eq!(headers["Subject"], "[FIRING:1] HighErrorRate (/x critical)");
    assert_eq!(headers["From"], "Vigil <vigil@example.com>");
    assert!(
        headers["To"]
            .as_str()
            .is_some_and(|t| t.contains("oncall@example.com") && t.contains("lead@example.com")),
        "{}",
        headers["To"]
    );
    assert_eq!(headers["X-Team"], "payments");
    assert_eq!(headers["Reply-To"], "sre@example.com");
    let message_id = headers["Message-ID"].as_str().unwrap_or("");
    assert!(!message_id.is_empty());
    assert_eq!(report.message_id.as_deref(), Some(message_id));

    let parts = message["parts"].as_array().cloned().unwrap_or_default();
    let part = |kind: &str| {
        parts
            .iter()
            .find(|p| p["type"] == kind)
            .and_then(|p| p["content"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let text = part("text/plain");
    let html = part("text/html");
    assert!(text.contains("[FIRING] Error rate above 5% on a"), "{text}");
    assert!(
        text.contains("[RESOLVED] Error rate above 5% on b"),
        "{text}"
    );
    assert!(text.contains("- pod = a"), "{text}");
    assert!(html.contains("[1] Firing</h3>"), "{html}");
    assert!(html.contains("[1] Resolved</h3>"), "{html}");
    assert!(
        html.contains("runbook_url = https://runbooks.example/high-error-rate<br>"),
        "{html}"
    );

    // The raw bytes themselves carry the MIME structure.
    let raw =
        String::from_utf8(base64_decode(message["raw"].as_str().unwrap_or("")).unwrap_or_default())
            .unwrap_or_default();
    let raw_headers = raw.split("\r\n\r\n").next().unwrap_or("");
    assert_eq!(header(raw_headers, "MIME-Version"), Some("1.0"));
    assert!(
        header(raw_headers, "Content-Type").is_some_and(|v| v.starts_with("multipart/alternative"))
    );
}

#[tokio::test]
async fn email_subject_header_override_expands_placeholders() {
    let Some(server) = start_smtp("") else {
        return;
    };
    let receiver = build_one(&format!(
        "email_configs:
  - to: oncall@example.com
    from: vigil@example.com
    smarthost: '127.0.0.1:{}'
    require_tls: false
    headers:
      Subject: '{{{{ .Status | toUpper }}}}: {{{{ .CommonLabels.alertname }}}} on {{{{ .CommonLabels.route }}}}'
",
        server.port
    ));

    let report = receiver
        .send(&notification(vec![alert(
            "a",
            "warning",
            AlertStatus::Firing,
        )]))
        .await;

    assert!(report.is_ok(), "{report:?}");
    let messages = received(&server.out);
    assert_eq!(
        messages[0]["headers"]["Subject"],
        "FIRING: HighErrorRate on /x"
    );
}

#[tokio::test]
async fn email_authenticates_with_username_and_password_file() {
    let Some(server) = start_smtp("alerts:pa55word") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, "pa55word\n").unwrap_or_else(|e| panic!("{e}"));
    let receiver = build_one(&format!(
        "email_configs:
  - to: oncall@example.com
    from: vigil@example.com
    smarthost: '127.0.0.1:{}'
    require_tls: false
    auth_username: alerts
    auth_password_file: '{}'
",
        server.port,
        password_file.display()
    ));

    let report = receiver
        .send(&notification(vec![alert(
            "a",
            "warning",
            AlertStatus::Firing,
        )]))
        .await;

    assert!(report.is_ok(), "{report:?}");
    let messages = received(&server.out);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["authenticated_as"], "alerts");
    assert!(!format!("{receiver:?}").contains("pa55word"));
}

#[tokio::test]
async fn email_with_a_wrong_password_fails_without_retry_or_leaking_it() {
    let Some(server) = start_smtp("alerts:pa55word") else {
        return;
    };
    let receiver = build_one(&format!(
        "email_configs:
  - to: oncall@example.com
    from: vigil@example.com
    smarthost: '127.0.0.1:{}'
    require_tls: false
    auth_username: alerts
    auth_password: wrong-guess
",
        server.port
    ));

    let error = receiver
        .send(&notification(vec![alert(
            "a",
            "warning",
            AlertStatus::Firing,
        )]))
        .await
        .err();

    let error = error.unwrap_or_else(|| panic!("a wrong password must fail"));
    assert!(!error.is_retryable(), "{error}");
    assert!(!error.to_string().contains("wrong-guess"), "{error}");
    assert!(received(&server.out).is_empty());
}

#[tokio::test]
async fn require_tls_default_refuses_a_server_without_starttls() {
    let Some(server) = start_smtp("") else {
        return;
    };
    // require_tls is not set: Alertmanager's default (true) applies.
    let receiver = build_one(&format!(
        "email_configs:
  - to: oncall@example.com
    from: vigil@example.com
    smarthost: '127.0.0.1:{}'
",
        server.port
    ));

    let result = receiver
        .send(&notification(vec![alert(
            "a",
            "warning",
            AlertStatus::Firing,
        )]))
        .await;

    let error = result
        .err()
        .unwrap_or_else(|| panic!("sent in plain text despite require_tls"));
    assert!(
        !error.is_retryable(),
        "a missing STARTTLS will not fix itself: {error}"
    );
    assert!(error.to_string().contains("127.0.0.1"), "{error}");
    assert!(received(&server.out).is_empty());
}

#[tokio::test]
async fn email_upgrades_with_starttls_and_verifies_the_server_certificate() {
    let Some(server) = start_smtp_mode("", "starttls") else {
        return;
    };
    // require_tls defaults to true; the server's CA is trusted via tls_config.
    let receiver = build_one(&format!(
        "email_configs:
  - to: oncall@example.com
    from: vigil@example.com
    smarthost: '127.0.0.1:{}'
    tls_config:
      ca_file: '{}'
      server_name: localhost
",
        server.port,
        server.ca_file.display()
    ));

    let report = receiver
        .send(&notification(vec![alert(
            "a",
            "warning",
            AlertStatus::Firing,
        )]))
        .await;

    assert!(report.is_ok(), "{report:?}");
    let messages = received(&server.out);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["tls"], true, "message was not sent over TLS");
}

#[tokio::test]
async fn email_starttls_with_an_untrusted_certificate_fails_for_good() {
    let Some(server) = start_smtp_mode("", "starttls") else {
        return;
    };
    let receiver = build_one(&format!(
        "email_configs:
  - to: oncall@example.com
    from: vigil@example.com
    smarthost: '127.0.0.1:{}'
",
        server.port
    ));

    let error = receiver
        .send(&notification(vec![alert(
            "a",
            "warning",
            AlertStatus::Firing,
        )]))
        .await
        .err()
        .unwrap_or_else(|| panic!("an untrusted certificate must be refused"));

    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("tls_config"), "{error}");
    assert!(received(&server.out).is_empty());
}

#[tokio::test]
async fn email_implicit_tls_flag_speaks_tls_from_the_first_byte() {
    let Some(server) = start_smtp_mode("", "implicit") else {
        return;
    };
    let receiver = build_one(&format!(
        "email_configs:
  - to: oncall@example.com
    from: vigil@example.com
    smarthost: '127.0.0.1:{}'
    implicit_tls: true
    tls_config:
      ca_file: '{}'
",
        server.port,
        server.ca_file.display()
    ));

    let report = receiver
        .send(&notification(vec![alert(
            "a",
            "warning",
            AlertStatus::Firing,
        )]))
        .await;

    assert!(report.is_ok(), "{report:?}");
    let messages = received(&server.out);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["tls"], true);
}

/// Standard base64 (the server encodes the raw message to keep JSON valid).
/// `examples/notify-local.yaml`, which the README's "Send alerts to Slack and
/// e-mail" section runs with `scripts/slack-stand-in` and aiosmtpd, loaded the
/// way the evaluator loads it (from a `vigil.yaml` naming it) with only the
/// two ports changed, delivers to a Slack stand-in and to plain SMTP.
#[tokio::test]
async fn shipped_local_notify_example_delivers_to_slack_and_email_on_localhost() {
    let Some(smtp) = start_smtp("") else {
        return;
    };
    let (posted, mut slack_messages) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let slack = axum::Router::new().route(
        "/slack",
        axum::routing::post(move |body: axum::Json<Value>| {
            let posted = posted.clone();
            async move {
                let _ = posted.send(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let slack_port = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .port();
    tokio::spawn(async move { axum::serve(listener, slack).await });

    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/notify-local.yaml");
    let text = std::fs::read_to_string(&example).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("smtp_smarthost: 127.0.0.1:2525")
            && text.contains("api_url: http://127.0.0.1:8099/slack"),
        "the example no longer uses the ports the README starts the stand-ins on"
    );
    let text = text
        .replace("127.0.0.1:2525", &format!("127.0.0.1:{}", smtp.port))
        .replace("127.0.0.1:8099", &format!("127.0.0.1:{slack_port}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("notify-local.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    let vigil = dir.path().join("vigil.yaml");
    std::fs::write(&vigil, "notify_config_file: notify-local.yaml\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let config =
        vigil_evaluator::server::config::load(&vigil, &|_| None).unwrap_or_else(|e| panic!("{e}"));
    let integrations = &config.receivers["local"];
    let mut kinds: Vec<&str> = integrations.iter().map(|i| i.integration).collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["console", "email", "slack"]);

    let n = notification(vec![alert("a", "critical", AlertStatus::Firing)]);
    for integration in integrations {
        if let Err(error) = integration.receiver.send(&n).await {
            panic!(
                "{} failed on the first try: {error}",
                integration.integration
            );
        }
    }

    let message = tokio::time::timeout(Duration::from_secs(5), slack_messages.recv())
        .await
        .unwrap_or_else(|_| panic!("no Slack message"))
        .unwrap_or_else(|| panic!("Slack stand-in stopped"));
    assert_eq!(message["channel"], "#alerts");
    assert_eq!(
        message["attachments"][0]["title"],
        "[FIRING:1] HighErrorRate (a /x critical)"
    );
    let mails = received(&smtp.out);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["mail_from"], "vigil@localhost");
    assert_eq!(
        mails[0]["rcpt_tos"],
        serde_json::json!(["oncall@localhost"])
    );
    assert_eq!(mails[0]["tls"], false);
    assert_eq!(
        mails[0]["headers"]["Subject"],
        "[FIRING:1] HighErrorRate (a /x critical)"
    );
}

fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in input.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[test]
fn email_send_resolved_defaults_to_false_as_in_alertmanager() {
    let receivers: Vec<std::sync::Arc<dyn Receiver>> = vec![build_one(
        "email_configs:\n  - {to: a@example.com, from: b@example.com, smarthost: 'localhost:25'}\n",
    )];
    assert_eq!(receivers[0].integration(), "email");
    assert!(!receivers[0].send_resolved());
}

/// A templates file for the e-mail oracle: subject and text of its own.
const EMAIL_TMPL: &str = r#"{{ define "custom.subject" }}{{ .Status | toUpper }}: {{ .GroupLabels.alertname }} ({{ len .Alerts.Firing }} firing){{ end }}
{{ define "custom.text" }}{{ range .Alerts }}{{ .Labels.pod }} {{ .Status }}: {{ .Annotations.summary }}
{{ end }}{{ end }}"#;

/// The same e-mail config, with a custom `templates:` file (subject, text,
/// a templated recipient and header, an HTML body) and then with the
/// defaults, through a real Alertmanager and through Vigil to one SMTP
/// sink: envelope, headers and the bodies both render must be the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_headers_and_bodies_match_alertmanagers_with_custom_and_default_templates() {
    let Some((binary, _capture, _captured, dir)) = common::alertmanager::oracle().await else {
        return;
    };
    let Some(server) = start_smtp("") else {
        return;
    };
    std::fs::write(dir.path().join("mail.tmpl"), EMAIL_TMPL).unwrap_or_else(|e| panic!("{e}"));
    let n = notification(vec![
        alert("a", "critical", AlertStatus::Firing),
        alert("b", "critical", AlertStatus::Resolved),
    ]);
    let custom = format!(
        "    email_configs:
      - to: 'oncall@example.com, {{{{ .GroupLabels.alertname | toLower }}}}@example.com'
        from: 'Vigil <vigil@example.com>'
        smarthost: '127.0.0.1:{port}'
        require_tls: false
        send_resolved: true
        headers:
          subject: '{{{{ template \"custom.subject\" . }}}}'
          X-Severity: '{{{{ .CommonLabels.severity }}}}'
        text: '{{{{ template \"custom.text\" . }}}}'
        html: '<b>{{{{ .CommonLabels.alertname }}}}</b>{{{{ range .Alerts }}}} {{{{ .Annotations.summary }}}};{{{{ end }}}}'
",
        port = server.port
    );
    let defaults = format!(
        "    email_configs:
      - to: 'oncall@example.com'
        from: 'vigil@example.com'
        smarthost: '127.0.0.1:{port}'
        require_tls: false
        send_resolved: true
",
        port = server.port
    );
    for (case, integrations, compared_parts) in [
        ("custom", custom, &["text/plain", "text/html"][..]),
        ("defaults", defaults, &[][..]),
    ] {
        let config_path = dir.path().join(format!("{case}.yml"));
        let text = format!(
            "templates: ['{}/*.tmpl']\n{}{integrations}",
            dir.path().display(),
            common::alertmanager::ROUTE_TO_TEAM_A
        );
        std::fs::write(&config_path, text).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_file(&server.out);
        let (alertmanager, base) =
            common::alertmanager::start_alertmanager(&binary, &dir.path().join(case), &config_path)
                .await;
        common::alertmanager::post_alerts(&base, &n).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while received(&server.out).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{case}: Alertmanager sent no mail in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(alertmanager);

        let config = vigil_evaluator::notify::config::load_file(&config_path)
            .unwrap_or_else(|e| panic!("{e}"));
        let (receivers, _) = vigil_evaluator::notify::config::build_receivers(&config)
            .unwrap_or_else(|e| panic!("{e:?}"));
        receivers["team-a"][0]
            .receiver
            .send(&n)
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        let mails = received(&server.out);
        let subjects: Vec<&Value> = mails.iter().map(|m| &m["headers"]["Subject"]).collect();
        assert_eq!(
            mails.len(),
            2,
            "{case}: one mail from each, got the subjects {subjects:?}"
        );
        let (am, ours) = (&mails[0], &mails[1]);
        assert_eq!(
            ours["mail_from"], am["mail_from"],
            "{case}: envelope sender"
        );
        assert_eq!(
            ours["rcpt_tos"], am["rcpt_tos"],
            "{case}: envelope recipients"
        );
        for header in ["Subject", "From", "To", "X-Severity"] {
            assert_eq!(
                ours["headers"][header], am["headers"][header],
                "{case}: header {header}"
            );
        }
        let part = |mail: &Value, kind: &str| -> Option<String> {
            mail["parts"].as_array()?.iter().find_map(|p| {
                (p["type"] == kind)
                    .then(|| p["content"].as_str().unwrap_or("").replace("\r\n", "\n"))
            })
        };
        for kind in ["text/plain", "text/html"] {
            assert_eq!(
                part(ours, kind).is_some(),
                part(am, kind).is_some(),
                "{case}: {kind} part"
            );
        }
        if case == "custom" {
            assert_eq!(am["headers"]["X-Severity"], "critical");
            assert_eq!(am["headers"]["Subject"], "FIRING: HighErrorRate (1 firing)");
            assert_eq!(
                part(am, "text/plain").as_deref(),
                Some("a firing: Error rate above 5% on a\nb resolved: Error rate above 5% on b\n")
            );
        }
        for kind in compared_parts {
            assert_eq!(part(ours, kind), part(am, kind), "{case}: {kind} body");
        }
    }
}
