//! vigil-exporter: a Prometheus exporter library and binary.
//!
//! - [`http_metrics`]: a tower layer that instruments any axum app by route template.
//! - [`probe`]: probes URLs on a schedule and exports blackbox-style metrics.
//! - [`business`]: counters and gauges declared in config, fed over HTTP.
//! - [`config`]: the `exporter.yaml` schema, loading and validation.
//! - [`server`]: the exporter's own HTTP app (`/metrics`, health, events, demo).

pub mod business;
pub mod config;
pub mod http_metrics;
pub mod probe;
pub mod server;
