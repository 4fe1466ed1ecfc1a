//! Notification pipeline: takes alerts from whoever produced them (the rules
//! engine in-process, or a Prometheus posting to `/api/v2/alerts`), routes
//! them through an Alertmanager-compatible route tree, groups, inhibits,
//! silences and de-duplicates them, and delivers them to receivers.
//!
//! [`alert`] holds the alert and notification types every stage shares; they
//! mirror Alertmanager's data model so that the webhook payload (version "4")
//! and the `/api/v2/alerts` API can be produced from them directly.
//!
//! # Stages
//!
//! Stated in one place, in order, in [`pipeline`] (as Alertmanager's
//! `PipelineBuilder`):
//!
//! ```text
//! Notifier::ingest ─► dispatcher ─(flush due at tick)─► inhibit ─► silence ─► cooldown ─► dedup ─► NotificationSink ─► delivery: retry ─► record
//!                     (route, group,                                                                                    (deliver.rs)   (delivery/, outbox)
//!                      group_wait/interval)
//! ```
//!
//! - [`config`]: the config file (Alertmanager format) and its validation;
//!   its module documentation is the user reference for the file.
//! - [`matcher`]: label matchers in Alertmanager syntax.
//! - [`route`]: the route tree and Alertmanager's matching walk (`routes test`).
//! - [`dispatcher`]: aggregation groups and their timers.
//! - [`inhibit`], [`silence`], [`cooldown`], [`dedup`]: the filters a flush
//!   passes before it becomes a [`alert::Notification`].
//! - [`pipeline`]: those stages in order, for one flush.
//! - [`notifier`]: the pipeline's entry point ([`notifier::Notifier`]) and
//!   the hand-over to delivery ([`notifier::NotificationSink`]).
//! - [`deliver`]: the retrying delivery stage per receiver integration.
//! - [`delivery`]: the delivery task: outbox, lanes, leadership, the record
//!   of each delivery, behind [`delivery::NotificationOutbox`], which the
//!   history implements.
//!
//! Every stage takes "now" as an argument, read from the evaluator's
//! [`crate::clock::Clock`], so tests step time instead of sleeping.
//!
//! # Alertmanager semantics kept
//!
//! Routing (depth-first, `continue`, fallback to the parent), option
//! inheritance, group keys, `group_wait` (skipped for alerts older than it),
//! `group_interval`, `repeat_interval`, `resolve_timeout` for alerts posted
//! without an end, inhibition (an alert never inhibits itself), silences and
//! the notification log's "needs update" rule.
//!
//! # Vigil additions and differences
//!
//! - `console_configs` receivers.
//! - Per-alert `cooldown` (set by the rule): a re-fire within the cooldown
//!   of the last firing notification is held back from that receiver.
//! - A receiver that was sent an alert as firing always gets its resolved
//!   notification (if it wants resolved notifications at all), even when the
//!   alert was silenced or inhibited in between; Alertmanager would drop it.
//! - An aggregation group is dropped as soon as it is empty after a flush
//!   (Alertmanager drops it at its next maintenance run, up to 30s later).
//! - Not supported, and rejected when configured: `templates`, time
//!   intervals, and receiver kinds other than Slack, e-mail, webhook, console.

pub mod alert;
pub mod config;
pub mod cooldown;
pub mod dedup;
pub mod deliver;
pub mod delivery;
pub mod dispatcher;
pub mod failure_log;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod inhibit;
pub mod matcher;
pub mod notifier;
pub mod pipeline;
pub mod receivers;
pub mod route;
pub mod silence;
pub mod templates;
pub mod time_interval;
