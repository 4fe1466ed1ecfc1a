//! Runner for Prometheus' promqltest scripts (`load`, `clear`, `eval …`),
//! used to check the engine against the conformance corpus.

mod parser;
mod runner;

pub use parser::{parse_script, Command, EvalCase, Expectation, ScriptError};
pub use runner::{almost_equal, run_script, run_script_with, CaseOutcome, FileReport};
