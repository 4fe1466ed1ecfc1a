//! The dashboard's view of alerting rules, under `/api/vigil/v1`:
//! `GET /alerts` lists each pending or firing alert with the rule that
//! holds it (file, group and position: two rules may share an alert name),
//! its value humanised the way the rule's own annotations humanise it, and
//! the link to the graph of its rule; `GET /rule` gives one rule by that
//! identity with its threshold and the intervals its alerts were pending
//! and firing (from the history), which the graph view at `/graph` draws.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use promql_parser::parser::{self, Expr};
use regex::Regex;
use serde::Serialize;

use super::prometheus::{success, LabelsJson};
use super::vigil::{rfc3339, Params, VigilApiError};
use super::AppState;
use crate::alerts::Alert;
use crate::history::store::HistoryQuery;
use crate::notify::matcher::{MatchOp, Matcher};
use crate::rules::group::{Rule, RuleGroup};
use crate::rules::send_alerts::RuleSource;
use crate::rules::text_map::TextMap;
use crate::template::humanize;

/// The routes of this view (merged into the app's router).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/vigil/v1/alerts", get(alerts))
        .route("/api/vigil/v1/rule", get(rule))
}

/// How an alert's value is written: the `humanize*` function the rule's
/// annotations apply to `$value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ValueFormat {
    #[serde(rename = "humanize")]
    Humanize,
    #[serde(rename = "humanize1024")]
    Humanize1024,
    #[serde(rename = "humanizePercentage")]
    Percentage,
    #[serde(rename = "humanizeDuration")]
    Duration,
    #[serde(rename = "humanizeTimestamp")]
    Timestamp,
}

impl ValueFormat {
    fn named(name: &str) -> Option<ValueFormat> {
        Some(match name {
            "humanize" => ValueFormat::Humanize,
            "humanize1024" => ValueFormat::Humanize1024,
            "humanizePercentage" => ValueFormat::Percentage,
            "humanizeDuration" => ValueFormat::Duration,
            "humanizeTimestamp" => ValueFormat::Timestamp,
            _ => return None,
        })
    }

    /// The format of the rule's annotations: the first `humanize*` applied
    /// to `$value` (`{{ $value | humanizePercentage }}` or
    /// `{{ humanizePercentage $value }}`) in `summary`, then `description`,
    /// then the other annotations by name; `humanize` when none is.
    pub fn of_annotations(annotations: &TextMap) -> ValueFormat {
        static PIPED: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"\$value\s*\|\s*(humanize[A-Za-z0-9]*)").expect("a valid regex")
        });
        static CALLED: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(humanize[A-Za-z0-9]*)\s+\(?\s*\$value\b").expect("a valid regex")
        });
        let first = ["summary", "description"]
            .into_iter()
            .filter_map(|k| annotations.get(k))
            .chain(
                annotations
                    .iter()
                    .filter(|(k, _)| *k != "summary" && *k != "description")
                    .map(|(_, v)| v),
            );
        for text in first {
            let found = [&*PIPED, &*CALLED]
                .into_iter()
                .filter_map(|re| re.captures(text))
                .filter_map(|c| {
                    let m = c.get(1)?;
                    Some((m.start(), ValueFormat::named(m.as_str())?))
                })
                .min_by_key(|(at, _)| *at);
            if let Some((_, format)) = found {
                return format;
            }
        }
        ValueFormat::Humanize
    }

    /// `v` written as the template function does.
    pub fn write(self, v: f64) -> String {
        match self {
            ValueFormat::Humanize => humanize::humanize(v),
            ValueFormat::Humanize1024 => humanize::humanize_1024(v),
            ValueFormat::Percentage => humanize::humanize_percentage(v),
            ValueFormat::Duration => humanize::humanize_duration(v),
            ValueFormat::Timestamp => {
                humanize::humanize_timestamp(v).unwrap_or_else(|_| humanize::humanize(v))
            }
        }
    }
}

