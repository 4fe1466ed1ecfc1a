//! The evaluator: walks the parsed expression at one timestamp and produces
//! an internal value. Range queries and subqueries evaluate step by step.

mod aggregate;
mod binary;
mod functions;
mod grouping;
mod histogram;
mod range_functions;
mod selector;
mod stats;

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::UNIX_EPOCH;

use promql_parser::parser::{self, AtModifier, Expr, Offset};

use super::engine::{Annotations, EngineOptions};
use super::value::PromqlError;
use super::SeriesSource;
use crate::labels::{Labels, METRIC_NAME};

/// A sample inside the evaluator. `drop_name` implements Prometheus 3's
/// delayed metric-name removal: the name stays for `label_replace` and
/// friends and is removed when the query finishes or an aggregation groups.
#[derive(Debug, Clone)]
pub(crate) struct ESample {
    pub labels: Labels,
    /// The sample's own timestamp when it comes straight from a selector
    /// (what `timestamp()` reports), else the evaluation time.
    pub t: i64,
    pub v: f64,
    pub drop_name: bool,
}

/// A series of points inside the evaluator.
#[derive(Debug, Clone)]
pub(crate) struct ESeries {
    pub labels: Labels,
    pub points: Vec<crate::store::Point>,
    pub drop_name: bool,
}

/// An evaluated expression.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    Str(String),
    Vector(Vec<ESample>),
    Matrix(Vec<ESeries>),
}

pub(crate) struct Evaluator<'a, S: SeriesSource + ?Sized> {
    source: &'a S,
    /// Start and end of the whole query, for `@ start()` / `@ end()`.
    start: i64,
    end: i64,
    lookback: i64,
    default_step: i64,
    delayed_name_removal: bool,
    annotations: RefCell<Annotations>,
    /// Selector results of this query, keyed by the selector's address in
    /// the (immutable, query-long) syntax tree.
    selections: RefCell<HashMap<usize, std::rc::Rc<Vec<super::SeriesView<'a>>>>>,
    /// Results of subquery inner expressions by (expression address, time).
    step_cache: RefCell<HashMap<(usize, i64), Val>>,
}

/// Applies delayed name removal and rejects duplicate label sets, as
/// Prometheus does when a query (or one step of it) finishes.
pub(crate) fn finish_vector(mut samples: Vec<ESample>) -> Result<Vec<ESample>, PromqlError> {
    for s in samples.iter_mut() {
        if s.drop_name {
            s.labels.remove(METRIC_NAME);
            s.drop_name = false;
        }
    }
    check_unique(&samples)?;
    Ok(samples)
}

/// Duplicate check treating marked names as already removed, without
/// building the label sets.
fn check_unique_as_dropped(samples: &[ESample]) -> Result<(), PromqlError> {
    use std::hash::Hasher;
    fn visible(s: &ESample) -> impl Iterator<Item = crate::labels::Label<'_>> {
        let drop = s.drop_name;
        s.labels
            .iter()
            .filter(move |l| !(drop && l.name == METRIC_NAME))
    }
    // Label sets in a vector are unique; if every sample loses the same
    // name (the common `rate(metric[5m])`), they stay unique without it.
    if let Some(first) = samples.first() {
        let name = first.labels.metric_name();
        if samples
            .iter()
            .all(|s| s.drop_name && s.labels.metric_name() == name)
        {
            return Ok(());
        }
    }
    let mut seen: crate::hash::fx::FxHashMap<u64, Vec<usize>> = Default::default();
    for (i, s) in samples.iter().enumerate() {
        let mut h = crate::hash::fx::FxHasher::default();
        for l in visible(s) {
            h.write(l.name.as_bytes());
            h.write_u8(0xff);
            h.write(l.value.as_bytes());
            h.write_u8(0xff);
        }
        let ids = seen.entry(h.finish()).or_default();
        if ids.iter().any(|j| visible(&samples[*j]).eq(visible(s))) {
            return Err(PromqlError::eval(
                "vector cannot contain metrics with the same labelset",
            ));
        }
        ids.push(i);
    }
    Ok(())
}

