//! Specification of the HTTP metrics layer, driven through real axum routers
//! with `oneshot` (no socket): what is counted, under which labels, and that
//! the in-flight gauge always comes back to zero.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Registry, TextEncoder};
use tower::ServiceExt;
use vigil_exporter::http_metrics::{HttpMetricsError, HttpMetricsLayer};

use crate::support::promtool_check_metrics;

// ---------------------------------------------------------------- helpers

fn users_routes() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "a user" }))
        .route("/users", post(|| async { StatusCode::CREATED }))
}

/// A new layer and the registry it records into.
fn new_layer() -> (HttpMetricsLayer, Registry) {
    let registry = Registry::new();
    let layer = HttpMetricsLayer::new(&registry).unwrap_or_else(|err| panic!("{err}"));
    (layer, registry)
}

/// A new layer whose durations are measured on `clock`, and its registry.
fn layer_on_clock(clock: quanta::Clock) -> (HttpMetricsLayer, Registry) {
    let registry = Registry::new();
    let layer = HttpMetricsLayer::builder()
        .clock(clock)
        .build(&registry)
        .unwrap_or_else(|err| panic!("{err}"));
    (layer, registry)
}

fn instrumented(routes: Router) -> (Router, Registry) {
    let (layer, registry) = new_layer();
    (routes.layer(layer), registry)
}

/// A `GET path` request with no body.
fn get_request(path: &str) -> Request<Body> {
    Request::get(path)
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn send(app: &Router, method: Method, path: &str) -> StatusCode {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap_or_else(|err| panic!("bad test request {path}: {err}"));
    let Ok(response) = app.clone().oneshot(request).await;
    let status = response.status();
    let _ = response.into_body().collect().await;
    status
}

async fn get_path(app: &Router, path: &str) -> StatusCode {
    send(app, Method::GET, path).await
}

/// Sends `GET` for each of `paths` in turn, ignoring the answers.
async fn get_paths(app: &Router, paths: &[&str]) {
    for path in paths {
        get_path(app, path).await;
    }
}

fn family(registry: &Registry, name: &str) -> Option<MetricFamily> {
    registry.gather().into_iter().find(|f| f.name() == name)
}

/// Label sets of every series of `name`, as sorted `k=v` lists.
fn label_sets(registry: &Registry, name: &str) -> Vec<Vec<String>> {
    let Some(family) = family(registry, name) else {
        return Vec::new();
    };
    family
        .get_metric()
        .iter()
        .map(|metric| {
            let mut labels: Vec<String> = metric
                .get_label()
                .iter()
                .map(|pair| format!("{}={}", pair.name(), pair.value()))
                .collect();
            labels.sort();
            labels
        })
        .collect()
}

fn find_metric<'a>(
    family: &'a MetricFamily,
    labels: &[(&str, &str)],
) -> Option<&'a prometheus::proto::Metric> {
    family.get_metric().iter().find(|metric| {
        metric.get_label().len() == labels.len()
            && labels.iter().all(|(name, value)| {
                metric
                    .get_label()
                    .iter()
                    .any(|pair| pair.name() == *name && pair.value() == *value)
            })
    })
}

fn requests_total(registry: &Registry, method: &str, route: &str, status: &str) -> Option<f64> {
    let family = family(registry, "http_requests_total")?;
    find_metric(
        &family,
        &[("method", method), ("route", route), ("status", status)],
    )
    .map(|metric| metric.get_counter().get_value())
}

/// Asserts the value of `http_requests_total{method, route, status}`.
#[track_caller]
fn assert_requests(
    registry: &Registry,
    method: &str,
    route: &str,
    status: &str,
    expected: Option<f64>,
) {
    assert_eq!(
        requests_total(registry, method, route, status),
        expected,
        "{method} {route} {status}"
    );
}

fn in_flight(registry: &Registry) -> Option<f64> {
    let family = family(registry, "http_requests_in_flight")?;
    family
        .get_metric()
        .first()
        .map(|m| m.get_gauge().get_value())
}

