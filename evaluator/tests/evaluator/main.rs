//! The evaluator's integration tests, in one test binary so the crate and
//! its dependencies are linked once instead of once per file. Modules follow
//! the data flow (scrape → promql → rules → remote write → notify → history → api), then
//! `server` for the evaluator run as a process; `support` holds what they
//! share (databases, processes, waits, builders). The load tests that need
//! the machine to themselves live in the same folders but run in the
//! `alone` test binary (`tests/alone/main.rs`).

#[macro_use]
mod support;

mod api;
mod backtest;
mod history;
mod notify;
mod promql;
mod remote_write;
mod rules;
mod scrape;
mod server;