fn check_unique(samples: &[ESample]) -> Result<(), PromqlError> {
    let mut seen = std::collections::HashSet::with_capacity(samples.len());
    for s in samples {
        if !seen.insert(&s.labels) {
            return Err(PromqlError::eval(
                "vector cannot contain metrics with the same labelset",
            ));
        }
    }
    Ok(())
}

pub(crate) fn ms_of_duration(d: &std::time::Duration) -> i64 {
    d.as_millis() as i64
}

fn offset_ms(offset: &Option<Offset>) -> i64 {
    match offset {
        None => 0,
        Some(Offset::Pos(d)) => ms_of_duration(d),
        Some(Offset::Neg(d)) => -ms_of_duration(d),
    }
}

/// The name of the first experimental feature `expr` uses, if any.
pub(crate) fn experimental_feature(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Aggregate(a) => {
            let name = a.op.to_string();
            if name == "limitk" || name == "limit_ratio" {
                return Some(name);
            }
            experimental_feature(&a.expr)
                .or_else(|| a.param.as_ref().and_then(|p| experimental_feature(p)))
        }
        Expr::Unary(u) => experimental_feature(&u.expr),
        Expr::Binary(b) => {
            if b.modifier
                .as_ref()
                .is_some_and(|m| m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return Some("fill modifier".to_string());
            }
            experimental_feature(&b.lhs).or_else(|| experimental_feature(&b.rhs))
        }
        Expr::Paren(p) => experimental_feature(&p.expr),
        Expr::Subquery(s) => experimental_feature(&s.expr),
        Expr::Call(c) => {
            if c.func.experimental || functions::is_experimental(c.func.name) {
                return Some(c.func.name.to_string());
            }
            c.args.args.iter().find_map(|a| experimental_feature(a))
        }
        Expr::Extension(_) => Some("extension".to_string()),
        _ => None,
    }
}

impl<'a, S: SeriesSource + ?Sized> Evaluator<'a, S> {
    /// An evaluator of a query spanning `start..=end` (milliseconds) with
    /// the engine's `options`.
    pub(crate) fn new(source: &'a S, start: i64, end: i64, options: &EngineOptions) -> Self {
        Evaluator {
            source,
            start,
            end,
            lookback: ms_of_duration(&options.lookback_delta),
            default_step: ms_of_duration(&options.default_subquery_step),
            delayed_name_removal: options.delayed_name_removal,
            annotations: RefCell::new(Annotations::default()),
            selections: RefCell::new(HashMap::new()),
            step_cache: RefCell::new(HashMap::new()),
        }
    }

    pub(crate) fn into_annotations(self) -> Annotations {
        let mut a = self.annotations.into_inner();
        a.warnings.sort();
        a.warnings.dedup();
        a.infos.sort();
        a.infos.dedup();
        a
    }

    pub(crate) fn warn(&self, msg: String) {
        let mut a = self.annotations.borrow_mut();
        if a.warnings.last() != Some(&msg) {
            a.warnings.push(msg);
        }
    }

    pub(crate) fn info(&self, msg: String) {
        let mut a = self.annotations.borrow_mut();
        if a.infos.last() != Some(&msg) {
            a.infos.push(msg);
        }
    }

