//! PromQL: the engine through its public API, the promqltest runner, and
//! the conformance corpus.

mod conformance;
mod engine;
mod runner;
