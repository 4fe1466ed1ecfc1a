//! Instrumenting single handlers instead of the whole router: the same
//! metrics as the layer, without the second boxing of every route that
//! `Router::layer` costs in axum.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::handler::Handler;
use axum::response::Response;
use pin_project_lite::pin_project;

use super::routes::RouteTable;
use super::service::InFlight;

/// A handler that records its requests in an [`HttpMetricsLayer`]'s
/// metrics; made by [`HttpMetricsLayer::handler`].
///
/// [`HttpMetricsLayer`]: super::HttpMetricsLayer
/// [`HttpMetricsLayer::handler`]: super::HttpMetricsLayer::handler
pub struct MeteredHandler<H> {
    handler: H,
    routes: &'static RouteTable,
}

impl<H> MeteredHandler<H> {
    pub(super) fn new(handler: H, routes: &'static RouteTable) -> Self {
        Self { handler, routes }
    }
}

impl<H: Clone> Clone for MeteredHandler<H> {
    fn clone(&self) -> Self {
        Self {
            handler: self.handler.clone(),
            routes: self.routes,
        }
    }
}

impl<H, T, S> Handler<T, S> for MeteredHandler<H>
where
    H: Handler<T, S>,
{
    type Future = MeteredFuture<H::Future>;

    fn call(self, request: Request, state: S) -> Self::Future {
        let mut guard = InFlight::enter(self.routes, &request);
        // As in the layer: a panic inside the handler's synchronous part is
        // recorded like one during `poll`.
        let inner = guard.inside(|| self.handler.call(request, state));
        MeteredFuture { inner, guard }
    }
}

pin_project! {
    /// Response future of [`MeteredHandler`].
    pub struct MeteredFuture<F> {
        #[pin]
        inner: F,
        guard: InFlight,
    }
}

impl<F> Future for MeteredFuture<F>
where
    F: Future<Output = Response>,
{
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = this.guard.inside(|| this.inner.poll(cx));
        if let Poll::Ready(response) = &poll {
            this.guard.finish(response.status());
        }
        poll
    }
}
