//! Alertmanager's v2 API on the evaluator's port, so that a real Prometheus
//! (`alerting.alertmanagers`), `amtool` and Alertmanager dashboards talk to
//! Vigil as if it were an Alertmanager:
//!
//! - `POST /api/v2/alerts` puts alerts into the same [`Notifier`] as the
//!   rule alerts (routing, grouping, inhibition, silences, receivers) and
//!   records their episodes and transitions in the history;
//! - `GET /api/v2/alerts` lists what the notifier holds, rule alerts and
//!   posted ones alike, with Alertmanager's filters and status;
//! - `GET/POST /api/v2/silences`, `GET/DELETE /api/v2/silence/{id}` manage
//!   the notifier's silences with Alertmanager's update rules (a change that
//!   would rewrite history expires the old silence and creates a new one);
//! - `GET /api/v2/status`: not clustered, version, the notification config
//!   (secrets masked), uptime.
//!
//! Errors use Alertmanager's two shapes: request binding and schema
//! failures answer `{"code": N, "message": "..."}` (400 for unreadable
//! JSON, 422 for a missing required field), handler failures answer the
//! message as a JSON string (400, or 404 for an unknown silence; a silence
//! id that is not a UUID is 422 like any badly typed parameter).
//!
//! # Admission of posted alerts (backpressure)
//!
//! A posted batch is either taken whole (200: every valid alert is in the
//! notifier and will be notified) or refused whole with 429 and a
//! `Retry-After` header, never accepted and then lost. It is refused when
//! the pipeline is behind:
//!
//! - the history writer's backlog is at its capacity (database slow or
//!   down; see [`crate::history::writer`]), so the batch's episodes would
//!   only grow the spill;
//! - the notifier's lock is not free within [`ADMIT_WAIT`];
//! - an aggregation group has been due for more than [`MAX_LAG`] without
//!   being flushed (an alert taken now could time out, `resolve_timeout`,
//!   before its first notification and never be sent as firing: this is
//!   how half of 100,000 posted alerts were lost while readers held the
//!   notifier's lock for minutes);
//! - the notifier would hold more than [`MAX_ALERTS`] alerts (alerts it
//!   already holds are always taken again, so senders can refresh and
//!   resolve them).
//!
//! Prometheus counts a refused batch as a failed send and posts its firing
//! alerts again at its next resend; other clients should wait `Retry-After`
//! seconds and post the batch again.
//!
//! [`run_sync`] is the background half: it merges silences other replicas
//! wrote to the shared database, and records posted alerts that resolved by
//! timing out (no `endsAt` refresh) in the history.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::prometheus::LabelsJson;
use super::{authorized, AppState};
use crate::clock::{add, Clock};
use crate::history::store::{
    episode_id, EpisodeRecord, HistoryQuery, HistoryState, HistoryWrite, Transition,
};
use crate::history::writer::HistoryWriter;
use crate::history::HistoryStore;
use crate::labels::Labels;
use crate::notify::alert::{Alert, Fingerprint};
use crate::notify::matcher::{
    anchored_regex, is_valid_label_name, parse_matcher, MatchOp, Matcher,
};
use crate::notify::notifier::{off_worker, AlertsSnapshot, Notifier};
use crate::notify::silence::{Silence, SilenceStore, DEFAULT_RETENTION};

/// What the Alertmanager API works on: the running notifier, a clock, the
/// history writer for posted alerts, and what `/status` reports.
pub struct AlertmanagerApi {
    notifier: Arc<tokio::sync::Mutex<Notifier>>,
    clock: Arc<dyn Clock>,
    history: Option<HistoryWriter>,
    posted: Mutex<PostedAlerts>,
    config_text: RwLock<String>,
    started: DateTime<Utc>,
    /// Posts are being refused (logged when this changes, not per post).
    refusing: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for AlertmanagerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerApi")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl AlertmanagerApi {
    /// The API over `notifier`; posted alerts are recorded into `history`
    /// when given. `notify_text` is the notification config as written.
    pub fn new(
        notifier: Arc<tokio::sync::Mutex<Notifier>>,
        clock: Arc<dyn Clock>,
        history: Option<HistoryWriter>,
        notify_text: &str,
    ) -> AlertmanagerApi {
        let started = clock.now();
        AlertmanagerApi {
            notifier,
            clock,
            history,
            posted: Mutex::new(PostedAlerts::default()),
            config_text: RwLock::new(mask_secrets(notify_text)),
            started,
            refusing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The notifier the API reads and feeds.
    pub fn notifier(&self) -> &Arc<tokio::sync::Mutex<Notifier>> {
        &self.notifier
    }

    /// Shows a reloaded notification config in `/status`.
    pub fn set_config_text(&self, notify_text: &str) {
        *self.config_text.write().unwrap_or_else(|e| e.into_inner()) = mask_secrets(notify_text);
    }

    /// Remembers the posted alerts whose episodes are still open in the
    /// history (after a restart), so a sender re-posting them continues
    /// those episodes instead of recording a second start.
    pub fn restore_open_episodes(&self, episodes: impl IntoIterator<Item = OpenEpisode>) {
        let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        for episode in episodes {
            posted.open.insert(episode.fingerprint, episode);
        }
    }

    fn record(&self, writes: Vec<HistoryWrite>) {
        let Some(writer) = &self.history else { return };
        for write in writes {
            // Never refused for room (the writer spills); a stopped writer
            // (shutdown) is logged and counted by the writer.
            let _ = writer.record(write);
        }
    }

    /// A refusal of a posted batch, logged when posts start being refused.
    fn refuse(&self, reason: String) -> AmError {
        if !self
            .refusing
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(%reason, "posted alerts refused with 429 until the pipeline catches up");
        }
        AmError::Busy {
            retry_after: RETRY_AFTER.as_secs(),
            message: format!(
                "{reason}; nothing in this batch was taken, post it again in {} s",
                RETRY_AFTER.as_secs()
            ),
        }
    }

    fn admitted(&self) {
        if self
            .refusing
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("posted alerts admitted again");
        }
    }
}

