//! Serving a Prometheus registry on `/metrics`: [`MetricsHandle`] renders
//! the registry in the text exposition format and answers `GET /metrics`
//! with the right content type, gzip-compressed when the client accepts it.

use std::io::Write as _;

use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use prometheus::{Encoder, Registry, TextEncoder};

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A registry to serve on `/metrics`. Cheap to clone: clones share the
/// registry.
#[derive(Clone, Debug, Default)]
pub struct MetricsHandle {
    registry: Registry,
}

impl MetricsHandle {
    /// Serves `registry` (a clone shares its metrics with the original).
    pub fn new(registry: Registry) -> MetricsHandle {
        MetricsHandle { registry }
    }

    /// The registry served; register your own metrics here too.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every metric of the registry in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on metric families the registry
        // itself refuses to gather; what was encoded is still returned.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The `GET` route answering with [`MetricsHandle::render`]:
    /// `Content-Type` [`METRICS_CONTENT_TYPE`], and gzip when the request's
    /// `Accept-Encoding` allows it. Mount it with
    /// `.route("/metrics", handle.route())`.
    pub fn route<S>(&self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let handle = self.clone();
        get(move |headers: HeaderMap| {
            let handle = handle.clone();
            async move { handle.respond(&headers) }
        })
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let body = self.render().into_bytes();
        let vary = (VARY, HeaderValue::from_static("accept-encoding"));
        let content_type = (CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
        if !accepts_gzip(request) {
            return ([content_type, vary], body).into_response();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        match gz.write_all(&body).and_then(|()| gz.finish()) {
            Ok(compressed) => (
                [
                    content_type,
                    vary,
                    (CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                ],
                compressed,
            )
                .into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot compress the metrics: {e}\n"),
            )
                .into_response(),
        }
    }
}

/// Whether `Accept-Encoding` lists `gzip` (or `*`) with a non-zero quality.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap_or(HeaderValue::from_static("")),
        );
        h
    }

    #[test]
    fn gzip_is_used_only_when_accepted() {
        for (accept, gzip) in [
            ("gzip", true),
            ("deflate, gzip;q=0.5", true),
            ("GZIP", true),
            ("*", true),
            ("br", false),
            ("gzip;q=0", false),
            ("gzip; q=0.0, br", false),
            ("", false),
        ] {
            assert_eq!(
                accepts_gzip(&headers(accept)),
                gzip,
                "Accept-Encoding: {accept}"
            );
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
