//! HTTP metrics for axum apps, by route template, in three lines:
//!
//! ```
//! use axum::{routing::get, Router};
//! use vigil_exporter::http_metrics::HttpMetricsLayer;
//!
//! let (layer, metrics) = HttpMetricsLayer::pair();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .route("/metrics", metrics.route())
//!     .layer(layer);
//! # let _ = app;
//! ```
//!
//! `GET /metrics` then serves `http_requests_total`,
//! `http_request_duration_seconds` and `http_requests_in_flight` labelled by
//! method, status and *route template* (`/users/{id}`, never the raw path).
//! Everything else is in [`http_metrics`]: a registry of your own
//! ([`http_metrics::MetricsHandle::new`]), histogram buckets, and
//! instrumenting handlers one by one. [`prometheus`] is re-exported, so
//! your metrics use the same version as the layer.
//!
//! The crate is also the `vigil-exporter` binary, a Prometheus exporter for
//! URL probes and business counters; its modules are behind Cargo features
//! a library user leaves off:
//!
//! | feature | what | default |
//! | --- | --- | --- |
//! | `http-metrics` | [`http_metrics`]: the layer and the `/metrics` route | yes |
//! | `probe` | `probe`: probes URLs on a schedule, blackbox-style metrics | no |
//! | `business` | `business`, `config`: counters fed over HTTP, the `exporter.yaml` schema | no |
//! | `cli` | `server` and the binary's command line | no |

/// The `prometheus` crate the layer registers its metrics with.
pub use prometheus;

#[cfg(feature = "business")]
pub mod business;
#[cfg(feature = "business")]
pub mod config;
#[cfg(feature = "http-metrics")]
pub mod http_metrics;
#[cfg(feature = "probe")]
pub mod probe;
#[cfg(feature = "cli")]
pub mod server;
