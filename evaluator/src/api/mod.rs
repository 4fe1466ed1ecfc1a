//! The evaluator's HTTP surface, all reading one [`AppState`]: the
//! operational endpoints (`/-/healthy`, `/-/ready` after the config loaded
//! and the first rule evaluation, `/metrics`, `POST /-/reload`) and the
//! Prometheus-compatible read API under `/api/v1`, so dashboards and tools
//! built for Prometheus query the evaluator unchanged.
//!
//! - [`prometheus`]: `query`, `query_range`, `series`, `labels`,
//!   `label/<name>/values`, `status/buildinfo`.
//! - [`targets`]: the scrape targets.
//! - [`rules`]: `rules` and `alerts`.
//! - [`error`]: the error envelope every `/api/v1` handler answers with.
//! - [`alertmanager`]: Alertmanager's `/api/v2` (alerts, silences, status).
//! - [`vigil`]: Vigil's own API under `/api/vigil/v1` (alert history,
//!   acknowledgements, per-rule stats, its OpenAPI document).
//! - [`access`]: the bearer-token check on reads (`web.read_requires_token`).
//! - [`dashboard`]: the web page at `/`, reading only the HTTP API.
//!
//! Handlers only: what they read and feed (the store, the notifier, the
//! history) is built and wired by [`crate::server`].

pub mod access;
pub mod alertmanager;
pub mod backtest;
pub mod dashboard;
pub mod error;
pub mod prometheus;
pub mod receivers;
pub mod rule_view;
pub mod rules;
pub mod targets;
pub mod vigil;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ::prometheus::{Encoder, Registry, TextEncoder};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, oneshot};

use crate::notify::receivers::Secret;
use crate::promql::Engine;
use crate::rules::group::RuleGroup;
use crate::scrape::TargetHandle;
use crate::server::metrics::ServerMetrics;
use crate::server::query_adapter::{read_store, SharedStore};

/// How long `/metrics` waits for the history database.
const METRICS_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A request to reload the configuration; the answer is the rendered
/// problems when the new config was rejected.
#[derive(Debug)]
pub struct ReloadRequest {
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// What the HTTP handlers read; shared with the running pipeline.
#[derive(Debug)]
pub struct AppState {
    pub ready: AtomicBool,
    pub registry: Registry,
    pub metrics: ServerMetrics,
    pub targets: RwLock<Vec<TargetHandle>>,
    pub store: SharedStore,
    /// Bearer token for mutating endpoints (`None`: open).
    pub token: RwLock<Option<Secret>>,
    pub reload: mpsc::Sender<ReloadRequest>,
    /// The engine the API's queries run on (same options as the rules').
    pub engine: Engine,
    /// The running rule groups, replaced on reload (`/api/v1/rules`,
    /// `/api/v1/alerts`).
    pub rule_groups: RwLock<Vec<Arc<Mutex<RuleGroup>>>>,
    /// The notifier as Alertmanager's `/api/v2` sees it.
    pub alertmanager: Arc<alertmanager::AlertmanagerApi>,
    /// The alert history (`/api/vigil/v1`).
    pub history: crate::history::HistoryStore,
    /// Whether reads under `/api/` need the bearer token too
    /// (`web.read_requires_token`; replaced on reload).
    pub read_requires_token: AtomicBool,
    /// "Now" for queries and acknowledgements without a time of their own.
    pub clock: Arc<dyn crate::clock::Clock>,
    /// The receivers' integrations as the delivery task sends with them
    /// (replaced on reload), for test notifications.
    pub receivers: tokio::sync::watch::Receiver<Arc<crate::notify::config::ReceiverIntegrations>>,
    /// The top-level `datasource`, which `/api/v1/query` and
    /// `/api/v1/query_range` go to (`None`: the local window; replaced on
    /// reload).
    pub datasource: RwLock<Option<Arc<crate::datasource::DatasourceClient>>>,
    /// Which replica owns which rule group (`fleet.sharding`; `None`:
    /// not sharded), for `/api/v1/rules`.
    pub fleet: Option<tokio::sync::watch::Receiver<Arc<crate::history::fleet::FleetView>>>,
    /// One permit: `POST /api/vigil/v1/backtest` runs one backtest at a time.
    pub backtest_permit: tokio::sync::Semaphore,
}

impl AppState {
    /// The scrape targets running now (a reload may replace them after).
    pub fn current_targets(&self) -> Vec<TargetHandle> {
        self.targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The rule groups running now (a reload may replace them after).
    pub fn current_rule_groups(&self) -> Vec<Arc<Mutex<RuleGroup>>> {
        self.rule_groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The HTTP app over `state`, with the dashboard at `/`
/// ([`dashboard`]).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .merge(dashboard::router())
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/-/reload", post(reload))
        .route(
            "/api/v1/query",
            get(prometheus::query).post(prometheus::query),
        )
        .route(
            "/api/v1/query_range",
            get(prometheus::query_range).post(prometheus::query_range),
        )
        .route(
            "/api/v1/series",
            get(prometheus::series).post(prometheus::series),
        )
        .route(
            "/api/v1/labels",
            get(prometheus::labels).post(prometheus::labels),
        )
        .route("/api/v1/label/{name}/values", get(prometheus::label_values))
        .route("/api/v1/status/buildinfo", get(prometheus::buildinfo))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route(
            "/api/v2/alerts",
            get(alertmanager::get_alerts).post(alertmanager::post_alerts),
        )
        .route(
            "/api/v2/silences",
            get(alertmanager::get_silences).post(alertmanager::post_silences),
        )
        .route(
            "/api/v2/silence/{id}",
            get(alertmanager::get_silence).delete(alertmanager::delete_silence),
        )
        .route("/api/v2/status", get(alertmanager::get_status))
        .route("/api/v2/receivers", get(receivers::list_receivers))
        .merge(vigil::routes())
        .route("/api/vigil/v1/backtest", post(backtest::backtest))
        .merge(rule_view::routes())
        .route(
            "/api/vigil/v1/receivers/{name}/test",
            post(receivers::test_receiver),
        )
        // Last, so it covers every route above.
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            access::require_token_for_reads,
        ))
        .with_state(state)
}

async fn healthy() -> &'static str {
    "Vigil evaluator is Healthy.\n"
}

