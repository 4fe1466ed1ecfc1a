//! vigil-evaluator: scrapes `/metrics`, keeps a short in-memory window,
//! evaluates Prometheus-format rules and turns their results into alerts.
//!
//! The modules follow the data flow: [`scrape`] → [`store`] → [`promql`] →
//! [`rules`] → [`alerts`] → [`notify`] → [`history`]; [`labels`] and
//! [`sample`] hold the label-set and sample types they share, [`backtest`]
//! replays rules over a datasource's past through the same alerts and
//! notify stages, [`cli`] holds the command-line entry points, [`api`] the
//! HTTP handlers, and [`server`] the running process that wires them all
//! together; all of them read time from one injected [`clock::Clock`].

// Module docs are written for contributors and name the private parts of
// each folder; `cargo doc --document-private-items` renders those links.
#![allow(rustdoc::private_intra_doc_links)]

pub mod alerts;
pub mod api;
pub mod backtest;
pub mod cli;
pub mod clock;
pub mod datasource;
pub mod hash;
pub mod history;
pub mod inline_http;
pub mod labels;
pub mod notify;
pub mod promql;
pub mod remote_write;
pub mod rules;
pub mod sample;
pub mod scrape;
pub mod server;
pub mod stale;
pub mod store;
pub mod template;