/// Longest a posted batch waits for the notifier before it is refused.
pub const ADMIT_WAIT: Duration = Duration::from_secs(2);
/// Longest an aggregation group may be overdue before posts are refused.
pub const MAX_LAG: Duration = Duration::from_secs(10);
/// Most alerts the notifier holds before new posted alerts are refused.
pub const MAX_ALERTS: usize = 200_000;
/// The `Retry-After` of a refused batch.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How often [`run_sync`] runs by default.
pub const SYNC_EVERY: Duration = Duration::from_secs(10);

/// Every `every` until `stop`: merges the silences in `store` (written by
/// other replicas) into the notifier's silence store, and records posted
/// alerts that timed out as resolved. A database that does not answer is
/// logged and tried again at the next round.
pub async fn run_sync(
    api: Arc<AlertmanagerApi>,
    store: HistoryStore,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = api.clock.sleep(every) => {}
        }
        // A database that hangs must not hold up a shutdown.
        tokio::select! {
            () = stop.cancelled() => return,
            () = sync_once(&api, &store) => {}
        }
    }
}

/// One round of [`run_sync`].
pub async fn sync_once(api: &AlertmanagerApi, store: &HistoryStore) {
    let now = api.clock.now();
    let writes = api
        .posted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .sweep(now);
    api.record(writes);
    match tokio::time::timeout(Duration::from_secs(10), store.load_silences()).await {
        Ok(Ok(rows)) => {
            // Silences the cache already forgot stay forgotten.
            let rows: Vec<_> = rows
                .into_iter()
                .filter(|(s, _)| add(s.ends_at, DEFAULT_RETENTION) > now)
                .collect();
            let changed = api.notifier.lock().await.silences_mut().merge_stored(rows);
            if changed > 0 {
                tracing::info!(silences = changed, "silences merged from the database");
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot read silences from the database"),
        Err(_) => tracing::warn!("the database did not answer the silence merge in time"),
    }
}

/// The still-firing episodes of alerts posted before a restart (history
/// groups `api` and `api/...`), for
/// [`AlertmanagerApi::restore_open_episodes`]. Each resolves five minutes
/// after `now` unless its sender posts it again (Prometheus re-sends every
/// minute). A database that does not answer gives none.
pub async fn load_open_episodes(store: &HistoryStore, now: DateTime<Utc>) -> Vec<OpenEpisode> {
    let query = HistoryQuery {
        state: Some(HistoryState::Firing),
        limit: 10_000,
        ..HistoryQuery::default()
    };
    match tokio::time::timeout(Duration::from_secs(10), store.query(&query)).await {
        Ok(Ok(page)) => page
            .items
            .into_iter()
            .filter(|e| e.group_name == "api" || e.group_name.starts_with("api/"))
            .map(|e| OpenEpisode {
                fingerprint: Fingerprint::of(&e.labels),
                rule: e.rule,
                group_name: e.group_name,
                labels: e.labels,
                annotations: e.annotations,
                starts_at: e.starts_at,
                ends_at: now + chrono::Duration::minutes(5),
            })
            .collect(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot load the open episodes of posted alerts");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

// ------------------------------------------------------------------ errors

/// An error in one of Alertmanager's two response shapes.
#[derive(Debug)]
pub enum AmError {
    /// Request binding or schema validation failed:
    /// `{"code": N, "message": "..."}`.
    Binding {
        status: StatusCode,
        code: u16,
        message: String,
    },
    /// The handler refused the request: the message as a JSON string.
    Payload { status: StatusCode, message: String },
    /// An unknown silence: 404 without a body.
    NotFound,
    /// The pipeline is behind: 429 with `Retry-After`, the message as a
    /// JSON string.
    Busy { retry_after: u64, message: String },
}

impl AmError {
    fn bad_request(message: impl Into<String>) -> AmError {
        AmError::Payload {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn parse(what: &str, why: impl std::fmt::Display) -> AmError {
        AmError::Binding {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message: format!("parsing {what} body from \"\" failed, because {why}"),
        }
    }

    /// go-openapi's "required" failures (code 602, status 422).
    fn required(fields: &[String]) -> AmError {
        let lines: Vec<String> = fields
            .iter()
            .map(|f| format!("{f} in body is required"))
            .collect();
        let message = if lines.len() == 1 {
            lines.concat()
        } else {
            format!("validation failure list:\n{}", lines.join("\n"))
        };
        AmError::Binding {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 602,
            message,
        }
    }

    fn unauthorized() -> AmError {
        AmError::Payload {
            status: StatusCode::UNAUTHORIZED,
            message:
                "missing or wrong bearer token: send Authorization: Bearer <web.token_file content>"
                    .into(),
        }
    }

    fn body(rejection: &BytesRejection) -> AmError {
        let status = rejection.status();
        AmError::Binding {
            status,
            code: status.as_u16(),
            message: format!(
                "cannot read the request body: {}; the limit is 2 MiB",
                rejection.body_text()
            ),
        }
    }
}

#[derive(Serialize)]
struct BindingBody<'a> {
    code: u16,
    message: &'a str,
}

impl IntoResponse for AmError {
    fn into_response(self) -> Response {
        match self {
            AmError::Binding {
                status,
                code,
                message,
            } => (
                status,
                Json(BindingBody {
                    code,
                    message: &message,
                }),
            )
                .into_response(),
            AmError::Payload { status, message } => (status, Json(message)).into_response(),
            AmError::NotFound => StatusCode::NOT_FOUND.into_response(),
            AmError::Busy {
                retry_after,
                message,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after.to_string())],
                Json(message),
            )
                .into_response(),
        }
    }
}

// ------------------------------------------------------------------ times

/// Alertmanager's time format: RFC 3339 with milliseconds, UTC.
fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 time; Go's zero time (`0001-01-01T00:00:00Z`) and the empty
/// string mean "not set", as Alertmanager reads them.
fn parse_time(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|e| {
            format!("{field} {text:?} is not an RFC 3339 time such as 2026-01-02T15:04:05Z ({e})")
        })?
        .with_timezone(&Utc);
    let go_zero = DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
        .map(|z| z.with_timezone(&Utc))
        .ok();
    Ok(if Some(t) == go_zero { None } else { Some(t) })
}

fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, AmError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| AmError::Binding {
            status: StatusCode::BAD_REQUEST,
            code: 400,
            message: format!("cannot read the query string: {e}"),
        })
}

/// go-openapi's boolean spellings; `None` for anything else.
fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "ok" | "y" | "on" | "selected" | "checked" | "t" | "enabled" => {
            Some(true)
        }
        "false" | "0" | "no" | "n" | "off" | "f" | "disabled" | "" => Some(false),
        _ => None,
    }
}

