//! Instrumenting single handlers instead of the whole router: the same
//! metrics as the layer, without the second boxing of every route that
//! `Router::layer` costs in axum.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::handler::Handler;
use axum::response::Response;
use pin_project_lite::pin_project;

use super::labels::MethodLabel;
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
        let method = MethodLabel::of(request.method());
        let matched = request.extensions().get::<MatchedPath>();
        let mut guard = InFlight::start(self.routes.recorder(matched, method));
        // As in the layer: a panic inside the handler's synchronous part is
        // recorded like one during `poll`.
        guard.inside_inner = true;
        let inner = self.handler.call(request, state);
        guard.inside_inner = false;
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
        this.guard.inside_inner = true;
        let poll = this.inner.poll(cx);
        this.guard.inside_inner = false;
        if let Poll::Ready(response) = &poll {
            this.guard.finish(response.status());
        }
        poll
    }
}
