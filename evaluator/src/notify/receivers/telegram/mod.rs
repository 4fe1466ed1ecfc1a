//! Telegram receiver: one `sendMessage` call of the Bot API per
//! notification (`<api_url>/bot<token>/sendMessage`), with the message
//! template rendered as HTML (values escaped) unless `parse_mode` says
//! otherwise, as Alertmanager sends it. The Bot API's `ok: false` answers
//! are refusals; 429 and 5xx are retried.
//!
//! # `telegram_configs`
//!
//! The fields, their defaults and meaning are documented on
//! [`TelegramConfigRaw`].

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
