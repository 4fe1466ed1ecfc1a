//! The two seams between rule evaluation and the rest of the evaluator: a
//! [`QueryEngine`] that answers instant queries, and a [`SampleAppender`]
//! that takes rule output (recording-rule series, `ALERTS`,
//! `ALERTS_FOR_STATE`, staleness markers) back into the store. Both take
//! `&self` so one store object can serve as both, which lets a recording
//! rule's output be visible to the next rule of the same group.

use crate::labels::Labels;
pub use crate::sample::Sample;

/// The result of an instant query that rules can use.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryResult {
    Vector(Vec<Sample>),
    Scalar(f64),
}

impl QueryResult {
    /// As Prometheus' rule query function: a scalar becomes a one-element
    /// vector without labels, at the query's time `t_ms`.
    pub fn into_vector(self, t_ms: i64) -> Vec<Sample> {
        match self {
            QueryResult::Vector(v) => v,
            QueryResult::Scalar(value) => vec![Sample {
                labels: Labels::default(),
                t_ms,
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

/// The store refused rule output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("appending rule output failed: {0}")]
pub struct AppendError(pub String);

/// Takes rule output into the store.
pub trait SampleAppender {
    fn append(&self, samples: &[Sample]) -> Result<(), AppendError>;
}
