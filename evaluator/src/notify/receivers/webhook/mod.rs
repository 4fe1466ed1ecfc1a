//! Generic webhook receiver: POSTs Alertmanager's webhook payload (version
//! "4") as JSON, so existing Alertmanager webhook consumers work unchanged.
//!
//! # `webhook_configs`
//!
//! The fields, their defaults and meaning are documented on
//! [`WebhookConfigRaw`].
//!
//! The body:
//!
//! ```json
//! { "version": "4", "groupKey": "...", "truncatedAlerts": 0, "status": "firing",
//!   "receiver": "team", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
//!   "externalURL": "http://vigil:9096",
//!   "alerts": [{ "status": "firing", "labels": {}, "annotations": {},
//!                "startsAt": "2026-01-02T03:04:05Z", "endsAt": "0001-01-01T00:00:00Z",
//!                "generatorURL": "...", "fingerprint": "0123456789abcdef" }] }
//! ```
//!
//! `endsAt` is `0001-01-01T00:00:00Z` when the alert has no end time, as in
//! Alertmanager. Fingerprints are Vigil's (16 hex digits), not Alertmanager's.
//!
//! Vigil adds `"idempotencyKey"` to the body (the same value as the
//! `Idempotency-Key` header): the same on every attempt and every re-send of
//! one notification (see [`crate::notify::alert::Notification::idempotency_key`]). A re-send
//! after a crash or fail-over also carries `X-Vigil-Redelivery: true`.

pub mod config;
pub mod send;

pub use config::*;
pub use send::*;