/// One histogram series: sample count, sample sum, and cumulative bucket
/// counts by upper bound.
struct HistogramSample {
    count: u64,
    sum: f64,
    buckets: Vec<(f64, u64)>,
}

fn duration(registry: &Registry, method: &str, route: &str) -> Option<HistogramSample> {
    let family = family(registry, "http_request_duration_seconds")?;
    let metric = find_metric(&family, &[("method", method), ("route", route)])?;
    let histogram = metric.get_histogram();
    let buckets = histogram
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect();
    Some(HistogramSample {
        count: histogram.get_sample_count(),
        sum: histogram.get_sample_sum(),
        buckets,
    })
}

/// The upper bounds of the buckets of one duration histogram series.
fn bucket_bounds(registry: &Registry, method: &str, route: &str) -> Vec<f64> {
    let HistogramSample { buckets, .. } =
        duration(registry, method, route).unwrap_or_else(|| panic!("no histogram series"));
    buckets.iter().map(|(bound, _)| *bound).collect()
}

fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap_or_else(|err| panic!("cannot encode metrics: {err}"));
    String::from_utf8(out).unwrap_or_else(|err| panic!("metrics are not UTF-8: {err}"))
}

// ---------------------------------------------------------- route labels

#[tokio::test]
async fn requests_are_counted_per_route_template_not_per_raw_path() {
    let (app, registry) = instrumented(users_routes());

    for id in ["1", "2", "3"] {
        assert_eq!(
            get_path(&app, &format!("/users/{id}")).await,
            StatusCode::OK
        );
    }

    assert_requests(&registry, "GET", "/users/{id}", "200", Some(3.0));
    assert_eq!(label_sets(&registry, "http_requests_total").len(), 1);
}

#[tokio::test]
async fn each_route_and_status_has_its_own_series() {
    let (app, registry) = instrumented(users_routes());

    get_path(&app, "/users/7").await;
    send(&app, Method::POST, "/users").await;
    send(&app, Method::POST, "/users").await;

    assert_requests(&registry, "GET", "/users/{id}", "200", Some(1.0));
    assert_requests(&registry, "POST", "/users", "201", Some(2.0));
}

#[tokio::test]
async fn unmatched_requests_fold_into_a_single_route_value() {
    let (app, registry) = instrumented(users_routes());

    for path in ["/wp-admin.php", "/.env", "/a/b/c/d", "/users/1/extra"] {
        assert_eq!(get_path(&app, path).await, StatusCode::NOT_FOUND);
    }

    assert_requests(&registry, "GET", "unmatched", "404", Some(4.0));
    assert_eq!(
        label_sets(&registry, "http_requests_total"),
        vec![vec!["method=GET", "route=unmatched", "status=404"]]
    );
}

#[tokio::test]
async fn custom_fallback_before_the_layer_is_counted_as_unmatched() {
    let routes = users_routes().fallback(|| async { (StatusCode::IM_A_TEAPOT, "nothing here") });
    let (app, registry) = instrumented(routes);

    get_paths(&app, &["/scanner/probe-1", "/scanner/probe-2"]).await;

    assert_requests(&registry, "GET", "unmatched", "418", Some(2.0));
}

#[tokio::test]
async fn non_standard_methods_fold_into_other() {
    let (app, registry) = instrumented(users_routes());

    let propfind = Method::from_bytes(b"PROPFIND").unwrap_or_else(|e| panic!("{e}"));
    let purge = Method::from_bytes(b"PURGE").unwrap_or_else(|e| panic!("{e}"));
    send(&app, propfind, "/users/1").await;
    send(&app, purge, "/users/2").await;

    // The path matched a route that does not serve these methods: axum
    // answers 405 under the route's template.
    assert_requests(&registry, "other", "/users/{id}", "405", Some(2.0));
}

