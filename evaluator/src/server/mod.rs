//! The evaluator server (`vigil-evaluator run`): its configuration file
//! (`vigil.yaml`), and the process that wires the stages together —
//! scrape → store → rules → alerts → notify → receivers — with the HTTP
//! app, reload and graceful shutdown.
//!
//! - [`config`]: `vigil.yaml` and the one validation pass over it and every
//!   file it names (rule files, the notification config).
//! - [`query_adapter`]: the rules engine's query and append seams over the
//!   store and the PromQL engine.
//! - [`metrics`]: the evaluator's own `/metrics`.
//! - [`api`]: the HTTP router (operational endpoints; the query and alert
//!   APIs plug in here).
//! - [`dashboard`]: the web page at `/`, reading only the HTTP API.
//! - [`watch`]: reload when the config, rule or notification files change.
//! - [`app`]: building, running, reloading and stopping all of it.

pub mod api;
pub mod app;
pub mod config;
pub mod dashboard;
pub mod database_location;
pub mod metrics;
pub mod query_adapter;
pub mod watch;

pub use app::{run, Options, ServerError};
pub use config::{ConfigErrors, ValidatedConfig};
