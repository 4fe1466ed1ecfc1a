//! Slack incoming-webhook receiver: one message attachment per notification,
//! built as Alertmanager builds it from the config's templates.
//!
//! # `slack_configs`
//!
//! The fields, their defaults and meaning are documented on
//! [`SlackConfigRaw`].
//!
//! Every text field is a notification template; unset fields render
//! Alertmanager's defaults (colour `danger` when firing, `good` when
//! resolved; Vigil's severity colour is `{{ template "vigil.slack.color" . }}`).
//!
//! # Limits
//!
//! Slack truncates message text beyond 40,000 characters and rejects more
//! than 100 attachments (`too_many_attachments`); blocks cap text at 3,000.
//! Vigil keeps every attachment's text within 3,000 characters and the whole
//! message's text within 40,000, titles within 1,024 (as Alertmanager), field
//! values within 2,000, and sends at most 100 attachments per message.
//! The answer of an incoming webhook is `ok`; when `api_url` points at
//! `chat.postMessage` the JSON answer's `ts` becomes the message id and
//! `"ok": false` is a non-retryable refusal.

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
