//! Runs one unit-test file the way promtool 2.42 does: for each test group,
//! a fresh store fed with the input series up to each evaluation step,
//! every rule group stepped every `evaluation_interval` from 0 to the
//! latest `eval_time`, alert expectations checked against the step at or
//! just before their `eval_time`, and PromQL expectations checked at the
//! end against what was loaded by then.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::report::{self, pairs_of, AlertView, Pairs, SampleView};
use super::{load_test_file, AlertTestCase, TestFile, TestGroup};
use crate::alerts::AlertState;
use crate::labels::Labels;
use crate::promql::series_notation::{expand_values, parse_descriptor, SeriesValue};
use crate::promql::{Engine, EngineOptions};
use crate::rules::engine::{QueryEngine, QueryResult};
use crate::rules::file::{load_rule_files, Scalar};
use crate::rules::group::{GroupEnv, Rule, RuleGroup};
use crate::rules::store_engine::StoreQueryEngine;
use crate::rules::template::gofmt::go_quote;
use crate::store::{Store, STALE_NAN};
use vigil_common::duration::parse_duration;

/// promtool's default `evaluation_interval`.
const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);

/// Prometheus' default `--rules.alert.resend-delay`; it only paces
/// notifications, which unit tests do not send.
const RESEND_DELAY: Duration = Duration::from_secs(60);

/// The outcome of one test file.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// Non-fatal notes (a `rule_files` pattern that matched nothing).
    pub warnings: Vec<String>,
    /// Every failure, already laid out like promtool's; empty = success.
    pub errors: Vec<String>,
}

