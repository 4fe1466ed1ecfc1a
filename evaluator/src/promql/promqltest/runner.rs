//! Executes parsed promqltest commands against a [`Store`] and the engine,
//! comparing results the way Prometheus' promqltest does.

use std::collections::HashMap;

use super::parser::{Command, EvalCase, ExpectedSeries, MessageMatch};
use crate::labels::Labels;
use crate::promql::series_notation::SeriesValue;
use crate::promql::{Annotations, Engine, EngineOptions, PromqlError, Value};
use crate::store::{Store, STALE_NAN};

/// promqltest's tolerance for float comparison.
const EPSILON: f64 = 1e-6;

/// Floats are equal when both are NaN, identical, or within a relative
/// epsilon (absolute near zero) — Prometheus' `almost.Equal`.
pub fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

/// The result of one `eval`.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseOutcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Outcomes of one script, with the line and query of each case.
#[derive(Debug, Default)]
pub struct FileReport {
    pub cases: Vec<(usize, String, CaseOutcome)>,
}

impl FileReport {
    pub fn count(&self, f: impl Fn(&CaseOutcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.2)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Passed))
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Failed(_)))
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Skipped(_)))
    }
}

/// Runs every command of a parsed script with the default engine.
pub fn run_script(commands: &[Command]) -> FileReport {
    run_script_with(commands, EngineOptions::default())
}

/// Runs every command of a parsed script with an engine configured by `options`.
pub fn run_script_with(commands: &[Command], options: EngineOptions) -> FileReport {
    let engine = Engine::new(options);
    let mut store = Store::new(usize::MAX);
    // Native-histogram series get one placeholder sample here, so a case
    // can be skipped exactly when its selectors reach one.
    let mut histograms = Store::new(usize::MAX);
    let mut report = FileReport::default();
    for cmd in commands {
        match cmd {
            Command::Clear => {
                store.clear();
                histograms.clear();
            }
            Command::Load {
                line,
                interval,
                series,
                histograms: hist,
            } => {
                for h in hist {
                    // Duplicates (same series in two loads) are harmless here.
                    let _ = histograms.append(h, 0, 0.0);
                }
                // Within one block a later line for the same series and
                // timestamp replaces the earlier value, as in Prometheus.
                let mut merged: std::collections::BTreeMap<
                    &Labels,
                    std::collections::BTreeMap<i64, f64>,
                > = Default::default();
                for s in series {
                    let points = merged.entry(&s.labels).or_default();
                    for (i, v) in s.values.iter().enumerate() {
                        let t = i as i64 * interval;
                        match v {
                            SeriesValue::Omitted => {}
                            SeriesValue::Stale => {
                                points.insert(t, STALE_NAN);
                            }
                            SeriesValue::Value(v) => {
                                points.insert(t, *v);
                            }
                        }
                    }
                }
                for (labels, points) in merged {
                    for (t, v) in points {
                        if let Err(e) = store.append(labels, t, v) {
                            report.cases.push((
                                *line,
                                "load".to_string(),
                                CaseOutcome::Failed(e.to_string()),
                            ));
                        }
                    }
                }
            }
            Command::Eval(case) => {
                let outcome = if let Some(why) = &case.unsupported {
                    CaseOutcome::Skipped(why.clone())
                } else if crate::promql::engine::reads_any_series(&histograms, &case.query) {
                    CaseOutcome::Skipped("reads native histograms".to_string())
                } else if crate::promql::engine::uses_experimental_feature(&case.query) {
                    CaseOutcome::Skipped("experimental function".to_string())
                } else {
                    match run_case(&engine, &store, case) {
                        Ok(()) => CaseOutcome::Passed,
                        Err(msg) => CaseOutcome::Failed(msg),
                    }
                };
                report.cases.push((case.line, case.query.clone(), outcome));
            }
        }
    }
    report
}

fn message_matches(m: &MessageMatch, msg: &str) -> bool {
    match m {
        MessageMatch::Any => true,
        MessageMatch::Exact(s) => s == msg,
        MessageMatch::Regex(r) => regex::Regex::new(r)
            .map(|re| re.is_match(msg))
            .unwrap_or(false),
    }
}

fn check_annotations(case: &EvalCase, ann: &Annotations) -> Result<(), String> {
    let e = &case.expect;
    for (kind, expected, got, none) in [
        ("warn", &e.warn, &ann.warnings, e.no_warn),
        ("info", &e.info, &ann.infos, e.no_info),
    ] {
        if none && !got.is_empty() {
            return Err(format!("expected no {kind} annotations, got {got:?}"));
        }
        for m in expected {
            if !got.iter().any(|g| message_matches(m, g)) {
                return Err(format!(
                    "expected a {kind} annotation matching {m:?}, got {got:?}"
                ));
            }
        }
        if !expected.is_empty() {
            if let Some(extra) = got
                .iter()
                .find(|g| !expected.iter().any(|m| message_matches(m, g)))
            {
                return Err(format!("unexpected {kind} annotation {extra:?}"));
            }
        }
    }
    Ok(())
}

