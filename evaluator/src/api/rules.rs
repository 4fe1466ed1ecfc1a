//! `/api/v1/rules` and `/api/v1/alerts`: the running rule groups and their
//! active alerts in Prometheus' shape, so rule health and pending/firing
//! alerts show in Grafana and scripts as they do for Prometheus.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use super::error::ApiError;
use super::prometheus::{success, LabelsJson, Params};
use super::targets::NEVER;
use super::AppState;
use crate::alerts::{Alert, AlertState};
use crate::rules::group::{Rule, RuleEntry, RuleGroup};
use crate::rules::text_map::TextMap;

/// Milliseconds since the epoch as RFC 3339 (Prometheus' time fields).
pub fn format_ms(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| NEVER.to_string())
}

/// An alert value as Prometheus' API writes it: Go's
/// `strconv.FormatFloat(v, 'e', -1, 64)`, e.g. `1e+00`, `2.5e+00`.
pub fn format_alert_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Rust's `{:e}` is the shortest round-trip mantissa, exponent bare.
    let rust = format!("{v:e}");
    let (mantissa, exp) = rust.split_once('e').unwrap_or((&rust, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exp.abs())
}

/// Seconds as Go's JSON writes a float64: no `.0` on whole numbers.
fn secs(d: Duration) -> serde_json::Number {
    if d.subsec_nanos() == 0 {
        serde_json::Number::from(d.as_secs())
    } else {
        serde_json::Number::from_f64(d.as_secs_f64()).unwrap_or_else(|| 0.into())
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertJson<'a> {
    labels: LabelsJson<'a>,
    annotations: &'a BTreeMap<String, String>,
    state: &'static str,
    active_at: String,
    value: String,
}

fn alert_json(a: &Alert) -> AlertJson<'_> {
    AlertJson {
        labels: LabelsJson(&a.labels),
        annotations: &a.annotations,
        state: a.state.as_str(),
        active_at: format_ms(Some(a.active_at_ms)),
        value: format_alert_value(a.value),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertingRuleJson<'a> {
    state: &'static str,
    name: &'a str,
    query: &'a str,
    duration: serde_json::Number,
    keep_firing_for: serde_json::Number,
    labels: &'a TextMap,
    annotations: &'a TextMap,
    alerts: Vec<AlertJson<'a>>,
    #[serde(flatten)]
    status: RuleStatusJson<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordingRuleJson<'a> {
    name: &'a str,
    query: &'a str,
    #[serde(skip_serializing_if = "no_labels")]
    labels: &'a TextMap,
    #[serde(flatten)]
    status: RuleStatusJson<'a>,
}

fn no_labels(labels: &&TextMap) -> bool {
    labels.is_empty()
}

/// The fields both kinds of rule end with: how its last evaluation went.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleStatusJson<'a> {
    health: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    last_error: &'a str,
    evaluation_time: serde_json::Number,
    last_evaluation: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum RuleJson<'a> {
    Alerting(AlertingRuleJson<'a>),
    Recording(RecordingRuleJson<'a>),
}

fn rule_json(e: &RuleEntry) -> RuleJson<'_> {
    let status = |kind| RuleStatusJson {
        health: e.health.as_str(),
        last_error: e.last_error.as_deref().unwrap_or_default(),
        evaluation_time: secs(e.last_eval_duration),
        last_evaluation: format_ms(e.last_eval_ms),
        kind,
    };
    match &e.rule {
        Rule::Alerting(a) => {
            let spec = a.spec();
            let mut alerts: Vec<&Alert> = a.active_alerts().collect();
            alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
            let state = alerts
                .iter()
                .map(|al| al.state)
                .max()
                .unwrap_or(AlertState::Inactive);
            RuleJson::Alerting(AlertingRuleJson {
                state: state.as_str(),
                name: &spec.alert,
                query: &spec.expr,
                duration: secs(spec.for_),
                keep_firing_for: secs(spec.keep_firing_for),
                labels: &spec.labels,
                annotations: &spec.annotations,
                alerts: alerts.into_iter().map(alert_json).collect(),
                status: status("alerting"),
            })
        }
        Rule::Recording(r) => {
            let spec = r.spec();
            RuleJson::Recording(RecordingRuleJson {
                name: &spec.record,
                query: &spec.expr,
                labels: &spec.labels,
                status: status("recording"),
            })
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupJson<'a> {
    name: String,
    file: String,
    rules: Vec<RuleJson<'a>>,
    interval: serde_json::Number,
    limit: usize,
    evaluation_time: serde_json::Number,
    last_evaluation: String,
    /// Vigil's addition, with `fleet.sharding`: the replica that holds
    /// the group's lease and evaluates it (empty while none does).
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

/// Which rules `/api/v1/rules` shows.
#[derive(Debug, Default)]
pub struct RuleFilter {
    /// `Some(true)`: alerting only; `Some(false)`: recording only.
    pub alerting: Option<bool>,
    pub names: Vec<String>,
    pub groups: Vec<String>,
    pub files: Vec<String>,
}

impl RuleFilter {
    /// Reads `type`, `rule_name[]`, `rule_group[]` and `file[]`.
    pub fn from_params(params: &Params) -> Result<RuleFilter, ApiError> {
        let alerting = match params.get("type").unwrap_or_default() {
            "" => None,
            "alert" => Some(true),
            "record" => Some(false),
            other => {
                return Err(ApiError::invalid_param(
                    "type",
                    format!("unknown rule type {other:?}; use \"alert\" or \"record\""),
                ))
            }
        };
        let all = |name: &str| params.all(name).map(str::to_string).collect::<Vec<_>>();
        Ok(RuleFilter {
            alerting,
            names: all("rule_name[]"),
            groups: all("rule_group[]"),
            files: all("file[]"),
        })
    }

    fn keeps_group(&self, g: &RuleGroup) -> bool {
        (self.groups.is_empty() || self.groups.contains(&g.name))
            && (self.files.is_empty()
                || self
                    .files
                    .iter()
                    .any(|f| *f == g.file.display().to_string()))
    }

    fn keeps_rule(&self, e: &RuleEntry) -> bool {
        let is_alerting = matches!(e.rule, Rule::Alerting(_));
        self.alerting.is_none_or(|a| a == is_alerting)
            && (self.names.is_empty() || self.names.iter().any(|n| n == e.rule.name()))
    }

    fn filters_rules(&self) -> bool {
        self.alerting.is_some() || !self.names.is_empty()
    }
}

fn group_json<'a>(g: &'a RuleGroup, filter: &RuleFilter) -> GroupJson<'a> {
    let rules = g
        .rules
        .iter()
        .filter(|e| filter.keeps_rule(e))
        .map(rule_json)
        .collect();
    GroupJson {
        name: g.name.clone(),
        file: g.file.display().to_string(),
        rules,
        interval: secs(g.interval),
        limit: g.limit,
        evaluation_time: secs(g.last_eval_duration),
        last_evaluation: format_ms(g.last_eval_ms),
        owner: None,
    }
}

/// Each group is encoded while its lock is held, straight from the rule
/// state (no intermediate JSON tree: a thousand rules with their alerts
/// would otherwise allocate megabytes at every call).
#[derive(Serialize)]
struct RulesData {
    groups: Vec<Box<serde_json::value::RawValue>>,
}

/// `GET /api/v1/rules`.
pub async fn rules(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let filter = RuleFilter::from_params(&params)?;
    let handles = state.current_rule_groups();
    let fleet = state.fleet.as_ref().map(|f| Arc::clone(&f.borrow()));
    let mut groups = Vec::new();
    for handle in &handles {
        let g = handle.lock().unwrap_or_else(|e| e.into_inner());
        if !filter.keeps_group(&g) {
            continue;
        }
        let mut json = group_json(&g, &filter);
        if let Some(fleet) = &fleet {
            let key = crate::history::fleet::group_key(&g.file, &g.name);
            json.owner = Some(fleet.owners.get(&key).cloned().unwrap_or_default());
        }
        if json.rules.is_empty() && filter.filters_rules() {
            continue;
        }
        groups.push(
            serde_json::value::to_raw_value(&json)
                .map_err(|e| ApiError::Internal(format!("cannot encode the rules: {e}")))?,
        );
    }
    Ok(success(RulesData { groups }))
}

/// Each alert is encoded while its group's lock is held, as the rules are.
#[derive(Serialize)]
struct AlertsData {
    alerts: Vec<Box<serde_json::value::RawValue>>,
}

/// `GET /api/v1/alerts`: every pending or firing alert of every group.
pub async fn alerts(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let handles = state.current_rule_groups();
    let mut alerts = Vec::new();
    for handle in &handles {
        let g = handle.lock().unwrap_or_else(|e| e.into_inner());
        for e in &g.rules {
            if let Rule::Alerting(a) = &e.rule {
                for al in a.active_alerts() {
                    alerts.push(
                        serde_json::value::to_raw_value(&alert_json(al)).map_err(|e| {
                            ApiError::Internal(format!("cannot encode the alerts: {e}"))
                        })?,
                    );
                }
            }
        }
    }
    Ok(success(AlertsData { alerts }))
}
