//! Command-line entry points of `vigil-evaluator`, one module per subcommand,
//! each returning whether the command succeeded so `main` picks the exit code.

pub mod backtest;
pub mod check;
pub mod promql_test;
pub mod receivers_test;
pub mod routes_test;
pub mod rules_test;
pub mod run;
