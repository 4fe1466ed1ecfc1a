//! PromQL over float samples with Prometheus 3 semantics: expressions are
//! parsed by `promql-parser` and evaluated against any [`SeriesSource`] (the
//! scraped window, a promqltest `load` block, promtool unit-test input).
//!
//! ```
//! use vigil_evaluator::labels::Labels;
//! use vigil_evaluator::promql::{Engine, Value};
//! use vigil_evaluator::store::Store;
//!
//! let mut store = Store::default();
//! let up = Labels::from_pairs([("__name__", "up"), ("job", "api")]);
//! store.append(&up, 0, 0.0).expect("append");
//! let engine = Engine::default();
//! let rule = engine.parse("up == 0").expect("valid PromQL");
//! let (value, _annotations) = engine.instant_query_parsed(&store, &rule, 15_000).expect("evaluates");
//! let Value::Vector(firing) = value else { unreachable!() };
//! assert_eq!(firing[0].labels.get("job"), Some("api"));
//! ```

pub(crate) mod engine;
mod eval;
pub mod parse_error;
pub mod promqltest;
pub mod series_notation;
mod value;

pub use engine::{parse_series_selector, Annotations, Engine, EngineOptions, Query};
pub use value::{PromqlError, Sample, Series, Value};

use crate::labels::Labels;
use crate::store;
use promql_parser::label::Matcher;

/// The samples of one series that fall inside a requested time range.
#[derive(Debug, Clone, Copy)]
pub struct SeriesView<'a> {
    pub labels: &'a Labels,
    /// Sorted by timestamp, all within the requested range.
    pub samples: &'a [store::Point],
}

/// Where the engine reads series from.
pub trait SeriesSource {
    /// Every series matching all `matchers`, restricted to samples with
    /// `min_t <= t <= max_t` (milliseconds); series without such samples
    /// are left out.
    fn select(&self, matchers: &[Matcher], min_t: i64, max_t: i64) -> Vec<SeriesView<'_>>;
}
