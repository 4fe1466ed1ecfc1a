//! Public entry points of the PromQL engine: parse, evaluate an instant or a
//! range query, turn the internal values into [`Value`].

use std::time::Duration;

use promql_parser::parser;

use super::eval::{Evaluator, Val};
use super::value::{PromqlError, Sample, Series, Value};
use super::SeriesSource;

/// Prometheus' cap on the steps of one range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine settings; the defaults are Prometheus' defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (Prometheus: 5m).
    pub lookback_delta: Duration,
    /// Step of a subquery written without one (Prometheus: the global
    /// evaluation interval; promqltest uses 1m).
    pub default_subquery_step: Duration,
    /// Prometheus 3's `promql-delayed-name-removal` feature: functions and
    /// operators mark the metric name for removal and it is removed only
    /// when the query finishes (so `label_replace` can still read it).
    /// Off by default, like in Prometheus.
    pub delayed_name_removal: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            default_subquery_step: Duration::from_secs(60),
            delayed_name_removal: false,
        }
    }
}

/// Warnings and infos a query produced (Prometheus "annotations").
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// A parsed query, see [`Engine::parse`].
#[derive(Debug, Clone)]
pub struct Query {
    expr: parser::Expr,
    text: String,
}

impl Query {
    /// The query as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How far before its evaluation time this query reads samples, given
    /// the engine's lookback delta: the retention the store must keep for it.
    pub fn lookbehind(&self, lookback_delta: Duration) -> Duration {
        let ms = super::eval::lookbehind_ms(&self.expr, lookback_delta.as_millis() as i64);
        Duration::from_millis(ms.max(0) as u64)
    }
}

/// Evaluates PromQL queries; stateless apart from its options, so one engine
/// can serve concurrent callers.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    options: EngineOptions,
}

impl Engine {
    pub fn new(options: EngineOptions) -> Engine {
        Engine { options }
    }

    /// The options this engine runs with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Evaluates `query` at `at_ms` (milliseconds since the Unix epoch).
    pub fn instant_query<S: SeriesSource + ?Sized>(
        &self,
        source: &S,
        query: &str,
        at_ms: i64,
    ) -> Result<Value, PromqlError> {
        self.instant_query_annotated(source, query, at_ms)
            .map(|(v, _)| v)
    }

    /// Like [`Engine::instant_query`], also returning the annotations.
    pub fn instant_query_annotated<S: SeriesSource + ?Sized>(
        &self,
        source: &S,
        query: &str,
        at_ms: i64,
    ) -> Result<(Value, Annotations), PromqlError> {
        let query = self.parse(query)?;
        self.instant_query_parsed(source, &query, at_ms)
    }

    /// Parses and validates `query` once, for callers that evaluate the same
    /// expression repeatedly (rule groups).
    pub fn parse(&self, query: &str) -> Result<Query, PromqlError> {
        Ok(Query {
            expr: parse(query)?,
            text: query.to_string(),
        })
    }

    /// Evaluates an already parsed query at `at_ms`.
    pub fn instant_query_parsed<S: SeriesSource + ?Sized>(
        &self,
        source: &S,
        query: &Query,
        at_ms: i64,
    ) -> Result<(Value, Annotations), PromqlError> {
        let expr = &query.expr;
        let ev = self.evaluator(source, at_ms, at_ms);
        let value = match ev.eval(expr, at_ms)? {
            Val::Scalar(v) => Value::Scalar(at_ms, v),
            Val::Str(s) => Value::String(s),
            Val::Vector(samples) => {
                let samples = super::eval::finish_vector(samples)?;
                Value::Vector(
                    samples
                        .into_iter()
                        .map(|s| Sample {
                            labels: s.labels,
                            t_ms: at_ms,
                            value: s.v,
                        })
                        .collect(),
                )
            }
            Val::Matrix(series) => Value::Matrix(
                series
                    .into_iter()
                    .map(|s| {
                        let mut labels = s.labels;
                        if s.drop_name {
                            labels.remove(crate::labels::METRIC_NAME);
                        }
                        Series {
                            labels,
                            points: s.points.into_iter().map(|p| (p.t, p.v)).collect(),
                        }
                    })
                    .collect(),
            ),
        };
        Ok((value, ev.into_annotations()))
    }

