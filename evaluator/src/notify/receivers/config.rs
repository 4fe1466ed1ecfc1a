//! Typed configuration of each integration (`slack_configs`, `email_configs`,
//! `webhook_configs`, `console_configs`), parsed from the raw YAML the notify
//! config loader keeps, validated in one pass that reports every problem with
//! its field path, and turned into ready [`Receiver`]s.
//!
//! Field names and defaults are Alertmanager's; Vigil additions are marked
//! "(Vigil)". Secrets are resolved here (inline, `*_file`, or `${ENV}`), so a
//! missing file or variable is a config error at load time, not a failed
//! delivery at 3 a.m.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use vigil_common::problem::Problem;

use super::console::ConsoleReceiver;
use super::email::EmailReceiver;
use super::slack::SlackReceiver;
use super::webhook::WebhookReceiver;
use super::{Receiver, Secret};

/// Per-attempt HTTP timeout when the config sets none (Vigil default;
/// Alertmanager has none, but retries need every attempt to end).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(10);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

/// The `global:` settings that receivers fall back on. Deserializes from the
/// `global:` section directly (unknown keys are ignored, so the loader can
/// parse the same mapping for its own keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GlobalReceiverDefaults {
    pub slack_api_url: Option<Secret>,
    pub slack_api_url_file: Option<PathBuf>,
    pub smtp_from: Option<String>,
    /// Name sent in `EHLO`; Alertmanager's default is `localhost`.
    pub smtp_hello: String,
    pub smtp_smarthost: Option<String>,
    pub smtp_auth_username: Option<String>,
    pub smtp_auth_password: Option<Secret>,
    pub smtp_auth_password_file: Option<PathBuf>,
    pub smtp_auth_identity: Option<String>,
    /// Alertmanager's default: STARTTLS is required.
    pub smtp_require_tls: bool,
}

impl Default for GlobalReceiverDefaults {
    fn default() -> Self {
        GlobalReceiverDefaults {
            slack_api_url: None,
            slack_api_url_file: None,
            smtp_from: None,
            smtp_hello: "localhost".into(),
            smtp_smarthost: None,
            smtp_auth_username: None,
            smtp_auth_password: None,
            smtp_auth_password_file: None,
            smtp_auth_identity: None,
            smtp_require_tls: true,
        }
    }
}

/// One receiver's integration sections, as raw YAML (each a sequence).
#[derive(Debug, Clone, Default)]
pub struct IntegrationSections {
    pub slack_configs: Option<serde_yaml::Value>,
    pub email_configs: Option<serde_yaml::Value>,
    pub webhook_configs: Option<serde_yaml::Value>,
    pub console_configs: Option<serde_yaml::Value>,
}

impl IntegrationSections {
    /// The `*_configs` keys this module owns, for the loader to pick out of
    /// a receiver's mapping.
    pub const KEYS: [&'static str; 4] = [
        "slack_configs",
        "email_configs",
        "webhook_configs",
        "console_configs",
    ];

    /// Picks the integration sections out of one `receivers[]` entry.
    pub fn from_receiver(receiver: &serde_yaml::Mapping) -> IntegrationSections {
        let get = |key: &str| receiver.get(key).cloned();
        IntegrationSections {
            slack_configs: get("slack_configs"),
            email_configs: get("email_configs"),
            webhook_configs: get("webhook_configs"),
            console_configs: get("console_configs"),
        }
    }
}

/// A configured integration, ready to send.
#[derive(Debug, Clone)]
pub struct Integration {
    /// Name of the receiver it belongs to.
    pub receiver_name: String,
    /// `slack`, `email`, `webhook` or `console`.
    pub integration: &'static str,
    /// Position within its `*_configs` list.
    pub index: usize,
    pub receiver: Arc<dyn Receiver>,
}

/// Every problem found in one receiver's integrations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid receiver configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigProblems(pub Vec<Problem>);

/// Collects problems while validating.
struct Problems<'a> {
    problems: &'a mut Vec<Problem>,
    path: String,
}

