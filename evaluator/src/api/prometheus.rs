//! Prometheus' query API (`/api/v1/query`, `query_range`, `series`,
//! `labels`, `label/<name>/values`, `status/buildinfo`) over the shared
//! store, so Grafana and `promtool query` work against the evaluator as
//! they do against Prometheus: same parameters, same JSON envelope, same
//! error types and texts.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::error::ApiError;
use super::AppState;
use crate::labels::Labels;
use crate::promql::parse_error::prometheus_parse_error;
use crate::promql::{parse_series_selector, Annotations, PromqlError, SeriesSource, Value};
use crate::server::query_adapter::read_store;
use vigil_common::duration::parse_duration;

/// Prometheus' cap on the points of one series of a range query.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Prometheus' default `-query.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The request's parameters: the URL query string, plus the form body of a
/// POST (Prometheus reads both, so long queries can be POSTed).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated parameter such as `match[]`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Params, ApiError> {
        let bad = |e: &dyn std::fmt::Display| {
            ApiError::BadData(format!("cannot read the parameters: {e}"))
        };
        let Query(mut pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(req.uri()).map_err(|e| bad(&e))?;
        if req.method() == Method::POST {
            let Form(body) = Form::<Vec<(String, String)>>::from_request(req, state)
                .await
                .map_err(|e| bad(&e))?;
            pairs.extend(body);
        }
        Ok(Params(pairs))
    }
}

/// Milliseconds since the epoch from Prometheus' time parameter forms:
/// Unix seconds (fractions allowed) or RFC 3339.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {s:?} to a valid timestamp");
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            return Err(cannot());
        }
        let whole = secs.trunc();
        let frac_ms = ((secs - whole) * 1000.0).round();
        let ms = whole * 1000.0 + frac_ms;
        if ms.abs() > i64::MAX as f64 / 2.0 {
            return Err(cannot());
        }
        return Ok(ms as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| cannot())
}

/// A duration from Prometheus' forms: float seconds or `1m30s`.
pub fn parse_duration_param(s: &str) -> Result<i64, String> {
    let cannot = || format!("cannot parse {s:?} to a valid duration");
    if let Ok(secs) = s.parse::<f64>() {
        let ms = (secs * 1000.0).round();
        if !ms.is_finite() || ms.abs() > i64::MAX as f64 / 2.0 {
            return Err(cannot());
        }
        return Ok(ms as i64);
    }
    parse_duration(s)
        .map_err(|_| cannot())
        .and_then(|d| i64::try_from(d.as_millis()).map_err(|_| cannot()))
}

fn time_param(params: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(default),
        Some(s) => parse_time_param(name, s),
    }
}

/// Prometheus' wording for an unparsable time parameter.
fn parse_time_param(name: &str, s: &str) -> Result<i64, ApiError> {
    parse_time(s)
        .map_err(|e| ApiError::invalid_param(name, format!("Invalid time value for '{name}': {e}")))
}

fn timeout_param(params: &Params) -> Result<Duration, ApiError> {
    match params.get("timeout") {
        None | Some("") => Ok(DEFAULT_TIMEOUT),
        Some(s) => {
            let ms = parse_duration_param(s).map_err(|e| ApiError::invalid_param("timeout", e))?;
            Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
        }
    }
}

/// A sample value as Prometheus writes it: Go's `strconv.FormatFloat(v,
/// 'f', -1, 64)` (shortest round-trip digits, never an exponent), with
/// `+Inf`, `-Inf` and `NaN` spelled out.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's Display is the shortest round-trip decimal without exponent.
        format!("{v}")
    }
}

/// A timestamp as Prometheus writes it: Unix seconds, a JSON number with at
/// most three decimals and none for whole seconds.
struct Ts(i64);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

struct Point(i64, f64);

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&Ts(self.0))?;
        seq.serialize_element(&format_value(self.1))?;
        seq.end()
    }
}

/// A label set as a JSON object, in label order.
pub struct LabelsJson<'a>(pub &'a Labels);

impl Serialize for LabelsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for l in self.0.iter() {
            map.serialize_entry(&l.name, &l.value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct VectorSample<'a> {
    metric: LabelsJson<'a>,
    value: Point,
}

#[derive(Serialize)]
struct MatrixSeries<'a> {
    metric: LabelsJson<'a>,
    values: Vec<Point>,
}

/// A query result as Prometheus' `data` object; `at` is the evaluation
/// time, which a string result is stamped with.
struct QueryData<'a> {
    value: &'a Value,
    at: i64,
}

