//! Recording rules: evaluate an expression and store its result under a new
//! metric name, with the rule's labels applied.

use std::collections::HashSet;
use std::time::Duration;

use super::engine::{QueryEngine, QueryError, Sample};
use super::file::RecordingSpec;
use crate::alerts::state::millis;
use crate::labels::{Labels, METRIC_NAME};

/// Why a recording rule evaluation failed (texts as in Prometheus).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordingError {
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateLabelset,
    #[error("exceeded limit of {limit} with {count} series")]
    LimitExceeded { limit: usize, count: usize },
}

/// A recording rule.
#[derive(Debug, Clone)]
pub struct RecordingRule {
    spec: RecordingSpec,
}

impl RecordingRule {
    pub fn new(spec: RecordingSpec) -> RecordingRule {
        RecordingRule { spec }
    }

    /// The PromQL expression it evaluates.
    pub fn expr(&self) -> &str {
        &self.spec.expr
    }

    pub fn name(&self) -> &str {
        &self.spec.record
    }

    pub fn spec(&self) -> &RecordingSpec {
        &self.spec
    }

    /// Evaluates at `ts_ms - query_offset` and returns the series to store.
    pub fn eval(
        &self,
        ts_ms: i64,
        query_offset: Duration,
        engine: &dyn QueryEngine,
        limit: usize,
    ) -> Result<Vec<Sample>, RecordingError> {
        let t = ts_ms - millis(query_offset);
        let vector = engine.instant_query(&self.spec.expr, t)?.into_vector(t);
        let mut seen: HashSet<Labels> = HashSet::with_capacity(vector.len());
        let mut out = Vec::with_capacity(vector.len());
        for sample in vector {
            let mut labels = sample.labels;
            labels.set(METRIC_NAME, &self.spec.record);
            for (name, value) in &self.spec.labels {
                labels.set(name, value);
            }
            if !seen.insert(labels.clone()) {
                return Err(RecordingError::DuplicateLabelset);
            }
            out.push(Sample {
                labels,
                t_ms: t,
                value: sample.value,
            });
        }
        if limit > 0 && out.len() > limit {
            return Err(RecordingError::LimitExceeded {
                limit,
                count: out.len(),
            });
        }
        Ok(out)
    }
}
