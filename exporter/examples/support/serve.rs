//! What the bench servers in `examples/` share: the `[ADDR]` argument, a
//! multi-threaded tokio runtime, and serving a router on ADDR, printing
//! `listening on ADDR` once bound, until SIGTERM or ctrl-c.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::signal::unix::{signal, SignalKind};

/// The `[ADDR]` argument, `127.0.0.1:0` when absent.
pub fn addr_arg(arg: Option<String>) -> anyhow::Result<SocketAddr> {
    arg.unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()
        .context("ADDR must be IP:PORT, e.g. 127.0.0.1:0")
}

/// Runs `main` to completion on a multi-threaded tokio runtime.
pub fn block_on(main: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(main)
}

/// Serves `router` on `addr` until SIGTERM or ctrl-c.
pub async fn serve_until_stopped(addr: SocketAddr, router: Router) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on {}", listener.local_addr()?);
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await
        .context("server failed")
}
