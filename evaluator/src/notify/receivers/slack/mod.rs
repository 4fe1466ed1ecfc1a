//! Slack incoming-webhook receiver: one message attachment per notification,
//! coloured by status and severity, with the group's labels as fields and
//! runbook/dashboard links as buttons.
//!
//! # `slack_configs`
//!
//! The fields, their defaults and meaning are documented on
//! [`SlackConfigRaw`].
//!
//! Colour, unless `color` is set: resolved `good` (green); firing with a
//! `severity` of `critical`, `page`, `error` or `high` on any firing alert
//! `danger` (red); `warning` (orange) for `warning`/`warn`/`medium`; any other
//! firing group `#439FE0` (blue). Alertmanager's default is simply
//! `danger`/`good`.
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
