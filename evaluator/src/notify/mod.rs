//! Notification pipeline: takes alerts from whoever produced them (the rules
//! engine in-process, or a Prometheus posting to `/api/v2/alerts`), routes
//! them through an Alertmanager-compatible route tree, groups, inhibits,
//! silences and de-duplicates them, and delivers them to receivers.
//!
//! [`alert`] holds the alert and notification types every stage shares; they
//! mirror Alertmanager's data model so that the webhook payload (version "4")
//! and the `/api/v2/alerts` API can be produced from them directly.

pub mod alert;
pub mod deliver;
pub mod receivers;
