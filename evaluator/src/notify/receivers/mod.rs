//! Receivers: the integrations that deliver a [`Notification`] to people —
//! Slack incoming webhooks, e-mail over SMTP, generic webhooks (Alertmanager
//! payload version "4"), PagerDuty, Opsgenie, VictorOps, Telegram, Discord,
//! Webex, Pushover, WeChat, Amazon SNS, Microsoft Teams and the console.
//!
//! Each integration is a [`Receiver`]: one `send` that either reports what the
//! far end answered ([`DeliveryReport`]) or fails with a [`SendError`] that
//! says whether trying again can help. Retrying, pacing and batching live in
//! [`crate::notify::deliver`], so every receiver stays a single attempt and is
//! testable alone.
//!
//! # Configuration
//!
//! Receivers are configured exactly as in Alertmanager's `receivers:` list;
//! the notify config loader hands each receiver's integration sections to
//! [`build_integrations`] as raw YAML together with the `global:` defaults
//! ([`GlobalReceiverDefaults`]). Every problem is reported, each with its field
//! path (`receivers[0].slack_configs[1].api_url`).
//!
//! ```yaml
//! global:
//!   slack_api_url_file: /etc/vigil/slack-url   # default for slack_configs
//!   smtp_smarthost: mail.example.com:587
//!   smtp_from: vigil@example.com
//! receivers:
//!   - name: team
//!     slack_configs: [{ channel: '#alerts', send_resolved: true }]
//!     email_configs: [{ to: 'oncall@example.com, lead@example.com' }]
//!     webhook_configs: [{ url: 'http://hooks.internal/alert', max_alerts: 20 }]
//!     console_configs: [{}]
//! ```
//!
//! The per-integration field lists are in each kind's module ([`slack`],
//! [`email`], [`webhook`], [`pushover`], [`sns`], ...), each a folder with its serde config types (`config.rs`, whose
//! doc comments are the field reference) and its sender (`send.rs`). A kind
//! is a [`ReceiverKind`] listed once in [`registry`]; what the HTTP kinds
//! share is in [`http`], what every kind's config shares in [`config`]. `send_resolved` defaults as in Alertmanager: `false` for Slack
//! and e-mail, `true` for webhooks, and `true` for Vigil's console.
//!
//! # Secrets
//!
//! Webhook URLs, SMTP passwords and bearer tokens are [`Secret`]s: they print
//! as `<secret>` in `Debug`, `Display`, logs and errors. Each can be given
//! inline, through its `*_file` twin (the file's content, trailing newline
//! removed), or — a Vigil extension — inline as exactly `${NAME}`, which reads
//! the environment variable `NAME` when the config is loaded.
//!
//! # Templates
//!
//! Every text field is an Alertmanager notification template, parsed when
//! the config loads and rendered per notification (see [`template`] and
//! [`crate::notify::templates`]); a field left unset renders Alertmanager's
//! default template for it.

/// The [`ReceiverKind`] of a kind: its `*_configs` key, its
/// `send_resolved` default, and its receiver made from the settings its
/// `validate` function returns.
macro_rules! receiver_kind {
    ($raw:ty, $section:literal, send_resolved: $resolved:literal, $validate:path => $receiver:ident) => {
        impl $crate::notify::receivers::ReceiverKind for $raw {
            const SECTION: &'static str = $section;
            const SEND_RESOLVED: bool = $resolved;

            fn build(
                self,
                global: &$crate::notify::receivers::GlobalReceiverDefaults,
                p: &mut $crate::notify::receivers::Problems<'_>,
            ) -> Option<std::sync::Arc<dyn $crate::notify::receivers::Receiver>> {
                $validate(self, global, p).and_then(|settings| p.receiver($receiver::new(settings)))
            }
        }
    };
}

/// A receiver that posts over HTTP: its settings (with their `http`
/// client settings) and the client made from them.
macro_rules! http_receiver {
    ($(#[$doc:meta])* $receiver:ident($settings:ty)) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $receiver {
            settings: $settings,
            client: reqwest::Client,
        }

        impl $receiver {
            pub fn new(settings: $settings) -> Result<$receiver, reqwest::Error> {
                let client = $crate::notify::receivers::http::http_client(
                    $crate::notify::receivers::config::DEFAULT_HTTP_TIMEOUT,
                    &settings.http,
                )?;
                Ok($receiver { settings, client })
            }
        }
    };
}

/// A [`Receiver`]'s name and `send_resolved` (from its settings).
macro_rules! receiver_identity {
    ($integration:literal) => {
        fn integration(&self) -> &'static str {
            $integration
        }

        fn send_resolved(&self) -> bool {
            self.settings.send_resolved
        }
    };
}

