//! The exporter's own HTTP server: `/metrics`, `/healthz`, `/readyz`,
//! `POST /api/v1/events`, and the `/demo/*` endpoints that give a fresh
//! install something to watch.
//!
//! - [`AppState`] holds the one Prometheus [`Registry`] every component
//!   registers in (business metrics, process metrics, the HTTP metrics
//!   layer, the prober, and whatever else is given to
//!   [`AppState::with_registry`]); `/metrics` serves it.
//! - [`app`] builds the router from an [`AppState`] without a socket, so
//!   tests drive it with `oneshot`. The HTTP metrics layer, built once per
//!   state, is added last so that it sees every request, 404s included.
//! - [`run`] binds the listener, starts the prober with a child of the
//!   shutdown token and serves until that token is cancelled. `/readyz`
//!   answers 200 once the listener is up and the prober has started.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;

use crate::business::{BusinessError, BusinessMetrics, Event, MAX_EVENT_BYTES};
use crate::config::{Config, HttpLimits};
use crate::http_metrics::{HttpMetricsError, HttpMetricsLayer};
use crate::probe::{Prober, ProberError, ProberOptions, TargetError};

/// Content type of the Prometheus text exposition format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// `/demo/slow` sleeps this long unless `?ms=` says otherwise.
pub const DEMO_SLOW_DEFAULT: Duration = Duration::from_millis(1500);
/// Upper bound of `/demo/slow?ms=`, so a demo endpoint cannot hold
/// connections open for long.
pub const DEMO_SLOW_MAX: Duration = Duration::from_secs(10);
/// `/demo/flaky` fails for this long after the exporter started, unless
/// `?fail_for_s=` says otherwise: long enough for an alert with a short
/// `for` to fire, short enough to watch it resolve in a local demo.
pub const DEMO_FLAKY_DEFAULT: Duration = Duration::from_secs(90);
/// How long in-flight requests may take to finish after shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot set up metrics: {0}")]
    Metrics(#[from] BusinessError),
    #[error("cannot register the exporter's own metrics: {0}")]
    OwnMetrics(#[source] prometheus::Error),
    #[error("cannot set up the HTTP metrics layer: {0}")]
    HttpMetrics(#[from] HttpMetricsError),
    #[error("invalid probe configuration:\n  {}\nfix the probes in the config file", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Targets(Vec<TargetError>),
    #[error("cannot start the prober: {0}")]
    Prober(#[from] ProberError),
    #[error("cannot listen on {addr}: {source}; is another process using the port? choose another with --listen or `listen:` in the config file")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Everything the handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    registry: Registry,
    business: Arc<BusinessMetrics>,
    http_metrics: HttpMetricsLayer,
    ready: Arc<AtomicBool>,
    demo: bool,
    /// When this state was built; `/demo/flaky` fails relative to it.
    started: tokio::time::Instant,
}

impl AppState {
    /// State for `config` with a fresh registry holding the business
    /// metrics (and, on Linux, the process metrics).
    pub fn new(config: &Config) -> Result<AppState, ServerError> {
        AppState::with_registry(config, Registry::new())
    }

    /// State for `config` using `registry`, which other components (the
    /// prober) register their metrics in too; it is what `/metrics` serves.
    /// Registers the business metrics, the HTTP metrics of the exporter's
    /// own routes and (on Linux) the process metrics in it.
    pub fn with_registry(config: &Config, registry: Registry) -> Result<AppState, ServerError> {
        register_process_metrics(&registry)?;
        register_build_info(&registry)?;
        let business = BusinessMetrics::register(&config.business, &registry)?;
        let http_metrics = HttpMetricsLayer::new(&registry)?;
        Ok(AppState {
            registry,
            business: Arc::new(business),
            http_metrics,
            ready: Arc::new(AtomicBool::new(false)),
            demo: config.demo,
            started: tokio::time::Instant::now(),
        })
    }

    /// The registry served on `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The business counters and gauges.
    pub fn business(&self) -> &BusinessMetrics {
        &self.business
    }

    /// Marks the server ready (`/readyz` answers 200) or not (503).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }
}

/// `vigil_exporter_build_info{version, commit} 1`, so dashboards can show
/// which build is running.
fn register_build_info(registry: &Registry) -> Result<(), ServerError> {
    let opts = prometheus::Opts::new(
        "vigil_exporter_build_info",
        "Build of the running vigil-exporter; always 1.",
    )
    .const_label("version", env!("CARGO_PKG_VERSION"))
    .const_label("commit", vigil_common::build_info::GIT_COMMIT);
    let info = prometheus::IntGauge::with_opts(opts).map_err(ServerError::OwnMetrics)?;
    info.set(1);
    registry
        .register(Box::new(info))
        .map_err(ServerError::OwnMetrics)
}

#[cfg(target_os = "linux")]
fn register_process_metrics(registry: &Registry) -> Result<(), ServerError> {
    let collector = prometheus::process_collector::ProcessCollector::for_self();
    registry
        .register(Box::new(collector))
        .map_err(ServerError::OwnMetrics)
}

#[cfg(not(target_os = "linux"))]
fn register_process_metrics(_: &Registry) -> Result<(), ServerError> {
    Ok(())
}

/// The exporter's router. Demo routes exist only when `demo` is on.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/metrics", get(metrics).layer(CompressionLayer::new()))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/events",
            post(post_event).layer(DefaultBodyLimit::max(MAX_EVENT_BYTES)),
        );
    if state.demo {
        router = router
            .route("/demo/ok", get(demo_ok))
            .route("/demo/error", get(demo_error))
            .route("/demo/slow", get(demo_slow))
            .route("/demo/flaky", get(demo_flaky));
    }
    let http_metrics = state.http_metrics.clone();
    // Last, so that every route and the fallback are instrumented.
    router
        .fallback(not_found)
        .with_state(state)
        .layer(http_metrics)
}

/// Binds `config.listen`, starts the prober and serves until `shutdown` is
/// cancelled; then waits for the prober to stop too.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServerError> {
    // The one registry: the metrics layer and the prober register here too.
    let registry = Registry::new();
    let state = AppState::with_registry(&config, registry.clone())?;
    let targets = config.probe_targets().map_err(ServerError::Targets)?;
    let prober = Prober::new(
        targets,
        &registry,
        ProberOptions {
            max_concurrency: config.probe_concurrency,
        },
    )?;
    if !state.business().ingest_enabled() && state.business().declared() > 0 {
        tracing::warn!(
            "event ingest is disabled: no token configured (business.token_file or VIGIL_INGEST_TOKEN); POST /api/v1/events will answer 403"
        );
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    tracing::info!(
        probes = config.probes.len(),
        probe_concurrency = config.probe_concurrency,
        "configuration loaded"
    );
    // The prober starts before `serve` marks the exporter ready; its first
    // probes may reach the listener before it accepts, and simply wait in
    // the backlog.
    let probing = shutdown.child_token();
    let prober = tokio::spawn(prober.run(probing.clone()));
    let served = serve_with(listener, state, config.http, shutdown).await;
    // `serve` returns on cancellation, or early on an error: stop the
    // prober either way.
    probing.cancel();
    if let Err(error) = prober.await {
        tracing::error!(%error, "the prober ended abnormally");
    }
    served
}

/// Serves [`app`] on `listener` with the default HTTP limits (see
/// [`serve_with`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    serve_with(listener, state, HttpLimits::default(), shutdown).await
}

