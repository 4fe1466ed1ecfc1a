//! E-mail receiver: sends one multipart (text + HTML) message per
//! notification through an SMTP smarthost with lettre, with Alertmanager's
//! subject line and readable default bodies.
//!
//! # `email_configs`
//!
//! | field | default | meaning |
//! | --- | --- | --- |
//! | `send_resolved` | `false` | also notify when the group resolves |
//! | `to` | required | recipients, comma-separated (`a@x, Team <b@x>`) |
//! | `from` | `global.smtp_from` | sender address (envelope and `From`) |
//! | `smarthost` | `global.smtp_smarthost` | `host:port` of the SMTP server |
//! | `hello` | `global.smtp_hello` (`localhost`) | name sent in `EHLO` |
//! | `auth_username`, `auth_password` / `auth_password_file` | `global.smtp_auth_*` | AUTH PLAIN or LOGIN (whichever the server offers) |
//! | `auth_secret` | — | CRAM-MD5 is not supported (config error) |
//! | `require_tls` | `global.smtp_require_tls` (`true`) | STARTTLS is required; `false` sends in plain text without upgrading, as Alertmanager |
//! | `implicit_tls` (Vigil) | `true` when the port is 465 | TLS from the first byte (SMTPS) |
//! | `headers` | `Subject`, `From`, `To` defaults | extra or overriding headers; names case-insensitive; values accept placeholders |
//! | `text` | alert list (labels, annotations, times, source) | text/plain body; placeholders accepted |
//! | `html` | readable HTML alert list | text/html body; placeholders accepted |
//! | `timeout` (Vigil) | `10s` | SMTP conversation timeout |
//! | `tls_config` | — | `ca_file` (extra trusted CA, PEM), `server_name` (default: the smarthost host), `insecure_skip_verify` |
//!
//! Failures: 5xx replies, authentication failures, a missing STARTTLS with
//! `require_tls`, and TLS handshake failures are not retried; 4xx replies,
//! timeouts and connection errors are.
//!
//! Default subject: `[FIRING:1] HighErrorRate (<other common label values>)`
//! as Alertmanager's `email.default.subject`. The server's TLS certificate is
//! verified against the Mozilla roots (webpki-roots) plus `tls_config.ca_file`.
//! The SMTP reply code of the final `DATA` and the `Message-ID` are reported.
//!
//! Every message carries `X-Vigil-Idempotency-Key` (the notification's
//! idempotency key); a re-send after a crash or fail-over also carries
//! `X-Vigil-Redelivery: true` and ends its subject with
//! "(re-sent after restart)".

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