/// A rule's threshold: its expression is `operand op number` (or
/// `number op operand`) with a comparison that filters (no `bool`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// The comparison with the operand on the left: `>`, `>=`, `<`, `<=`,
    /// `==` or `!=`.
    pub op: String,
    pub value: f64,
    /// The compared expression, which the graph plots against the value.
    pub operand: String,
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

impl Threshold {
    /// The threshold of `expr`, or `None` when it has none (not a
    /// filtering comparison against a number, or not valid PromQL).
    pub fn of(expr: &str) -> Option<Threshold> {
        let parsed = parser::parse(expr).ok()?;
        let Expr::Binary(b) = unparen(&parsed) else {
            return None;
        };
        if !b.op.is_comparison_operator() || b.return_bool() {
            return None;
        }
        let op = b.op.to_string();
        let number = |e: &Expr| match unparen(e) {
            Expr::NumberLiteral(n) => Some(n.val),
            _ => None,
        };
        let (operand, value, op) = match (number(&b.lhs), number(&b.rhs)) {
            (None, Some(v)) => (&b.lhs, v, op),
            (Some(v), None) => {
                let flipped = match op.as_str() {
                    ">" => "<",
                    "<" => ">",
                    ">=" => "<=",
                    "<=" => ">=",
                    same => same,
                };
                (&b.rhs, v, flipped.to_string())
            }
            _ => return None,
        };
        Some(Threshold {
            op,
            value,
            operand: unparen(operand).to_string(),
        })
    }
}

/// A rule's identity, as links and this API name it.
#[derive(Serialize)]
struct RuleRefJson<'a> {
    file: &'a str,
    group: &'a str,
    index: usize,
    name: &'a str,
    expr: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertViewJson<'a> {
    labels: LabelsJson<'a>,
    annotations: &'a BTreeMap<String, String>,
    state: &'static str,
    active_at: String,
    fired_at: Option<String>,
    /// JSON has no NaN or infinities: those are null (`valueText` shows
    /// them).
    value: Option<f64>,
    value_text: String,
    value_format: ValueFormat,
    rule: RuleRefJson<'a>,
    /// The graph view of the rule, relative to the evaluator's root.
    #[serde(rename = "graphURL")]
    graph_url: String,
}

fn time_of(ms: i64) -> String {
    rfc3339(DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default())
}

fn alert_view<'a>(
    a: &'a Alert,
    source: &'a RuleSource,
    name: &'a str,
    format: ValueFormat,
) -> AlertViewJson<'a> {
    AlertViewJson {
        labels: LabelsJson(&a.labels),
        annotations: &a.annotations,
        state: a.state.as_str(),
        active_at: time_of(a.active_at_ms),
        fired_at: a.fired_at_ms.map(time_of),
        value: Some(a.value).filter(|v| v.is_finite()),
        value_text: format.write(a.value),
        value_format: format,
        rule: RuleRefJson {
            file: &source.file,
            group: &source.group,
            index: source.index,
            name,
            expr: &source.expr,
        },
        graph_url: format!("/graph?{}", source.graph_query()),
    }
}