#[tokio::test]
async fn nested_router_reports_the_full_template_when_layered_on_the_parent() {
    let routes = Router::new().nest("/api", users_routes());
    let (app, registry) = instrumented(routes);

    get_paths(&app, &["/api/users/9", "/api/nope"]).await;

    assert_requests(&registry, "GET", "/api/users/{id}", "200", Some(1.0));
    assert_requests(&registry, "GET", "unmatched", "404", Some(1.0));
}

#[tokio::test]
async fn nested_router_reports_the_full_template_when_layered_before_nesting() {
    let (layer, registry) = new_layer();
    let app = Router::new().nest("/api", users_routes().layer(layer));

    get_path(&app, "/api/users/9").await;

    assert_requests(&registry, "GET", "/api/users/{id}", "200", Some(1.0));
}

#[tokio::test]
async fn route_layer_never_sees_unmatched_requests() {
    // Documents why the module asks for `Router::layer`: with `route_layer`
    // the 404s of scanners and broken clients would be invisible.
    let (layer, registry) = new_layer();
    let app = users_routes().route_layer(layer);

    get_paths(&app, &["/users/1", "/missing"]).await;

    assert_requests(&registry, "GET", "/users/{id}", "200", Some(1.0));
    assert_requests(&registry, "GET", "unmatched", "404", None);
}

#[tokio::test]
async fn requests_below_a_nest_service_mount_fold_into_unmatched() {
    // axum records no template for what an opaque nested service matches;
    // the layer must not fall back to the raw path.
    let routes = Router::new().nest_service("/files", users_routes().into_service::<Body>());
    let (app, registry) = instrumented(routes);

    get_paths(&app, &["/files/users/1", "/files/users/2"]).await;

    assert_requests(&registry, "GET", "unmatched", "200", Some(2.0));
    assert_eq!(label_sets(&registry, "http_requests_total").len(), 1);
}

#[tokio::test]
async fn layer_wrapped_around_the_whole_router_sees_no_templates() {
    // Documents why the module asks for `Router::layer`: outside the router
    // the request has not been routed yet.
    let (layer, registry) = new_layer();
    let app = tower::Layer::layer(&layer, users_routes());
    let request = get_request("/users/1");

    let Ok(response) = app.oneshot(request).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_requests(&registry, "GET", "unmatched", "200", Some(1.0));
}

#[tokio::test]
async fn many_routes_in_two_apps_are_each_counted_under_their_own_template() {
    // More routes than the layer's per-thread cache of recent routes holds,
    // in two apps with the same templates: entries collide and are replaced
    // all the time, and no request may be counted under another route or in
    // the other app.
    let routes = || {
        (0..300).fold(Router::new(), |router, i| {
            router.route(&format!("/r{i}/{{id}}"), get(|| async { "ok" }))
        })
    };
    let (first, first_registry) = instrumented(routes());
    let (second, second_registry) = instrumented(routes());
    for round in 0..3 {
        for i in 0..300 {
            assert_eq!(
                get_path(&first, &format!("/r{i}/{round}")).await,
                StatusCode::OK
            );
            if i % 2 == 0 {
                assert_eq!(get_path(&second, &format!("/r{i}/x")).await, StatusCode::OK);
            }
        }
    }
    for i in 0..300 {
        let route = format!("/r{i}/{{id}}");
        assert_eq!(
            requests_total(&first_registry, "GET", &route, "200"),
            Some(3.0),
            "{route}"
        );
        let expected = (i % 2 == 0).then_some(3.0);
        assert_eq!(
            requests_total(&second_registry, "GET", &route, "200"),
            expected,
            "{route}"
        );
    }
}

#[tokio::test]
async fn clones_of_one_layer_share_their_metrics() {
    let (layer, registry) = new_layer();
    let public = users_routes().layer(layer.clone());
    let admin = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .layer(layer);

    get_path(&public, "/users/1").await;
    get_path(&admin, "/admin").await;

    assert_requests(&registry, "GET", "/users/{id}", "200", Some(1.0));
    assert_requests(&registry, "GET", "/admin", "200", Some(1.0));
}

