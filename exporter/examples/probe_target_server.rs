//! The healthy targets of the probing bench (`benches/probing.sh`): answers
//! `GET /t/{id}` with 200 for any id, so one process stands for thousands of
//! probed URLs, and counts the requests per prober (by `User-Agent`), so
//! the bench knows how many probes each prober really completed. Not part
//! of the product.
//!
//! Usage: `probe_target_server [ADDR]` (default `127.0.0.1:0`). Prints
//! `listening on ADDR` once bound. `GET /counts` answers one line per
//! prober: `vigil N`, `blackbox N`, `other N`. Stops on SIGTERM or ctrl-c.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::Router;

#[path = "support/serve.rs"]
mod serve;
use serve::{addr_arg, block_on, serve_until_stopped};

/// Requests served, by prober.
#[derive(Debug, Default)]
struct Counts {
    vigil: AtomicU64,
    blackbox: AtomicU64,
    other: AtomicU64,
}

async fn target(State(counts): State<Arc<Counts>>, headers: HeaderMap) -> &'static str {
    let agent = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let counter = if agent.starts_with("vigil-exporter") {
        &counts.vigil
    } else if agent.starts_with("Blackbox Exporter") {
        &counts.blackbox
    } else {
        &counts.other
    };
    counter.fetch_add(1, Ordering::Relaxed);
    "ok\n"
}

async fn report(State(counts): State<Arc<Counts>>) -> String {
    format!(
        "vigil {}\nblackbox {}\nother {}\n",
        counts.vigil.load(Ordering::Relaxed),
        counts.blackbox.load(Ordering::Relaxed),
        counts.other.load(Ordering::Relaxed)
    )
}

fn main() -> anyhow::Result<()> {
    let addr = addr_arg(std::env::args().nth(1))?;
    block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let router = Router::new()
        .route("/t/{id}", get(target))
        .route("/counts", get(report))
        .with_state(Arc::new(Counts::default()));
    serve_until_stopped(addr, router).await
}
