//! PagerDuty receiver: one event per notification, as Alertmanager sends
//! it. With `routing_key` (Events API v2), a `trigger` or `resolve` event to
//! `url` (default `global.pagerduty_url`,
//! `https://events.pagerduty.com/v2/enqueue`) with a payload (summary,
//! source, severity, custom details, class, component, group), images and
//! links; with the older `service_key`, the v1 Integration API at its fixed
//! address. The dedup (incident) key is the SHA-256 of the group key, as in
//! Alertmanager, so the resolve closes the incident the trigger opened.
//! 429 and 5xx answers are retried (honouring `Retry-After`); other 4xx are
//! final.
//!
//! # `pagerduty_configs`
//!
//! The fields, their defaults and meaning are documented on
//! [`PagerdutyConfigRaw`].

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