impl Problems<'_> {
    fn add(&mut self, field: &str, message: impl Into<String>) {
        let path = if field.is_empty() {
            self.path.clone()
        } else {
            format!("{}.{field}", self.path)
        };
        self.problems.push(Problem::at_field(path, message));
    }
}

// ---------------------------------------------------------------- HTTP config

/// `http_config` (the subset of Prometheus' HTTP client config Vigil honours).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfigRaw {
    pub authorization: Option<AuthorizationRaw>,
    pub basic_auth: Option<BasicAuthRaw>,
    pub bearer_token: Option<Secret>,
    pub bearer_token_file: Option<PathBuf>,
    pub follow_redirects: Option<bool>,
}

/// `http_config.authorization`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRaw {
    /// Scheme, default `Bearer`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub credentials: Option<Secret>,
    pub credentials_file: Option<PathBuf>,
}

/// `http_config.basic_auth`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthRaw {
    pub username: String,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
}

/// The resolved `Authorization` header value and redirect policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpSettings {
    /// Full header value, e.g. `Bearer <token>`.
    pub authorization: Option<Secret>,
    pub follow_redirects: bool,
}

fn validate_http(raw: Option<&HttpConfigRaw>, p: &mut Problems<'_>) -> HttpSettings {
    let Some(raw) = raw else {
        return HttpSettings {
            authorization: None,
            follow_redirects: true,
        };
    };
    let mut methods = 0;
    let mut authorization = None;
    if let Some(auth) = &raw.authorization {
        methods += 1;
        let scheme = auth.kind.clone().unwrap_or_else(|| "Bearer".into());
        if scheme.eq_ignore_ascii_case("basic") {
            p.add(
                "http_config.authorization.type",
                "`Basic` is not allowed here; use http_config.basic_auth",
            );
        }
        if let Some(credentials) = resolve_secret(
            auth.credentials.as_ref(),
            auth.credentials_file.as_deref(),
            "http_config.authorization.credentials",
            false,
            p,
        ) {
            authorization = Some(Secret::new(format!("{scheme} {}", credentials.expose())));
        }
    }
    if raw.bearer_token.is_some() || raw.bearer_token_file.is_some() {
        methods += 1;
        if let Some(token) = resolve_secret(
            raw.bearer_token.as_ref(),
            raw.bearer_token_file.as_deref(),
            "http_config.bearer_token",
            false,
            p,
        ) {
            authorization = Some(Secret::new(format!("Bearer {}", token.expose())));
        }
    }
    if let Some(basic) = &raw.basic_auth {
        methods += 1;
        let password = resolve_secret(
            basic.password.as_ref(),
            basic.password_file.as_deref(),
            "http_config.basic_auth.password",
            false,
            p,
        );
        let pair = format!(
            "{}:{}",
            basic.username,
            password.as_ref().map(Secret::expose).unwrap_or("")
        );
        authorization = Some(Secret::new(format!("Basic {}", base64(pair.as_bytes()))));
    }
    if methods > 1 {
        p.add(
            "http_config",
            "at most one of authorization, basic_auth and bearer_token(_file) may be set",
        );
    }
    HttpSettings {
        authorization,
        follow_redirects: raw.follow_redirects.unwrap_or(true),
    }
}

fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Resolves a secret from its inline value (or `${ENV}`) or its `_file`.
/// `required` adds a problem when neither is set.
fn resolve_secret(
    inline: Option<&Secret>,
    file: Option<&Path>,
    field: &str,
    required: bool,
    p: &mut Problems<'_>,
) -> Option<Secret> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            p.add(
                field,
                format!("at most one of {field} and {field}_file may be set"),
            );
            None
        }
        (Some(value), None) => {
            let raw = value.expose();
            if let Some(name) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                match std::env::var(name) {
                    Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                    _ => {
                        p.add(
                            field,
                            format!("environment variable {name} is not set or empty; export it or use {field}_file"),
                        );
                        None
                    }
                }
            } else if raw.is_empty() {
                if required {
                    p.add(field, "must not be empty");
                }
                None
            } else {
                Some(value.clone())
            }
        }
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(content) => {
                let content = content.trim_end_matches(['\n', '\r']).to_string();
                if content.is_empty() {
                    p.add(
                        &format!("{field}_file"),
                        format!("file {} is empty", path.display()),
                    );
                    None
                } else {
                    Some(Secret::new(content))
                }
            }
            Err(error) => {
                p.add(
                    &format!("{field}_file"),
                    format!("cannot read {}: {error}", path.display()),
                );
                None
            }
        },
        (None, None) => {
            if required {
                p.add(field, format!("{field} or {field}_file is required"));
            }
            None
        }
    }
}