impl Serialize for QueryData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        match self.value {
            Value::Scalar(t, v) => {
                map.serialize_entry("resultType", "scalar")?;
                map.serialize_entry("result", &Point(*t, *v))?;
            }
            Value::String(text) => {
                map.serialize_entry("resultType", "string")?;
                map.serialize_entry("result", &(Ts(self.at), text))?;
            }
            Value::Vector(samples) => {
                map.serialize_entry("resultType", "vector")?;
                let result: Vec<VectorSample<'_>> = samples
                    .iter()
                    .map(|sm| VectorSample {
                        metric: LabelsJson(&sm.labels),
                        value: Point(sm.t_ms, sm.value),
                    })
                    .collect();
                map.serialize_entry("result", &result)?;
            }
            Value::Matrix(series) => {
                map.serialize_entry("resultType", "matrix")?;
                let result: Vec<MatrixSeries<'_>> = series
                    .iter()
                    .map(|se| MatrixSeries {
                        metric: LabelsJson(&se.labels),
                        values: se.points.iter().map(|&(t, v)| Point(t, v)).collect(),
                    })
                    .collect();
                map.serialize_entry("result", &result)?;
            }
        }
        map.end()
    }
}

/// Prometheus' success envelope.
#[derive(Serialize)]
pub struct Success<T: Serialize> {
    status: &'static str,
    data: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    infos: Vec<String>,
}

/// `{"status":"success","data":...}`.
pub fn success<T: Serialize>(data: T) -> Response {
    Json(Success {
        status: "success",
        data,
        warnings: Vec::new(),
        infos: Vec::new(),
    })
    .into_response()
}

fn query_response(value: &Value, at_ms: i64, notes: Annotations) -> Response {
    Json(Success {
        status: "success",
        data: QueryData { value, at: at_ms },
        warnings: notes.warnings,
        infos: notes.infos,
    })
    .into_response()
}

fn promql_error(e: PromqlError) -> ApiError {
    match e {
        PromqlError::Parse { query, message } => {
            ApiError::invalid_param("query", prometheus_parse_error(&query, &message))
        }
        // Prometheus rejects a wrongly typed range query before running it.
        PromqlError::Eval(m) if m.starts_with("invalid expression type") => ApiError::BadData(m),
        PromqlError::Experimental(_) => ApiError::BadData(e.to_string()),
        PromqlError::Eval(_) | PromqlError::Unsupported(_) => ApiError::Execution(e.to_string()),
    }
}

/// Runs `eval` off the async workers (evaluation holds the store's read
/// lock and may be long), answering `timeout` when it runs past `limit`.
async fn evaluate<T: Send + 'static>(
    limit: Duration,
    eval: impl FnOnce() -> Result<T, PromqlError> + Send + 'static,
) -> Result<T, ApiError> {
    let task = tokio::task::spawn_blocking(eval);
    match tokio::time::timeout(limit, task).await {
        Err(_) => Err(ApiError::Timeout(
            "query timed out in query execution".to_string(),
        )),
        Ok(Err(join)) => Err(ApiError::Internal(format!(
            "the query evaluation failed unexpectedly: {join}"
        ))),
        Ok(Ok(result)) => result.map_err(promql_error),
    }
}

fn query_param(params: &Params) -> String {
    params.get("query").unwrap_or_default().to_string()
}