impl FileReport {
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Runs every test group of the test file at `path`.
pub fn run_test_file(path: &Path) -> FileReport {
    let mut report = FileReport::default();
    let file = match load_test_file(path) {
        Ok(f) => f,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    match prepare(path, &file, &mut report.warnings) {
        Ok(setup) => {
            for (index, group) in file.tests.iter().enumerate() {
                let at = format!("{}: tests[{index}]", path.display());
                report.errors.extend(run_group(&setup, group, &at));
            }
        }
        Err(e) => report.errors.push(e),
    }
    report
}

/// What every test group of a file shares.
struct Setup {
    rule_files: Vec<PathBuf>,
    eval_interval: Duration,
    /// Group name → position in `group_eval_order`.
    order: HashMap<String, usize>,
}

fn duration_field(path: &Path, field: &str, value: &Scalar) -> Result<Duration, String> {
    duration_or_zero(value).map_err(|e| format!("{}: {field}: {e}", path.display()))
}

fn prepare(path: &Path, file: &TestFile, warnings: &mut Vec<String>) -> Result<Setup, String> {
    let base = path.parent().unwrap_or(Path::new(""));
    let mut rule_files = Vec::new();
    for pattern in &file.rule_files {
        let joined = if pattern.is_empty() || Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let text = joined.to_string_lossy().to_string();
        let matches = glob::glob(&text).map_err(|e| {
            format!(
                "{}: rule_files: invalid pattern {text:?}: {e}",
                path.display()
            )
        })?;
        let before = rule_files.len();
        // Unreadable directory entries are skipped, as Go's filepath.Glob does.
        rule_files.extend(matches.flatten());
        if rule_files.len() == before {
            warnings.push(format!("no file match pattern {text}"));
        }
    }
    let eval_interval = match &file.evaluation_interval {
        Some(v) => duration_field(path, "evaluation_interval", v)?,
        None => Duration::ZERO,
    };
    let eval_interval = if eval_interval.is_zero() {
        DEFAULT_EVALUATION_INTERVAL
    } else {
        eval_interval
    };
    let mut order = HashMap::new();
    for (i, name) in file.group_eval_order.iter().enumerate() {
        if order.insert(name.clone(), i).is_some() {
            return Err(format!("group name repeated in evaluation order: {name}"));
        }
    }
    Ok(Setup {
        rule_files,
        eval_interval,
        order,
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The input series as `(t, labels, value)` in time order. A later line for
/// the same series replaces an earlier one, as promtool's loader does.
fn input_samples(
    group: &TestGroup,
    interval: Duration,
    at: &str,
) -> Result<Vec<(i64, Labels, f64)>, String> {
    let mut series: BTreeMap<Labels, Vec<SeriesValue>> = BTreeMap::new();
    for (i, input) in group.input_series.iter().enumerate() {
        let labels = parse_descriptor(&input.series)
            .map_err(|e| format!("{at}.input_series[{i}].series: {e}"))?;
        let values = expand_values(&input.values.0)
            .map_err(|e| format!("{at}.input_series[{i}].values: {e}"))?;
        series.insert(labels, values);
    }
    let step = millis(interval);
    let mut samples: Vec<(i64, Labels, f64)> = Vec::new();
    for (labels, values) in series {
        for (i, v) in values.into_iter().enumerate() {
            let value = match v {
                SeriesValue::Omitted => continue,
                SeriesValue::Stale => STALE_NAN,
                SeriesValue::Value(v) => v,
            };
            samples.push((i as i64 * step, labels.clone(), value));
        }
    }
    samples.sort_by_key(|s| s.0);
    Ok(samples)
}

/// A duration field; left out (empty) it is zero, as Go's zero value.
fn duration_or_zero(value: &Scalar) -> Result<Duration, String> {
    if value.0.is_empty() {
        return Ok(Duration::ZERO);
    }
    parse_duration(&value.0).map_err(|e| e.to_string())
}

fn group_name(group: &TestGroup) -> Option<&str> {
    group.name.as_deref().filter(|n| !n.is_empty())
}

/// Runs one test group and returns its failures.
fn run_group(setup: &Setup, group: &TestGroup, at: &str) -> Vec<String> {
    match try_run_group(setup, group, at) {
        Ok(errors) | Err(errors) => errors,
    }
}

/// `at` names the test group in error messages (`file: tests[2]`).
fn try_run_group(setup: &Setup, group: &TestGroup, at: &str) -> Result<Vec<String>, Vec<String>> {
    let one = |e: String| vec![e];
    let interval = match &group.interval {
        Some(v) => duration_or_zero(v).map_err(|e| one(format!("{at}.interval: {e}")))?,
        None => Duration::ZERO,
    };
    let samples = input_samples(group, interval, at).map_err(one)?;

    let specs = load_rule_files(&setup.rule_files).map_err(|e| {
        e.problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    })?;
    let mut groups = Vec::with_capacity(specs.len());
    for spec in specs {
        let file = spec.file.display().to_string();
        let built = RuleGroup::new(spec, interval).map_err(|e| one(format!("{file}: {e}")))?;
        groups.push(built);
    }
    // promtool orders only the groups named in group_eval_order; the rest
    // sort as position 0. Go's map iteration leaves their relative order
    // unspecified; file order is as good and is deterministic.
    groups.sort_by_key(|g| setup.order.get(&g.name).copied().unwrap_or(0));

    let mut alert_tests: BTreeMap<Duration, Vec<&AlertTestCase>> = BTreeMap::new();
    for (i, case) in group.alert_rule_test.iter().enumerate() {
        let eval_at = duration_or_zero(&case.eval_time)
            .map_err(|e| one(format!("{at}.alert_rule_test[{i}].eval_time: {e}")))?;
        if case.alertname.is_empty() {
            let in_group = group_name(group)
                .map(|n| format!(" (in TestGroup {n})"))
                .unwrap_or_default();
            return Err(one(format!(
                "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                report::model_duration(eval_at)
            )));
        }
        alert_tests.entry(eval_at).or_default().push(case);
    }
    let mut promql_times = Vec::with_capacity(group.promql_expr_test.len());
    for (i, case) in group.promql_expr_test.iter().enumerate() {
        promql_times.push(
            duration_or_zero(&case.eval_time)
                .map_err(|e| one(format!("{at}.promql_expr_test[{i}].eval_time: {e}")))?,
        );
    }
    let max_t = alert_tests
        .keys()
        .chain(promql_times.iter())
        .max()
        .copied()
        .unwrap_or_default();

    let options = EngineOptions {
        default_subquery_step: setup.eval_interval,
        ..EngineOptions::default()
    };
    let engine = StoreQueryEngine::new(
        Arc::new(RwLock::new(Store::new(usize::MAX))),
        Engine::new(options),
    );
    let external_labels = Labels::from_pairs(
        group
            .external_labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.as_str())),
    );
    // The system clock only times each evaluation; the evaluation times
    // are the test's.
    let env = GroupEnv {
        external_labels: &external_labels,
        external_url: group.external_url.as_deref().unwrap_or(""),
        resend_delay: RESEND_DELAY,
        ..GroupEnv::local(&engine)
    };

    let mut errors = Vec::new();
    let mut pending_alert_times = alert_tests.keys().copied().collect::<Vec<_>>().into_iter();
    let mut next_alert_time = pending_alert_times.next();
    let mut loaded = 0;
    let mut ts = Duration::ZERO;
    while ts <= max_t {
        let ts_ms = millis(ts);
        {
            let mut store = engine.store().write().unwrap_or_else(|p| p.into_inner());
            while let Some((t, labels, v)) = samples.get(loaded) {
                if *t > ts_ms {
                    break;
                }
                // Two values at one timestamp (only possible without an
                // interval) keep the first, as promtool's loader does.
                let _ = store.append(labels, *t, *v);
                loaded += 1;
            }
        }
        let mut eval_errors = Vec::new();
        for g in &mut groups {
            g.eval(ts_ms, &env);
            for entry in &g.rules {
                if let Some(err) = &entry.last_error {
                    eval_errors.push(report::rule_error(entry.rule.name(), ts, err));
                }
            }
        }
        if !eval_errors.is_empty() {
            errors.extend(eval_errors);
            return Err(errors);
        }
        // Alert tests whose eval_time falls in [ts, ts + interval) are
        // checked against this step.
        while let Some(at) = next_alert_time {
            if !(ts <= at && at < ts + setup.eval_interval) {
                break;
            }
            for case in &alert_tests[&at] {
                if let Some(failure) = check_alerts(&groups, group, case, at) {
                    errors.push(failure);
                }
            }
            next_alert_time = pending_alert_times.next();
        }
        ts += setup.eval_interval;
    }

    for (case, at) in group.promql_expr_test.iter().zip(promql_times) {
        if let Some(failure) = check_promql(&engine, &case.expr, at, &case.exp_samples) {
            errors.push(failure);
        }
    }
    Ok(errors)
}

fn map_pairs(map: &BTreeMap<String, Scalar>) -> Pairs {
    map.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}

/// Compares the firing alerts named `case.alertname` (from every group)
/// with the expectation; `None` when they agree.
fn check_alerts(
    groups: &[RuleGroup],
    group: &TestGroup,
    case: &AlertTestCase,
    at: Duration,
) -> Option<String> {
    let mut got: Vec<AlertView> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|entry| match &entry.rule {
            Rule::Alerting(a) if a.name() == case.alertname => Some(a),
            _ => None,
        })
        .flat_map(|a| a.active_alerts())
        .filter(|alert| alert.state == AlertState::Firing)
        .map(|alert| AlertView {
            labels: pairs_of(&alert.labels),
            annotations: alert
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
        .collect();
    let mut exp: Vec<AlertView> = case
        .exp_alerts
        .iter()
        .map(|a| {
            let mut labels: BTreeMap<String, String> = a
                .exp_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect();
            labels.insert("alertname".to_string(), case.alertname.clone());
            AlertView {
                labels: labels.into_iter().collect(),
                annotations: map_pairs(&a.exp_annotations),
            }
        })
        .collect();
    got.sort();
    exp.sort();
    (got != exp).then(|| report::alert_failure(group_name(group), &case.alertname, at, &exp, &got))
}

/// Go's `reflect.DeepEqual` on the samples: labels equal and values `==`
/// (so NaN never matches, as in promtool 2.42).
fn same_samples(a: &[SampleView], b: &[SampleView]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.labels == y.labels && x.value == y.value)
}

fn check_promql(
    engine: &StoreQueryEngine,
    expr: &str,
    at: Duration,
    expected: &[super::ExpectedSample],
) -> Option<String> {
    let result = match engine.instant_query(expr, millis(at)) {
        Ok(r) => r,
        Err(e) => return Some(report::promql_error(expr, at, &e.0)),
    };
    let mut got: Vec<SampleView> = match result {
        QueryResult::Vector(v) => v
            .into_iter()
            .map(|s| SampleView {
                labels: pairs_of(&s.labels),
                value: s.value,
            })
            .collect(),
        QueryResult::Scalar(value) => vec![SampleView {
            labels: Vec::new(),
            value,
        }],
    };
    let mut exp = Vec::with_capacity(expected.len());
    for s in expected {
        match parse_descriptor(&s.labels) {
            Ok(labels) => exp.push(SampleView {
                labels: pairs_of(&labels),
                value: s.value,
            }),
            Err(e) => {
                let err = format!("labels {}: {e}", go_quote(&s.labels));
                return Some(report::promql_error(expr, at, &err));
            }
        }
    }
    got.sort_by(|a, b| a.labels.cmp(&b.labels));
    exp.sort_by(|a, b| a.labels.cmp(&b.labels));
    (!same_samples(&exp, &got)).then(|| report::promql_failure(expr, at, &exp, &got))
}
