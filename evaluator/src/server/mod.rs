//! The evaluator server (`vigil-evaluator run`): its configuration file
//! (`vigil.yaml`), and the process that wires the stages together —
//! scrape → store → rules → alerts → notify → receivers — with the
//! HTTP app ([`crate::api`]), reload and graceful shutdown.
//!
//! - [`config`]: `vigil.yaml` and the one validation pass over it and every
//!   file it names (rule files, the notification config).
//! - [`query_adapter`]: the rules engine's query and append seams over the
//!   store and the PromQL engine.
//! - [`metrics`]: the evaluator's own `/metrics`.
//! - [`watch`]: reload when the config, rule or notification files change.
//! - [`app`]: [`Running`], the composition root: building, running and
//!   stopping all of it.
//! - [`reload`]: swapping in a new config while running.
//! - [`restore`]: the saved state brought back at start (or late).
//! - [`tasks`]: the one drain token and the tasks that end on it, in
//!   data-flow order; the signal handlers; the scrape loops.

pub mod app;
pub mod config;
pub mod database_location;
pub mod fleet;
pub mod metrics;
pub mod query_adapter;
pub mod reload;
pub mod restore;
pub mod tasks;
pub mod watch;

pub use app::{run, Options, Running, ServerError};
pub use config::{ConfigErrors, ValidatedConfig};