/// The request sent on to the top-level datasource, when there is one:
/// its answer as it came.
async fn on_datasource(state: &AppState, api_path: &str, params: &Params) -> Option<Response> {
    let datasource = state
        .datasource
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()?;
    Some(match datasource.forward(api_path, &params.0).await {
        Ok((status, body)) => (
            axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(reason) => ApiError::Unavailable(reason).into_response(),
    })
}

/// `GET|POST /api/v1/query`.
pub async fn query(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    if let Some(answer) = on_datasource(&state, "/api/v1/query", &params).await {
        return Ok(answer);
    }
    let at = time_param(&params, "time", state.clock.now_ms())?;
    let limit = timeout_param(&params)?;
    let src = query_param(&params);
    let st = Arc::clone(&state);
    let (value, notes) = evaluate(limit, move || {
        let store = read_store(&st.store);
        st.engine.instant_query_annotated(&*store, &src, at)
    })
    .await?;
    Ok(query_response(&value, at, notes))
}

/// `GET|POST /api/v1/query_range`.
pub async fn query_range(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    if let Some(answer) = on_datasource(&state, "/api/v1/query_range", &params).await {
        return Ok(answer);
    }
    // A missing parameter is an empty one: the parsers say it cannot be read.
    let required = |name: &str| params.get(name).unwrap_or_default();
    let start = parse_time_param("start", required("start"))?;
    let end = parse_time_param("end", required("end"))?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    let step =
        parse_duration_param(required("step")).map_err(|e| ApiError::invalid_param("step", e))?;
    if step <= 0 {
        return Err(ApiError::invalid_param(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::BadData(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".to_string(),
        ));
    }
    let limit = timeout_param(&params)?;
    let src = query_param(&params);
    let st = Arc::clone(&state);
    let (value, notes) = evaluate(limit, move || {
        let store = read_store(&st.store);
        st.engine
            .range_query_annotated(&*store, &src, start, end, step)
    })
    .await?;
    Ok(query_response(&value, start, notes))
}

/// The label sets of the stored series matching any `match[]` selector with
/// samples in `[start, end]`.
fn matching_series(
    state: &AppState,
    selectors: &[&str],
    start: i64,
    end: i64,
) -> Result<BTreeSet<Labels>, ApiError> {
    let mut alternatives = Vec::new();
    for sel in selectors {
        let parsed = parse_series_selector(sel).map_err(|e| match e {
            PromqlError::Parse { message, .. }
                if message.starts_with("expected a series selector") =>
            {
                ApiError::invalid_param("match[]", format!("1:1: parse error: {message}"))
            }
            PromqlError::Parse { query, message } => {
                ApiError::invalid_param("match[]", prometheus_parse_error(&query, &message))
            }
            other => ApiError::invalid_param("match[]", other),
        })?;
        alternatives.extend(parsed);
    }
    let store = read_store(&state.store);
    let mut found = BTreeSet::new();
    for matchers in &alternatives {
        for view in store.select(matchers, start, end) {
            found.insert(view.labels.clone());
        }
    }
    Ok(found)
}

fn range_params(params: &Params) -> Result<(i64, i64), ApiError> {
    let start = time_param(params, "start", i64::MIN / 2)?;
    let end = time_param(params, "end", i64::MAX / 2)?;
    if end < start {
        return Err(ApiError::invalid_param(
            "end",
            "end timestamp must not be before start time",
        ));
    }
    Ok((start, end))
}

/// `GET|POST /api/v1/series`.
pub async fn series(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let selectors: Vec<&str> = params.all("match[]").collect();
    if selectors.is_empty() {
        return Err(ApiError::BadData(
            "no match[] parameter provided".to_string(),
        ));
    }
    let (start, end) = range_params(&params)?;
    let found = matching_series(&state, &selectors, start, end)?;
    let result: Vec<LabelsJson<'_>> = found.iter().map(LabelsJson).collect();
    Ok(success(result))
}

/// `GET|POST /api/v1/labels`.
pub async fn labels(
    State(state): State<Arc<AppState>>,
    params: Params,
) -> Result<Response, ApiError> {
    let selectors: Vec<&str> = params.all("match[]").collect();
    if selectors.is_empty() {
        return Ok(success(read_store(&state.store).label_names()));
    }
    let (start, end) = range_params(&params)?;
    let names: BTreeSet<String> = matching_series(&state, &selectors, start, end)?
        .iter()
        .flat_map(|ls| ls.iter().map(|l| l.name.to_string()).collect::<Vec<_>>())
        .collect();
    Ok(success(names))
}

/// Prometheus' label name syntax (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `GET /api/v1/label/<name>/values`.
pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, ApiError> {
    if !valid_label_name(&name) {
        return Err(ApiError::BadData(format!("invalid label name: {name:?}")));
    }
    let selectors: Vec<&str> = params.all("match[]").collect();
    if selectors.is_empty() {
        return Ok(success(read_store(&state.store).label_values(&name)));
    }
    let (start, end) = range_params(&params)?;
    let values: BTreeSet<String> = matching_series(&state, &selectors, start, end)?
        .iter()
        .filter_map(|ls| ls.get(&name).map(str::to_string))
        .collect();
    Ok(success(values))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: &'static str,
}

/// `GET /api/v1/status/buildinfo`: Prometheus' fields, filled with ours
/// (`goVersion` names the Rust toolchain floor, there is no Go).
pub async fn buildinfo() -> Response {
    success(BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        revision: vigil_common::build_info::GIT_COMMIT,
        branch: option_env!("VIGIL_GIT_BRANCH").unwrap_or("unknown"),
        build_user: "unknown",
        build_date: "unknown",
        go_version: concat!("rust", env!("CARGO_PKG_RUST_VERSION")),
    })
}