/// The [`Receiver`] of a kind that posts `self.message(n)` as JSON to the
/// `webhook_url` of its settings and keeps nothing from the answer.
macro_rules! json_webhook_receiver {
    ($receiver:ident, $integration:literal) => {
        #[async_trait::async_trait]
        impl $crate::notify::receivers::Receiver for $receiver {
            receiver_identity!($integration);

            async fn send(
                &self,
                notification: &$crate::notify::alert::Notification,
            ) -> Result<
                $crate::notify::receivers::DeliveryReport,
                $crate::notify::receivers::SendError,
            > {
                let s = &self.settings;
                $crate::notify::receivers::http::post_json_report(
                    $integration,
                    &self.client,
                    s.webhook_url.expose(),
                    &s.http,
                    &self.message(notification),
                    notification,
                )
                .await
            }
        }
    };
}

pub mod config;
pub mod console;
pub mod discord;
pub mod email;
pub mod http;
pub mod msteams;
pub mod msteamsv2;
pub mod opsgenie;
pub mod pagerduty;
pub mod pushover;
pub mod registry;
pub mod slack;
pub mod sns;
pub mod telegram;
pub mod template;
pub mod test_send;
pub mod victorops;
pub mod webex;
pub mod webhook;
pub mod wechat;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::notify::alert::Notification;

pub use config::{GlobalReceiverDefaults, Problems};
pub use registry::{
    build_integrations, BuiltIntegrations, ConfigProblems, Integration, IntegrationSections,
};

/// A credential or credential-bearing URL. Never printed: `Debug` and
/// `Display` show `<secret>`, so it can sit in config structs that are logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// What the far end answered to a successful delivery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryReport {
    /// HTTP status, or the SMTP reply code of the final `DATA` (e.g. 250).
    pub response_code: Option<u16>,
    /// SMTP `Message-ID`, or Slack's message `ts` when the endpoint returns
    /// one (incoming webhooks answer a bare `ok`, so usually `None`).
    pub message_id: Option<String>,
}

/// Why one delivery attempt failed, and whether another attempt may succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The endpoint answered with a non-success HTTP status.
    #[error("{integration}: endpoint answered HTTP {status}: {body}")]
    HttpStatus {
        integration: &'static str,
        status: u16,
        /// Start of the response body (bounded), for the operator.
        body: String,
        /// From a `Retry-After` header on 429 or 503.
        retry_after: Option<RetryAfter>,
    },
    /// The request never got an answer: connection refused, DNS, reset, or
    /// timeout. The message never contains the (secret) URL.
    #[error("{integration}: could not reach the endpoint ({reason}); check the URL and that the endpoint is up")]
    Transport {
        integration: &'static str,
        reason: String,
    },
    /// The SMTP conversation failed.
    #[error("email: SMTP delivery via {smarthost} failed: {reason}")]
    Smtp {
        smarthost: String,
        reason: String,
        /// SMTP reply code, when the server sent one.
        code: Option<u16>,
        retryable: bool,
    },
    /// The endpoint answered 2xx but said in its body that it refused the
    /// message (Slack's Web API answers `{"ok": false, "error": ...}`).
    #[error("{integration}: endpoint refused the message: {reason}")]
    Rejected {
        integration: &'static str,
        reason: String,
    },
    /// The console receiver could not write to its output.
    #[error("console: cannot write the notification: {reason}")]
    Console { reason: String },
    /// The message could not be built from this notification (for example
    /// an address that does not parse). Retrying cannot help.
    #[error("{integration}: cannot build the message: {reason}")]
    Build {
        integration: &'static str,
        reason: String,
    },
}

impl SendError {
    /// 5xx, 429, timeouts and connection errors are worth retrying; other 4xx
    /// and build errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::HttpStatus { status, .. } => *status == 429 || *status >= 500,
            SendError::Transport { .. } => true,
            SendError::Smtp { retryable, .. } => *retryable,
            SendError::Rejected { .. } | SendError::Build { .. } | SendError::Console { .. } => {
                false
            }
        }
    }

    /// The wait the endpoint asked for (`Retry-After` on 429/503), from
    /// `now` when it named a date.
    pub fn retry_after(&self, now: DateTime<Utc>) -> Option<Duration> {
        match self {
            SendError::HttpStatus { retry_after, .. } => retry_after.map(|r| r.wait(now)),
            _ => None,
        }
    }

    /// HTTP status or SMTP reply code, for the notification log.
    pub fn response_code(&self) -> Option<u16> {
        match self {
            SendError::HttpStatus { status, .. } => Some(*status),
            SendError::Smtp { code, .. } => *code,
            _ => None,
        }
    }
}

