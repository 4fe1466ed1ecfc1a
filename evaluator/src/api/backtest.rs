//! `POST /api/vigil/v1/backtest`: a backtest (see [`crate::backtest`] and
//! docs/backtest.md) run by the server against its own `datasource:`,
//! with its running rules and notification config unless the request
//! brings its own. Token-guarded like the other writes (it costs the
//! datasource and this process work), one at a time (`backtest_permit`;
//! a second gets 429), bounded in range ([`MAX_RANGE`]) and wall time
//! ([`MAX_WALL_TIME`]), and cancelled when the client goes away (the
//! request's future, and with it the backtest, is dropped).
//!
//! ```json
//! {"from": "7d", "to": "now", "alert": "HTTPErrorRateHigh",
//!  "rules": "groups: ...", "baseline_rules": "groups: ...",
//!  "sweep": "HTTPErrorRateHigh{severity=warning}:0.01:0.2:0.01",
//!  "notify_config": "route: ..."}
//! ```
//!
//! Only `from` is required. The answer's `data` is the JSON of
//! `vigil-evaluator backtest --output json` for the same mode.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::prometheus::success;
use super::vigil::{read_json, VigilApiError};
use super::{authorized, AppState};
use crate::backtest::modes::{self, Mode};
use crate::backtest::range::{parse_time, TimeRange};
use crate::backtest::{self, push_target, sweep, Settings, Target};
use crate::rules::file::parse_rule_file;
use crate::rules::group::Rule;

/// The longest range a request may ask for.
pub const MAX_RANGE: Duration = Duration::from_secs(31 * 86_400);
/// How long a backtest may run before it is stopped.
pub const MAX_WALL_TIME: Duration = Duration::from_secs(120);
/// Flaps: episodes within this long after the previous one ended.
const FLAP_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Prometheus' default resend delay and evaluation interval.
const RESEND_DELAY: Duration = Duration::from_secs(60);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

const EXAMPLE: &str = r#"{"from": "7d", "to": "now", "alert": "HTTPErrorRateHigh"}"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BacktestRequest {
    from: String,
    to: Option<String>,
    /// Only alerting rules with this name.
    alert: Option<String>,
    /// Rule-file YAML; default: the running rules.
    rules: Option<String>,
    /// Rule-file YAML to compare with.
    baseline_rules: Option<String>,
    /// `ALERTNAME[{label=value}]:FROM:TO:STEP`.
    sweep: Option<String>,
    /// Notification-config YAML; default: the running one.
    notify_config: Option<String>,
}

/// An error answer in the API's envelope.
struct ApiError {
    status: StatusCode,
    error_type: &'static str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"status": "error", "errorType": self.error_type, "error": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

fn error(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        error_type,
        message: message.into(),
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    error(StatusCode::BAD_REQUEST, "bad_data", message)
}

/// The alerting rules of a rule file sent in the request.
fn targets_of(field: &str, yaml: &str) -> Result<Vec<Target>, ApiError> {
    let groups = parse_rule_file(Path::new(field), yaml)
        .map_err(|e| bad(format!("{field} has errors:\n{e}")))?;
    Ok(backtest::targets(&groups, DEFAULT_INTERVAL))
}

/// The running alerting rules.
fn running_targets(state: &AppState) -> Vec<Target> {
    let mut out = Vec::new();
    for group in state.current_rule_groups() {
        let group = group.lock().unwrap_or_else(|e| e.into_inner());
        for (index, entry) in group.rules.iter().enumerate() {
            if let Rule::Alerting(rule) = &entry.rule {
                push_target(
                    &mut out,
                    &group.name,
                    &group.file.display().to_string(),
                    index,
                    rule.spec(),
                    group.interval,
                    group.query_offset,
                    group.limit,
                );
            }
        }
    }
    out
}

/// `POST /api/vigil/v1/backtest`.
pub async fn backtest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !authorized(&state, &headers) {
        return VigilApiError::Unauthorized.into_response();
    }
    let request: BacktestRequest = match read_json(body, EXAMPLE).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match prepare_and_run(&state, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn prepare_and_run(state: &AppState, request: BacktestRequest) -> Result<Response, ApiError> {
    let client = state
        .datasource
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| {
            bad("this evaluator has no `datasource:` in its configuration; a backtest reads the past from one (or run `vigil-evaluator backtest --datasource URL`)")
        })?;
    let now = state.clock.now();
    let from = parse_time(&request.from, now).map_err(|e| bad(format!("from: {e}")))?;
    let to = parse_time(request.to.as_deref().unwrap_or("now"), now)
        .map_err(|e| bad(format!("to: {e}")))?;
    let range = TimeRange::new(from, to, MAX_RANGE).map_err(|e| {
        bad(e.replace(
            "raise --max-range",
            "use the command line for longer ranges",
        ))
    })?;
    let settings = Settings {
        range,
        default_interval: DEFAULT_INTERVAL,
        resend_delay: RESEND_DELAY,
        flap_window: FLAP_WINDOW,
    };
    let mut rules = match &request.rules {
        Some(yaml) => targets_of("rules", yaml)?,
        None => running_targets(state),
    };
    if let Some(alert) = &request.alert {
        rules.retain(|t| &t.spec.alert == alert);
    }
    if rules.is_empty() {
        return Err(bad(match &request.alert {
            Some(alert) => format!("no alerting rule named {alert:?} to backtest"),
            None => "no alerting rules to backtest".to_string(),
        }));
    }
    let mode = match (&request.sweep, &request.baseline_rules) {
        (Some(_), Some(_)) => return Err(bad("send either sweep or baseline_rules, not both")),
        (Some(spec), None) => Mode::Sweep(sweep::parse_sweep(spec).map_err(bad)?),
        (None, Some(yaml)) => {
            let mut old = targets_of("baseline_rules", yaml)?;
            if let Some(alert) = &request.alert {
                old.retain(|t| &t.spec.alert == alert);
            }
            Mode::Baseline(old)
        }
        (None, None) => Mode::Plain,
    };
    let notify = match &request.notify_config {
        Some(yaml) => Arc::new(
            crate::notify::config::parse(yaml, Path::new("notify_config"))
                .map_err(|e| bad(e.to_string()))?,
        ),
        None => Arc::new(state.alertmanager.notifier().lock().await.config().clone()),
    };
    let Ok(_permit) = state.backtest_permit.try_acquire() else {
        return Err(error(
            StatusCode::TOO_MANY_REQUESTS,
            "unavailable",
            "another backtest is running on this evaluator; try again when it has finished",
        ));
    };
    let run = modes::execute(&client, &settings, rules, mode, notify, None);
    match tokio::time::timeout(MAX_WALL_TIME, run).await {
        Err(_) => Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "the backtest did not finish within {}s and was stopped; shorten the range, pick one rule with `alert`, or use `vigil-evaluator backtest`",
                MAX_WALL_TIME.as_secs()
            ),
        )),
        // The datasource failed or refused a query; the message says which.
        Ok(Err(e)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e)),
        Ok(Ok(outcome)) => Ok(success(outcome.to_json(&settings))),
    }
}
