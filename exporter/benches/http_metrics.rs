//! Overhead of the HTTP metrics layer: the same small axum app driven
//! in-process (no socket) without a layer, with a do-nothing layer, with
//! `vigil_exporter::http_metrics::HttpMetricsLayer` (added with
//! `Router::layer`, and per handler with `HttpMetricsLayer::handler`), and
//! with the `axum-prometheus` crate's layer. Results go to BENCHMARKS.md.
//!
//! Run: `cargo bench -p vigil-exporter --bench http_metrics -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use futures::FutureExt;
use http::Request;
use http_body_util::BodyExt;
use tower::util::MapRequestLayer;
use tower::{service_fn, Layer, ServiceExt};
use vigil_exporter::http_metrics::HttpMetricsLayer;

#[path = "support/bench_app.rs"]
mod bench_app;
use bench_app::{app, app_per_handler};

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

/// A current-thread tokio runtime to drive the requests on.
fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => panic!("cannot build a tokio runtime for the bench: {err}"),
    }
}

/// An `HttpMetricsLayer` recording into `registry`.
fn metrics_layer(registry: &prometheus::Registry) -> HttpMetricsLayer {
    match HttpMetricsLayer::new(registry) {
        Ok(layer) => layer,
        Err(err) => panic!("cannot build HttpMetricsLayer: {err}"),
    }
}

fn bench_layers(c: &mut Criterion) {
    let runtime = runtime();

    let bare = app();
    // A layer that does nothing, added the same way (`Router::layer`): what
    // axum itself charges for any per-route layer (re-boxing each route and
    // its future), so the metrics work can be told apart from the plumbing.
    let passthrough = app().layer(MapRequestLayer::new(|request: Request<Body>| request));
    let registry = prometheus::Registry::new();
    let ours = app().layer(metrics_layer(&registry));
    let per_handler_registry = prometheus::Registry::new();
    let per_handler = app_per_handler(&metrics_layer(&per_handler_registry));
    // `pair` installs the process-wide `metrics` recorder, without which the
    // axum-prometheus layer would record into a no-op recorder; it spawns an
    // upkeep task, hence the runtime context.
    let _runtime_context = runtime.enter();
    let (their_layer, their_handle) = axum_prometheus::PrometheusMetricLayer::pair();
    let theirs = app().layer(their_layer);

    // Before measuring, proof that both layers really record (a layer
    // recording nothing would make the comparison meaningless).
    runtime.block_on(drive(&ours));
    runtime.block_on(drive(&theirs));
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
    assert_eq!(
        ours_total,
        PATHS.len() as u64,
        "the vigil layer must count every request"
    );
    assert!(
        theirs_rendered.contains("axum_http_requests_total"),
        "axum-prometheus recorded nothing"
    );

    let mut group = c.benchmark_group("http_metrics_4_requests");
    group.bench_function("no_layer", |b| b.to_async(&runtime).iter(|| drive(&bare)));
    group.bench_function("passthrough_layer", |b| {
        b.to_async(&runtime).iter(|| drive(&passthrough))
    });
    group.bench_function("vigil_http_metrics_layer", |b| {
        b.to_async(&runtime).iter(|| drive(&ours))
    });
    group.bench_function("vigil_per_handler", |b| {
        b.to_async(&runtime).iter(|| drive(&per_handler))
    });
    group.bench_function("axum_prometheus_layer", |b| {
        b.to_async(&runtime).iter(|| drive(&theirs))
    });
    group.finish();
}

/// A real `MatchedPath` for `template`, taken from a request axum routed:
/// the type cannot be built outside axum.
fn matched_path(runtime: &tokio::runtime::Runtime, template: &str, path: &str) -> MatchedPath {
    let slot: Arc<Mutex<Option<MatchedPath>>> = Arc::default();
    let handler_slot = Arc::clone(&slot);
    let router = Router::new().route(
        template,
        get(move |matched: MatchedPath| {
            if let Ok(mut slot) = handler_slot.lock() {
                *slot = Some(matched);
            }
            async {}
        }),
    );
    let request = match Request::get(path).body(Body::empty()) {
        Ok(request) => request,
        Err(err) => panic!("bad bench request {path}: {err}"),
    };
    let Ok(_) = runtime.block_on(router.oneshot(request));
    let taken = slot.lock().ok().and_then(|mut slot| slot.take());
    taken.unwrap_or_else(|| panic!("{path} did not match {template}"))
}

/// The layer alone around a service that answers at once, without axum's
/// routing: the per-request cost of the metrics work itself, in a loop short
/// enough to suffer less from the noise of a shared machine.
fn bench_layer_alone(c: &mut Criterion) {
    let runtime = runtime();
    let matched = matched_path(&runtime, "/users/{id}", "/users/42");
    let answer = service_fn(|_request: Request<Body>| async {
        Ok::<_, Infallible>(http::Response::new(Body::empty()))
    });
    let registry = prometheus::Registry::new();
    let layer = metrics_layer(&registry);
    let instrumented = layer.layer(answer);

    let request = || {
        let mut request = Request::new(Body::empty());
        request.extensions_mut().insert(matched.clone());
        request
    };
    let mut group = c.benchmark_group("layer_alone_1_request");
    group.bench_function("no_layer", |b| {
        b.iter(|| black_box(answer.oneshot(request()).now_or_never()))
    });
    group.bench_function("vigil_http_metrics_layer", |b| {
        b.iter(|| black_box(instrumented.clone().oneshot(request()).now_or_never()))
    });
    group.finish();
}

criterion_group!(benches, bench_layers, bench_layer_alone);
criterion_main!(benches);