/// Serves [`app`] on `listener` with `limits` (header-read and idle
/// timeouts, connection cap) until `shutdown` is cancelled, then waits up
/// to [`SHUTDOWN_GRACE`] for in-flight requests.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    limits: HttpLimits,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    let router = app(state.clone());
    state.set_ready(true);
    tracing::info!(%addr, "vigil-exporter listening");
    let server = vigil_common::http_server::serve(
        listener,
        router,
        limits,
        shutdown.clone().cancelled_owned(),
    );
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result.map_err(ServerError::Serve)?,
        () = async {
            shutdown.cancelled().await;
            state.set_ready(false);
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!(grace = ?SHUTDOWN_GRACE, "in-flight requests did not finish in time; stopping anyway"),
    }
    state.set_ready(false);
    tracing::info!("vigil-exporter stopped");
    Ok(())
}

async fn metrics(State(state): State<AppState>) -> Result<Response, AppError> {
    let mut body = Vec::new();
    TextEncoder::new()
        .encode(&state.registry.gather(), &mut body)
        .map_err(|error| AppError::Internal(format!("encoding metrics failed: {error}")))?;
    Ok(([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn post_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, AppError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    state.business.authorize(authorization)?;
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::Business(BusinessError::TooLarge),
        _ => AppError::BadRequest(rejection.body_text()),
    })?;
    let event = Event::from_json(&body)?;
    let recorded = state.business.record(event)?;
    tracing::debug!(metric = %recorded.metric, value = recorded.value, "business event recorded");
    Ok(Json(json!({
        "metric": recorded.metric,
        "labels": recorded.labels,
        "value": recorded.value,
    })))
}

async fn demo_ok() -> &'static str {
    "ok\n"
}