/// Parses a Prometheus duration (`500ms`, `10s`, `1m30s`, `2h`, `1d`),
/// ignoring surrounding blanks; `None` when it is not one.
pub fn parse_duration(value: &str) -> Option<Duration> {
    vigil_common::duration::parse_duration(value.trim()).ok()
}

fn parse_timeout(value: Option<&str>, p: &mut Problems<'_>) -> Duration {
    match value {
        None => DEFAULT_HTTP_TIMEOUT,
        Some(text) => match parse_duration(text) {
            Some(d) if !d.is_zero() => d,
            _ => {
                p.add(
                    "timeout",
                    format!("`{text}` is not a positive duration; write e.g. `10s` or `1m`"),
                );
                DEFAULT_HTTP_TIMEOUT
            }
        },
    }
}

fn check_url(value: &str, field: &str, p: &mut Problems<'_>) {
    match reqwest::Url::parse(value) {
        Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {}
        // The URL may be a secret: never echo it.
        _ => p.add(field, "is not an absolute http(s) URL"),
    }
}

// ---------------------------------------------------------------- Slack

/// `slack_configs[]` as written in the config file. See [`super::slack`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfigRaw {
    pub send_resolved: Option<bool>,
    pub api_url: Option<Secret>,
    pub api_url_file: Option<PathBuf>,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    #[serde(default)]
    pub fields: Vec<SlackFieldRaw>,
    #[serde(default)]
    pub short_fields: bool,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    #[serde(default)]
    pub link_names: bool,
    /// Unset: `[text]` (Vigil's default text uses mrkdwn); `[]` turns it off.
    pub mrkdwn_in: Option<Vec<String>>,
    #[serde(default)]
    pub actions: Vec<SlackActionRaw>,
    pub http_config: Option<HttpConfigRaw>,
}

/// `slack_configs[].fields[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackFieldRaw {
    pub title: String,
    pub value: String,
    pub short: Option<bool>,
}

/// `slack_configs[].actions[]` (link buttons; Slack shows `type: button`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlackActionRaw {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    pub url: Option<String>,
    pub style: Option<String>,
    pub name: Option<String>,
    pub value: Option<String>,
}

/// A validated Slack integration.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub send_resolved: bool,
    pub api_url: Secret,
    pub channel: Option<String>,
    pub username: Option<String>,
    pub color: Option<String>,
    pub title: Option<String>,
    pub title_link: Option<String>,
    pub pretext: Option<String>,
    pub text: Option<String>,
    pub fields: Vec<SlackFieldRaw>,
    pub short_fields: bool,
    pub footer: Option<String>,
    pub fallback: Option<String>,
    pub callback_id: Option<String>,
    pub icon_emoji: Option<String>,
    pub icon_url: Option<String>,
    pub image_url: Option<String>,
    pub thumb_url: Option<String>,
    pub link_names: bool,
    pub mrkdwn_in: Vec<String>,
    pub actions: Vec<SlackActionRaw>,
    pub http: HttpSettings,
}

