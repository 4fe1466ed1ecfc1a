//! The dashboard at `/`, the graph view at `/graph` and the rule-tuning
//! view at `/tune`: three HTML pages,
//! their scripts, a stylesheet and the vendored charting library (uPlot,
//! MIT, `vendor/uplot/`) compiled into the binary, so the pages work without
//! a build step, a CDN or files next to the executable. The pages read only
//! the public HTTP API (the Prometheus, Alertmanager and Vigil endpoints),
//! so everything they show a script can read too.
//!
//! The files are plain HTML, CSS and JavaScript in this folder. Their URLs
//! are not versioned, so they are served with `Cache-Control: no-cache` and
//! a content-hash `ETag`: a browser revalidates on every load (a cheap 304)
//! and never runs a stale script after an upgrade. A strict
//! `Content-Security-Policy` lets the page load only itself and talk only
//! to its own origin.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::hash::stable_hash;

/// One embedded file.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: &'static str,
}

/// The file's stable hash, as the quoted strong ETag `"vigil-<hex>"`.
const fn etag_bytes(body: &str) -> [u8; 24] {
    let hash = stable_hash(body.as_bytes());
    let mut out = *b"\"vigil-0000000000000000\"";
    let digits = b"0123456789abcdef";
    let mut d = 0;
    while d < 16 {
        out[22 - d] = digits[((hash >> (4 * d)) & 0xf) as usize];
        d += 1;
    }
    out
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {{
        const BODY: &str = include_str!($file);
        const ETAG: [u8; 24] = etag_bytes(BODY);
        const ETAG_STR: &str = match std::str::from_utf8(&ETAG) {
            Ok(s) => s,
            Err(_) => panic!("an ETag is ASCII"),
        };
        Asset {
            body: BODY,
            content_type: $content_type,
            etag: ETAG_STR,
        }
    }};
}

const INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
const GRAPH: Asset = asset!("graph.html", "text/html; charset=utf-8");
const COMMON_JS: Asset = asset!("common.js", "text/javascript; charset=utf-8");
const APP_JS: Asset = asset!("app.js", "text/javascript; charset=utf-8");
const GRAPH_JS: Asset = asset!("graph.js", "text/javascript; charset=utf-8");
const TUNE: Asset = asset!("tune.html", "text/html; charset=utf-8");
const TUNE_JS: Asset = asset!("tune.js", "text/javascript; charset=utf-8");
const UPLOT_JS: Asset = asset!(
    "vendor/uplot/uPlot.iife.min.js",
    "text/javascript; charset=utf-8"
);
const UPLOT_CSS: Asset = asset!("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8");
const STYLE_CSS: Asset = asset!("style.css", "text/css; charset=utf-8");
const FAVICON: Asset = asset!("favicon.svg", "image/svg+xml");

/// The page may load its own files only and talk only to its own origin;
/// no inline script or style, no framing, no form posts elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Every file but the two pages, by its path under `/dashboard/`.
const FILES: [(&str, &Asset); 8] = [
    ("/dashboard/common.js", &COMMON_JS),
    ("/dashboard/app.js", &APP_JS),
    ("/dashboard/graph.js", &GRAPH_JS),
    ("/dashboard/tune.js", &TUNE_JS),
    ("/dashboard/style.css", &STYLE_CSS),
    ("/dashboard/favicon.svg", &FAVICON),
    ("/dashboard/vendor/uplot/uPlot.iife.min.js", &UPLOT_JS),
    ("/dashboard/vendor/uplot/uPlot.min.css", &UPLOT_CSS),
];

/// The dashboard's routes: `/`, `/graph`, `/tune` and their files under
/// `/dashboard/`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route(
            "/graph",
            get(|h: HeaderMap| async move { serve(&GRAPH, &h) }),
        )
        .route("/tune", get(|h: HeaderMap| async move { serve(&TUNE, &h) }));
    for (path, asset) in FILES {
        router = router.route(
            path,
            get(move |h: HeaderMap| async move { serve(asset, &h) }),
        );
    }
    router
}

/// Whether an `If-None-Match` header names `etag` (or is `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let headers = [
        (header::ETAG, HeaderValue::from_static(asset.etag)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if matches_etag(request, asset.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn body_of(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn each_file_is_served_with_its_content_type() {
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/graph", "text/html; charset=utf-8"),
            ("/tune", "text/html; charset=utf-8"),
            ("/dashboard/tune.js", "text/javascript; charset=utf-8"),
            ("/dashboard/common.js", "text/javascript; charset=utf-8"),
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/graph.js", "text/javascript; charset=utf-8"),
            (
                "/dashboard/vendor/uplot/uPlot.iife.min.js",
                "text/javascript; charset=utf-8",
            ),
            (
                "/dashboard/vendor/uplot/uPlot.min.css",
                "text/css; charset=utf-8",
            ),
            ("/dashboard/style.css", "text/css; charset=utf-8"),
            ("/dashboard/favicon.svg", "image/svg+xml"),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                content_type,
                "{path}"
            );
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
        }
    }

    #[tokio::test]
    async fn the_page_loads_its_script_and_stylesheet_from_the_served_paths() {
        let html = body_of(get("/", None).await).await;
        assert!(
            html.contains(r#"<script src="/dashboard/app.js" defer></script>"#),
            "{html}"
        );
        let graph = body_of(get("/graph", None).await).await;
        for script in ["vendor/uplot/uPlot.iife.min.js", "common.js", "graph.js"] {
            assert!(
                graph.contains(&format!(
                    r#"<script src="/dashboard/{script}" defer></script>"#
                )),
                "{graph}"
            );
        }
        assert!(graph.contains(r#"href="/dashboard/vendor/uplot/uPlot.min.css""#));
        assert!(html.contains(r#"href="/dashboard/style.css""#), "{html}");
        assert!(html.contains(r#"href="/dashboard/favicon.svg""#), "{html}");
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified_without_a_body() {
        let first = get("/dashboard/app.js", None).await;
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with("\"vigil-") && etag.len() == 24, "{etag}");

        let again = get("/dashboard/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert!(body_of(again).await.is_empty());

        let other = get("/dashboard/app.js", Some("\"vigil-0000000000000000\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn different_files_have_different_etags() {
        let mut tags = vec![INDEX.etag, GRAPH.etag, TUNE.etag];
        tags.extend(FILES.iter().map(|(_, a)| a.etag));
        for (i, a) in tags.iter().enumerate() {
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn the_page_never_writes_api_data_as_html() {
        // Every API string reaches the page as text (textContent, text
        // nodes, attributes), never parsed as markup.
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            for (name, script) in [
                ("common.js", &COMMON_JS),
                ("app.js", &APP_JS),
                ("graph.js", &GRAPH_JS),
                ("tune.js", &TUNE_JS),
            ] {
                assert!(!script.body.contains(forbidden), "{name} uses {forbidden}");
            }
        }
    }
}