/// The value of the `vigil_history_backlog` gauge (history writes waiting
/// for the database).
fn history_backlog(registry: &Registry) -> f64 {
    registry
        .gather()
        .iter()
        .find(|family| family.name() == "vigil_history_backlog")
        .and_then(|family| {
            family
                .get_metric()
                .first()
                .map(|m| m.get_gauge().get_value())
        })
        .unwrap_or(0.0)
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.history.restore_pending() {
        // Evaluating and notifying, but without the saved state: not ready.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Service Unavailable: history database unreachable; {} writes buffered; saved alert state and notification log not loaded yet (evaluating and notifying without them; merged in when the database answers).\n",
                history_backlog(&state.registry)
            ),
        )
            .into_response();
    }
    if state.ready.load(Ordering::Acquire) {
        // Ready stays 200 after a rejected reload (the previous config keeps
        // serving, as in Prometheus); the body says why it was rejected.
        match state.metrics.last_reload_error() {
            None => (StatusCode::OK, "Vigil evaluator is Ready.\n").into_response(),
            Some(problems) => (
                StatusCode::OK,
                format!("Vigil evaluator is Ready.\nThe last configuration reload failed; the previous configuration keeps running:\n{problems}\n"),
            )
                .into_response(),
        }
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable: the first rule evaluation has not run yet.\n",
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    {
        let targets = state.targets.read().unwrap_or_else(|e| e.into_inner());
        state.metrics.observe_targets(&targets);
    }
    let series = read_store(&state.store).series_count();
    state
        .metrics
        .store_series
        .set(i64::try_from(series).unwrap_or(i64::MAX));
    // A database that does not answer keeps the last value rather than
    // holding up the scrape.
    match tokio::time::timeout(METRICS_DB_TIMEOUT, state.history.outbox_backlog()).await {
        Ok(Ok(pending)) => state.metrics.outbox_pending.set(pending),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot count the outbox backlog for /metrics"),
        Err(_) => tracing::warn!("the history database did not answer in time for /metrics"),
    }
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&state.registry.gather(), &mut body) {
        tracing::error!(error = %e, "cannot encode metrics");
        return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Compares without exiting at the first difference, so response timing
/// does not reveal how much of a guessed token was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    let token = state.token.read().unwrap_or_else(|e| e.into_inner());
    let Some(token) = token.as_ref() else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim().as_bytes(), token.expose().as_bytes()))
}

async fn reload(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: send Authorization: Bearer <web.token_file content>\n",
        )
            .into_response();
    }
    let (tx, rx) = oneshot::channel();
    if state
        .reload
        .send(ReloadRequest { reply: Some(tx) })
        .await
        .is_err()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the evaluator is shutting down\n",
        )
            .into_response();
    }
    match rx.await {
        Ok(Ok(())) => (StatusCode::OK, "configuration reloaded\n").into_response(),
        Ok(Err(problems)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "failed to reload config; the previous configuration keeps running:\n{problems}\n"
            ),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the evaluator is shutting down\n",
        )
            .into_response(),
    }
}