fn validate_slack(
    raw: SlackConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<SlackSettings> {
    let before = p.problems.len();
    let api_url = if raw.api_url.is_some() || raw.api_url_file.is_some() {
        resolve_secret(
            raw.api_url.as_ref(),
            raw.api_url_file.as_deref(),
            "api_url",
            true,
            p,
        )
    } else if global.slack_api_url.is_some() || global.slack_api_url_file.is_some() {
        let mut global_problems = Problems {
            problems: &mut *p.problems,
            path: "global".into(),
        };
        resolve_secret(
            global.slack_api_url.as_ref(),
            global.slack_api_url_file.as_deref(),
            "slack_api_url",
            true,
            &mut global_problems,
        )
    } else {
        p.add(
            "api_url",
            "no Slack webhook URL: set api_url or api_url_file here, or global.slack_api_url(_file)",
        );
        None
    };
    if let Some(url) = &api_url {
        check_url(url.expose(), "api_url", p);
    }
    if let Some(icon) = &raw.icon_url {
        if raw.icon_emoji.is_some() {
            p.add("icon_url", "set icon_url or icon_emoji, not both");
        }
        check_url(icon, "icon_url", p);
    }
    for (i, action) in raw.actions.iter().enumerate() {
        if action.kind.is_empty() || action.text.is_empty() {
            p.add(&format!("actions[{i}]"), "type and text are required");
        }
        if action.url.is_none() && action.name.is_none() {
            p.add(&format!("actions[{i}]"), "url or name is required");
        }
    }
    for (i, field) in raw.fields.iter().enumerate() {
        if field.title.is_empty() || field.value.is_empty() {
            p.add(&format!("fields[{i}]"), "title and value are required");
        }
    }
    let http = validate_http(raw.http_config.as_ref(), p);
    if p.problems.len() > before {
        return None;
    }
    Some(SlackSettings {
        send_resolved: raw.send_resolved.unwrap_or(false),
        api_url: api_url?,
        channel: raw.channel,
        username: raw.username,
        color: raw.color,
        title: raw.title,
        title_link: raw.title_link,
        pretext: raw.pretext,
        text: raw.text,
        fields: raw.fields,
        short_fields: raw.short_fields,
        footer: raw.footer,
        fallback: raw.fallback,
        callback_id: raw.callback_id,
        icon_emoji: raw.icon_emoji,
        icon_url: raw.icon_url,
        image_url: raw.image_url,
        thumb_url: raw.thumb_url,
        link_names: raw.link_names,
        mrkdwn_in: raw.mrkdwn_in.unwrap_or_else(|| vec!["text".to_string()]),
        actions: raw.actions,
        http,
    })
}

// ---------------------------------------------------------------- e-mail

/// `email_configs[]` as written in the config file. See [`super::email`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfigRaw {
    pub send_resolved: Option<bool>,
    pub to: Option<String>,
    pub from: Option<String>,
    pub hello: Option<String>,
    pub smarthost: Option<String>,
    pub auth_username: Option<String>,
    pub auth_password: Option<Secret>,
    pub auth_password_file: Option<PathBuf>,
    pub auth_secret: Option<Secret>,
    pub auth_identity: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub require_tls: Option<bool>,
    /// (Vigil) Connect with TLS from the first byte (SMTPS). Default: true
    /// when the smarthost port is 465, as Alertmanager does.
    pub implicit_tls: Option<bool>,
    /// (Vigil) SMTP conversation timeout, default 10s.
    pub timeout: Option<String>,
    pub tls_config: Option<TlsConfigRaw>,
}

/// `email_configs[].tls_config` (the server-verification subset of
/// Prometheus' TLS config).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfigRaw {
    /// PEM file with the CA certificate(s) to trust in addition to the
    /// Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// Name to verify the server certificate against (default: the
    /// smarthost's host).
    pub server_name: Option<String>,
    /// Do not verify the server certificate at all (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    Implicit,
    /// Plain connection upgraded with STARTTLS; fails when not offered.
    StartTlsRequired,
    /// Plain text, no upgrade (`require_tls: false`, as Alertmanager).
    None,
}

/// A validated e-mail integration.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    pub send_resolved: bool,
    /// Envelope and `To` recipients, split on commas.
    pub to: Vec<String>,
    /// The `to` field as written, used for the `To` header.
    pub to_header: String,
    pub from: String,
    pub hello: String,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub auth_username: Option<String>,
    pub auth_password: Option<Secret>,
    /// Header overrides, names in canonical MIME case (`Subject`, `X-Team`).
    pub headers: BTreeMap<String, String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub timeout: Duration,
    /// Extra trusted CA certificate (PEM), from `tls_config.ca_file`.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Name the server certificate is verified against.
    pub tls_server_name: String,
    pub tls_insecure_skip_verify: bool,
}

