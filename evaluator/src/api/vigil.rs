//! Vigil's own API under `/api/vigil/v1`: the alert history with filters
//! and paging, one episode with its transitions and notification log,
//! acknowledgements (by episode id, or by the labels `/api/v1/alerts`
//! shows), per-rule statistics with fires per day, and the OpenAPI document
//! describing all of it (`evaluator/openapi.yaml`, served as written).
//!
//! It answers in the Prometheus API's envelope (`{"status":"success",
//! "data":…}` / `{"status":"error","errorType":…,"error":…}`), so one client
//! reads both APIs. Bad input is a 400 naming the parameter; a database
//! failure is a 503 with a generic message (the cause is logged).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::prometheus::{parse_time, success, LabelsJson};
use super::{authorized, AppState};
use crate::history::outbox::NotificationRecord;
use crate::history::store::{AckOutcome, AlertEvent, Episode, HistoryQuery, HistoryState};
use crate::history::HistoryError;
use crate::labels::Labels;
use crate::notify::alert::Fingerprint;
use crate::notify::matcher::parse_matchers;

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("../../openapi.yaml");

/// Default and largest `limit` of a history page.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;
/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `by` and `comment` of an acknowledgement, in characters.
const MAX_BY_CHARS: usize = 256;
const MAX_COMMENT_CHARS: usize = 4096;
/// Default range of `/stats`, and the longest one accepted.
const DEFAULT_STATS_DAYS: i64 = 7;
const MAX_STATS_DAYS: i64 = 366;
const DAY_MS: i64 = 86_400_000;

/// The routes of this API (merged into the app's router).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/vigil/v1/history", get(history))
        .route("/api/vigil/v1/history/{id}", get(episode))
        .route("/api/vigil/v1/history/{id}/ack", post(ack_episode))
        .route("/api/vigil/v1/alerts/ack", post(ack_alert))
        .route("/api/vigil/v1/stats", get(stats))
        .route("/api/vigil/v1/openapi.yaml", get(openapi))
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum VigilApiError {
    /// A query parameter or body field is wrong.
    #[error("invalid parameter {param:?}: {message}")]
    BadParam { param: String, message: String },
    /// The body is not the JSON the endpoint takes.
    #[error("{0}")]
    BadBody(String),
    #[error("the request body is larger than {MAX_BODY_BYTES} bytes; send a smaller one")]
    TooLarge,
    #[error("{0}")]
    NotFound(String),
    /// Someone acknowledged the episode first.
    #[error(
        "episode {} was already acknowledged by {:?} at {}; the first acknowledgement stands",
        .0.id, .0.ack.by, .0.ack.at
    )]
    Conflict(Box<Conflict>),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The history database failed; the client sees a generic message.
    #[error("the alert history database is unavailable; try again later")]
    Unavailable(#[source] Box<HistoryError>),
}

/// The episode someone else acknowledged first, and their acknowledgement.
#[derive(Debug)]
pub struct Conflict {
    id: String,
    ack: AckJson,
}

/// `start` and `end` of a request, each optional.
pub(super) type TimeRange = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

impl VigilApiError {
    pub(super) fn bad(param: &str, message: impl Into<String>) -> VigilApiError {
        VigilApiError::BadParam {
            param: param.to_string(),
            message: message.into(),
        }
    }

