//! The real [`QueryEngine`] and [`SampleAppender`] for rules: PromQL
//! evaluated by [`Engine`] over a shared [`Store`], and rule output appended
//! back into the same store, so a recording rule's series is visible to the
//! rules after it. Used by `vigil-evaluator test rules` and by the server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::engine::{AppendError, QueryEngine, QueryError, QueryResult, Sample, SampleAppender};
use crate::promql::{Engine, Query, Value};
use crate::store::{Store, StoreError};

/// Queries and appends through one shared store.
///
/// Parsed queries are cached by their text: rules evaluate the same few
/// expressions every interval, and parsing is a measurable share of a
/// small query's cost.
pub struct StoreQueryEngine {
    store: Arc<RwLock<Store>>,
    engine: Engine,
    parsed: Mutex<HashMap<String, Query>>,
}

impl std::fmt::Debug for StoreQueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreQueryEngine")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// Cap on cached parsed queries; template `query` calls can build query
/// text from label values, which must not grow the cache without bound.
const PARSED_CACHE_LIMIT: usize = 4096;

impl StoreQueryEngine {
    pub fn new(store: Arc<RwLock<Store>>, engine: Engine) -> StoreQueryEngine {
        StoreQueryEngine {
            store,
            engine,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    /// The store queries read and rule output goes to.
    pub fn store(&self) -> &Arc<RwLock<Store>> {
        &self.store
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Forgets the parsed queries (after a rules reload, so removed rules do
    /// not keep theirs).
    pub fn clear_cache(&self) {
        self.parsed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn parse(&self, expr: &str) -> Result<Query, QueryError> {
        // A poisoned cache only means another thread panicked mid-insert;
        // the map itself is still usable.
        let mut cache = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = cache.get(expr) {
            return Ok(q.clone());
        }
        let query = self
            .engine
            .parse(expr)
            .map_err(|e| QueryError(e.to_string()))?;
        if cache.len() >= PARSED_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(expr.to_string(), query.clone());
        Ok(query)
    }
}

impl QueryEngine for StoreQueryEngine {
    fn instant_query(&self, expr: &str, t_ms: i64) -> Result<QueryResult, QueryError> {
        let query = self.parse(expr)?;
        let store = self.store.read().unwrap_or_else(|p| p.into_inner());
        let (value, _annotations) = self
            .engine
            .instant_query_parsed(&*store, &query, t_ms)
            .map_err(|e| QueryError(e.to_string()))?;
        match value {
            Value::Vector(samples) => Ok(QueryResult::Vector(samples)),
            Value::Scalar(_, v) => Ok(QueryResult::Scalar(v)),
            Value::String(_) | Value::Matrix(_) => Err(QueryError(
                "rule result is not a vector or scalar".to_string(),
            )),
        }
    }
}

impl SampleAppender for StoreQueryEngine {
    /// Appends every sample, even after one fails (as Prometheus does), and
    /// reports the first failure. A staleness marker that lands on or
    /// before a newer sample is dropped silently: the series was already
    /// written again, so there is nothing left to mark.
    fn append(&self, samples: &[Sample]) -> Result<(), AppendError> {
        let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
        let mut first_error = None;
        for s in samples {
            match store.append(&s.labels, s.t_ms, s.value) {
                Ok(()) => {}
                Err(StoreError::OutOfOrder { .. } | StoreError::DuplicateTimestamp { .. })
                    if crate::stale::is_stale(s.value) => {}
                Err(e) => {
                    first_error.get_or_insert(AppendError(e.to_string()));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::promql::EngineOptions;
    use crate::stale::STALE_NAN;

    fn engine_with(samples: &[(&str, i64, f64)]) -> StoreQueryEngine {
        let mut store = Store::default();
        for (name, t, v) in samples {
            store
                .append(&Labels::from_pairs([("__name__", *name)]), *t, *v)
                .expect("in order");
        }
        StoreQueryEngine::new(
            Arc::new(RwLock::new(store)),
            Engine::new(EngineOptions::default()),
        )
    }

    #[test]
    fn instant_query_returns_vectors_and_scalars() {
        let e = engine_with(&[("up", 0, 1.0), ("up", 60_000, 0.0)]);
        assert_eq!(
            e.instant_query("up", 60_000),
            Ok(QueryResult::Vector(vec![Sample {
                labels: Labels::from_pairs([("__name__", "up")]),
                t_ms: 60_000,
                value: 0.0
            }]))
        );
        assert_eq!(
            e.instant_query("scalar(up) + 2", 60_000),
            Ok(QueryResult::Scalar(2.0))
        );
    }

    #[test]
    fn string_results_and_parse_errors_are_query_errors() {
        let e = engine_with(&[]);
        assert_eq!(
            e.instant_query("\"text\"", 0),
            Err(QueryError("rule result is not a vector or scalar".into()))
        );
        assert!(e.instant_query("sum(", 0).is_err());
    }

    #[test]
    fn appended_rule_output_is_visible_to_the_next_query() {
        let e = engine_with(&[]);
        let labels = Labels::from_pairs([("__name__", "job:up:sum")]);
        e.append(&[Sample {
            labels: labels.clone(),
            t_ms: 1_000,
            value: 3.0,
        }])
        .expect("appended");
        assert_eq!(
            e.instant_query("job:up:sum", 2_000),
            Ok(QueryResult::Vector(vec![Sample {
                labels,
                t_ms: 2_000,
                value: 3.0
            }]))
        );
    }

    #[test]
    fn late_staleness_marker_is_dropped_but_late_sample_is_an_error() {
        let e = engine_with(&[("m", 5_000, 1.0)]);
        let labels = Labels::from_pairs([("__name__", "m")]);
        let at = |value| Sample {
            labels: labels.clone(),
            t_ms: 1_000,
            value,
        };
        assert_eq!(e.append(&[at(STALE_NAN)]), Ok(()));
        assert!(e.append(&[at(2.0)]).is_err());
    }
}