#[tokio::test]
async fn fallback_added_after_the_layer_is_not_instrumented() {
    // Documents why the module says "add the layer last": axum applies a
    // layer only to what the router holds when `.layer` is called.
    let (layer, registry) = new_layer();
    let app = users_routes()
        .layer(layer)
        .fallback(|| async { StatusCode::NOT_FOUND });

    get_paths(&app, &["/users/1", "/missing"]).await;

    assert_requests(&registry, "GET", "/users/{id}", "200", Some(1.0));
    assert_requests(&registry, "GET", "unmatched", "404", None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_all_counted_once() {
    let (app, registry) = instrumented(users_routes());
    let mut tasks = Vec::new();
    for task in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                get_path(&app, &format!("/users/{task}-{i}")).await;
                get_path(&app, &format!("/scan/{task}/{i}")).await;
            }
        }));
    }
    for task in tasks {
        task.await
            .unwrap_or_else(|err| panic!("request task failed: {err}"));
    }

    assert_requests(&registry, "GET", "/users/{id}", "200", Some(400.0));
    assert_requests(&registry, "GET", "unmatched", "404", Some(400.0));
    assert_eq!(label_sets(&registry, "http_requests_total").len(), 2);
    assert_eq!(
        duration(&registry, "GET", "/users/{id}").map(|h| h.count),
        Some(400)
    );
    assert_eq!(in_flight(&registry), Some(0.0));
}

// ---------------------------------------------------------- status labels

struct AppError;

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, "something went wrong").into_response()
    }
}