fn bool_param(pairs: &[(String, String)], name: &str) -> Result<bool, AmError> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(true),
        Some((_, v)) => parse_bool(v).ok_or_else(|| AmError::Binding {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 601,
            message: format!("{name} in query must be of type bool: {v:?}"),
        }),
    }
}

/// The `filter` parameters as matchers (Alertmanager answers 400 with the
/// parser's message).
fn filter_param(pairs: &[(String, String)]) -> Result<Vec<Matcher>, AmError> {
    pairs
        .iter()
        .filter(|(k, _)| k == "filter")
        .map(|(_, v)| parse_matcher(v).map_err(|e| AmError::bad_request(e.to_string())))
        .collect()
}

// ------------------------------------------------------------------ alerts

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// One posted alert after Alertmanager's defaults and checks.
fn to_alert(posted: PostableAlert, now: DateTime<Utc>) -> Result<Alert, String> {
    let labels = posted.labels.unwrap_or_default();
    let starts_at = parse_time("startsAt", posted.starts_at.as_deref().unwrap_or(""))?;
    let ends_at = parse_time("endsAt", posted.ends_at.as_deref().unwrap_or(""))?;
    let starts_at = starts_at.or(ends_at).unwrap_or(now);
    if let Some(end) = ends_at {
        if end < starts_at {
            return Err("start time must be before end time".into());
        }
    }
    // As Alertmanager: empty label values mean "no such label".
    let labels: BTreeMap<String, String> =
        labels.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    if let Some(bad) = labels.keys().find(|n| !is_valid_label_name(n)) {
        return Err(format!("invalid label set: invalid name {bad:?}"));
    }
    if labels.is_empty() {
        return Err("at least one label pair required".into());
    }
    let annotations = posted.annotations.unwrap_or_default();
    if let Some(bad) = annotations.keys().find(|n| !is_valid_label_name(n)) {
        return Err(format!("invalid annotations: invalid name {bad:?}"));
    }
    Ok(Alert {
        labels: Labels::from_pairs(labels),
        annotations,
        starts_at,
        ends_at,
        generator_url: posted.generator_url.unwrap_or_default(),
        cooldown: None,
    })
}

/// A `POST /api/v2/alerts` body decoded and checked as the handler does
/// before admission: each alert, or why it is refused; the whole body
/// refused (with why) when it is not a JSON list of alerts with labels and
/// readable times. For the fuzzer and tests of untrusted input.
pub fn decode_posted_alerts(
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Vec<Result<Alert, String>>, String> {
    let posted: Vec<PostableAlert> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if let Some(i) = posted.iter().position(|a| a.labels.is_none()) {
        return Err(format!("{i}.labels in body is required"));
    }
    Ok(posted.into_iter().map(|a| to_alert(a, now)).collect())
}

/// A `POST /api/v2/silences` body decoded and checked as the handler does
/// before it looks at the stored silences; for the fuzzer and tests.
pub fn decode_posted_silence(body: &[u8]) -> Result<Silence, String> {
    let posted: PostableSilence = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    to_silence(posted)
        .map(|(_, silence)| silence)
        .map_err(|e| format!("{e:?}"))
}

/// The history group of posted alerts: `api/` and the sender's product
/// name from its User-Agent (`api/Prometheus`), or `api`.
fn sender_group(headers: &HeaderMap) -> String {
    let product = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split_whitespace().next())
        .and_then(|token| token.split('/').next())
        .filter(|p| !p.is_empty());
    match product {
        Some(p) => format!("api/{p}"),
        None => "api".to_string(),
    }
}

/// `POST /api/v2/alerts`.
pub async fn post_alerts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, AmError> {
    if !authorized(&state, &headers) {
        return Err(AmError::unauthorized());
    }
    let body = body.map_err(|e| AmError::body(&e))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AmError::required(&["alerts".to_string()]));
    }
    // Up to 2 MiB of JSON: parsed with the worker marked busy.
    let posted: Vec<PostableAlert> =
        off_worker(|| serde_json::from_slice(&body)).map_err(|e| AmError::parse("alerts", e))?;
    let missing: Vec<String> = posted
        .iter()
        .enumerate()
        .filter(|(_, a)| a.labels.is_none())
        .map(|(i, _)| format!("{i}.labels"))
        .collect();
    if !missing.is_empty() {
        return Err(AmError::required(&missing));
    }
    // Unreadable times fail the whole request, as JSON decoding does in
    // Alertmanager.
    for a in &posted {
        parse_time("startsAt", a.starts_at.as_deref().unwrap_or(""))
            .and_then(|_| parse_time("endsAt", a.ends_at.as_deref().unwrap_or("")))
            .map_err(|e| AmError::parse("alerts", e))?;
    }
    let api = &state.alertmanager;
    let now = api.clock.now();
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for alert in posted {
        match to_alert(alert, now) {
            Ok(a) => valid.push(a),
            Err(e) => errors.push(e),
        }
    }
    let group = sender_group(&headers);
    if let Some(writer) = api.history.as_ref().filter(|w| w.congested()) {
        return Err(api.refuse(format!(
            "the history database is behind ({} writes waiting, capacity {})",
            writer.backlog(),
            writer.capacity()
        )));
    }
    {
        let Ok(mut notifier) = tokio::time::timeout(ADMIT_WAIT, api.notifier.lock()).await else {
            return Err(api.refuse(format!(
                "the notification pipeline is busy (not free within {} s)",
                ADMIT_WAIT.as_secs()
            )));
        };
        let lag = notifier.lag(now);
        if lag > MAX_LAG {
            return Err(api.refuse(format!(
                "the notification pipeline is {} s behind",
                lag.as_secs()
            )));
        }
        let new = valid
            .iter()
            .filter(|a| !notifier.holds(a.fingerprint()))
            .count();
        if new > 0 && notifier.alert_count() + new > MAX_ALERTS {
            return Err(api.refuse(format!(
                "the notifier holds {} alerts, at most {MAX_ALERTS}",
                notifier.alert_count()
            )));
        }
        api.admitted();
        let resolve_timeout = notifier.config().global.resolve_timeout;
        off_worker(|| {
            let writes = {
                let mut posted = api.posted.lock().unwrap_or_else(|e| e.into_inner());
                valid
                    .iter()
                    .flat_map(|a| {
                        let ends_at = a.ends_at.unwrap_or_else(|| add(now, resolve_timeout));
                        posted.observe(a, ends_at, &group, now)
                    })
                    .collect::<Vec<_>>()
            };
            api.record(writes);
            notifier.ingest(valid, now);
        });
    }
    if !errors.is_empty() {
        tracing::warn!(errors = %errors.join("; "), "posted alerts refused");
        return Err(AmError::bad_request(errors.join("; ")));
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Serialize)]
struct ReceiverName<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertStatusJson {
    inhibited_by: Vec<String>,
    silenced_by: Vec<String>,
    state: &'static str,
}