/// One configured integration instance (`slack_configs[0]`, ...).
///
/// Object safe through `async_trait`, so a receiver's integrations are held as
/// `Vec<Arc<dyn Receiver>>`.
#[async_trait]
pub trait Receiver: Send + Sync + fmt::Debug {
    /// `slack`, `email`, `webhook` or `console`, as recorded in the history.
    fn integration(&self) -> &'static str;

    /// Whether resolved notifications should be sent at all.
    fn send_resolved(&self) -> bool;

    /// One delivery attempt.
    async fn send(&self, notification: &Notification) -> Result<DeliveryReport, SendError>;

    /// Set for integrations that must be paced per endpoint (Slack: one
    /// message per second per webhook); the batching pacer in
    /// [`crate::notify::deliver`] uses this to merge a backlog.
    fn as_batching(&self) -> Option<&dyn BatchReceiver> {
        None
    }
}

/// A receiver kind's config entry (`slack_configs[]`, ...): the key of its
/// list in a receiver, and how one entry, as written, is validated and built
/// into a [`Receiver`]. Registered in [`registry`]; whether a failed send
/// may be retried is the [`SendError`]'s to say
/// ([`SendError::is_retryable`]).
pub trait ReceiverKind: serde::de::DeserializeOwned {
    /// The `*_configs` key.
    const SECTION: &'static str;

    /// `send_resolved` when the entry does not say (Alertmanager's default
    /// for the kind).
    const SEND_RESOLVED: bool;

    /// Validates this entry and builds its receiver; every problem goes to
    /// `p`, with field paths relative to the entry. `None` when there was
    /// one.
    fn build(
        self,
        global: &GlobalReceiverDefaults,
        p: &mut Problems<'_>,
    ) -> Option<Arc<dyn Receiver>>;
}

/// An integration that can deliver several notifications as one message,
/// and whose endpoint must be paced.
#[async_trait]
pub trait BatchReceiver: Send + Sync {
    /// Identifies the paced endpoint without revealing it (a hash of the
    /// webhook URL).
    fn pacing_key(&self) -> String;

    /// How many notifications fit into one message.
    fn max_batch(&self) -> usize;

    /// One attempt to deliver all of `notifications` as a single message.
    async fn send_batch(&self, notifications: &[Notification])
        -> Result<DeliveryReport, SendError>;
}

/// The shared handle type for a heterogeneous list of receivers.
pub type DynReceiver = Arc<dyn Receiver>;

/// The header carrying a notification's idempotency key (webhook, Slack).
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";
/// The header set to `true` on a re-send after a crash or fail-over.
pub const REDELIVERY_HEADER: &str = "X-Vigil-Redelivery";

/// Parses a `Retry-After` value: delta-seconds or an HTTP-date (relative to
/// `now`). A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    RetryAfter::parse(value).map(|r| r.wait(now))
}

/// A `Retry-After` value: a delay, or the HTTP date it runs to (turned into
/// a wait against the caller's clock when the retry is planned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    Delay(Duration),
    Until(DateTime<Utc>),
}

impl RetryAfter {
    /// Delay-seconds or an HTTP date; `None` for anything else.
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(RetryAfter::Delay(Duration::from_secs(seconds)));
        }
        let date = DateTime::parse_from_rfc2822(value).ok()?;
        Some(RetryAfter::Until(date.with_timezone(&Utc)))
    }

    /// The wait from `now`: zero for a date already past.
    pub fn wait(self, now: DateTime<Utc>) -> Duration {
        match self {
            RetryAfter::Delay(delay) => delay,
            RetryAfter::Until(date) => (date - now).to_std().unwrap_or(Duration::ZERO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn secret_never_prints_its_value() {
        let secret = Secret::new("https://hooks.slack.com/services/T/B/XYZ");
        assert_eq!(format!("{secret:?}"), "<secret>");
        assert_eq!(format!("{secret}"), "<secret>");
        assert_eq!(secret.expose(), "https://hooks.slack.com/services/T/B/XYZ");
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).single();
        let now = now.unwrap_or_default();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_server_errors_throttling_and_transport_failures_are_retryable() {
        let http = |status| SendError::HttpStatus {
            integration: "webhook",
            status,
            body: String::new(),
            retry_after: None,
        };
        assert!(http(500).is_retryable());
        assert!(http(503).is_retryable());
        assert!(http(429).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(!http(404).is_retryable());
        assert!(SendError::Transport {
            integration: "slack",
            reason: "timed out".into()
        }
        .is_retryable());
    }
}