    /// Evaluates `query` at every step from `start_ms` to `end_ms` inclusive.
    pub fn range_query<S: SeriesSource + ?Sized>(
        &self,
        source: &S,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<Value, PromqlError> {
        self.range_query_annotated(source, query, start_ms, end_ms, step_ms)
            .map(|(v, _)| v)
    }

    /// Like [`Engine::range_query`], also returning the annotations.
    pub fn range_query_annotated<S: SeriesSource + ?Sized>(
        &self,
        source: &S,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<(Value, Annotations), PromqlError> {
        if step_ms <= 0 {
            return Err(PromqlError::eval(
                "zero or negative query resolution step widths are not accepted; use a positive step",
            ));
        }
        if end_ms < start_ms {
            return Err(PromqlError::eval(
                "end timestamp must not be before start time",
            ));
        }
        if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
            return Err(PromqlError::eval(format!(
                "exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries. Try decreasing the query resolution (?step=XX)"
            )));
        }
        let expr = parse(query)?;
        match expr.value_type() {
            parser::value::ValueType::Vector | parser::value::ValueType::Scalar => {}
            other => {
                // Prometheus' names for the types ("range vector", not "matrix").
                let name = match other {
                    parser::value::ValueType::Matrix => "range vector".to_string(),
                    other => other.to_string(),
                };
                return Err(PromqlError::eval(format!(
                    "invalid expression type \"{name}\" for range query, must be Scalar or instant Vector"
                )));
            }
        }
        let ev = self.evaluator(source, start_ms, end_ms);
        let series = ev.eval_steps(&expr, start_ms, end_ms, step_ms, true)?;
        let mut out: Vec<Series> = series
            .into_iter()
            .map(|s| Series {
                labels: s.labels,
                points: s.points.into_iter().map(|p| (p.t, p.v)).collect(),
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok((Value::Matrix(out), ev.into_annotations()))
    }

    fn evaluator<'a, S: SeriesSource + ?Sized>(
        &self,
        source: &'a S,
        start: i64,
        end: i64,
    ) -> Evaluator<'a, S> {
        Evaluator::new(source, start, end, &self.options)
    }
}

/// Parses a query and rejects what Vigil does not evaluate.
pub(crate) fn parse(query: &str) -> Result<parser::Expr, PromqlError> {
    let expr = parser::parse(query).map_err(|message| PromqlError::Parse {
        query: query.to_string(),
        message,
    })?;
    if let Some(name) = super::eval::experimental_feature(&expr) {
        return Err(PromqlError::Experimental(name));
    }
    Ok(expr)
}

/// Whether `query` parses but uses a feature Vigil reports as experimental.
pub fn uses_experimental_feature(query: &str) -> bool {
    parser::parse(query)
        .ok()
        .and_then(|e| super::eval::experimental_feature(&e))
        .is_some()
}

/// Whether `query` may read a series of `source` (over all time); used to
/// skip promqltest cases that touch native-histogram series.
pub fn reads_any_series<S: SeriesSource + ?Sized>(source: &S, query: &str) -> bool {
    let Ok(expr) = parser::parse(query) else {
        return false;
    };
    let mut selectors = Vec::new();
    super::eval::selector_matchers(&expr, &mut selectors);
    selectors
        .iter()
        .any(|m| !source.select(m, i64::MIN, i64::MAX).is_empty())
}

/// The matchers of a plain series selector such as `up{job="api"}` (as the
/// `match[]` parameter of `/api/v1/series` carries), metric name included;
/// one set per `or` alternative.
pub fn parse_series_selector(
    selector: &str,
) -> Result<Vec<Vec<promql_parser::label::Matcher>>, PromqlError> {
    let expr = parser::parse(selector).map_err(|message| PromqlError::Parse {
        query: selector.to_string(),
        message,
    })?;
    let parser::Expr::VectorSelector(vs) = expr else {
        return Err(PromqlError::Parse {
            query: selector.to_string(),
            message: "expected a series selector like metric{label=\"value\"}".to_string(),
        });
    };
    Ok(super::eval::selector_alternatives(&vs))
}
