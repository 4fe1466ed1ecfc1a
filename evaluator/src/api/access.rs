//! Who may read: one middleware over the whole router that, when
//! `web.read_requires_token` is on, answers 401 to every read under `/api/`
//! without the bearer token. It exists so that an evaluator whose alerts,
//! labels and history are sensitive can be closed with one switch, while
//! health checks, readiness probes, the `/metrics` scrape and the dashboard
//! page itself (which holds no data; it reads the API) stay open.
//!
//! Mutating endpoints check the token in their handlers (whatever this
//! switch says), so this layer only decides about reads.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{authorized, AppState};

/// Prometheus' read endpoints that also take POST (a long query in a form
/// body); they are reads all the same.
const READ_POSTS: &[&str] = &[
    "/api/v1/query",
    "/api/v1/query_range",
    "/api/v1/series",
    "/api/v1/labels",
];

/// Whether a request only reads API data.
fn is_api_read(method: &Method, path: &str) -> bool {
    if !path.starts_with("/api/") {
        return false;
    }
    method == Method::GET
        || method == Method::HEAD
        || (method == Method::POST && READ_POSTS.contains(&path))
}

/// The middleware: passes everything through unless reads need the token
/// and this read does not carry it.
pub async fn require_token_for_reads(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    if state.read_requires_token.load(Ordering::Acquire)
        && is_api_read(request.method(), request.uri().path())
        && !authorized(&state, request.headers())
    {
        return unauthorized();
    }
    next.run(request).await
}

/// 401 in the error envelope the `/api` endpoints share.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({
            "status": "error",
            "errorType": "unauthorized",
            "error": "missing or wrong bearer token: send Authorization: Bearer <the content of web.token_file or VIGIL_API_TOKEN>",
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gets_under_api_and_prometheus_query_posts_are_reads() {
        assert!(is_api_read(&Method::GET, "/api/v1/alerts"));
        assert!(is_api_read(&Method::GET, "/api/vigil/v1/history"));
        assert!(is_api_read(&Method::POST, "/api/v1/query"));
        assert!(!is_api_read(&Method::POST, "/api/vigil/v1/alerts/ack"));
        assert!(!is_api_read(&Method::GET, "/metrics"));
        assert!(!is_api_read(&Method::GET, "/-/healthy"));
        assert!(!is_api_read(&Method::GET, "/"));
    }
}