/// `GET /api/vigil/v1/alerts`: every pending or firing alert of every
/// group with its rule's identity, humanised value and graph link.
async fn alerts(State(state): State<Arc<AppState>>) -> Result<Response, VigilApiError> {
    let mut out = Vec::new();
    for handle in state.current_rule_groups() {
        let g = handle.lock().unwrap_or_else(|e| e.into_inner());
        for (index, entry) in g.rules.iter().enumerate() {
            let Rule::Alerting(rule) = &entry.rule else {
                continue;
            };
            let source = RuleSource::of(&g, index);
            let format = ValueFormat::of_annotations(&rule.spec().annotations);
            for a in rule.active_alerts() {
                // Only string keys and finite numbers: encoding cannot fail.
                out.push(
                    serde_json::to_value(alert_view(a, &source, rule.name(), format))
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(success(serde_json::json!({ "alerts": out })))
}

/// One interval of an alert of the rule: pending or firing from `start`
/// to `end` (null: still).
#[derive(Serialize)]
struct IntervalJson<'a> {
    state: &'static str,
    start: String,
    end: Option<String>,
    labels: LabelsJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleViewJson<'a> {
    file: &'a str,
    group: &'a str,
    index: usize,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    expr: &'a str,
    /// The rule's `for`, in seconds (0 for recording rules).
    for_seconds: f64,
    /// Its group's evaluation interval, in seconds (the Tune view's
    /// backtest evaluates at it).
    group_interval_seconds: f64,
    labels: &'a TextMap,
    annotations: Option<&'a TextMap>,
    value_format: ValueFormat,
    threshold: Option<Threshold>,
    intervals: Vec<IntervalJson<'a>>,
}

/// The group `name` of `file` (as `/api/v1/rules` shows it).
fn find_group(
    state: &AppState,
    file: &str,
    name: &str,
) -> Option<Arc<std::sync::Mutex<RuleGroup>>> {
    state.current_rule_groups().into_iter().find(|h| {
        let g = h.lock().unwrap_or_else(|e| e.into_inner());
        g.name == name && g.file.display().to_string() == file
    })
}

/// What a rule reference is missing or gets wrong.
fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, VigilApiError> {
    params.get(name).ok_or_else(|| {
        VigilApiError::bad(
            name,
            "missing; name the rule by file, group and index as in /api/v1/rules (index from 0)",
        )
    })
}

/// `GET /api/vigil/v1/rule?file=&group=&index=&start=&end=`: one rule with
/// its threshold and the pending and firing intervals of its alerts that
/// overlap `start`–`end` (default: the last hour).
async fn rule(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, VigilApiError> {
    let params = Params::of(&uri)?;
    let file = required(&params, "file")?;
    let group_name = required(&params, "group")?;
    let index_text = required(&params, "index")?;
    let index: usize = index_text.parse().map_err(|_| {
        VigilApiError::bad(
            "index",
            format!("{index_text:?} is not a whole number from 0"),
        )
    })?;
    let (start, end) = params.range()?;
    let now = DateTime::<Utc>::from_timestamp_millis(state.clock.now_ms()).unwrap_or_default();
    let end = end.unwrap_or(now);
    let start = start.unwrap_or(end - chrono::Duration::hours(1));

    let handle = find_group(&state, file, group_name).ok_or_else(|| {
        VigilApiError::NotFound(format!(
            "no rule group {group_name:?} in file {file:?}; GET /api/v1/rules lists the groups and their files"
        ))
    })?;
    // Copied out, so the history query does not hold the group's lock.
    let (entry, source, group_interval_seconds) = {
        let g = handle.lock().unwrap_or_else(|e| e.into_inner());
        let entry = g.rules.get(index).map(|e| e.rule.clone()).ok_or_else(|| {
            VigilApiError::NotFound(format!(
                "group {group_name:?} of {file:?} has {} rules; index {index} is past its last (indexes start at 0)",
                g.rules.len()
            ))
        })?;
        (entry, RuleSource::of(&g, index), g.interval.as_secs_f64())
    };

    let episodes = match &entry {
        Rule::Alerting(a) => {
            // Episodes of this rule: its name, its group and its fixed labels
            // (templated ones vary per alert).
            // (An equality matcher has no regex to fail on.)
            let matchers = a
                .spec()
                .labels
                .iter()
                .filter(|(_, v)| !v.contains("{{"))
                .filter_map(|(k, v)| Matcher::new(k.as_str(), MatchOp::Equal, v.as_str()).ok())
                .collect();
            let query = HistoryQuery {
                rule: Some(a.name().to_string()),
                matchers,
                from: Some(start),
                to: Some(end + chrono::Duration::milliseconds(1)),
                limit: super::vigil::MAX_LIMIT,
                ..HistoryQuery::default()
            };
            let page = state.history.query(&query).await?;
            page.items
                .into_iter()
                .filter(|e| e.group_name == source.group)
                .collect()
        }
        Rule::Recording(_) => Vec::new(),
    };
    let mut intervals = Vec::new();
    for e in &episodes {
        let labels = LabelsJson(&e.labels);
        let pending_end = e.fired_at.or(e.ends_at);
        if pending_end != Some(e.starts_at) {
            intervals.push(IntervalJson {
                state: "pending",
                start: rfc3339(e.starts_at),
                end: pending_end.map(rfc3339),
                labels: LabelsJson(&e.labels),
            });
        }
        if let Some(fired) = e.fired_at {
            intervals.push(IntervalJson {
                state: "firing",
                start: rfc3339(fired),
                end: e.ends_at.map(rfc3339),
                labels,
            });
        }
    }
    let (kind, for_seconds, labels, annotations, format) = match &entry {
        Rule::Alerting(a) => (
            "alerting",
            a.spec().for_.as_secs_f64(),
            &a.spec().labels,
            Some(&a.spec().annotations),
            ValueFormat::of_annotations(&a.spec().annotations),
        ),
        Rule::Recording(r) => (
            "recording",
            0.0,
            &r.spec().labels,
            None,
            ValueFormat::Humanize,
        ),
    };
    let view = RuleViewJson {
        file: &source.file,
        group: &source.group,
        index,
        name: entry.name(),
        kind,
        expr: &source.expr,
        for_seconds,
        group_interval_seconds,
        labels,
        annotations,
        value_format: format,
        threshold: Threshold::of(&source.expr),
        intervals,
    };
    Ok(success(view))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> TextMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_value_is_written_as_the_summary_writes_it() {
        let shipped = annotations(&[
            (
                "summary",
                "{{ $labels.route }} fails {{ $value | humanizePercentage }} of requests",
            ),
            ("description", "now {{ $value | humanizeDuration }}"),
        ]);
        let format = ValueFormat::of_annotations(&shipped);
        assert_eq!(format, ValueFormat::Percentage);
        assert_eq!(format.write(0.78435), "78.44%");
    }

    #[test]
    fn the_description_and_then_other_annotations_are_read_when_the_summary_does_not_say() {
        let called = annotations(&[
            ("summary", "slow"),
            ("description", "p99 is {{ humanizeDuration $value }}"),
        ]);
        assert_eq!(ValueFormat::of_annotations(&called), ValueFormat::Duration);
        assert_eq!(ValueFormat::Duration.write(1.5), "1.5s");
        let other = annotations(&[("zz", "{{ $value | humanize1024 }}")]);
        assert_eq!(
            ValueFormat::of_annotations(&other),
            ValueFormat::Humanize1024
        );
    }

    #[test]
    fn humanize_is_the_default() {
        let plain = annotations(&[("summary", "value {{ $value }}")]);
        assert_eq!(ValueFormat::of_annotations(&plain), ValueFormat::Humanize);
        assert_eq!(ValueFormat::Humanize.write(1234567.0), "1.235M");
    }

    #[test]
    fn a_filtering_comparison_against_a_number_is_a_threshold() {
        assert_eq!(
            Threshold::of("route:http_error_ratio:rate5m > 0.20"),
            Some(Threshold {
                op: ">".into(),
                value: 0.2,
                operand: "route:http_error_ratio:rate5m".into(),
            })
        );
        let flipped = Threshold::of("(0.5 >= sum by (a) (rate(x[5m])))").unwrap();
        assert_eq!(flipped.op, "<=");
        assert_eq!(flipped.value, 0.5);
        assert_eq!(flipped.operand, "sum by (a) (rate(x[5m]))");
    }

    #[test]
    fn other_expressions_have_no_threshold() {
        for expr in [
            "up",
            "x > bool 1",
            "x > y",
            "x + 1",
            "absent(up)",
            "not promql (",
        ] {
            assert_eq!(Threshold::of(expr), None, "{expr}");
        }
    }
}
