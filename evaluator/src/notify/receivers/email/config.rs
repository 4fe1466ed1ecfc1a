//! `email_configs[]`: the fields as written (serde) and their validation
//! into [`EmailSettings`], with the fallbacks on `global.smtp_*`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::send::EmailReceiver;
use crate::notify::receivers::config::{
    parse_timeout, resolve_secret, GlobalReceiverDefaults, Problems, DEFAULT_HTTP_TIMEOUT,
};
use crate::notify::receivers::template::{call, TemplateField};
use crate::notify::receivers::{Receiver, ReceiverKind, Secret};

/// One entry of a receiver's `email_configs`: mail through an SMTP
/// smarthost.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfigRaw {
    /// Also notify when the group resolves; default `false`.
    pub send_resolved: Option<bool>,
    /// Recipients, comma-separated (`a@x, Team <b@x>`); required; a
    /// template.
    pub to: Option<String>,
    /// Sender address (envelope and `From`); default `global.smtp_from`; a
    /// template.
    pub from: Option<String>,
    /// Name sent in `EHLO`; default `global.smtp_hello` (`localhost`).
    pub hello: Option<String>,
    /// `host:port` of the SMTP server; default `global.smtp_smarthost`.
    pub smarthost: Option<String>,
    /// AUTH PLAIN or LOGIN user (whichever the server offers); default
    /// `global.smtp_auth_username`.
    pub auth_username: Option<String>,
    /// AUTH password (a secret); default `global.smtp_auth_password`.
    pub auth_password: Option<Secret>,
    /// A file holding the password, instead of `auth_password`; default
    /// `global.smtp_auth_password_file`.
    pub auth_password_file: Option<PathBuf>,
    /// CRAM-MD5 is not supported: setting it is a config error.
    pub auth_secret: Option<Secret>,
    /// Accepted for Alertmanager compatibility.
    pub auth_identity: Option<String>,
    /// Extra or overriding headers (defaults: `Subject`
    /// `{{ template "email.default.subject" . }}`, `From` the `from`
    /// field, `To` the `to` field); names are case-insensitive, values are
    /// templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// text/html body; default `{{ template "email.default.html" . }}`
    /// (Alertmanager's HTML alert list), rendered with HTML escaping.
    pub html: Option<String>,
    /// text/plain body; none by default (as Alertmanager).
    pub text: Option<String>,
    /// STARTTLS is required; `false` sends in plain text without upgrading,
    /// as Alertmanager. Default `global.smtp_require_tls` (`true`).
    pub require_tls: Option<bool>,
    /// (Vigil) Connect with TLS from the first byte (SMTPS). Default: true
    /// when the smarthost port is 465, as Alertmanager does.
    pub implicit_tls: Option<bool>,
    /// (Vigil) SMTP conversation timeout, default 10s.
    pub timeout: Option<String>,
    /// `ca_file` (extra trusted CA, PEM), `server_name` (default: the
    /// smarthost host), `insecure_skip_verify`.
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
    /// Envelope recipients (rendered, then split on commas).
    pub to: TemplateField,
    /// Envelope sender (rendered).
    pub from: TemplateField,
    pub hello: String,
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub auth_username: Option<String>,
    pub auth_password: Option<Secret>,
    /// Every header, names in canonical MIME case (`Subject`, `X-Team`),
    /// with the defaults for `Subject`, `From` and `To`.
    pub headers: BTreeMap<String, TemplateField>,
    pub html: TemplateField,
    pub text: TemplateField,
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
    let before = p.count();
    let t = &global.templates;
    let to_src = raw.to.clone().unwrap_or_default();
    if to_src.trim().is_empty() {
        p.add("to", "missing `to` address (comma-separated list allowed)");
    }
    // Addresses written out are checked now; templated ones when rendered.
    if !to_src.contains("{{") {
        for address in split_addresses(&to_src) {
            if address.parse::<lettre::message::Mailbox>().is_err() {
                p.add("to", format!("`{address}` is not an e-mail address"));
            }
        }
    }
    let from = raw.from.clone().or_else(|| global.smtp_from.clone());
    match &from {
        None => p.add("from", "missing `from` here and in global.smtp_from"),
        Some(f) if !f.contains("{{") && f.parse::<lettre::message::Mailbox>().is_err() => {
            p.add("from", format!("`{f}` is not an e-mail address"))
        }
        Some(_) => {}
    }
    let from_src = from.unwrap_or_default();
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
        resolve_secret(
            global.smtp_auth_password.as_ref(),
            global.smtp_auth_password_file.as_deref(),
            "smtp_auth_password",
            false,
            &mut p.global(),
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
    for (name, value) in &raw.headers {
        let canonical = canonical_header_name(name);
        if canonical.is_empty() || !canonical.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            p.add(&format!("headers.{name}"), "is not a valid header name");
        }
        let field = t.field(p, &format!("headers.{name}"), value);
        if headers.insert(canonical.clone(), field).is_some() {
            p.add(
                &format!("headers.{name}"),
                format!("duplicate header {canonical} (names are case-insensitive)"),
            );
        }
    }
    for (name, default) in [
        ("Subject", call("email.default.subject")),
        ("To", to_src.clone()),
        ("From", from_src.clone()),
    ] {
        if !headers.contains_key(name) {
            let field = t.field(p, name, &default);
            headers.insert(name.to_string(), field);
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
    let settings = EmailSettings {
        send_resolved: raw.send_resolved.unwrap_or(EmailConfigRaw::SEND_RESOLVED),
        to: t.field(p, "to", &to_src),
        from: t.field(p, "from", &from_src),
        hello: raw.hello.unwrap_or_else(|| global.smtp_hello.clone()),
        port,
        tls,
        auth_username,
        auth_password,
        headers,
        html: t.field_or(p, "html", raw.html.as_deref(), &call("email.default.html")),
        text: t.field_or(p, "text", raw.text.as_deref(), ""),
        timeout,
        tls_ca_pem,
        tls_server_name: tls_config.server_name.unwrap_or_else(|| host.clone()),
        tls_insecure_skip_verify: tls_config.insecure_skip_verify,
        host,
    };
    (p.count() == before).then_some(settings)
}

/// The addresses of a comma-separated list, trimmed, empty entries left out.
pub fn split_addresses(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
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

impl ReceiverKind for EmailConfigRaw {
    const SECTION: &'static str = "email_configs";
    const SEND_RESOLVED: bool = false;

    fn build(
        self,
        global: &GlobalReceiverDefaults,
        p: &mut Problems<'_>,
    ) -> Option<Arc<dyn Receiver>> {
        validate_email(self, global, p)
            .and_then(|settings| p.receiver(EmailReceiver::new(settings)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonicalised_like_go() {
        assert_eq!(canonical_header_name("x-team-NAME"), "X-Team-Name");
        assert_eq!(canonical_header_name("subject"), "Subject");
    }
}