fn run_case(engine: &Engine, store: &Store, case: &EvalCase) -> Result<(), String> {
    let result = if case.instant {
        engine.instant_query_annotated(store, &case.query, case.start)
    } else {
        engine.range_query_annotated(store, &case.query, case.start, case.end, case.step)
    };
    let (value, ann) = match (result, &case.expect.fail) {
        (Err(e), Some(m)) => {
            let msg = error_message(&e);
            return if message_matches(m, &msg) {
                Ok(())
            } else {
                Err(format!("expected error matching {m:?}, got {msg:?}"))
            };
        }
        (Err(e), None) => return Err(format!("unexpected error: {e}")),
        (Ok(_), Some(_)) => return Err("expected the query to fail, but it succeeded".to_string()),
        (Ok(r), None) => r,
    };
    check_annotations(case, &ann)?;
    if let Some(expected) = &case.expect.string {
        return match value {
            Value::String(s) if &s == expected => Ok(()),
            other => Err(format!("expected string {expected:?}, got {other:?}")),
        };
    }
    match value {
        Value::Scalar(_, v) => {
            if case.series.len() != 1 || !case.series[0].labels.is_empty() {
                return Err(format!(
                    "expected {} series, got scalar {v}",
                    case.series.len()
                ));
            }
            compare_point(&case.series[0], 0, Some(v))?;
            let again = instant_via_range(engine, store, case)?;
            match again.as_slice() {
                [(_, v)] => compare_point(&case.series[0], 0, Some(*v))
                    .map_err(|e| format!("in range mode: {e}")),
                other => Err(format!(
                    "in range mode: expected one scalar point, got {}",
                    other.len()
                )),
            }
        }
        Value::String(s) => Err(format!("got unexpected string {s:?}")),
        Value::Vector(samples) => {
            if !case.instant {
                return Err("range query returned a vector".to_string());
            }
            let got: Vec<(Labels, f64)> =
                samples.into_iter().map(|s| (s.labels, s.value)).collect();
            compare_vector(case, &got)?;
            if !case.expect.ordered {
                let again = instant_via_range(engine, store, case)?;
                compare_vector(case, &again).map_err(|e| format!("in range mode: {e}"))?;
            }
            Ok(())
        }
        Value::Matrix(series) => {
            let (start, step) = match (case.instant, case.expect.range_vector) {
                (false, _) => (case.start, case.step),
                (true, Some((from, _, step))) => (from, step),
                (true, None) => return Err(
                    "instant query returned a range vector but no `expect range vector` was given"
                        .to_string(),
                ),
            };
            let expected: Vec<&ExpectedSeries> = case
                .series
                .iter()
                .filter(|e| e.values.iter().any(|v| !matches!(v, SeriesValue::Omitted)))
                .collect();
            if series.len() != expected.len() {
                let got: Vec<String> = series.iter().map(|s| s.labels.to_string()).collect();
                return Err(format!(
                    "expected {} series, got {}: {got:?}",
                    expected.len(),
                    series.len()
                ));
            }
            for e in expected {
                let Some(s) = series.iter().find(|s| s.labels == e.labels) else {
                    return Err(format!("expected series {} missing", e.labels));
                };
                let mut points: HashMap<i64, f64> = s.points.iter().copied().collect();
                for (i, _) in e.values.iter().enumerate() {
                    let t = start + i as i64 * step;
                    compare_point(e, i, points.remove(&t))
                        .map_err(|m| format!("{m} at t={t}ms"))?;
                }
                if !points.is_empty() {
                    return Err(format!(
                        "series {}: unexpected points {:?}",
                        e.labels, points
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Compares an instant-query result with the expected series.
fn compare_vector(case: &EvalCase, samples: &[(Labels, f64)]) -> Result<(), String> {
    let show = || {
        let shown: Vec<String> = samples
            .iter()
            .take(10)
            .map(|(l, v)| format!("{l} {v}"))
            .collect();
        shown.join(", ")
    };
    if samples.len() != case.series.len() {
        return Err(format!(
            "expected {} samples, got {}: {}",
            case.series.len(),
            samples.len(),
            show()
        ));
    }
    if case.expect.ordered {
        for (i, ((labels, v), e)) in samples.iter().zip(&case.series).enumerate() {
            if *labels != e.labels {
                return Err(format!(
                    "sample {i}: expected {} got {labels} (ordered)",
                    e.labels
                ));
            }
            compare_point(e, 0, Some(*v))?;
        }
        return Ok(());
    }
    let got: HashMap<&Labels, f64> = samples.iter().map(|(l, v)| (l, *v)).collect();
    for e in &case.series {
        match got.get(&e.labels) {
            Some(v) => compare_point(e, 0, Some(*v))?,
            None => {
                return Err(format!(
                    "expected series {} missing; got {}",
                    e.labels,
                    show()
                ))
            }
        }
    }
    Ok(())
}

/// Like promqltest, re-runs an instant query as a range query around its
/// time (one-minute steps) and takes the point at that time: instant and
/// range evaluation must agree.
fn instant_via_range(
    engine: &Engine,
    store: &Store,
    case: &EvalCase,
) -> Result<Vec<(Labels, f64)>, String> {
    let t = case.start;
    let value = engine
        .range_query(store, &case.query, t - 60_000, t + 60_000, 60_000)
        .map_err(|e| format!("in range mode: unexpected error: {e}"))?;
    let Value::Matrix(series) = value else {
        return Err("in range mode: expected a matrix".to_string());
    };
    Ok(series
        .into_iter()
        .filter_map(|s| {
            s.points
                .iter()
                .find(|p| p.0 == t)
                .map(|p| (s.labels.clone(), p.1))
        })
        .collect())
}

fn compare_point(e: &ExpectedSeries, i: usize, got: Option<f64>) -> Result<(), String> {
    let expected = e.values.get(i).copied().unwrap_or(SeriesValue::Omitted);
    match (expected, got) {
        (SeriesValue::Omitted, None) => Ok(()),
        (SeriesValue::Value(x), Some(g)) if almost_equal(x, g) => Ok(()),
        (exp, got) => Err(format!(
            "series {}: expected {exp:?}, got {got:?}",
            e.labels
        )),
    }
}

fn error_message(e: &PromqlError) -> String {
    match e {
        PromqlError::Eval(m) => m.clone(),
        other => other.to_string(),
    }
}