    /// The `errorType` of the envelope.
    pub fn error_type(&self) -> &'static str {
        match self {
            VigilApiError::BadParam { .. }
            | VigilApiError::BadBody(_)
            | VigilApiError::TooLarge => "bad_data",
            VigilApiError::NotFound(_) => "not_found",
            VigilApiError::Conflict(_) => "conflict",
            VigilApiError::Unauthorized => "unauthorized",
            VigilApiError::Unavailable(_) => "unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            VigilApiError::BadParam { .. } | VigilApiError::BadBody(_) => StatusCode::BAD_REQUEST,
            VigilApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            VigilApiError::NotFound(_) => StatusCode::NOT_FOUND,
            VigilApiError::Conflict(_) => StatusCode::CONFLICT,
            VigilApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            VigilApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<HistoryError> for VigilApiError {
    fn from(e: HistoryError) -> VigilApiError {
        match e {
            HistoryError::BadCursor(_) => VigilApiError::bad("cursor", e.to_string()),
            other => VigilApiError::Unavailable(Box::new(other)),
        }
    }
}

impl IntoResponse for VigilApiError {
    fn into_response(self) -> Response {
        if let VigilApiError::Unauthorized = self {
            return super::access::unauthorized();
        }
        if let VigilApiError::Unavailable(cause) = &self {
            tracing::error!(error = %cause, "history API request failed");
        }
        let mut body = serde_json::json!({
            "status": "error",
            "errorType": self.error_type(),
            "error": self.to_string(),
        });
        if let VigilApiError::Conflict(conflict) = &self {
            body["data"] = serde_json::json!({ "ack": conflict.ack });
        }
        (self.status(), axum::Json(body)).into_response()
    }
}

/// The query string's parameters, repeated ones kept.
pub(super) struct Params(Vec<(String, String)>);

impl Params {
    pub(super) fn of(uri: &Uri) -> Result<Params, VigilApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| Params(pairs))
            .map_err(|e| VigilApiError::BadBody(format!("cannot read the query string: {e}")))
    }

    /// The first non-empty value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A time parameter: RFC 3339 or Unix seconds, as Prometheus takes it.
    pub(super) fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, VigilApiError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        let invalid = |why: String| {
            VigilApiError::bad(
                name,
                format!(
                    "{why}; write RFC 3339 (2024-01-02T15:04:05Z) or Unix seconds (1704207845)"
                ),
            )
        };
        let ms = parse_time(text).map_err(invalid)?;
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map(Some)
            .ok_or_else(|| invalid(format!("{text:?} is out of range")))
    }

    /// `start` and `end`, checked for order.
    pub(super) fn range(&self) -> Result<TimeRange, VigilApiError> {
        let (start, end) = (self.time("start")?, self.time("end")?);
        if let (Some(s), Some(e)) = (start, end) {
            if s > e {
                return Err(VigilApiError::bad(
                    "end",
                    format!("end ({}) is before start ({})", rfc3339(e), rfc3339(s)),
                ));
            }
        }
        Ok((start, end))
    }
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An acknowledgement as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AckJson {
    by: String,
    at: String,
    comment: String,
}

