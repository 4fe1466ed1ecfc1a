//! E-mail receiver: sends one multipart (text + HTML) message per
//! notification through an SMTP smarthost with lettre, with Alertmanager's
//! subject line and readable default bodies.
//!
//! # `email_configs`
//!
//! The fields, their defaults and meaning are documented on
//! [`EmailConfigRaw`].
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
