//! Function calls: dispatches range-vector functions to
//! [`super::range_functions`] and implements the instant-vector, scalar,
//! label and time functions here.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use super::aggregate::valid_label_name;
use super::range_functions::{self, RangeInput};
use super::stats::format_float;
use super::{ESample, Evaluator, Val};
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::{PromqlError, SeriesSource};
use crate::store::Point;

/// Functions Vigil treats as experimental beyond the parser's own flag
/// (Prometheus gates them behind `--enable-feature=promql-experimental-functions`).
pub(crate) fn is_experimental(name: &str) -> bool {
    matches!(
        name,
        "sort_by_label"
            | "sort_by_label_desc"
            | "limitk"
            | "limit_ratio"
            | "mad_over_time"
            | "double_exponential_smoothing"
            | "holt_winters"
            | "first_over_time"
            | "ts_of_min_over_time"
            | "ts_of_max_over_time"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
            | "info"
            | "integral"
    )
}

/// Unwraps parentheses.
fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        _ => e,
    }
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sqrt" => f64::sqrt,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

fn date_fn(name: &str) -> Option<fn(chrono::DateTime<Utc>) -> f64> {
    Some(match name {
        "minute" => |d| d.minute() as f64,
        "hour" => |d| d.hour() as f64,
        "day_of_week" => |d| d.weekday().num_days_from_sunday() as f64,
        "day_of_month" => |d| d.day() as f64,
        "day_of_year" => |d| d.ordinal() as f64,
        "month" => |d| d.month() as f64,
        "year" => |d| d.year() as f64,
        "days_in_month" => |d| {
            let (y, m) = (d.year(), d.month());
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let first = chrono::NaiveDate::from_ymd_opt(y, m, 1);
            let next = chrono::NaiveDate::from_ymd_opt(ny, nm, 1);
            match (first, next) {
                (Some(a), Some(b)) => (b - a).num_days() as f64,
                _ => f64::NAN,
            }
        },
        _ => return None,
    })
}

/// `max` with Go's NaN semantics (NaN wins), as Prometheus' clamp uses.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// `min` with Go's NaN semantics (NaN wins).
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn with_value(mut s: ESample, v: f64, t: i64) -> ESample {
    s.v = v;
    s.t = t;
    s.drop_name = true;
    s
}