    /// The reference time of a selector or subquery: `@` wins over the
    /// evaluation time, then the offset moves it back.
    fn ref_time(&self, t: i64, at: &Option<AtModifier>, offset: &Option<Offset>) -> i64 {
        let base = match at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(time)) => match time.duration_since(UNIX_EPOCH) {
                Ok(d) => d.as_millis() as i64,
                Err(e) => -(e.duration().as_millis() as i64),
            },
        };
        base - offset_ms(offset)
    }

    pub(crate) fn eval(&self, expr: &Expr, t: i64) -> Result<Val, PromqlError> {
        let value = self.eval_node(expr, t)?;
        if self.delayed_name_removal {
            return Ok(value);
        }
        // Immediate name removal (Prometheus' default): the names count as
        // gone right after the node that changed the values, so collisions
        // are refused here. The labels themselves are only rewritten when
        // the query finishes (or a consumer reads `__name__`), which spares
        // an allocation per sample in `sum(rate(...))`.
        if let Val::Vector(samples) = &value {
            if samples.iter().any(|s| s.drop_name) {
                check_unique_as_dropped(samples)?;
            }
        }
        Ok(value)
    }

    /// Whether `__name__` of a sample marked for removal must read as
    /// absent (immediate removal) rather than still present (delayed).
    pub(crate) fn name_is_gone(&self, s: &ESample) -> bool {
        s.drop_name && !self.delayed_name_removal
    }

    fn eval_node(&self, expr: &Expr, t: i64) -> Result<Val, PromqlError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(mut vs) => {
                    for s in vs.iter_mut() {
                        s.v = -s.v;
                        s.drop_name = true;
                        s.t = t;
                    }
                    Ok(Val::Vector(vs))
                }
                _ => Err(PromqlError::eval(
                    "unary minus needs a scalar or an instant vector",
                )),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(self.eval_vector_selector(vs, t))),
            Expr::MatrixSelector(ms) => Ok(Val::Matrix(self.eval_matrix_selector(ms, t).0)),
            Expr::Subquery(sq) => Ok(Val::Matrix(self.eval_subquery(sq, t)?.0)),
            Expr::Binary(b) => self.eval_binary(b, t),
            Expr::Aggregate(a) => self.eval_aggregate(a, t),
            Expr::Call(c) => self.eval_call(c, t),
            Expr::Extension(_) => Err(PromqlError::Unsupported("an extension expression".into())),
        }
    }

    /// Evaluates `expr` as a range vector argument, also returning the range
    /// `(start, end]` it covers (rate() extrapolates to its edges).
    pub(crate) fn eval_range_arg(
        &self,
        expr: &Expr,
        t: i64,
    ) -> Result<(Vec<ESeries>, i64, i64), PromqlError> {
        match expr {
            Expr::Paren(p) => self.eval_range_arg(&p.expr, t),
            Expr::MatrixSelector(ms) => Ok(self.eval_matrix_selector(ms, t)),
            Expr::Subquery(sq) => self.eval_subquery(sq, t),
            _ => Err(PromqlError::eval(format!(
                "expected a range vector, got {expr}"
            ))),
        }
    }

    fn eval_subquery(
        &self,
        sq: &parser::SubqueryExpr,
        t: i64,
    ) -> Result<(Vec<ESeries>, i64, i64), PromqlError> {
        let step = sq
            .step
            .as_ref()
            .map(ms_of_duration)
            .filter(|s| *s > 0)
            .unwrap_or(self.default_step);
        let range = ms_of_duration(&sq.range);
        let end = self.ref_time(t, &sq.at, &sq.offset);
        let range_start = end - range;
        let mut start = range_start.div_euclid(step) * step;
        if start <= range_start {
            start += step;
        }
        let series = self.eval_steps(&sq.expr, start, end, step, false)?;
        Ok((series, range_start, end))
    }

    /// Evaluates a subquery's inner expression at `ts`, reusing the result
    /// when an earlier step of the outer query already needed it: subquery
    /// steps are aligned to absolute multiples of their step, so successive
    /// outer steps share almost all of them.
    fn eval_memoized(&self, expr: &Expr, ts: i64) -> Result<Val, PromqlError> {
        let key = (expr as *const Expr as usize, ts);
        if let Some(v) = self.step_cache.borrow().get(&key) {
            return Ok(v.clone());
        }
        let v = self.eval(expr, ts)?;
        self.step_cache.borrow_mut().insert(key, v.clone());
        Ok(v)
    }

    /// Evaluates `expr` at every step and collects the results per series.
    pub(crate) fn eval_steps(
        &self,
        expr: &Expr,
        start: i64,
        end: i64,
        step: i64,
        finish: bool,
    ) -> Result<Vec<ESeries>, PromqlError> {
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut out: Vec<ESeries> = Vec::new();
        let mut ts = start;
        while ts <= end {
            let value = if finish {
                self.eval(expr, ts)?
            } else {
                self.eval_memoized(expr, ts)?
            };
            match value {
                Val::Scalar(v) => push_point(&mut index, &mut out, Labels::default(), false, ts, v),
                Val::Vector(samples) => {
                    let samples = if finish {
                        finish_vector(samples)?
                    } else {
                        check_unique_after_drop(&samples)?;
                        samples
                    };
                    for s in samples {
                        push_point(&mut index, &mut out, s.labels, s.drop_name, ts, s.v);
                    }
                }
                Val::Str(_) | Val::Matrix(_) => {
                    return Err(PromqlError::eval(
                        "range evaluation needs a scalar or an instant vector expression",
                    ))
                }
            }
            ts += step;
        }
        Ok(out)
    }
}

