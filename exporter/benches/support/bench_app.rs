//! The small axum app that both middleware benches drive (the in-process
//! `benches/http_metrics.rs` and the `wrk` server
//! `examples/middleware_bench_server.rs`), so that they measure the same
//! routes: `GET /` (static) and `GET /users/{id}` (path parameter, formats
//! a body).

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use vigil_exporter::http_metrics::HttpMetricsLayer;

/// The app as-is, with axum's default 404 fallback.
pub fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/users/{id}",
        get(|Path(id): Path<u64>| async move { format!("user {id}") }),
    )
}

/// The same routes with each handler, and a 404 fallback, instrumented on
/// their own with `HttpMetricsLayer::handler` instead of `Router::layer`:
/// no second boxing of each route.
pub fn app_per_handler(layer: &HttpMetricsLayer) -> Router {
    Router::new()
        .route("/", get(layer.handler(|| async { "ok" })))
        .route(
            "/users/{id}",
            get(layer.handler(|Path(id): Path<u64>| async move { format!("user {id}") })),
        )
        .fallback(layer.handler(|| async { http::StatusCode::NOT_FOUND }))
}