/// One entry of `GET /api/v2/alerts` (Alertmanager's `gettableAlert`),
/// borrowing the labels and annotations from the notifier's snapshot (a
/// listing of many alerts copies none of them).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableAlert<'a> {
    annotations: &'a BTreeMap<String, String>,
    ends_at: String,
    #[serde(serialize_with = "fingerprint_hex")]
    fingerprint: Fingerprint,
    receivers: Vec<ReceiverName<'a>>,
    starts_at: String,
    status: AlertStatusJson,
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
    labels: LabelsJson<'a>,
}

/// A fingerprint as Alertmanager writes it: 16 hex digits.
fn fingerprint_hex<S: serde::Serializer>(f: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(f)
}

/// `GET /api/v2/alerts`. Works on a snapshot of the notifier (taken in
/// pointer copies under its lock) on the blocking pool, so neither the
/// pipeline nor the async workers wait for a listing of many alerts.
pub async fn get_alerts(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Response, AmError> {
    let pairs = query_pairs(&uri)?;
    let matchers = filter_param(&pairs)?;
    let receiver =
        match pairs.iter().find(|(k, _)| k == "receiver") {
            Some((_, pattern)) => Some(Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                AmError::bad_request(format!("failed to parse receiver param: {e}"))
            })?),
            None => None,
        };
    let filter = AlertFilter {
        matchers,
        receiver,
        active: bool_param(&pairs, "active")?,
        silenced: bool_param(&pairs, "silenced")?,
        inhibited: bool_param(&pairs, "inhibited")?,
    };
    // Every alert is processed as soon as it is ingested.
    let _unprocessed = bool_param(&pairs, "unprocessed")?;

    let api = &state.alertmanager;
    let snapshot = {
        let mut notifier = api.notifier.lock().await;
        off_worker(|| notifier.snapshot())
    };
    let now = api.clock.now();
    let body = tokio::task::spawn_blocking(move || {
        serde_json::to_vec(&list_alerts(&snapshot, &filter, now))
    })
    .await
    .map_err(|e| AmError::Payload {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("listing the alerts failed: {e}"),
    })?
    .map_err(|e| AmError::Payload {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("cannot encode the alerts: {e}"),
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The query parameters of `GET /api/v2/alerts`.
struct AlertFilter {
    matchers: Vec<Matcher>,
    receiver: Option<Regex>,
    active: bool,
    silenced: bool,
    inhibited: bool,
}

/// The alerts of `snapshot` that pass `filter` at `now`, by fingerprint.
fn list_alerts<'a>(
    snapshot: &'a AlertsSnapshot,
    filter: &AlertFilter,
    now: DateTime<Utc>,
) -> Vec<GettableAlert<'a>> {
    let sources = snapshot.sources_at(now);
    let silences: Vec<&Silence> = snapshot
        .silences
        .iter()
        .filter(|s| s.is_active(now))
        .collect();
    let mut out = Vec::new();
    for entry in &snapshot.alerts {
        let alert = entry.alert.as_ref();
        if alert.ends_at.is_some_and(|end| end < now) {
            continue;
        }
        if !filter.matchers.iter().all(|m| m.matches(&alert.labels)) {
            continue;
        }
        let receivers = snapshot.routes.receivers(&alert.labels);
        if let Some(re) = &filter.receiver {
            if !receivers.iter().any(|r| re.is_match(r)) {
                continue;
            }
        }
        let silenced_by: Vec<String> = silences
            .iter()
            .filter(|s| s.mutes(&alert.labels, now))
            .map(|s| s.id.clone())
            .collect();
        let inhibited_by: Vec<String> = sources
            .inhibited_by(&snapshot.inhibitor, &alert.labels)
            .into_iter()
            .map(|f| f.to_string())
            .collect();
        let suppressed = !silenced_by.is_empty() || !inhibited_by.is_empty();
        if (!filter.active && !suppressed)
            || (!filter.silenced && !silenced_by.is_empty())
            || (!filter.inhibited && !inhibited_by.is_empty())
        {
            continue;
        }
        out.push(GettableAlert {
            annotations: &alert.annotations,
            ends_at: format_time(alert.ends_at.unwrap_or(now)),
            fingerprint: entry.fingerprint,
            receivers: receivers
                .into_iter()
                .map(|name| ReceiverName { name })
                .collect(),
            starts_at: format_time(alert.starts_at),
            status: AlertStatusJson {
                inhibited_by,
                silenced_by,
                state: if suppressed { "suppressed" } else { "active" },
            },
            updated_at: format_time(entry.updated_at),
            generator_url: &alert.generator_url,
            labels: LabelsJson(&alert.labels),
        });
    }
    // Fixed-width hex: the order of the numbers is the order of the text.
    out.sort_unstable_by_key(|a| a.fingerprint);
    out
}

