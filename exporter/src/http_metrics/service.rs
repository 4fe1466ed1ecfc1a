//! The tower service the layer wraps around each route, and the response
//! future that records a request when its response head is ready and
//! releases the in-flight gauge whenever it is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::Service;

use super::labels::MethodLabel;
use super::routes::{Recorder, RouteTable};

/// The service produced by [`HttpMetricsLayer`](super::HttpMetricsLayer).
/// axum clones it for every request, so it holds nothing with a reference
/// count: its inner service and a reference to the layer's table.
pub struct HttpMetricsService<S> {
    inner: S,
    routes: &'static RouteTable,
}

impl<S> HttpMetricsService<S> {
    pub(super) fn new(inner: S, routes: &'static RouteTable) -> Self {
        Self { inner, routes }
    }
}

impl<S: Clone> Clone for HttpMetricsService<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            routes: self.routes,
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let mut guard = InFlight::enter(self.routes, &request);
        // The inner service may run handler code synchronously in `call`; a
        // panic there must be recorded like one during `poll`.
        let inner = guard.inside(|| self.inner.call(request));
        ResponseFuture { inner, guard }
    }
}

pin_project! {
    /// Response future of [`HttpMetricsService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: InFlight,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let poll = this.guard.inside(|| this.inner.poll(cx));
        if let Poll::Ready(Ok(response)) = &poll {
            this.guard.finish(response.status());
        }
        poll
    }
}

/// One request between entering the layer and being dropped.
pub(super) struct InFlight {
    recorder: Recorder,
    // Raw reading of the layer's clock (TSC ticks where the CPU has an
    // invariant TSC), converted to seconds only once, at the end.
    start: u64,
    // True while control is inside the inner service. Still true in `drop`
    // means the inner call or poll never returned: it panicked. (Checking
    // `thread::panicking()` would not do: whoever catches the panic, e.g.
    // `CatchPanicLayer`, drops this future only after unwinding ended.)
    inside_inner: bool,
    finished: bool,
}

impl InFlight {
    /// `request` enters: it records under its route template and method
    /// from now on.
    pub(super) fn enter<B>(routes: &'static RouteTable, request: &Request<B>) -> Self {
        let method = MethodLabel::of(request.method());
        let recorder = routes.recorder(request.extensions().get::<MatchedPath>(), method);
        recorder.start();
        let start = recorder.clock().raw();
        Self {
            recorder,
            start,
            inside_inner: false,
            finished: false,
        }
    }

    /// The response head is ready with `status`: counts the request and
    /// observes its duration (once, however often it is called).
    pub(super) fn finish(&mut self, status: StatusCode) {
        if self.finished {
            return;
        }
        self.finished = true;
        let clock = self.recorder.clock();
        let nanos = clock.delta_as_nanos(self.start, clock.raw());
        #[allow(clippy::cast_precision_loss)]
        let seconds = nanos as f64 / 1e9;
        self.recorder.record(status, seconds);
    }

    /// Runs `inner_work` (a call or poll of the inner service or handler)
    /// marked as inside it, so that a panic out of it is counted by `drop`.
    pub(super) fn inside<R>(&mut self, inner_work: impl FnOnce() -> R) -> R {
        self.inside_inner = true;
        let result = inner_work();
        self.inside_inner = false;
        result
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.inside_inner {
            self.finish(StatusCode::INTERNAL_SERVER_ERROR);
        }
        self.recorder.end();
    }
}
