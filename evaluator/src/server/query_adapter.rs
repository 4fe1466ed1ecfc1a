//! The rules engine's two seams ([`QueryEngine`], [`SampleAppender`])
//! implemented over the shared in-memory store and the PromQL engine, so
//! rule groups read scraped samples and write recording-rule output,
//! `ALERTS` and `ALERTS_FOR_STATE` back where the next query sees them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use crate::promql::{Engine, Query, Value};
use crate::rules::engine::{
    AppendError, OutputSample, QueryEngine, QueryError, QueryResult, Sample, SampleAppender,
};
use crate::store::{Store, StoreError};

/// The store shared by the scrape loops, the rules and the API.
pub type SharedStore = Arc<RwLock<Store>>;

/// Locks for reading, ignoring poisoning: a panic elsewhere must not stop
/// evaluation, and the store stays consistent per append.
pub fn read_store(store: &SharedStore) -> std::sync::RwLockReadGuard<'_, Store> {
    store.read().unwrap_or_else(|e| e.into_inner())
}

/// Locks for writing, ignoring poisoning (see [`read_store`]).
pub fn write_store(store: &SharedStore) -> std::sync::RwLockWriteGuard<'_, Store> {
    store.write().unwrap_or_else(|e| e.into_inner())
}

/// Rule queries and rule output over the shared store.
#[derive(Debug)]
pub struct StoreQueryEngine {
    store: SharedStore,
    engine: Engine,
    /// Rules evaluate the same expressions every interval; parse each once.
    parsed: Mutex<HashMap<String, Query>>,
}

impl StoreQueryEngine {
    pub fn new(store: SharedStore, engine: Engine) -> StoreQueryEngine {
        StoreQueryEngine {
            store,
            engine,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// Forgets the parsed queries (after a rules reload, so removed rules do
    /// not keep theirs).
    pub fn clear_cache(&self) {
        self.parsed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn parse(&self, expr: &str) -> Result<Query, QueryError> {
        let mut cache = self.parsed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(q) = cache.get(expr) {
            return Ok(q.clone());
        }
        let q = self
            .engine
            .parse(expr)
            .map_err(|e| QueryError(e.to_string()))?;
        cache.insert(expr.to_string(), q.clone());
        Ok(q)
    }
}

impl QueryEngine for StoreQueryEngine {
    fn instant_query(&self, expr: &str, t_ms: i64) -> Result<QueryResult, QueryError> {
        let query = self.parse(expr)?;
        let store = read_store(&self.store);
        let (value, _) = self
            .engine
            .instant_query_parsed(&*store, &query, t_ms)
            .map_err(|e| QueryError(e.to_string()))?;
        match value {
            Value::Vector(samples) => Ok(QueryResult::Vector(
                samples
                    .into_iter()
                    .map(|s| Sample {
                        labels: s.labels,
                        value: s.v,
                    })
                    .collect(),
            )),
            Value::Scalar(_, v) => Ok(QueryResult::Scalar(v)),
            Value::String(_) | Value::Matrix(_) => Err(QueryError(
                "rule result is not a vector or scalar".to_string(),
            )),
        }
    }
}

impl SampleAppender for StoreQueryEngine {
    /// Appends all samples under one lock. Out-of-order and duplicate
    /// samples are skipped (as Prometheus counts and drops them); only the
    /// series limit fails the append, so the rule shows the error.
    fn append(&self, samples: &[OutputSample]) -> Result<(), AppendError> {
        let mut store = write_store(&self.store);
        let mut limit_hit = None;
        for s in samples {
            match store.append(&s.labels, s.t_ms, s.value) {
                Ok(()) => {}
                Err(e @ StoreError::SeriesLimit { .. }) => limit_hit = Some(e),
                Err(e) => tracing::debug!(error = %e, "rule output sample skipped"),
            }
        }
        match limit_hit {
            Some(e) => Err(AppendError(e.to_string())),
            None => Ok(()),
        }
    }
}

// The three stale markers (scrape, store, rules) must be one bit pattern, or
// a rule would see a scrape's staleness marker as a value.
const _: () = assert!(crate::store::STALE_NAN.to_bits() == crate::scrape::STALE_NAN.to_bits());
const _: () = assert!(crate::store::STALE_NAN.to_bits() == crate::rules::engine::STALE_NAN_BITS);

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn shared() -> SharedStore {
        Arc::new(RwLock::new(Store::new(10)))
    }

    #[test]
    fn recording_output_is_visible_to_the_next_query() {
        let adapter = StoreQueryEngine::new(shared(), Engine::default());
        let labels = Labels::from_pairs([("__name__", "job:up:sum"), ("job", "a")]);
        adapter
            .append(&[OutputSample {
                labels: labels.clone(),
                t_ms: 1_000,
                value: 3.0,
            }])
            .unwrap();
        let result = adapter.instant_query("job:up:sum * 2", 2_000).unwrap();
        assert_eq!(
            result.into_vector(),
            vec![Sample {
                labels: Labels::from_pairs([("job", "a")]),
                value: 6.0
            }]
        );
    }

    #[test]
    fn range_vector_results_are_rejected_like_prometheus_rules() {
        let adapter = StoreQueryEngine::new(shared(), Engine::default());
        let err = adapter.instant_query("up[5m]", 0).unwrap_err();
        assert_eq!(err.0, "rule result is not a vector or scalar");
    }

    #[test]
    fn series_limit_fails_the_append_and_out_of_order_does_not() {
        let store = Arc::new(RwLock::new(Store::new(1)));
        let adapter = StoreQueryEngine::new(store, Engine::default());
        let a = Labels::from_pairs([("__name__", "a")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        let at = |labels: &Labels, t_ms| OutputSample {
            labels: labels.clone(),
            t_ms,
            value: 1.0,
        };
        adapter.append(&[at(&a, 2_000)]).unwrap();
        adapter.append(&[at(&a, 1_000)]).unwrap();
        assert!(adapter.append(&[at(&b, 3_000)]).is_err());
    }
}
