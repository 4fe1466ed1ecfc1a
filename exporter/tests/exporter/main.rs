//! The exporter's integration tests, in one test binary so the crate and its
//! dependencies are linked once instead of once per file: the HTTP app and
//! its metrics layer in-process, the binary as users run it, the shipped
//! configs, and the URL prober; `support` holds the local servers the
//! prober tests use.

mod app;
mod binary;
mod deploy_configs;
mod http_metrics;
mod probe;
mod support;