/// `x-team` → `X-Team`, as Go's `textproto.CanonicalMIMEHeaderKey`.
pub fn canonical_header_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn validate_email(
    raw: EmailConfigRaw,
    global: &GlobalReceiverDefaults,
    p: &mut Problems<'_>,
) -> Option<EmailSettings> {
    let before = p.problems.len();
    let to_header = raw.to.clone().unwrap_or_default();
    let to: Vec<String> = to_header
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if to.is_empty() {
        p.add("to", "missing `to` address (comma-separated list allowed)");
    }
    for address in &to {
        if address.parse::<lettre::message::Mailbox>().is_err() {
            p.add("to", format!("`{address}` is not an e-mail address"));
        }
    }
    let from = raw.from.clone().or_else(|| global.smtp_from.clone());
    match &from {
        None => p.add("from", "missing `from` here and in global.smtp_from"),
        Some(f) if f.parse::<lettre::message::Mailbox>().is_err() => {
            p.add("from", format!("`{f}` is not an e-mail address"))
        }
        Some(_) => {}
    }
    let smarthost = raw
        .smarthost
        .clone()
        .or_else(|| global.smtp_smarthost.clone());
    let (host, port) = match smarthost.as_deref().map(split_host_port) {
        None => {
            p.add(
                "smarthost",
                "missing `smarthost` (host:port) here and in global.smtp_smarthost",
            );
            (String::new(), 0)
        }
        Some(None) => {
            p.add("smarthost", "must be host:port, e.g. mail.example.com:587");
            (String::new(), 0)
        }
        Some(Some(hp)) => hp,
    };
    let auth_username = raw
        .auth_username
        .clone()
        .or_else(|| global.smtp_auth_username.clone());
    let auth_password = if raw.auth_password.is_some() || raw.auth_password_file.is_some() {
        resolve_secret(
            raw.auth_password.as_ref(),
            raw.auth_password_file.as_deref(),
            "auth_password",
            false,
            p,
        )
    } else {
        let mut global_problems = Problems {
            problems: &mut *p.problems,
            path: "global".into(),
        };
        resolve_secret(
            global.smtp_auth_password.as_ref(),
            global.smtp_auth_password_file.as_deref(),
            "smtp_auth_password",
            false,
            &mut global_problems,
        )
    };
    if raw.auth_secret.is_some() {
        p.add(
            "auth_secret",
            "CRAM-MD5 is not supported; use auth_username and auth_password (PLAIN/LOGIN)",
        );
    }
    if auth_password.is_some() && auth_username.is_none() {
        p.add(
            "auth_username",
            "auth_password is set but auth_username is not",
        );
    }
    let mut headers = BTreeMap::new();
    for (name, value) in raw.headers {
        let canonical = canonical_header_name(&name);
        if canonical.is_empty() || !canonical.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            p.add(&format!("headers.{name}"), "is not a valid header name");
        }
        if headers.insert(canonical.clone(), value).is_some() {
            p.add(
                &format!("headers.{name}"),
                format!("duplicate header {canonical} (names are case-insensitive)"),
            );
        }
    }
    let require_tls = raw.require_tls.unwrap_or(global.smtp_require_tls);
    let tls = if raw.implicit_tls.unwrap_or(port == 465) {
        SmtpTls::Implicit
    } else if require_tls {
        SmtpTls::StartTlsRequired
    } else {
        SmtpTls::None
    };
    let timeout = match raw.timeout.as_deref() {
        None => DEFAULT_HTTP_TIMEOUT,
        Some(_) => parse_timeout(raw.timeout.as_deref(), p),
    };
    let tls_config = raw.tls_config.unwrap_or_default();
    let tls_ca_pem = tls_config
        .ca_file
        .as_deref()
        .and_then(|path| match std::fs::read(path) {
            Ok(pem) => {
                if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_err() {
                    p.add(
                        "tls_config.ca_file",
                        format!("{} is not a PEM certificate", path.display()),
                    );
                }
                Some(pem)
            }
            Err(error) => {
                p.add(
                    "tls_config.ca_file",
                    format!("cannot read {}: {error}", path.display()),
                );
                None
            }
        });
    if p.problems.len() > before {
        return None;
    }
    Some(EmailSettings {
        send_resolved: raw.send_resolved.unwrap_or(false),
        to,
        to_header,
        from: from?,
        hello: raw.hello.unwrap_or_else(|| global.smtp_hello.clone()),
        port,
        tls,
        auth_username,
        auth_password,
        headers,
        html: raw.html,
        text: raw.text,
        timeout,
        tls_ca_pem,
        tls_server_name: tls_config.server_name.unwrap_or_else(|| host.clone()),
        tls_insecure_skip_verify: tls_config.insecure_skip_verify,
        host,
    })
}

