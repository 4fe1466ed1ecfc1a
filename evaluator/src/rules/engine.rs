//! The two seams between rule evaluation and the rest of the evaluator: a
//! [`QueryEngine`] that answers instant queries, and a [`SampleAppender`]
//! that takes rule output (recording-rule series, `ALERTS`,
//! `ALERTS_FOR_STATE`, staleness markers) back into the store. Both take
//! `&self` so one store object can serve as both, which lets a recording
//! rule's output be visible to the next rule of the same group.

use crate::labels::Labels;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// The result of an instant query that rules can use.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Vector(Vec<Sample>),
    Scalar(f64),
}

impl QueryResult {
    /// As Prometheus' rule query function: a scalar becomes a one-element
    /// vector without labels.
    pub fn into_vector(self) -> Vec<Sample> {
        match self {
            QueryResult::Vector(v) => v,
            QueryResult::Scalar(value) => vec![Sample {
                labels: Labels::default(),
                value,
            }],
        }
    }
}

/// A query that failed (parse, evaluation, timeout...); the message becomes
/// the rule's last error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct QueryError(pub String);

/// Evaluates PromQL at an instant (milliseconds since the epoch), with the
/// usual lookback. Like Prometheus' rule query function, an implementation
/// returns instant vectors and scalars, and fails with
/// `rule result is not a vector or scalar` for anything else. Rules call it
/// for their `expr` at `t - query_offset` and for template `query` calls
/// at `t`.
pub trait QueryEngine {
    fn instant_query(&self, expr: &str, t_ms: i64) -> Result<QueryResult, QueryError>;
}

/// A sample produced by rule evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSample {
    /// Includes `__name__`.
    pub labels: Labels,
    pub t_ms: i64,
    pub value: f64,
}

/// The store refused rule output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("appending rule output failed: {0}")]
pub struct AppendError(pub String);

/// Takes rule output into the store.
pub trait SampleAppender {
    fn append(&self, samples: &[OutputSample]) -> Result<(), AppendError>;
}
