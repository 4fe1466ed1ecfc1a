//! Overhead of the HTTP metrics layer: the same small axum app driven
//! in-process (no socket) without a layer, with a do-nothing layer, with
//! `vigil_exporter::http_metrics::HttpMetricsLayer`, and with the
//! `axum-prometheus` crate's layer. Results go to BENCHMARKS.md.
//!
//! Run: `cargo bench -p vigil-exporter --bench http_metrics -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::BodyExt;
use tower::util::MapRequestLayer;
use tower::ServiceExt;
use vigil_exporter::http_metrics::HttpMetricsLayer;

/// The app under test: a static route, a route with a path parameter, and
/// the default 404 fallback.
fn app() -> Router {
    Router::new().route("/", get(|| async { "ok" })).route(
        "/users/{id}",
        get(|Path(id): Path<u64>| async move { format!("user {id}") }),
    )
}

/// The request mix of one iteration: mostly the parameterised route, some
/// root, one unmatched path.
const PATHS: [&str; 4] = ["/users/1", "/users/42", "/", "/nope"];

async fn drive(app: &Router) {
    for path in PATHS {
        let request = Request::get(path).body(Body::empty());
        let Ok(request) = request else { continue };
        let Ok(response) = app.clone().oneshot(request).await;
        // Consume the body so that layers that record at end of stream do
        // their work inside the measurement too.
        let body = response.into_body().collect().await;
        black_box(body.map(|collected| collected.to_bytes().len()).ok());
    }
}

fn bench_layers(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => panic!("cannot build a tokio runtime for the bench: {err}"),
    };

    let bare = app();
    // A layer that does nothing, added the same way (`Router::layer`): what
    // axum itself charges for any per-route layer (re-boxing each route and
    // its future), so the metrics work can be told apart from the plumbing.
    let passthrough = app().layer(MapRequestLayer::new(|request: Request<Body>| request));
    let registry = prometheus::Registry::new();
    let ours = match HttpMetricsLayer::new(&registry) {
        Ok(layer) => app().layer(layer),
        Err(err) => panic!("cannot build HttpMetricsLayer: {err}"),
    };
    // `pair` installs the process-wide `metrics` recorder, without which the
    // axum-prometheus layer would record into a no-op recorder; it spawns an
    // upkeep task, hence the runtime context.
    let _runtime_context = runtime.enter();
    let (their_layer, their_handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let theirs = app().layer(their_layer);

    let mut group = c.benchmark_group("http_metrics_4_requests");
    group.bench_function("no_layer", |b| b.to_async(&runtime).iter(|| drive(&bare)));
    group.bench_function("passthrough_layer", |b| {
        b.to_async(&runtime).iter(|| drive(&passthrough))
    });
    group.bench_function("vigil_http_metrics_layer", |b| {
        b.to_async(&runtime).iter(|| drive(&ours))
    });
    group.bench_function("axum_prometheus_layer", |b| {
        b.to_async(&runtime).iter(|| drive(&theirs))
    });
    group.finish();

    // Proof that both layers really recorded (a no-op layer would make the
    // comparison meaningless).
    let ours_total: u64 = registry
        .gather()
        .iter()
        .filter(|family| family.name() == "http_requests_total")
        .flat_map(|family| family.get_metric())
        .map(|metric| metric.get_counter().get_value() as u64)
        .sum();
    let theirs_rendered = their_handle.render();
    eprintln!(
        "recorded by vigil layer: {ours_total} requests; axum-prometheus output has {} lines",
        theirs_rendered.lines().count()
    );
    assert!(ours_total > 0, "the vigil layer recorded nothing");
    assert!(
        theirs_rendered.contains("axum_http_requests_total"),
        "axum-prometheus recorded nothing"
    );
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