fn split_host_port(value: &str) -> Option<(String, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host.to_string(), port))
}

// ---------------------------------------------------------------- webhook

/// `webhook_configs[]` as written in the config file. See [`super::webhook`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfigRaw {
    pub send_resolved: Option<bool>,
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    /// 0 (default) sends every alert.
    #[serde(default)]
    pub max_alerts: u64,
    pub timeout: Option<String>,
    pub http_config: Option<HttpConfigRaw>,
}

/// A validated webhook integration.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub send_resolved: bool,
    pub url: Secret,
    pub max_alerts: usize,
    pub timeout: Duration,
    pub http: HttpSettings,
}

fn validate_webhook(raw: WebhookConfigRaw, p: &mut Problems<'_>) -> Option<WebhookSettings> {
    let before = p.problems.len();
    let url = resolve_secret(raw.url.as_ref(), raw.url_file.as_deref(), "url", true, p);
    if let Some(url) = &url {
        check_url(url.expose(), "url", p);
    }
    let timeout = parse_timeout(raw.timeout.as_deref(), p);
    let http = validate_http(raw.http_config.as_ref(), p);
    if p.problems.len() > before {
        return None;
    }
    Some(WebhookSettings {
        send_resolved: raw.send_resolved.unwrap_or(true),
        url: url?,
        max_alerts: usize::try_from(raw.max_alerts).unwrap_or(usize::MAX),
        timeout,
        http,
    })
}

// ---------------------------------------------------------------- console

/// `console_configs[]` (Vigil). See [`super::console`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfigRaw {
    pub send_resolved: Option<bool>,
}

/// A validated console integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    pub send_resolved: bool,
}

impl Default for ConsoleSettings {
    /// Vigil's default: resolved notifications are printed too.
    fn default() -> Self {
        ConsoleSettings {
            send_resolved: true,
        }
    }
}

// ---------------------------------------------------------------- building

