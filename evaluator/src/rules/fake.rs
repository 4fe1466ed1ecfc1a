//! A scripted [`QueryEngine`] + [`SampleAppender`] for testing rule
//! evaluation and the alert state machine without the PromQL engine: each
//! expression answers with canned results that change at given times, and
//! appended rule output is recorded and served back by metric name, so a
//! later rule can read an earlier recording rule's output.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::engine::{AppendError, QueryEngine, QueryError, QueryResult, Sample, SampleAppender};
use crate::labels::Labels;

/// What a scripted expression returns from a given time on.
#[derive(Debug, Clone)]
enum Answer {
    Result(QueryResult),
    Error(String),
}

/// Locks, ignoring poisoning (a panicking test thread must not hide the
/// recorded data from the assertion that follows).
trait LockExt<T> {
    fn lock_(&self) -> MutexGuard<'_, T>;
}

impl<T> LockExt<T> for Mutex<T> {
    fn lock_(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Scripted engine and recording store (thread-safe, so it can back the
/// scheduler too).
#[derive(Debug, Default)]
pub struct FakeEngine {
    script: Mutex<HashMap<String, BTreeMap<i64, Answer>>>,
    appended: Mutex<Vec<Sample>>,
    queries: Mutex<Vec<(String, i64)>>,
}

/// A vector element from label pairs (`__name__` included if given); the
/// engine answers it at the query's time.
pub fn sample(pairs: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        labels: Labels::from_pairs(pairs.iter().copied()),
        t_ms: 0,
        value,
    }
}

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    /// From `from_ms` on (until the next scripted change), `expr` returns
    /// `vector`.
    pub fn set(&self, expr: &str, from_ms: i64, vector: Vec<Sample>) {
        self.script
            .lock_()
            .entry(expr.to_string())
            .or_default()
            .insert(from_ms, Answer::Result(QueryResult::Vector(vector)));
    }

    /// From `from_ms` on, `expr` returns the scalar `value`.
    pub fn set_scalar(&self, expr: &str, from_ms: i64, value: f64) {
        self.script
            .lock_()
            .entry(expr.to_string())
            .or_default()
            .insert(from_ms, Answer::Result(QueryResult::Scalar(value)));
    }

    /// From `from_ms` on, `expr` fails with `message`.
    pub fn set_error(&self, expr: &str, from_ms: i64, message: &str) {
        self.script
            .lock_()
            .entry(expr.to_string())
            .or_default()
            .insert(from_ms, Answer::Error(message.to_string()));
    }

    /// Everything appended so far.
    pub fn appended(&self) -> Vec<Sample> {
        self.appended.lock_().clone()
    }

    /// Every `(expr, t_ms)` queried so far.
    pub fn queries(&self) -> Vec<(String, i64)> {
        self.queries.lock_().clone()
    }
}

/// A scripted answer as the engine gives it at `t_ms`: every sample of a
/// vector carries the query's time, as Prometheus' instant queries do.
fn answered_at(result: QueryResult, t_ms: i64) -> QueryResult {
    match result {
        QueryResult::Vector(samples) => {
            QueryResult::Vector(samples.into_iter().map(|s| Sample { t_ms, ..s }).collect())
        }
        scalar => scalar,
    }
}

impl QueryEngine for FakeEngine {
    fn instant_query(&self, expr: &str, t_ms: i64) -> Result<QueryResult, QueryError> {
        self.queries.lock_().push((expr.to_string(), t_ms));
        if let Some(script) = self.script.lock_().get(expr) {
            return match script.range(..=t_ms).next_back().map(|(_, a)| a.clone()) {
                Some(Answer::Result(r)) => Ok(answered_at(r, t_ms)),
                Some(Answer::Error(e)) => Err(QueryError(e)),
                None => Ok(QueryResult::Vector(Vec::new())),
            };
        }
        // Unscripted: serve appended samples of that metric name at exactly
        // `t_ms` (what a recording rule wrote in this evaluation).
        let found = self
            .appended
            .lock_()
            .iter()
            .filter(|s| s.t_ms == t_ms && s.labels.metric_name() == Some(expr) && !s.value.is_nan())
            .cloned()
            .collect();
        Ok(QueryResult::Vector(found))
    }
}

impl SampleAppender for FakeEngine {
    fn append(&self, samples: &[Sample]) -> Result<(), AppendError> {
        self.appended.lock_().extend_from_slice(samples);
        Ok(())
    }
}
