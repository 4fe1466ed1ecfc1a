//! `vigil-evaluator backtest`, run as the real binary: [`cli`] against a
//! datasource whose answers the test computes (exact tables of the plain,
//! compare and sweep outputs; bad input), [`oracle`] against a real
//! Prometheus and Alertmanager that lived through the same data.

mod cli;
mod oracle;