fn ack_json(e: &Episode) -> Option<AckJson> {
    let at = e.acknowledged_at?;
    Some(AckJson {
        by: e.acknowledged_by.clone().unwrap_or_default(),
        at: rfc3339(at),
        comment: e.ack_comment.clone().unwrap_or_default(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EpisodeJson<'a> {
    id: &'a str,
    fingerprint: &'a str,
    rule: &'a str,
    group: &'a str,
    labels: LabelsJson<'a>,
    annotations: &'a BTreeMap<String, String>,
    severity: &'a str,
    state: &'static str,
    starts_at: String,
    fired_at: Option<String>,
    ends_at: Option<String>,
    /// Why it ended, when not because its condition stopped holding (its
    /// rule was removed by a reload, say); null otherwise.
    end_reason: Option<&'a str>,
    /// JSON has no NaN or infinities: those are null.
    value: Option<f64>,
    ack: Option<AckJson>,
}

fn episode_json(e: &Episode) -> EpisodeJson<'_> {
    EpisodeJson {
        id: &e.id,
        fingerprint: &e.fingerprint,
        rule: &e.rule,
        group: &e.group_name,
        labels: LabelsJson(&e.labels),
        annotations: &e.annotations,
        severity: &e.severity,
        state: e.state.as_str(),
        starts_at: rfc3339(e.starts_at),
        fired_at: e.fired_at.map(rfc3339),
        ends_at: e.ends_at.map(rfc3339),
        end_reason: e.end_reason.as_deref(),
        value: e.last_value.filter(|v| v.is_finite()),
        ack: ack_json(e),
    }
}

#[derive(Serialize)]
struct EventJson {
    from: &'static str,
    to: &'static str,
    at: String,
    value: Option<f64>,
}

fn event_json(e: &AlertEvent) -> EventJson {
    EventJson {
        from: e.from.as_str(),
        to: e.to.as_str(),
        at: rfc3339(e.at),
        value: e.value.filter(|v| v.is_finite()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationJson<'a> {
    receiver: &'a str,
    integration: &'a str,
    status: &'static str,
    attempts: i64,
    last_error: Option<&'a str>,
    response_code: Option<u16>,
    message_id: Option<&'a str>,
    created_at: String,
    sent_at: Option<String>,
}

fn notification_json(n: &NotificationRecord) -> NotificationJson<'_> {
    NotificationJson {
        receiver: &n.receiver,
        integration: &n.integration,
        status: n.status.as_str(),
        attempts: n.attempts,
        last_error: n.last_error.as_deref(),
        response_code: n.response_code,
        message_id: n.message_id.as_deref(),
        created_at: rfc3339(n.created_at),
        sent_at: n.sent_at.map(rfc3339),
    }
}

/// `GET /api/vigil/v1/history`: episodes, newest first, one page at a time.
async fn history(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, VigilApiError> {
    let params = Params::of(&uri)?;
    let mut matchers = Vec::new();
    for text in params.all("match[]").filter(|t| !t.is_empty()) {
        let parsed = parse_matchers(text).map_err(|e| {
            VigilApiError::bad(
                "match[]",
                format!("{text:?}: {e}; write matchers like {{severity=\"critical\"}} or severity=critical"),
            )
        })?;
        if parsed.is_empty() {
            return Err(VigilApiError::bad(
                "match[]",
                format!("{text:?} holds no matcher; write one like severity=\"critical\""),
            ));
        }
        matchers.extend(parsed);
    }
    let state_filter = match params.get("state") {
        None => None,
        Some(text) => Some(HistoryState::parse(text).ok_or_else(|| {
            VigilApiError::bad(
                "state",
                format!("unknown state {text:?}; use pending, firing, resolved or inactive"),
            )
        })?),
    };
    let (start, end) = params.range()?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                VigilApiError::bad(
                    "limit",
                    format!("{text:?} is not a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let query = HistoryQuery {
        rule: params.get("rule").map(str::to_string),
        matchers,
        state: state_filter,
        from: start,
        // The store's range is half-open; `end` is inclusive, as in Prometheus.
        to: end.map(|e| e + chrono::Duration::milliseconds(1)),
        limit,
        cursor: params.get("cursor").map(str::to_string),
    };
    let page = state.history.query(&query).await?;
    let episodes: Vec<EpisodeJson<'_>> = page.items.iter().map(episode_json).collect();
    Ok(success(serde_json::json!({
        "episodes": episodes,
        "next": page.next,
    })))
}

#[derive(Serialize)]
struct EpisodeDetail<'a> {
    #[serde(flatten)]
    episode: EpisodeJson<'a>,
    events: Vec<EventJson>,
    notifications: Vec<NotificationJson<'a>>,
}

fn no_episode(id: &str) -> VigilApiError {
    VigilApiError::NotFound(format!(
        "no alert episode with id {id:?}; list episodes with GET /api/vigil/v1/history"
    ))
}

/// `GET /api/vigil/v1/history/{id}`: one episode, its transitions and its
/// notifications.
async fn episode(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, VigilApiError> {
    let Some(episode) = state.history.episode(&id).await? else {
        return Err(no_episode(&id));
    };
    let events = state.history.events(&id).await?;
    let notifications = state.history.notifications_for_episode(&episode).await?;
    Ok(success(EpisodeDetail {
        episode: episode_json(&episode),
        events: events.iter().map(event_json).collect(),
        notifications: notifications.iter().map(notification_json).collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: String,
    #[serde(default)]
    comment: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertAckBody {
    labels: BTreeMap<String, String>,
    by: String,
    #[serde(default)]
    comment: String,
}

/// Reads a JSON body of at most [`MAX_BODY_BYTES`].
pub(super) async fn read_json<T: serde::de::DeserializeOwned>(
    body: Body,
    example: &str,
) -> Result<T, VigilApiError> {
    let bytes = read_body(body).await?;
    parse_json(&bytes, example)
}

/// Like [`read_json`], with an empty body meaning `None`.
pub(super) async fn read_optional_json<T: serde::de::DeserializeOwned>(
    body: Body,
    example: &str,
) -> Result<Option<T>, VigilApiError> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_json(&bytes, example).map(Some)
}

async fn read_body(body: Body) -> Result<axum::body::Bytes, VigilApiError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| VigilApiError::TooLarge)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    example: &str,
) -> Result<T, VigilApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        VigilApiError::BadBody(format!(
            "the request body is not the JSON this endpoint takes: {e}; send {example}"
        ))
    })
}

/// Checks `by` and `comment`; returns `by` trimmed.
fn check_ack(by: &str, comment: &str) -> Result<String, VigilApiError> {
    let by = by.trim();
    if by.is_empty() {
        return Err(VigilApiError::bad(
            "by",
            "say who acknowledges (a name or e-mail address)",
        ));
    }
    if by.chars().count() > MAX_BY_CHARS {
        return Err(VigilApiError::bad(
            "by",
            format!("longer than {MAX_BY_CHARS} characters"),
        ));
    }
    if comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(VigilApiError::bad(
            "comment",
            format!("longer than {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(by.to_string())
}

/// Acknowledges episode `id`; the acknowledged episode, or who was first.
async fn acknowledge(
    state: &AppState,
    id: &str,
    by: &str,
    comment: &str,
) -> Result<Response, VigilApiError> {
    match state
        .history
        .acknowledge(id, by, comment, state.clock.now())
        .await?
    {
        AckOutcome::NotFound => Err(no_episode(id)),
        AckOutcome::Acknowledged => {
            let episode = state
                .history
                .episode(id)
                .await?
                .ok_or_else(|| no_episode(id))?;
            Ok(success(episode_json(&episode)))
        }
        AckOutcome::AlreadyAcknowledged { by, at } => {
            let comment = state
                .history
                .episode(id)
                .await?
                .and_then(|e| e.ack_comment)
                .unwrap_or_default();
            Err(VigilApiError::Conflict(Box::new(Conflict {
                id: id.to_string(),
                ack: AckJson {
                    by,
                    at: rfc3339(at),
                    comment,
                },
            })))
        }
    }
}

/// `POST /api/vigil/v1/history/{id}/ack`.
async fn ack_episode(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, VigilApiError> {
    if !authorized(&state, &headers) {
        return Err(VigilApiError::Unauthorized);
    }
    let body: AckBody = read_json(body, r#"{"by": "alice", "comment": "looking"}"#).await?;
    let by = check_ack(&body.by, &body.comment)?;
    acknowledge(&state, &id, &by, &body.comment).await
}

/// `POST /api/vigil/v1/alerts/ack`: acknowledges the open episode of the
/// alert with exactly these labels (as `/api/v1/alerts` lists them).
async fn ack_alert(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, VigilApiError> {
    if !authorized(&state, &headers) {
        return Err(VigilApiError::Unauthorized);
    }
    let body: AlertAckBody = read_json(
        body,
        r#"{"labels": {"alertname": "Down", "job": "api"}, "by": "alice", "comment": "looking"}"#,
    )
    .await?;
    let by = check_ack(&body.by, &body.comment)?;
    // The same label set the rules engine fingerprints: sorted, empty
    // values dropped.
    let labels = Labels::from_pairs(body.labels);
    if labels.is_empty() {
        return Err(VigilApiError::bad(
            "labels",
            "give the alert's labels as /api/v1/alerts shows them",
        ));
    }
    let fingerprint = Fingerprint::of(&labels);
    let episode = state
        .history
        .open_episode(fingerprint)
        .await?
        .filter(|e| e.labels == labels)
        .ok_or_else(|| {
            VigilApiError::NotFound(format!(
                "no pending or firing alert {labels} in the history; its labels must match /api/v1/alerts exactly"
            ))
        })?;
    acknowledge(&state, &episode.id, &by, &body.comment).await
}

#[derive(Serialize)]
struct DayJson {
    day: String,
    fires: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleStatsJson {
    rule: String,
    episodes: i64,
    fires: i64,
    mtta_seconds: Option<f64>,
    mttr_seconds: Option<f64>,
    notifications_sent: i64,
    fires_per_day: Vec<DayJson>,
}

fn day_name(day: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(day * DAY_MS)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// `GET /api/vigil/v1/stats`: per rule, over `[start, end)` (default: the
/// last 7 days).
async fn stats(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, VigilApiError> {
    let params = Params::of(&uri)?;
    let (start, end) = params.range()?;
    let end = end.unwrap_or_else(|| state.clock.now());
    let start = start.unwrap_or(end - chrono::Duration::days(DEFAULT_STATS_DAYS));
    if start > end {
        return Err(VigilApiError::bad(
            "start",
            format!(
                "start ({}) is after the default end (now, {}); give end too",
                rfc3339(start),
                rfc3339(end)
            ),
        ));
    }
    if end - start > chrono::Duration::days(MAX_STATS_DAYS) {
        return Err(VigilApiError::bad(
            "start",
            format!("the range is longer than {MAX_STATS_DAYS} days; narrow start and end"),
        ));
    }
    let per_rule = state.history.rule_stats(start, end).await?;
    let daily = state.history.fires_per_day(start, end).await?;
    let first_day = start.timestamp_millis().div_euclid(DAY_MS);
    let last_day = (end.timestamp_millis() - 1)
        .div_euclid(DAY_MS)
        .max(first_day);
    let mut by_rule: BTreeMap<&str, BTreeMap<i64, i64>> = BTreeMap::new();
    for d in &daily {
        by_rule.entry(&d.rule).or_default().insert(d.day, d.fires);
    }
    let series = |rule: &str| -> Vec<DayJson> {
        let counts = by_rule.get(rule);
        (first_day..=last_day)
            .map(|day| DayJson {
                day: day_name(day),
                fires: counts.and_then(|c| c.get(&day)).copied().unwrap_or(0),
            })
            .collect()
    };
    let mut seen = BTreeSet::new();
    let mut rules: Vec<RuleStatsJson> = per_rule
        .iter()
        .map(|s| {
            seen.insert(s.rule.as_str());
            RuleStatsJson {
                rule: s.rule.clone(),
                episodes: s.episodes,
                fires: s.fires,
                mtta_seconds: s.mtta.map(|d| d.as_secs_f64()),
                mttr_seconds: s.mttr.map(|d| d.as_secs_f64()),
                notifications_sent: s.notifications_sent,
                fires_per_day: series(&s.rule),
            }
        })
        .collect();
    // Rules whose episodes started before the range but fired in it.
    for rule in by_rule.keys() {
        if !seen.contains(rule) {
            rules.push(RuleStatsJson {
                rule: (*rule).to_string(),
                episodes: 0,
                fires: 0,
                mtta_seconds: None,
                mttr_seconds: None,
                notifications_sent: 0,
                fires_per_day: series(rule),
            });
        }
    }
    Ok(success(rules))
}

/// `GET /api/vigil/v1/openapi.yaml`.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/yaml; charset=utf-8")],
        OPENAPI,
    )
        .into_response()
}