/// An episode of a posted alert that is still open.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenEpisode {
    pub fingerprint: Fingerprint,
    pub rule: String,
    pub group_name: String,
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// When it resolves unless posted again.
    pub ends_at: DateTime<Utc>,
}

/// Turns posted alerts into history writes: an episode and a transition
/// when an alert starts firing, and again when it resolves (posted with a
/// past `endsAt`, or timed out, see [`PostedAlerts::sweep`]).
#[derive(Debug, Default)]
struct PostedAlerts {
    open: HashMap<Fingerprint, OpenEpisode>,
}

impl PostedAlerts {
    /// The writes for `alert` posted at `now`, resolving at `ends_at`.
    fn observe(
        &mut self,
        alert: &Alert,
        ends_at: DateTime<Utc>,
        group: &str,
        now: DateTime<Utc>,
    ) -> Vec<HistoryWrite> {
        let fingerprint = alert.fingerprint();
        let firing = ends_at > now;
        match (self.open.get_mut(&fingerprint), firing) {
            (Some(open), true) => {
                open.ends_at = ends_at;
                open.annotations = alert.annotations.clone();
                Vec::new()
            }
            (Some(_), false) => {
                let Some(mut open) = self.open.remove(&fingerprint) else {
                    return Vec::new();
                };
                open.annotations = alert.annotations.clone();
                resolved_writes(&open, ends_at, now)
            }
            (None, true) => {
                let open = OpenEpisode {
                    fingerprint,
                    rule: alert.labels.get("alertname").unwrap_or("").to_string(),
                    group_name: group.to_string(),
                    labels: alert.labels.clone(),
                    annotations: alert.annotations.clone(),
                    starts_at: alert.starts_at,
                    ends_at,
                };
                let writes = vec![
                    HistoryWrite::Episode(episode(&open, HistoryState::Firing, None, now)),
                    HistoryWrite::Transition(Transition {
                        alert_id: episode_id(fingerprint, open.starts_at),
                        from: HistoryState::Inactive,
                        to: HistoryState::Firing,
                        at: now,
                        value: None,
                    }),
                ];
                self.open.insert(fingerprint, open);
                writes
            }
            // Resolved without a known start (senders repeat resolutions
            // for a while): nothing new to record.
            (None, false) => Vec::new(),
        }
    }

    /// Resolves the open episodes whose alert was not posted again before
    /// its `ends_at`.
    fn sweep(&mut self, now: DateTime<Utc>) -> Vec<HistoryWrite> {
        let due: Vec<Fingerprint> = self
            .open
            .iter()
            .filter(|(_, o)| o.ends_at <= now)
            .map(|(f, _)| *f)
            .collect();
        let mut writes = Vec::new();
        for fingerprint in due {
            if let Some(open) = self.open.remove(&fingerprint) {
                writes.extend(resolved_writes(&open, open.ends_at, now));
            }
        }
        writes
    }
}