async fn demo_error() -> (StatusCode, &'static str) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "demo error, on purpose\n",
    )
}

#[derive(Debug, Deserialize)]
struct SlowParams {
    ms: Option<u64>,
}

async fn demo_slow(params: Result<Query<SlowParams>, QueryRejection>) -> Result<String, AppError> {
    let Query(params) = params.map_err(|rejection| AppError::BadRequest(rejection.body_text()))?;
    let delay = params
        .ms
        .map_or(DEMO_SLOW_DEFAULT, Duration::from_millis)
        .min(DEMO_SLOW_MAX);
    tokio::time::sleep(delay).await;
    Ok(format!("slept {} ms\n", delay.as_millis()))
}

#[derive(Debug, Deserialize)]
struct FlakyParams {
    fail_for_s: Option<u64>,
}

/// 500 during the first [`DEMO_FLAKY_DEFAULT`] (or `?fail_for_s=`) after
/// start, 200 afterwards: a target that breaks and recovers on its own.
async fn demo_flaky(
    State(state): State<AppState>,
    params: Result<Query<FlakyParams>, QueryRejection>,
) -> Result<(StatusCode, String), AppError> {
    let Query(params) = params.map_err(|rejection| AppError::BadRequest(rejection.body_text()))?;
    let fail_for = params
        .fail_for_s
        .map_or(DEMO_FLAKY_DEFAULT, Duration::from_secs);
    let up_for = state.started.elapsed();
    Ok(if up_for < fail_for {
        let left = (fail_for - up_for).as_secs();
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("demo failure, on purpose, for {left} more seconds\n"),
        )
    } else {
        (StatusCode::OK, "recovered\n".to_string())
    })
}

async fn not_found() -> AppError {
    AppError::NotFound
}

/// Every error a handler returns. The client sees a JSON body
/// `{"error": "...", "code": "..."}`; internal causes are logged, not shown.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Business(#[from] BusinessError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("no such endpoint")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::Business(error) => match error {
                BusinessError::IngestDisabled => StatusCode::FORBIDDEN,
                BusinessError::MissingToken | BusinessError::WrongToken => StatusCode::UNAUTHORIZED,
                BusinessError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                BusinessError::Malformed(_) => StatusCode::BAD_REQUEST,
                BusinessError::UnknownMetric(_)
                | BusinessError::UnknownLabels { .. }
                | BusinessError::MissingLabels { .. }
                | BusinessError::InvalidValue { .. }
                | BusinessError::MissingGaugeValue(_)
                | BusinessError::TooManyLabelSets { .. }
                | BusinessError::CounterOverflow { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                BusinessError::Register { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::Business(error) => error.code(),
            AppError::BadRequest(_) => "bad_request",
            AppError::NotFound => "not_found",
            AppError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
            "internal error; see the exporter's log".to_owned()
        } else {
            tracing::debug!(error = %self, %status, "request rejected");
            self.to_string()
        };
        let mut response =
            (status, Json(json!({"error": message, "code": self.code()}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serve_is_ready_while_running_and_returns_once_shutdown_is_cancelled(
    ) -> anyhow::Result<()> {
        let state = AppState::new(&Config::default())?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, state.clone(), shutdown.clone()));

        let ready = reqwest::get(format!("http://{addr}/readyz"))
            .await?
            .status();
        assert_eq!(ready, reqwest::StatusCode::OK);

        shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
        assert!(
            !state.ready.load(Ordering::Acquire),
            "still ready after shutdown"
        );
        Ok(())
    }

    #[tokio::test]
    async fn run_reports_a_port_already_in_use() -> anyhow::Result<()> {
        let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
        let config = Config {
            listen: taken.local_addr()?,
            ..Config::default()
        };
        let result = run(config, CancellationToken::new()).await;
        assert!(
            matches!(result, Err(ServerError::Bind { .. })),
            "{result:?}"
        );
        Ok(())
    }
}