#[tokio::test]
async fn handler_errors_are_counted_with_the_status_they_render_to() {
    let routes = Router::new()
        .route("/fails", get(|| async { Err::<String, _>(AppError) }))
        .route("/busy", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
    let (app, registry) = instrumented(routes);

    assert_eq!(
        get_path(&app, "/fails").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    get_path(&app, "/busy").await;

    assert_requests(&registry, "GET", "/fails", "500", Some(1.0));
    assert_requests(&registry, "GET", "/busy", "503", Some(1.0));
}

// ------------------------------------------------------- in-flight gauge

#[tokio::test]
async fn in_flight_gauge_counts_a_running_request_and_returns_to_zero() {
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(Some(released)));
    let routes = Router::new().route(
        "/wait",
        get(move || {
            let released = released.lock().ok().and_then(|mut slot| slot.take());
            async move {
                if let Some(released) = released {
                    let _ = released.await;
                }
                "done"
            }
        }),
    );
    let (app, registry) = instrumented(routes);
    let request = get_request("/wait");
    let mut pending = std::pin::pin!(app.clone().oneshot(request));

    assert!(futures::poll!(pending.as_mut()).is_pending());
    let during = in_flight(&registry);
    let _ = release.send(());
    let Ok(response) = pending.await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(during, Some(1.0));
    assert_eq!(in_flight(&registry), Some(0.0));
}

#[tokio::test]
async fn dropped_request_releases_the_in_flight_gauge_and_is_not_counted() {
    let routes = Router::new().route("/hang", get(std::future::pending::<&'static str>));
    let (app, registry) = instrumented(routes);
    assert_dropped_request_is_released_and_not_counted(app, &registry).await;
}

/// Sends `GET /hang` to `app` (whose handler never answers), drops the
/// request while it is pending, and checks what `registry` then shows.
async fn assert_dropped_request_is_released_and_not_counted(app: Router, registry: &Registry) {
    let request = get_request("/hang");
    let mut pending = Box::pin(app.oneshot(request));

    assert!(futures::poll!(pending.as_mut()).is_pending());
    assert_eq!(in_flight(registry), Some(1.0));
    drop(pending);

    assert_eq!(in_flight(registry), Some(0.0));
    assert_eq!(
        label_sets(registry, "http_requests_total"),
        Vec::<Vec<String>>::new()
    );
}

#[tokio::test]
async fn panicking_handler_is_counted_as_500_and_releases_the_gauge() {
    async fn explode() -> &'static str {
        panic!("handler bug (expected by this test)")
    }
    let (app, registry) = instrumented(Router::new().route("/explode", get(explode)));
    assert_panic_is_counted_as_500_and_released(app, &registry).await;
}

/// Sends `GET /explode` to `app` (whose handler panics), catching the
/// panic, and checks what `registry` then shows.
async fn assert_panic_is_counted_as_500_and_released(app: Router, registry: &Registry) {
    let request = get_request("/explode");

    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(app.oneshot(request))).await;

    assert!(outcome.is_err(), "the panic should reach the caller");
    assert_eq!(in_flight(registry), Some(0.0));
    assert_requests(registry, "GET", "/explode", "500", Some(1.0));
}

// --------------------------------------------------------------- duration

/// A handler body on the mock clock `time`: 300 ms to produce the head,
/// another 2 s to produce the body.
async fn slow_head_and_body(time: Arc<quanta::Mock>) -> Body {
    time.increment(Duration::from_millis(300));
    // The body takes another 2 s to produce: not part of the metric.
    Body::from_stream(futures::stream::once(async move {
        time.increment(Duration::from_secs(2));
        Ok::<_, Infallible>("late body")
    }))
}

#[tokio::test]
async fn duration_is_the_time_until_the_response_head_not_the_body() {
    // The layer's clock is a mock that only the handler moves: 300 ms to
    // produce the head, another 2 s to produce the body.
    let (clock, time) = quanta::Clock::mock();
    let routes = Router::new().route("/slow", get(move || slow_head_and_body(time.clone())));
    let (layer, registry) = layer_on_clock(clock);
    let app = routes.layer(layer);

    assert_eq!(get_path(&app, "/slow").await, StatusCode::OK);

    let HistogramSample {
        count,
        sum,
        buckets,
    } = duration(&registry, "GET", "/slow").unwrap_or_else(|| panic!("no histogram series"));
    assert_eq!(count, 1);
    assert!((sum - 0.3).abs() < 1e-6, "observed {sum} s, expected 0.3 s");
    let cumulative = |bound: f64| buckets.iter().find(|(b, _)| *b == bound).map(|(_, c)| *c);
    assert_eq!(cumulative(0.25), Some(0));
    assert_eq!(cumulative(0.5), Some(1));
}

#[tokio::test]
async fn default_buckets_are_prometheus_defaults() {
    let (app, registry) = instrumented(users_routes());
    get_path(&app, "/users/1").await;

    let bounds = bucket_bounds(&registry, "GET", "/users/{id}");

    assert_eq!(
        bounds,
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
    );
}

#[tokio::test]
async fn builder_buckets_replace_the_defaults() {
    let registry = Registry::new();
    let layer = HttpMetricsLayer::builder()
        .buckets(vec![0.001, 0.002, 0.004])
        .build(&registry)
        .unwrap_or_else(|err| panic!("{err}"));
    let app = users_routes().layer(layer);
    get_path(&app, "/users/1").await;

    let bounds = bucket_bounds(&registry, "GET", "/users/{id}");

    assert_eq!(bounds, vec![0.001, 0.002, 0.004]);
}

#[test]
fn unsorted_buckets_are_rejected_before_anything_is_registered() {
    let registry = Registry::new();

    let result = HttpMetricsLayer::builder()
        .buckets(vec![0.5, 0.1])
        .build(&registry);

    assert!(
        matches!(
            result,
            Err(HttpMetricsError::UnsortedBuckets { index: 1, .. })
        ),
        "{result:?}"
    );
    assert!(registry.gather().is_empty());
}

// ------------------------------------------------------------ registration

#[test]
fn a_second_layer_on_the_same_registry_is_refused_with_advice() {
    let registry = Registry::new();
    let first = HttpMetricsLayer::new(&registry);

    let second = HttpMetricsLayer::new(&registry);

    assert!(first.is_ok());
    let message = match second {
        Err(
            err @ HttpMetricsError::Register {
                metric: "http_requests_total",
                ..
            },
        ) => err.to_string(),
        other => panic!("expected a registration error, got {other:?}"),
    };
    assert!(message.contains("clone"), "{message}");
}

#[test]
fn a_conflicting_metric_leaves_nothing_of_the_layer_registered() {
    let registry = Registry::new();
    let squatter = prometheus::IntGauge::new("http_requests_in_flight", "someone else's")
        .unwrap_or_else(|e| panic!("{e}"));
    registry
        .register(Box::new(squatter))
        .unwrap_or_else(|e| panic!("{e}"));

    let result = HttpMetricsLayer::new(&registry);

    assert!(
        matches!(
            result,
            Err(HttpMetricsError::Register {
                metric: "http_requests_in_flight",
                ..
            })
        ),
        "{result:?}"
    );
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    assert_eq!(names, vec!["http_requests_in_flight".to_owned()]);
}

// ------------------------------------------------------------- exposition

#[tokio::test]
async fn rendered_metrics_pass_promtool_check_metrics() {
    let (app, registry) = instrumented(Router::new().nest("/api", users_routes()));
    get_path(&app, "/api/users/1").await;
    send(&app, Method::POST, "/api/users").await;
    get_path(&app, "/missing").await;
    let text = render(&registry);
    assert!(text.contains(r#"route="/api/users/{id}""#), "{text}");

    let Some(promtool) = vigil_testkit::external_tool("promtool") else {
        return;
    };
    let (status, said) =
        promtool_check_metrics(&promtool, text.as_bytes()).unwrap_or_else(|err| panic!("{err:#}"));

    assert_eq!(said, "", "promtool check metrics complained about:\n{text}");
    assert!(status.success());
}

// ------------------------------------------------------------ per handler

/// A layer with a mock clock that nothing moves, so durations are all zero
/// and two registries fed the same requests render the same text.
fn still_clock_layer() -> (HttpMetricsLayer, Registry) {
    let (clock, _time) = quanta::Clock::mock();
    layer_on_clock(clock)
}

/// `users_routes`, nested under /api, with each handler and the 404
/// fallback instrumented on their own.
fn users_routes_per_handler(layer: &HttpMetricsLayer) -> Router {
    let users = Router::new()
        .route("/users/{id}", get(layer.handler(|| async { "a user" })))
        .route(
            "/users",
            post(layer.handler(|| async { StatusCode::CREATED })),
        );
    Router::new()
        .nest("/api", users)
        .fallback(layer.handler(|| async { StatusCode::NOT_FOUND }))
}

#[tokio::test]
async fn per_handler_instrumentation_records_what_the_layer_records() {
    let (layer, layered_registry) = still_clock_layer();
    let layered = Router::new().nest("/api", users_routes()).layer(layer);
    let (layer, per_handler_registry) = still_clock_layer();
    let per_handler = users_routes_per_handler(&layer);
    let requests = [
        (Method::GET, "/api/users/1"),
        (Method::GET, "/api/users/2"),
        (Method::HEAD, "/api/users/3"),
        (Method::POST, "/api/users"),
        (Method::GET, "/missing"),
        (Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET), "/x"),
    ];

    for (method, path) in requests {
        let by_layer = send(&layered, method.clone(), path).await;
        let by_handler = send(&per_handler, method.clone(), path).await;
        assert_eq!(by_layer, by_handler, "{method} {path}");
    }

    let text = render(&per_handler_registry);
    assert!(text.contains(r#"route="/api/users/{id}""#), "{text}");
    assert!(
        text.contains(r#"method="other",route="unmatched""#),
        "{text}"
    );
    assert_eq!(text, render(&layered_registry));
}

#[tokio::test]
async fn per_handler_instrumentation_does_not_see_methods_a_route_does_not_serve() {
    // The 405 comes from axum's method router, outside any handler: only
    // the layer counts it (documented in the module docs).
    let (layer, registry) = still_clock_layer();
    let app = users_routes_per_handler(&layer);

    assert_eq!(
        send(&app, Method::DELETE, "/api/users/1").await,
        StatusCode::METHOD_NOT_ALLOWED
    );

    assert_eq!(
        label_sets(&registry, "http_requests_total"),
        Vec::<Vec<String>>::new()
    );
}

#[tokio::test]
async fn per_handler_duration_is_the_time_until_the_response_head() {
    let (clock, time) = quanta::Clock::mock();
    let (layer, registry) = layer_on_clock(clock);
    let app = Router::new().route(
        "/slow",
        get(layer.handler(move || slow_head_and_body(time.clone()))),
    );

    assert_eq!(get_path(&app, "/slow").await, StatusCode::OK);

    let sample = duration(&registry, "GET", "/slow").unwrap_or_else(|| panic!("no series"));
    assert_eq!(sample.count, 1);
    assert!(
        (sample.sum - 0.3).abs() < 1e-6,
        "observed {} s, expected 0.3 s",
        sample.sum
    );
}

#[tokio::test]
async fn per_handler_panic_is_counted_as_500_and_releases_the_gauge() {
    async fn explode() -> &'static str {
        panic!("handler bug (expected by this test)")
    }
    let (layer, registry) = still_clock_layer();
    let app = Router::new().route("/explode", get(layer.handler(explode)));
    assert_panic_is_counted_as_500_and_released(app, &registry).await;
}

#[tokio::test]
async fn dropped_per_handler_request_releases_the_gauge_and_is_not_counted() {
    let (layer, registry) = still_clock_layer();
    let app = Router::new().route(
        "/hang",
        get(layer.handler(std::future::pending::<&'static str>)),
    );
    assert_dropped_request_is_released_and_not_counted(app, &registry).await;
}

/// `GET /metrics` on the three-line setup, with `accept_encoding` if any:
/// status, `Content-Type`, `Content-Encoding` and the body, unzipped.
async fn scrape_pair_app(
    app: &Router,
    accept_encoding: Option<&str>,
) -> (StatusCode, String, Option<String>, String) {
    let mut request = Request::get("/metrics");
    if let Some(accept) = accept_encoding {
        request = request.header("accept-encoding", accept);
    }
    let request = request
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let Ok(response) = app.clone().oneshot(request).await;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let content_type = header("content-type").unwrap_or_default();
    let encoding = header("content-encoding");
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("cannot read the body: {e}"))
        .to_bytes();
    let mut body = String::new();
    let read = if encoding.as_deref() == Some("gzip") {
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut body)
    } else {
        std::io::Read::read_to_string(&mut &bytes[..], &mut body)
    };
    read.unwrap_or_else(|e| panic!("the body is not (gzipped) UTF-8 text: {e}"));
    (status, content_type, encoding, body)
}

#[tokio::test]
async fn the_three_line_setup_serves_route_templates_on_metrics_gzipped_when_asked() {
    let (layer, metrics) = HttpMetricsLayer::pair();
    let app = users_routes()
        .route("/metrics", metrics.route())
        .layer(layer);
    assert_eq!(get_path(&app, "/users/42").await, StatusCode::OK);

    let (status, content_type, encoding, plain) = scrape_pair_app(&app, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(encoding, None);
    assert!(
        plain
            .contains("http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 1"),
        "{plain}"
    );
    assert!(!plain.contains("/users/42"), "a raw path leaked: {plain}");
    assert!(
        metrics
            .render()
            .contains("route=\"/metrics\",status=\"200\"} 1"),
        "render() shows the scrape just answered"
    );

    let (status, _, encoding, unzipped) = scrape_pair_app(&app, Some("br, gzip")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(unzipped.contains("route=\"/users/{id}\""), "{unzipped}");
}