fn episode(
    open: &OpenEpisode,
    state: HistoryState,
    ends_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> EpisodeRecord {
    EpisodeRecord {
        fingerprint: open.fingerprint,
        rule: open.rule.clone(),
        group_name: open.group_name.clone(),
        labels: open.labels.clone(),
        annotations: open.annotations.clone(),
        state,
        starts_at: open.starts_at,
        fired_at: Some(open.starts_at),
        ends_at,
        value: None,
        updated_at: now,
        end_reason: None,
    }
}

fn resolved_writes(
    open: &OpenEpisode,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<HistoryWrite> {
    vec![
        HistoryWrite::Episode(episode(open, HistoryState::Resolved, Some(ends_at), now)),
        HistoryWrite::Transition(Transition {
            alert_id: episode_id(open.fingerprint, open.starts_at),
            from: HistoryState::Firing,
            to: HistoryState::Resolved,
            at: now,
            value: None,
        }),
    ]
}

// ---------------------------------------------------------------- silences

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MatcherJson {
    is_equal: bool,
    is_regex: bool,
    name: String,
    value: String,
}

impl From<&Matcher> for MatcherJson {
    fn from(m: &Matcher) -> MatcherJson {
        MatcherJson {
            is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
            is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            name: m.name.clone(),
            value: m.value.clone(),
        }
    }
}

#[derive(Serialize)]
struct SilenceStatusJson {
    state: &'static str,
}

/// One entry of `GET /api/v2/silences` (Alertmanager's `gettableSilence`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GettableSilence {
    id: String,
    status: SilenceStatusJson,
    updated_at: String,
    comment: String,
    created_by: String,
    ends_at: String,
    matchers: Vec<MatcherJson>,
    starts_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SilenceState {
    Active,
    Pending,
    Expired,
}

impl SilenceState {
    fn of(s: &Silence, now: DateTime<Utc>) -> SilenceState {
        if now < s.starts_at {
            SilenceState::Pending
        } else if now < s.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

fn gettable_silence(store: &dyn SilenceStore, s: &Silence, now: DateTime<Utc>) -> GettableSilence {
    GettableSilence {
        id: s.id.clone(),
        status: SilenceStatusJson {
            state: SilenceState::of(s, now).as_str(),
        },
        updated_at: format_time(store.updated_at(&s.id).unwrap_or(s.starts_at)),
        comment: s.comment.clone(),
        created_by: s.created_by.clone(),
        ends_at: format_time(s.ends_at),
        matchers: s.matchers.iter().map(MatcherJson::from).collect(),
        starts_at: format_time(s.starts_at),
    }
}

/// `GET /api/v2/silences`: every retained silence whose matchers include
/// each `filter` matcher exactly, active first (soonest to end), then
/// pending (soonest to start), then expired (latest ended first).
pub async fn get_silences(
    State(state): State<Arc<AppState>>,
    uri: Uri,
) -> Result<Json<Vec<GettableSilence>>, AmError> {
    let pairs = query_pairs(&uri)?;
    let filter = filter_param(&pairs)?;
    let api = &state.alertmanager;
    let notifier = api.notifier.lock().await;
    let now = api.clock.now();
    let store = notifier.silences();
    let mut silences: Vec<Silence> = store
        .list()
        .into_iter()
        .filter(|s| filter.iter().all(|f| s.matchers.contains(f)))
        .collect();
    silences.sort_by(|a, b| {
        let (sa, sb) = (SilenceState::of(a, now), SilenceState::of(b, now));
        sa.cmp(&sb).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    Ok(Json(
        silences
            .iter()
            .map(|s| gettable_silence(store, s, now))
            .collect(),
    ))
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GettableSilence>, AmError> {
    check_silence_id(&id)?;
    let api = &state.alertmanager;
    let notifier = api.notifier.lock().await;
    let now = api.clock.now();
    let store = notifier.silences();
    let silence = store.get(&id).ok_or(AmError::NotFound)?;
    Ok(Json(gettable_silence(store, &silence, now)))
}

/// `DELETE /api/v2/silence/{id}`: expires it now; an expired silence stays
/// expired (200), an unknown one is 404.
pub async fn delete_silence(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, AmError> {
    if !authorized(&state, &headers) {
        return Err(AmError::unauthorized());
    }
    check_silence_id(&id)?;
    let api = &state.alertmanager;
    let mut notifier = api.notifier.lock().await;
    let now = api.clock.now();
    let store = notifier.silences_mut();
    let silence = store.get(&id).ok_or(AmError::NotFound)?;
    if SilenceState::of(&silence, now) != SilenceState::Expired {
        store
            .expire(&id, now)
            .map_err(|e| AmError::bad_request(e.to_string()))?;
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableMatcher {
    name: Option<String>,
    value: Option<String>,
    is_regex: Option<bool>,
    is_equal: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Option<Vec<PostableMatcher>>,
    starts_at: Option<String>,
    ends_at: Option<String>,
    created_by: Option<String>,
    comment: Option<String>,
}

/// Alertmanager declares the `{silenceID}` path parameter a UUID, so a
/// malformed one is refused before any lookup: 422, go-openapi's
/// invalid-type code 601, its wording.
fn check_silence_id(id: &str) -> Result<(), AmError> {
    let hex = |part: &str| part.bytes().all(|b| b.is_ascii_hexdigit());
    let lengths: Vec<usize> = id.split('-').map(str::len).collect();
    let uuid = (lengths == [8, 4, 4, 4, 12] || lengths == [32]) && id.split('-').all(hex);
    if uuid {
        return Ok(());
    }
    Err(AmError::Binding {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: 601,
        message: format!("silenceID in path must be of type uuid: {id:?}"),
    })
}

/// A new, unique silence id in UUID form (as Alertmanager's), time-ordered.
fn new_silence_id(now: DateTime<Utc>) -> String {
    let hex = format!(
        "{}{:04x}",
        crate::history::new_id(now),
        rand::random::<u16>()
    );
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Alertmanager's rule for changing a silence in place: same matchers, and
/// an active silence keeps its start and does not end in the past, a
/// pending one does not start in the past; an expired one never changes.
fn can_update(old: &Silence, new: &Silence, now: DateTime<Utc>) -> bool {
    if old.matchers != new.matchers {
        return false;
    }
    match SilenceState::of(old, now) {
        SilenceState::Active => {
            old.starts_at.timestamp() == new.starts_at.timestamp() && new.ends_at >= now
        }
        SilenceState::Pending => new.starts_at >= now,
        SilenceState::Expired => false,
    }
}

fn to_silence(posted: PostableSilence) -> Result<(Option<String>, Silence), AmError> {
    let mut missing = Vec::new();
    if posted.comment.is_none() {
        missing.push("comment".to_string());
    }
    if posted.created_by.is_none() {
        missing.push("createdBy".to_string());
    }
    if posted.ends_at.is_none() {
        missing.push("endsAt".to_string());
    }
    match &posted.matchers {
        None => missing.push("matchers".to_string()),
        Some(list) => {
            for (i, m) in list.iter().enumerate() {
                if m.is_regex.is_none() {
                    missing.push(format!("matchers.{i}.isRegex"));
                }
                if m.name.is_none() {
                    missing.push(format!("matchers.{i}.name"));
                }
                if m.value.is_none() {
                    missing.push(format!("matchers.{i}.value"));
                }
            }
        }
    }
    if posted.starts_at.is_none() {
        missing.push("startsAt".to_string());
    }
    if !missing.is_empty() {
        return Err(AmError::required(&missing));
    }
    let list = posted.matchers.unwrap_or_default();
    if list.is_empty() {
        return Err(AmError::Binding {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: 612,
            message: "matchers in body should have at least 1 items".into(),
        });
    }
    let time = |field: &str, text: Option<String>| {
        parse_time(field, text.as_deref().unwrap_or(""))
            .map_err(|e| AmError::parse("silence", e))?
            .ok_or_else(|| AmError::parse("silence", format!("{field} is empty")))
    };
    let starts_at = time("startsAt", posted.starts_at)?;
    let ends_at = time("endsAt", posted.ends_at)?;
    let mut matchers = Vec::new();
    for (i, m) in list.into_iter().enumerate() {
        let name = m.name.unwrap_or_default();
        let value = m.value.unwrap_or_default();
        if !is_valid_label_name(&name) {
            return Err(AmError::bad_request(format!(
                "invalid silence: invalid label matcher {i}: invalid label name {name:?}"
            )));
        }
        let op = match (m.is_equal.unwrap_or(true), m.is_regex.unwrap_or(false)) {
            (true, false) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (false, true) => MatchOp::NotRegex,
        };
        if matches!(op, MatchOp::Regex | MatchOp::NotRegex) {
            anchored_regex(&value).map_err(|e| {
                AmError::bad_request(format!("invalid silence: invalid label matcher {i}: {e}"))
            })?;
        }
        let matcher = Matcher::new(name, op, value).map_err(|e| {
            AmError::bad_request(format!("invalid silence: invalid label matcher {i}: {e}"))
        })?;
        matchers.push(matcher);
    }
    let id = posted.id.filter(|id| !id.is_empty());
    Ok((
        id,
        Silence {
            id: String::new(),
            matchers,
            starts_at,
            ends_at,
            created_by: posted.created_by.unwrap_or_default(),
            comment: posted.comment.unwrap_or_default(),
        },
    ))
}

/// `POST /api/v2/silences`: creates a silence, or updates the one named by
/// `id` (in place when Alertmanager would, else the old one is expired and
/// a new one created); answers `{"silenceID": "..."}`.
pub async fn post_silences(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, AmError> {
    if !authorized(&state, &headers) {
        return Err(AmError::unauthorized());
    }
    let body = body.map_err(|e| AmError::body(&e))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AmError::required(&["silence".to_string()]));
    }
    let posted: PostableSilence =
        serde_json::from_slice(&body).map_err(|e| AmError::parse("silence", e))?;
    let (id, mut silence) = to_silence(posted)?;
    let api = &state.alertmanager;
    let mut notifier = api.notifier.lock().await;
    let now = api.clock.now();
    if silence.starts_at >= silence.ends_at {
        return Err(AmError::bad_request(
            "Failed to create silence: start time must be before end time",
        ));
    }
    if silence.ends_at < now {
        return Err(AmError::bad_request(
            "Failed to create silence: end time can't be in the past",
        ));
    }
    silence
        .validate()
        .map_err(|e| AmError::bad_request(format!("invalid silence: {e}")))?;
    let store = notifier.silences_mut();
    let refused = |e: crate::notify::silence::SilenceError| AmError::bad_request(e.to_string());
    if let Some(id) = &id {
        let old = store.get(id).ok_or_else(|| AmError::Payload {
            status: StatusCode::NOT_FOUND,
            message: "not found".into(),
        })?;
        if can_update(&old, &silence, now) {
            silence.id = id.clone();
            let id = store.upsert(silence, now).map_err(refused)?;
            return Ok(Json(serde_json::json!({"silenceID": id})));
        }
        if SilenceState::of(&old, now) != SilenceState::Expired {
            store.expire(id, now).map_err(refused)?;
        }
    }
    silence.id = new_silence_id(now);
    if silence.starts_at < now {
        silence.starts_at = now;
    }
    let id = store.upsert(silence, now).map_err(refused)?;
    Ok(Json(serde_json::json!({"silenceID": id})))
}

// ------------------------------------------------------------------ status

/// `GET /api/v2/status`.
pub async fn get_status(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let api = &state.alertmanager;
    let original = api
        .config_text
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    Json(serde_json::json!({
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": {
            "branch": "",
            "buildDate": "",
            "buildUser": "",
            "goVersion": "",
            "revision": "",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "config": {"original": original},
        "uptime": format_time(api.started),
    }))
}

/// Keys whose values Alertmanager never shows (its `Secret` and
/// `SecretURL` fields).
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "api_secret",
    "api_url",
    "auth_password",
    "auth_secret",
    "bearer_token",
    "bot_token",
    "client_secret",
    "credentials",
    "opsgenie_api_key",
    "password",
    "routing_key",
    "secret_key",
    "service_key",
    "slack_api_url",
    "smtp_auth_password",
    "smtp_auth_secret",
    "token",
    "user_key",
    "victorops_api_key",
    "webhook_url",
    "wechat_api_secret",
];

/// The notification config with every secret replaced by `<secret>`, as
/// Alertmanager prints its config (webhook URLs included: they often carry
/// tokens).
pub fn mask_secrets(text: &str) -> String {
    fn walk(value: &mut serde_yaml::Value, in_webhook: bool) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for (key, v) in map.iter_mut() {
                    let key = key.as_str().unwrap_or("");
                    let secret = SECRET_KEYS.contains(&key) || (in_webhook && key == "url");
                    if secret && !v.is_null() && !v.is_mapping() && !v.is_sequence() {
                        *v = serde_yaml::Value::String("<secret>".into());
                    } else {
                        walk(v, in_webhook || key == "webhook_configs");
                    }
                }
            }
            serde_yaml::Value::Sequence(list) => {
                for v in list {
                    walk(v, in_webhook);
                }
            }
            _ => {}
        }
    }
    let Ok(mut value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return String::new();
    };
    walk(&mut value, false);
    serde_yaml::to_string(&value).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_700_000_000 + secs)
    }

    fn alert(starts: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", "Down"), ("job", "db")]),
            annotations: BTreeMap::new(),
            starts_at: t(starts),
            ends_at: None,
            generator_url: String::new(),
            cooldown: None,
        }
    }

    /// The Alertmanager side-by-side bench at a tenth of its size: one
    /// inhibit rule per team, all muting the same warnings. Every listed
    /// alert carries its own labels and names exactly the critical alert
    /// of its instance as its inhibitor, in fingerprint order.
    #[test]
    fn a_listing_under_one_inhibit_rule_per_team_names_each_source() {
        let teams = 10;
        let mut text = String::from(
            "route: {receiver: hook, group_by: [team]}\nreceivers: [{name: hook}]\ninhibit_rules:\n",
        );
        for team in 0..teams {
            text.push_str(&format!(
                "  - source_matchers: ['severity=\"critical\"', 'team=\"t{team}\"']\n    \
                 target_matchers: ['severity=\"warning\"']\n    equal: [instance]\n"
            ));
        }
        let config =
            crate::notify::config::parse(&text, std::path::Path::new("notify.yaml")).unwrap();
        let mut notifier = Notifier::new(std::sync::Arc::new(config));
        let labels = |i: usize| {
            let critical = i % 2 == 0;
            let instance = if i % 4 < 2 {
                format!("shared{}", i / 2)
            } else {
                format!("own{i}")
            };
            Labels::from_pairs([
                (
                    "alertname",
                    if critical { "Critical" } else { "Warning" }.to_string(),
                ),
                (
                    "severity",
                    if critical { "critical" } else { "warning" }.to_string(),
                ),
                ("team", format!("t{}", (i / 2) % teams)),
                ("instance", instance),
                ("series", format!("s{i}")),
            ])
        };
        let n = 1_000;
        let alerts = (0..n)
            .map(|i| Alert {
                labels: labels(i),
                annotations: BTreeMap::from([("summary".to_string(), format!("alert {i}"))]),
                starts_at: t(0),
                ends_at: None,
                generator_url: String::new(),
                cooldown: None,
            })
            .collect();
        notifier.ingest(alerts, t(0));
        let snapshot = notifier.snapshot();
        let filter = AlertFilter {
            matchers: Vec::new(),
            receiver: None,
            active: true,
            silenced: true,
            inhibited: true,
        };
        let listed: serde_json::Value =
            serde_json::to_value(list_alerts(&snapshot, &filter, t(1))).unwrap();
        let listed = listed.as_array().unwrap();
        assert_eq!(listed.len(), n);
        let fingerprints: Vec<&str> = listed
            .iter()
            .map(|a| a["fingerprint"].as_str().unwrap())
            .collect();
        assert!(
            fingerprints.windows(2).all(|w| w[0] < w[1]),
            "sorted, each once"
        );
        let mut inhibited = 0;
        for i in 0..n {
            let fingerprint = Fingerprint::of(&labels(i)).to_string();
            let entry = listed
                .iter()
                .find(|a| a["fingerprint"] == fingerprint.as_str())
                .unwrap();
            let want_labels: serde_json::Map<String, serde_json::Value> = labels(i)
                .iter()
                .map(|l| (l.name.to_string(), l.value.into()))
                .collect();
            assert_eq!(entry["labels"], serde_json::Value::Object(want_labels));
            assert_eq!(entry["annotations"]["summary"], format!("alert {i}"));
            assert_eq!(entry["receivers"], serde_json::json!([{"name": "hook"}]));
            // Warning i (i % 4 == 1) shares its instance with critical i - 1.
            let want: Vec<String> = if i % 4 == 1 {
                vec![Fingerprint::of(&labels(i - 1)).to_string()]
            } else {
                Vec::new()
            };
            assert_eq!(
                entry["status"]["inhibitedBy"],
                serde_json::json!(want),
                "alert {i}"
            );
            let state = if want.is_empty() {
                "active"
            } else {
                "suppressed"
            };
            assert_eq!(entry["status"]["state"], state);
            inhibited += usize::from(!want.is_empty());
        }
        assert_eq!(inhibited, n / 4);
    }

    #[test]
    fn a_posted_alert_opens_one_episode_and_resolves_it_once() {
        let mut posted = PostedAlerts::default();
        let a = alert(0);
        let first = posted.observe(&a, t(60), "api/Prometheus", t(0));
        assert_eq!(first.len(), 2, "episode and transition");
        assert!(
            posted
                .observe(&a, t(120), "api/Prometheus", t(30))
                .is_empty(),
            "re-sent while firing: nothing new"
        );
        let resolved = posted.observe(&a, t(40), "api/Prometheus", t(45));
        let HistoryWrite::Transition(tr) = &resolved[1] else {
            panic!("{resolved:?}")
        };
        assert_eq!(
            (tr.from, tr.to),
            (HistoryState::Firing, HistoryState::Resolved)
        );
        assert_eq!(tr.alert_id, episode_id(a.fingerprint(), t(0)));
        assert!(posted
            .observe(&a, t(40), "api/Prometheus", t(50))
            .is_empty());
    }

    #[test]
    fn a_posted_alert_that_is_not_refreshed_resolves_at_its_end() {
        let mut posted = PostedAlerts::default();
        posted.observe(&alert(0), t(60), "api", t(0));
        assert!(posted.sweep(t(59)).is_empty());
        let writes = posted.sweep(t(60));
        let HistoryWrite::Episode(e) = &writes[0] else {
            panic!("{writes:?}")
        };
        assert_eq!(
            (e.state, e.ends_at, e.group_name.as_str(), e.rule.as_str()),
            (HistoryState::Resolved, Some(t(60)), "api", "Down")
        );
    }

    #[test]
    fn go_zero_time_means_unset() {
        assert_eq!(parse_time("endsAt", "0001-01-01T00:00:00Z"), Ok(None));
        assert_eq!(
            parse_time("endsAt", "2023-11-14T22:13:20.000Z"),
            Ok(Some(t(0)))
        );
        assert!(parse_time("endsAt", "yesterday").is_err());
    }

    #[test]
    fn silences_change_in_place_only_when_history_is_kept() {
        let m = |s: &str| vec![parse_matcher(s).unwrap()];
        let silence = |matchers, from, to| Silence {
            id: "x".into(),
            matchers,
            starts_at: t(from),
            ends_at: t(to),
            created_by: "ops".into(),
            comment: String::new(),
        };
        let active = silence(m("job=db"), 0, 100);
        assert!(can_update(&active, &silence(m("job=db"), 0, 200), t(50)));
        assert!(!can_update(&active, &silence(m("job=web"), 0, 200), t(50)));
        assert!(!can_update(&active, &silence(m("job=db"), 10, 200), t(50)));
        let pending = silence(m("job=db"), 100, 200);
        assert!(can_update(&pending, &silence(m("job=db"), 60, 200), t(50)));
        assert!(
            !can_update(&active, &silence(m("job=db"), 0, 200), t(100)),
            "expired"
        );
    }

    #[test]
    fn secrets_are_masked_in_the_shown_config() {
        let shown = mask_secrets(
            "global: {smtp_auth_password: hunter2}\nreceivers:\n- name: a\n  webhook_configs: [{url: 'http://x/?token=abc'}]\n  slack_configs: [{api_url: 'https://hooks/T0', channel: '#ops'}]\n",
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("abc") && !shown.contains("T0"),
            "{shown}"
        );
        assert!(
            shown.contains("'#ops'") && shown.contains("<secret>"),
            "{shown}"
        );
    }

    #[test]
    fn silence_ids_look_like_uuids() {
        let id = new_silence_id(t(0));
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert_ne!(id, new_silence_id(t(0)));
    }
}