/// Duplicate check for a step of a subquery: the names are still attached,
/// but series that will lose their name must already be unique without it.
fn check_unique_after_drop(samples: &[ESample]) -> Result<(), PromqlError> {
    if !samples.iter().any(|s| s.drop_name) {
        return Ok(());
    }
    check_unique_as_dropped(samples)
}

fn push_point(
    index: &mut HashMap<Labels, usize>,
    out: &mut Vec<ESeries>,
    labels: Labels,
    drop_name: bool,
    t: i64,
    v: f64,
) {
    match index.get(&labels) {
        Some(i) => out[*i].points.push(crate::store::Point { t, v }),
        None => {
            index.insert(labels.clone(), out.len());
            out.push(ESeries {
                labels,
                points: vec![crate::store::Point { t, v }],
                drop_name,
            });
        }
    }
}

/// The matchers of every selector in `expr` (metric name included), so
/// callers can tell which series a query may read.
pub(crate) fn selector_matchers(expr: &Expr, out: &mut Vec<Vec<promql_parser::label::Matcher>>) {
    match expr {
        Expr::VectorSelector(vs) => out.push(selector::matchers(vs)),
        Expr::MatrixSelector(ms) => out.push(selector::matchers(&ms.vs)),
        Expr::Aggregate(a) => {
            selector_matchers(&a.expr, out);
            if let Some(p) = &a.param {
                selector_matchers(p, out);
            }
        }
        Expr::Unary(u) => selector_matchers(&u.expr, out),
        Expr::Binary(b) => {
            selector_matchers(&b.lhs, out);
            selector_matchers(&b.rhs, out);
        }
        Expr::Paren(p) => selector_matchers(&p.expr, out),
        Expr::Subquery(s) => selector_matchers(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| selector_matchers(a, out)),
        _ => {}
    }
}

/// How far before the evaluation time `expr` reads samples (ms): ranges,
/// offsets, subquery windows and the lookback of instant selectors. `@`
/// pins are ignored (they read absolute times).
pub(crate) fn lookbehind_ms(expr: &Expr, lookback: i64) -> i64 {
    let pos = |o: &Option<Offset>| offset_ms(o).max(0);
    match expr {
        Expr::VectorSelector(vs) => pos(&vs.offset) + lookback,
        Expr::MatrixSelector(ms) => pos(&ms.vs.offset) + ms_of_duration(&ms.range),
        Expr::Subquery(sq) => {
            pos(&sq.offset) + ms_of_duration(&sq.range) + lookbehind_ms(&sq.expr, lookback)
        }
        Expr::Aggregate(a) => {
            let p = a.param.as_ref().map_or(0, |p| lookbehind_ms(p, lookback));
            lookbehind_ms(&a.expr, lookback).max(p)
        }
        Expr::Unary(u) => lookbehind_ms(&u.expr, lookback),
        Expr::Binary(b) => lookbehind_ms(&b.lhs, lookback).max(lookbehind_ms(&b.rhs, lookback)),
        Expr::Paren(p) => lookbehind_ms(&p.expr, lookback),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| lookbehind_ms(a, lookback))
            .max()
            .unwrap_or(0),
        _ => 0,
    }
}

/// The matcher sets of a selector: its matchers, or one set per `or`
/// alternative, each with the metric name added.
pub(crate) fn selector_alternatives(
    vs: &parser::VectorSelector,
) -> Vec<Vec<promql_parser::label::Matcher>> {
    if vs.matchers.or_matchers.is_empty() {
        return vec![selector::matchers(vs)];
    }
    vs.matchers
        .or_matchers
        .iter()
        .map(|alt| {
            let mut alt = alt.clone();
            if let Some(name) = &vs.name {
                alt.push(promql_parser::label::Matcher::new(
                    promql_parser::label::MatchOp::Equal,
                    METRIC_NAME,
                    name,
                ));
            }
            alt
        })
        .collect()
}
