//! An axum app instrumented with the HTTP-metrics layer in three lines: a
//! route with a path parameter, a nested router, a fallback, and
//! `/metrics`. Run it with `cargo run -p vigil-exporter --example axum_app`,
//! then `curl localhost:3000/users/7` and `curl localhost:3000/metrics`:
//! the requests are counted under `route="/users/{id}"`, never the raw path.
//! An address other than 127.0.0.1:3000 can be given as the argument.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use vigil_exporter::http_metrics::HttpMetricsLayer;

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}\n")
}

fn app() -> Router {
    let api = Router::new().route("/orders/{order}", get(|| async { "an order\n" }));
    // The three lines: a layer and its /metrics route, the layer last.
    let (layer, metrics) = HttpMetricsLayer::pair();
    Router::new()
        .route("/users/{id}", get(user))
        .nest("/api", api)
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page\n") })
        .route("/metrics", metrics.route())
        .layer(layer)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_string());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app()).await
}