impl<S: SeriesSource + ?Sized> Evaluator<'_, S> {
    fn arg_vector(&self, c: &Call, i: usize, t: i64) -> Result<Vec<ESample>, PromqlError> {
        match c.args.args.get(i).map(|a| self.eval(a, t)).transpose()? {
            Some(Val::Vector(v)) => Ok(v),
            _ => Err(PromqlError::eval(format!(
                "{}(): argument {} must be an instant vector",
                c.func.name,
                i + 1
            ))),
        }
    }

    fn arg_scalar(&self, c: &Call, i: usize, t: i64) -> Result<f64, PromqlError> {
        match c.args.args.get(i).map(|a| self.eval(a, t)).transpose()? {
            Some(Val::Scalar(v)) => Ok(v),
            _ => Err(PromqlError::eval(format!(
                "{}(): argument {} must be a scalar",
                c.func.name,
                i + 1
            ))),
        }
    }

    fn arg_string(&self, c: &Call, i: usize, t: i64) -> Result<String, PromqlError> {
        match c.args.args.get(i).map(|a| self.eval(a, t)).transpose()? {
            Some(Val::Str(v)) => Ok(v),
            _ => Err(PromqlError::eval(format!(
                "{}(): argument {} must be a string",
                c.func.name,
                i + 1
            ))),
        }
    }

    pub(crate) fn eval_call(&self, c: &Call, t: i64) -> Result<Val, PromqlError> {
        let name = c.func.name;
        if is_experimental(name) || c.func.experimental {
            return Err(PromqlError::Experimental(name.to_string()));
        }
        if let Some(f) = range_functions::lookup(name) {
            return self.eval_range_function(c, f, t);
        }
        if let Some(f) = math_fn(name) {
            let v = self.arg_vector(c, 0, t)?;
            return Ok(Val::Vector(
                v.into_iter()
                    .map(|s| {
                        let x = f(s.v);
                        with_value(s, x, t)
                    })
                    .collect(),
            ));
        }
        if let Some(f) = date_fn(name) {
            let samples = if c.args.args.is_empty() {
                vec![ESample {
                    labels: Labels::default(),
                    t,
                    v: t as f64 / 1000.0,
                    drop_name: false,
                }]
            } else {
                self.arg_vector(c, 0, t)?
            };
            let out = samples
                .into_iter()
                .map(|s| {
                    let secs = s.v;
                    let v = if secs.is_finite() {
                        match Utc.timestamp_opt(secs.trunc() as i64, 0).single() {
                            Some(d) => f(d),
                            None => f64::NAN,
                        }
                    } else {
                        f64::NAN
                    };
                    with_value(s, v, t)
                })
                .collect();
            return Ok(Val::Vector(out));
        }
        match name {
            "time" => Ok(Val::Scalar(t as f64 / 1000.0)),
            "pi" => Ok(Val::Scalar(std::f64::consts::PI)),
            "vector" => {
                let v = self.arg_scalar(c, 0, t)?;
                Ok(Val::Vector(vec![ESample {
                    labels: Labels::default(),
                    t,
                    v,
                    drop_name: false,
                }]))
            }
            "scalar" => {
                let v = self.arg_vector(c, 0, t)?;
                Ok(Val::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
            }
            "timestamp" => {
                let from_selector = matches!(
                    c.args.args.first().map(|a| strip_parens(a)),
                    Some(Expr::VectorSelector(_))
                );
                let v = self.arg_vector(c, 0, t)?;
                Ok(Val::Vector(
                    v.into_iter()
                        .map(|s| {
                            let ts = if from_selector { s.t } else { t };
                            with_value(s, ts as f64 / 1000.0, t)
                        })
                        .collect(),
                ))
            }
            "round" => {
                let v = self.arg_vector(c, 0, t)?;
                let to = if c.args.args.len() > 1 {
                    self.arg_scalar(c, 1, t)?
                } else {
                    1.0
                };
                let inv = 1.0 / to;
                Ok(Val::Vector(
                    v.into_iter()
                        .map(|s| {
                            let x = (s.v * inv + 0.5).floor() / inv;
                            with_value(s, x, t)
                        })
                        .collect(),
                ))
            }
            "clamp" | "clamp_min" | "clamp_max" => {
                let v = self.arg_vector(c, 0, t)?;
                let (lo, hi) = match name {
                    "clamp" => (self.arg_scalar(c, 1, t)?, self.arg_scalar(c, 2, t)?),
                    "clamp_min" => (self.arg_scalar(c, 1, t)?, f64::INFINITY),
                    _ => (f64::NEG_INFINITY, self.arg_scalar(c, 1, t)?),
                };
                if name == "clamp" && hi < lo {
                    return Ok(Val::Vector(Vec::new()));
                }
                Ok(Val::Vector(
                    v.into_iter()
                        .map(|s| {
                            let x = go_min(hi, go_max(lo, s.v));
                            with_value(s, x, t)
                        })
                        .collect(),
                ))
            }
            "sort" | "sort_desc" => {
                let mut v = self.arg_vector(c, 0, t)?;
                let desc = name == "sort_desc";
                v.sort_by(|a, b| {
                    use std::cmp::Ordering::*;
                    match (a.v.is_nan(), b.v.is_nan()) {
                        (true, true) => Equal,
                        (true, false) => Greater,
                        (false, true) => Less,
                        _ => {
                            let o = a.v.partial_cmp(&b.v).unwrap_or(Equal);
                            if desc {
                                o.reverse()
                            } else {
                                o
                            }
                        }
                    }
                });
                Ok(Val::Vector(v))
            }
            "label_replace" => self.label_replace(c, t),
            "label_join" => self.label_join(c, t),
            "absent" => {
                let v = self.arg_vector(c, 0, t)?;
                if !v.is_empty() {
                    return Ok(Val::Vector(Vec::new()));
                }
                Ok(Val::Vector(vec![ESample {
                    labels: absent_labels(c),
                    t,
                    v: 1.0,
                    drop_name: false,
                }]))
            }
            "absent_over_time" => {
                let arg = c
                    .args
                    .args
                    .first()
                    .ok_or_else(|| PromqlError::eval("absent_over_time() needs an argument"))?;
                let (series, _, _) = self.eval_range_arg(arg, t)?;
                if !series.is_empty() {
                    return Ok(Val::Vector(Vec::new()));
                }
                Ok(Val::Vector(vec![ESample {
                    labels: absent_labels(c),
                    t,
                    v: 1.0,
                    drop_name: false,
                }]))
            }
            "histogram_quantile" => {
                let phi = self.arg_scalar(c, 0, t)?;
                let v = self.arg_vector(c, 1, t)?;
                Ok(Val::Vector(super::histogram::histogram_quantile(
                    self, phi, v, t,
                )))
            }
            "histogram_fraction" => {
                let lower = self.arg_scalar(c, 0, t)?;
                let upper = self.arg_scalar(c, 1, t)?;
                let v = self.arg_vector(c, 2, t)?;
                Ok(Val::Vector(super::histogram::histogram_fraction(
                    self, lower, upper, v, t,
                )))
            }
            n if n.starts_with("histogram_") => {
                // Native-histogram functions: float samples yield nothing.
                let _ = self.arg_vector(c, c.args.args.len().saturating_sub(1), t)?;
                Ok(Val::Vector(Vec::new()))
            }
            other => Err(PromqlError::eval(format!(
                "function {other}() is not supported by Vigil"
            ))),
        }
    }

    fn eval_range_function(
        &self,
        c: &Call,
        f: range_functions::RangeFn,
        t: i64,
    ) -> Result<Val, PromqlError> {
        let name = c.func.name;
        let (range_idx, arg) = match name {
            "quantile_over_time" => (1, self.arg_scalar(c, 0, t)?),
            "predict_linear" => (0, self.arg_scalar(c, 1, t)?),
            _ => (0, 0.0),
        };
        if name == "quantile_over_time" && !(0.0..=1.0).contains(&arg) {
            self.warn(format!(
                "PromQL warning: quantile value should be between 0 and 1, got {}",
                format_float(arg)
            ));
        }
        let expr =
            c.args.args.get(range_idx).ok_or_else(|| {
                PromqlError::eval(format!("{name}() needs a range vector argument"))
            })?;
        let counter_fn = matches!(name, "rate" | "increase");
        // With a literal metric name one check covers every series.
        let literal_name = match strip_parens(expr) {
            Expr::MatrixSelector(ms) => ms.vs.name.as_deref(),
            _ => None,
        };
        let check_counter_names = counter_fn && literal_name.is_none();
        let mut out = Vec::new();
        let mut emit = |labels: &Labels, drop_name: bool, points: &[Point], range: (i64, i64)| {
            let input = RangeInput {
                points,
                range_start: range.0,
                range_end: range.1,
                t,
                arg,
            };
            let Some(v) = f(&input) else { return };
            if check_counter_names {
                if let Some(metric) = labels.metric_name() {
                    self.check_counter_name(metric);
                }
            }
            let keep_name = name == "last_over_time" && !drop_name;
            out.push(ESample {
                labels: labels.clone(),
                t,
                v,
                drop_name: !keep_name,
            });
        };
        if let Expr::MatrixSelector(ms) = strip_parens(expr) {
            // Common case: read the store's slices directly, no copies.
            self.for_each_matrix_window(ms, t, |labels, points, range| {
                emit(labels, false, points, range)
            });
        } else {
            let (series, range_start, range_end) = self.eval_range_arg(expr, t)?;
            for s in series {
                emit(&s.labels, s.drop_name, &s.points, (range_start, range_end));
            }
        }
        if let (true, Some(metric), false) = (counter_fn, literal_name, out.is_empty()) {
            self.check_counter_name(metric);
        }
        Ok(Val::Vector(out))
    }

    /// Prometheus' hint that rate()/increase() input may not be a counter.
    fn check_counter_name(&self, metric: &str) {
        if !["_total", "_sum", "_count", "_bucket"]
            .iter()
            .any(|suffix| metric.ends_with(suffix))
        {
            self.info(format!(
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}"
            ));
        }
    }

    fn label_replace(&self, c: &Call, t: i64) -> Result<Val, PromqlError> {
        let v = self.arg_vector(c, 0, t)?;
        let dst = self.arg_string(c, 1, t)?;
        let replacement = self.arg_string(c, 2, t)?;
        let src = self.arg_string(c, 3, t)?;
        let pattern = self.arg_string(c, 4, t)?;
        let re = regex::Regex::new(&format!("^(?s:{pattern})$")).map_err(|e| {
            PromqlError::eval(format!(
                "invalid regular expression in label_replace(): {pattern}: {e}"
            ))
        })?;
        if !valid_label_name(&dst) {
            return Err(PromqlError::eval(format!(
                "invalid destination label name in label_replace(): {dst}"
            )));
        }
        let mut out = Vec::with_capacity(v.len());
        for mut s in v {
            let value = if src == METRIC_NAME && self.name_is_gone(&s) {
                String::new()
            } else {
                s.labels.get(&src).unwrap_or("").to_string()
            };
            if let Some(caps) = re.captures(&value) {
                let mut res = String::new();
                caps.expand(&replacement, &mut res);
                s.labels.set(&dst, &res);
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
            }
            out.push(s);
        }
        Ok(Val::Vector(out))
    }

    fn label_join(&self, c: &Call, t: i64) -> Result<Val, PromqlError> {
        let v = self.arg_vector(c, 0, t)?;
        let dst = self.arg_string(c, 1, t)?;
        let sep = self.arg_string(c, 2, t)?;
        let mut srcs = Vec::new();
        for i in 3..c.args.args.len() {
            srcs.push(self.arg_string(c, i, t)?);
        }
        if !valid_label_name(&dst) {
            return Err(PromqlError::eval(format!(
                "invalid destination label name in label_join(): {dst}"
            )));
        }
        let mut out = Vec::with_capacity(v.len());
        for mut s in v {
            let gone = self.name_is_gone(&s);
            let joined: Vec<&str> = srcs
                .iter()
                .map(|n| {
                    if gone && n == METRIC_NAME {
                        ""
                    } else {
                        s.labels.get(n).unwrap_or("")
                    }
                })
                .collect();
            let joined = joined.join(&sep);
            s.labels.set(&dst, &joined);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
            out.push(s);
        }
        Ok(Val::Vector(out))
    }
}

/// Labels of `absent()`'s result: the equality matchers of a plain selector.
fn absent_labels(c: &Call) -> Labels {
    let Some(arg) = c.args.args.first() else {
        return Labels::default();
    };
    let vs = match strip_parens(arg) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut labels = Labels::default();
    let mut seen: Vec<&str> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !seen.contains(&m.name.as_str()) {
            labels.set(&m.name, &m.value);
            seen.push(&m.name);
        } else {
            labels.remove(&m.name);
        }
    }
    labels
}
