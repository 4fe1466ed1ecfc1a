//! The axum app of the middleware load bench (`benches/middleware.sh`,
//! driven by `wrk`): one app, served as-is, with Vigil's
//! `HttpMetricsLayer`, or with `axum-prometheus`'s layer, so the three can be
//! compared over real sockets. Not part of the product.
//!
//! Usage: `middleware_bench_server none|noop-layer|vigil|vigil-handler|axum-prometheus [ADDR]`
//! (`vigil-handler`: Vigil's metrics applied per handler with
//! `HttpMetricsLayer::handler` instead of `Router::layer`)
//! (ADDR defaults to `127.0.0.1:0`). Prints `listening on ADDR` once bound,
//! serves `GET /`, `GET /users/{id}` and `GET /metrics` (the layer's own
//! metrics, so the bench can check that the layer recorded the load) until
//! SIGTERM or ctrl-c. The tokio runtime uses as many workers as the process
//! may use cores, so `taskset -c 0` gives it one.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};
use vigil_exporter::http_metrics::HttpMetricsLayer;

#[path = "../benches/support/bench_app.rs"]
mod bench_app;
use bench_app::{app, app_per_handler};

#[path = "support/serve.rs"]
mod serve;
use serve::{addr_arg, block_on, serve_until_stopped};

/// `GET /metrics` serving `registry`.
fn metrics_route(registry: Registry) -> axum::routing::MethodRouter {
    get(move || {
        let registry = registry.clone();
        async move {
            let mut text = Vec::new();
            let encoded = TextEncoder::new().encode(&registry.gather(), &mut text);
            match encoded {
                Ok(()) => String::from_utf8_lossy(&text).into_owned(),
                Err(error) => format!("# encoding failed: {error}\n"),
            }
        }
    })
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let variant = args.next().context(
        "usage: middleware_bench_server none|noop-layer|vigil|vigil-handler|axum-prometheus [ADDR]",
    )?;
    let addr = addr_arg(args.next())?;
    block_on(serve(&variant, addr))
}

async fn serve(variant: &str, addr: SocketAddr) -> anyhow::Result<()> {
    let router = match variant {
        "none" => app().route("/metrics", get(|| async { "" })),
        "vigil" => {
            let registry = Registry::new();
            let layer =
                HttpMetricsLayer::new(&registry).context("cannot build HttpMetricsLayer")?;
            // /metrics is outside the layer, so reading it is not counted.
            app()
                .layer(layer)
                .route("/metrics", metrics_route(registry))
        }
        "vigil-handler" => {
            let registry = Registry::new();
            let layer =
                HttpMetricsLayer::new(&registry).context("cannot build HttpMetricsLayer")?;
            app_per_handler(&layer).route("/metrics", metrics_route(registry))
        }
        "noop-layer" => {
            // A layer that does nothing: what wrapping each route through
            // `Router::layer` costs by itself, whatever the layer does.
            app()
                .layer(tower::layer::layer_fn(|service| service))
                .route("/metrics", get(|| async { "" }))
        }
        "axum-prometheus" => {
            // `pair` installs the process-wide recorder, so the layer records
            // into a real Prometheus recorder rather than a no-op one.
            let (layer, handle) = axum_prometheus::PrometheusMetricLayer::pair();
            app()
                .layer(layer)
                .route("/metrics", get(move || async move { handle.render() }))
        }
        other => {
            bail!(
                "unknown variant {other:?}: expected none, noop-layer, vigil, vigil-handler \
                 or axum-prometheus"
            )
        }
    };
    serve_until_stopped(addr, router).await
}