fn items<T: serde::de::DeserializeOwned>(
    section: Option<&serde_yaml::Value>,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(usize, String, T)> {
    let Some(value) = section else {
        return Vec::new();
    };
    if value.is_null() {
        return Vec::new();
    }
    let Some(sequence) = value.as_sequence() else {
        problems.push(Problem::at_field(path, "must be a list"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in sequence.iter().enumerate() {
        let item_path = format!("{path}[{i}]");
        let item = if item.is_null() {
            serde_yaml::Value::Mapping(serde_yaml::Mapping::new())
        } else {
            item.clone()
        };
        match serde_yaml::from_value::<T>(item) {
            Ok(parsed) => out.push((i, item_path, parsed)),
            Err(error) => problems.push(Problem::at_field(item_path, error.to_string())),
        }
    }
    out
}

/// Parses, validates and builds one receiver's integrations.
///
/// `receiver_path` prefixes every problem's path (e.g. `receivers[2]`).
/// Returns every problem found, not just the first.
pub fn build_integrations(
    receiver_name: &str,
    receiver_path: &str,
    sections: &IntegrationSections,
    global: &GlobalReceiverDefaults,
) -> Result<Vec<Integration>, ConfigProblems> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut push = |integration: &'static str, index: usize, receiver: Arc<dyn Receiver>| {
        out.push(Integration {
            receiver_name: receiver_name.to_string(),
            integration,
            index,
            receiver,
        })
    };

    let slack = items::<SlackConfigRaw>(
        sections.slack_configs.as_ref(),
        &format!("{receiver_path}.slack_configs"),
        &mut problems,
    );
    for (index, path, raw) in slack {
        let mut p = Problems {
            problems: &mut problems,
            path,
        };
        if let Some(settings) = validate_slack(raw, global, &mut p) {
            match SlackReceiver::new(settings) {
                Ok(r) => push("slack", index, Arc::new(r)),
                Err(e) => p.add("", e.to_string()),
            }
        }
    }
    let email = items::<EmailConfigRaw>(
        sections.email_configs.as_ref(),
        &format!("{receiver_path}.email_configs"),
        &mut problems,
    );
    for (index, path, raw) in email {
        let mut p = Problems {
            problems: &mut problems,
            path,
        };
        if let Some(settings) = validate_email(raw, global, &mut p) {
            match EmailReceiver::new(settings) {
                Ok(r) => push("email", index, Arc::new(r)),
                Err(e) => p.add("", e.to_string()),
            }
        }
    }
    let webhook = items::<WebhookConfigRaw>(
        sections.webhook_configs.as_ref(),
        &format!("{receiver_path}.webhook_configs"),
        &mut problems,
    );
    for (index, path, raw) in webhook {
        let mut p = Problems {
            problems: &mut problems,
            path,
        };
        if let Some(settings) = validate_webhook(raw, &mut p) {
            match WebhookReceiver::new(settings) {
                Ok(r) => push("webhook", index, Arc::new(r)),
                Err(e) => p.add("", e.to_string()),
            }
        }
    }
    let console = items::<ConsoleConfigRaw>(
        sections.console_configs.as_ref(),
        &format!("{receiver_path}.console_configs"),
        &mut problems,
    );
    for (index, _path, raw) in console {
        let settings = ConsoleSettings {
            send_resolved: raw.send_resolved.unwrap_or(true),
        };
        push("console", index, Arc::new(ConsoleReceiver::new(settings)));
    }

    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigProblems(problems))
    }
}

/// Builds an HTTP client for one integration. A failure here is a TLS
/// backend problem, reported as a config problem of that integration.
pub(crate) fn http_client(
    timeout: Duration,
    http: &HttpSettings,
) -> Result<reqwest::Client, reqwest::Error> {
    let redirects = if http.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(redirects)
        .user_agent(concat!("vigil-evaluator/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Option<serde_yaml::Value> {
        serde_yaml::from_str(text).ok()
    }

    #[test]
    fn durations_parse_in_prometheus_format() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
    }

    #[test]
    fn header_names_are_canonicalised_like_go() {
        assert_eq!(canonical_header_name("x-team-NAME"), "X-Team-Name");
        assert_eq!(canonical_header_name("subject"), "Subject");
    }

    #[test]
    fn basic_auth_header_is_base64_of_user_and_password() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn send_resolved_defaults_follow_alertmanager() {
        let sections = IntegrationSections {
            slack_configs: yaml("[{api_url: 'http://127.0.0.1:1/hook'}]"),
            email_configs: yaml(
                "[{to: a@example.com, from: v@example.com, smarthost: 'localhost:25'}]",
            ),
            webhook_configs: yaml("[{url: 'http://127.0.0.1:1/w'}]"),
            console_configs: yaml("[{}]"),
        };
        let built = build_integrations(
            "team",
            "receivers[0]",
            &sections,
            &GlobalReceiverDefaults::default(),
        );
        let built = match built {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        let resolved: Vec<(&str, bool)> = built
            .iter()
            .map(|i| (i.integration, i.receiver.send_resolved()))
            .collect();
        assert_eq!(
            resolved,
            vec![
                ("slack", false),
                ("email", false),
                ("webhook", true),
                ("console", true)
            ]
        );
    }
}
