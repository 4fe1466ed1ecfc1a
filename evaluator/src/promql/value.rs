//! Query results as the engine hands them to callers, and the engine's error type.

use crate::labels::Labels;

/// One sample of an instant vector.
pub use crate::sample::Sample;

/// One series of a range vector or range-query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// `(timestamp ms, value)` sorted by timestamp.
    pub points: Vec<(i64, f64)>,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `(timestamp ms, value)`.
    Scalar(i64, f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

/// Why a query could not be evaluated.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PromqlError {
    #[error("parse error in query {query:?}: {message}; fix the PromQL syntax")]
    Parse { query: String, message: String },
    #[error("{0}")]
    Eval(String),
    #[error("function {0:?} is experimental and not supported by Vigil; rewrite the expression without it")]
    Experimental(String),
    #[error("native histograms are not supported by Vigil (query uses {0})")]
    Unsupported(String),
}

impl PromqlError {
    pub(crate) fn eval(msg: impl Into<String>) -> PromqlError {
        PromqlError::Eval(msg.into())
    }
}
