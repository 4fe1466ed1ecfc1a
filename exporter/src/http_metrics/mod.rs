//! HTTP metrics for any axum app: a tower layer that counts requests, times
//! them and tracks requests in flight, labelled by *route template* so that the
//! number of series stays bounded whatever URLs clients send.
//!
//! # Adding it
//!
//! [`HttpMetricsLayer::pair`] gives the layer and a [`MetricsHandle`] on a
//! registry of their own; the layer is the last call on the router (after
//! every `route`, `nest`, `merge` and `fallback`):
//!
//! ```
//! use axum::{routing::get, Router};
//! use vigil_exporter::http_metrics::HttpMetricsLayer;
//!
//! let (layer, metrics) = HttpMetricsLayer::pair();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .route("/metrics", metrics.route())
//!     .layer(layer);
//! # let _ = app;
//! ```
//!
//! `metrics.route()` answers with every metric of the registry in the text
//! exposition format, gzip-compressed when the client accepts it; register
//! your own metrics in `metrics.registry()`. To use a registry you already
//! have, build the two from it:
//!
//! ```
//! use axum::{routing::get, Router};
//! use vigil_exporter::http_metrics::{HttpMetricsLayer, MetricsHandle};
//! use vigil_exporter::prometheus::Registry;
//!
//! # fn main() -> Result<(), vigil_exporter::http_metrics::HttpMetricsError> {
//! let registry = Registry::new();
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .route("/metrics", MetricsHandle::new(registry.clone()).route())
//!     .layer(HttpMetricsLayer::new(&registry)?);
//! # Ok(()) }
//! ```
//!
//! Why `Router::layer` and not `route_layer`: axum 0.8 applies a
//! `Router::layer` to every route *and* to the fallback, and it runs *after*
//! routing, so the layer sees the matched route template
//! ([`axum::extract::MatchedPath`]) for matched requests and sees unmatched
//! requests too. A `route_layer` is never called for unmatched requests, so
//! 404s would go uncounted. Three consequences to keep in mind:
//!
//! - Routes and fallbacks added *after* `.layer(...)` are not instrumented:
//!   add the layer last.
//! - Add it once, on the outermost router. Adding it to a nested router and
//!   again to its parent counts every request twice (and the second
//!   [`HttpMetricsLayer::new`] on the same registry fails anyway: build one
//!   layer and clone it if several routers share a registry).
//! - Wrapping the whole router from the outside (`ServiceBuilder::new()
//!   .layer(..).service(router)`) runs before routing: every request would be
//!   `route="unmatched"`. Likewise requests into a service mounted with
//!   `nest_service` carry no route template (axum only records it for
//!   `nest`ed routers) and fold into `unmatched`.
//!
//! # Per handler, for the hottest routes
//!
//! `Router::layer` makes axum box every route a second time, which costs
//! more per request than the metrics work itself, whatever the layer does
//! (measured in `BENCHMARKS.md`). Where that matters, instrument handlers one by one instead:
//! [`HttpMetricsLayer::handler`] wraps a handler so it records the same
//! series, with no extra boxing. Add it to every handler and to the
//! fallback, and do not also add the layer to the router (requests would be
//! counted twice):
//!
//! ```
//! use axum::{http::StatusCode, routing::get, Router};
//! use vigil_exporter::http_metrics::HttpMetricsLayer;
//!
//! # fn main() -> Result<(), vigil_exporter::http_metrics::HttpMetricsError> {
//! let registry = vigil_exporter::prometheus::Registry::new();
//! let metrics = HttpMetricsLayer::new(&registry)?;
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(metrics.handler(|| async { "a user" })))
//!     .fallback(metrics.handler(|| async { StatusCode::NOT_FOUND }));
//! # Ok(()) }
//! ```
//!
//! Route templates, method and status labels, durations, panics and
//! cancellations are recorded exactly as by the layer, with one gap: a
//! request whose method the route does not serve is answered `405` by axum's
//! method router before any handler runs, so it is not counted (nor is
//! anything a handler without the wrapper answers).
//!
//! # Metrics
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `http_requests_total` | counter | `method`, `route`, `status` |
//! | `http_request_duration_seconds` | histogram | `method`, `route` |
//! | `http_requests_in_flight` | gauge | none |
//!
//! # Label values and folding rules
//!
//! - `route` is the route template as written in the router, e.g.
//!   `/users/{id}`, never the raw path; nested routers give the full template
//!   (`/api/users/{id}`).
//! - Every request that matched no route (the 404 fallback, or a custom
//!   `fallback`) gets the single value `route="unmatched"` ([`UNMATCHED_ROUTE`]),
//!   so a scanner probing thousands of URLs adds one series, not thousands.
//!   Templates always start with `/`, so the value cannot collide with one.
//! - `method` is one of `GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH`;
//!   any other method (WebDAV's `PROPFIND`, made-up ones) is `method="other"`
//!   ([`OTHER_METHOD`]).
//! - `status` is the three-digit response status code, e.g. `200`, `404`.
//!   A handler returning an error type that implements `IntoResponse` is
//!   counted with the status that error renders to (usually `500`); a request
//!   whose method the route does not serve is counted with `405` under the
//!   route's template.
//!
//! # When the duration is observed
//!
//! The histogram observes the time from the moment the layer receives the
//! request until the inner service returns the response *head* (status and
//! headers), not until the body is fully sent. That is the server's latency
//! to answer, and it does not depend on how fast the client reads a large or
//! streamed body. The clock is a [`quanta::Clock`]: the CPU's time-stamp
//! counter where it is invariant (cheaper to read than the OS clock on a
//! VM), the OS monotonic clock otherwise. Tests give the
//! layer a mock clock with [`HttpMetricsLayerBuilder::clock`].
//!
//! # Cancelled requests and panics
//!
//! `http_requests_in_flight` is incremented when a request enters the layer
//! and decremented when its future is dropped, whatever the way out: response,
//! cancellation (client gone, an outer timeout), or a panic unwinding through
//! the layer. So the gauge cannot leak.
//!
//! - A cancelled request has no status: it is not counted in
//!   `http_requests_total` nor observed in the histogram.
//! - A handler panic that unwinds through the layer (e.g. caught by an outer
//!   `CatchPanicLayer`, which answers 500) is counted with `status="500"` and
//!   its duration observed. The layer does not catch panics itself.
//! - An error from the inner service (impossible with axum, whose services are
//!   infallible) is treated like a cancellation.
//!
//! # Buckets
//!
//! The histogram uses Prometheus' default buckets ([`DEFAULT_BUCKETS`], 5 ms to
//! 10 s) unless you choose others:
//!
//! ```
//! # use vigil_exporter::http_metrics::HttpMetricsLayer;
//! # fn main() -> Result<(), vigil_exporter::http_metrics::HttpMetricsError> {
//! # let registry = prometheus::Registry::new();
//! let layer = HttpMetricsLayer::builder()
//!     .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0])
//!     .build(&registry)?;
//! # Ok(()) }
//! ```
//!
//! Upper bounds are in seconds, finite and strictly increasing; `+Inf` is
//! always added.
//!
//! # Cost
//!
//! A request takes no lock, makes no allocation and executes no atomic
//! read-modify-write instruction in the usual case: every thread that records
//! owns a slot of per-thread cells and adds to them with a plain load and
//! store; a scrape sums the slots. The request's route and cells are found in
//! a per-thread cache by the address of axum's template string; only the
//! first request of a route on a thread (and a request on a route whose
//! template axum builds per request, inside a nested router) goes through
//! the shared map. What is left is two clock readings, the bucket search and
//! a few plain adds (measured by the `layer_alone` group of
//! `exporter/benches/http_metrics.rs`; figures in `BENCHMARKS.md`). The tables of
//! a layer live until the process exits (about 1 KB per route and method
//! served, plus a small slot per thread that served it), so build the layer
//! once and clone it.
//!
//! What the layer costs in throughput under `wrk`, against no layer, a
//! do-nothing layer, per-handler instrumentation and `axum-prometheus`, is
//! in `BENCHMARKS.md` at the workspace root, with the command
//! (`benches/middleware.sh`).

mod cells;
mod collect;
mod endpoint;
mod handler;
mod labels;
mod routes;
mod service;

use prometheus::Registry;
use tower::Layer;

pub use endpoint::{MetricsHandle, METRICS_CONTENT_TYPE};
pub use handler::{MeteredFuture, MeteredHandler};
pub use labels::{OTHER_METHOD, UNMATCHED_ROUTE};
pub use service::{HttpMetricsService, ResponseFuture};

use collect::{Family, FamilyCollector};
use routes::RouteTable;

/// Name of the request counter.
pub const REQUESTS_TOTAL: &str = "http_requests_total";
/// Name of the request duration histogram.
pub const REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// Name of the in-flight requests gauge.
pub const REQUESTS_IN_FLIGHT: &str = "http_requests_in_flight";

/// Prometheus' default histogram buckets, in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why the layer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpMetricsError {
    /// The bucket list is empty.
    #[error(
        "{REQUEST_DURATION_SECONDS} buckets: the list is empty; give at least one upper bound \
         in seconds, e.g. HttpMetricsLayer::builder().buckets(vec![0.1, 0.5, 1.0]), \
         or leave the default"
    )]
    EmptyBuckets,
    /// A bucket bound is NaN or infinite.
    #[error(
        "{REQUEST_DURATION_SECONDS} buckets: bucket #{index} is {value}, but upper bounds \
         must be finite numbers of seconds; remove it (+Inf is always added)"
    )]
    NonFiniteBucket {
        /// Position in the list, from 0.
        index: usize,
        /// The offending bound.
        value: f64,
    },
    /// Bucket bounds are not strictly increasing.
    #[error(
        "{REQUEST_DURATION_SECONDS} buckets: bucket #{index} ({value}) is not greater than \
         the one before it ({previous}); list upper bounds in strictly increasing order \
         without duplicates"
    )]
    UnsortedBuckets {
        /// Position in the list, from 0.
        index: usize,
        /// The offending bound.
        value: f64,
        /// The bound before it.
        previous: f64,
    },
    /// The registry refused a metric, usually because one with the same name
    /// is already registered.
    #[error(
        "cannot register {metric} in the Prometheus registry: {reason}; a registry can hold \
         one HttpMetricsLayer: build it once and clone it for every router that shares the \
         registry, and do not register another metric named {metric}"
    )]
    Register {
        /// The metric that could not be registered.
        metric: &'static str,
        /// What the registry said.
        reason: prometheus::Error,
    },
}

/// Tower layer recording HTTP metrics for an axum router; see the module docs.
///
/// Cheap to clone: clones share the same metrics.
#[derive(Clone)]
pub struct HttpMetricsLayer {
    routes: &'static RouteTable,
}

impl std::fmt::Debug for HttpMetricsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetricsLayer").finish_non_exhaustive()
    }
}

impl HttpMetricsLayer {
    /// Registers the metrics in `registry` with default buckets.
    pub fn new(registry: &Registry) -> Result<Self, HttpMetricsError> {
        Self::builder().build(registry)
    }

    /// The layer and the [`MetricsHandle`] serving its metrics, on a
    /// registry of their own (the three-line setup in the module docs).
    #[must_use]
    pub fn pair() -> (HttpMetricsLayer, MetricsHandle) {
        let registry = Registry::new();
        // A fresh registry holds no metric the layer's could collide with,
        // and the default buckets are valid: building cannot fail.
        let layer = Self::new(&registry).expect("the layer registers in a fresh registry");
        (layer, MetricsHandle::new(registry))
    }

    /// `handler`, recording its requests in this layer's metrics: for
    /// instrumenting handlers one by one instead of adding the layer to the
    /// router; see "Per handler" in the module docs.
    #[must_use]
    pub fn handler<H>(&self, handler: H) -> MeteredHandler<H> {
        MeteredHandler::new(handler, self.routes)
    }

    /// A builder to choose histogram buckets.
    #[must_use]
    pub fn builder() -> HttpMetricsLayerBuilder {
        HttpMetricsLayerBuilder::default()
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService::new(inner, self.routes)
    }
}

/// Configures an [`HttpMetricsLayer`].
#[derive(Debug, Clone)]
pub struct HttpMetricsLayerBuilder {
    buckets: Vec<f64>,
    clock: Option<quanta::Clock>,
}

impl Default for HttpMetricsLayerBuilder {
    fn default() -> Self {
        Self {
            buckets: DEFAULT_BUCKETS.to_vec(),
            clock: None,
        }
    }
}

impl HttpMetricsLayerBuilder {
    /// Upper bounds, in seconds, of the `http_request_duration_seconds`
    /// buckets: finite, strictly increasing, at least one. `+Inf` is added.
    #[must_use]
    pub fn buckets(mut self, buckets: Vec<f64>) -> Self {
        self.buckets = buckets;
        self
    }

    /// The clock that times requests. By default a [`quanta::Clock`] that
    /// reads the CPU's time-stamp counter where it is invariant (falling back
    /// to the OS monotonic clock), calibrated once per process (up to 200 ms,
    /// at the first build). Tests pass [`quanta::Clock::mock`] to control time.
    #[must_use]
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the configuration, registers the metrics in `registry` and
    /// returns the layer. On error nothing stays registered.
    pub fn build(self, registry: &Registry) -> Result<HttpMetricsLayer, HttpMetricsError> {
        validate_buckets(&self.buckets)?;
        let clock = self.clock.unwrap_or_default();
        let routes = RouteTable::leak(self.buckets, clock);
        register_all(registry, routes)?;
        Ok(HttpMetricsLayer { routes })
    }
}

fn register_error(metric: &'static str, reason: prometheus::Error) -> HttpMetricsError {
    HttpMetricsError::Register { metric, reason }
}

/// Registers the three families or none: a failure unregisters the ones
/// already registered, so the caller can fix the problem and build again.
fn register_all(registry: &Registry, routes: &'static RouteTable) -> Result<(), HttpMetricsError> {
    let collector = |family: Family| {
        FamilyCollector::new(family, routes)
            .map(|c| Box::new(c) as Box<dyn prometheus::core::Collector>)
            .map_err(|reason| register_error(family.name(), reason))
    };
    let mut registered = Vec::with_capacity(Family::ALL.len());
    for family in Family::ALL {
        if let Err(reason) = registry.register(collector(family)?) {
            for done in registered {
                // A registry identifies collectors by their descriptors, so a
                // fresh collector of the same family undoes the registration.
                // Undoing our own registration cannot meaningfully fail; if it
                // does, the original error is still the one worth reporting.
                if let Ok(done) = collector(done) {
                    let _ = registry.unregister(done);
                }
            }
            return Err(register_error(family.name(), reason));
        }
        registered.push(family);
    }
    Ok(())
}

fn validate_buckets(buckets: &[f64]) -> Result<(), HttpMetricsError> {
    if buckets.is_empty() {
        return Err(HttpMetricsError::EmptyBuckets);
    }
    for (index, &value) in buckets.iter().enumerate() {
        if !value.is_finite() {
            return Err(HttpMetricsError::NonFiniteBucket { index, value });
        }
        if index > 0 {
            let previous = buckets[index - 1];
            if value <= previous {
                return Err(HttpMetricsError::UnsortedBuckets {
                    index,
                    value,
                    previous,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_buckets_are_rejected() {
        let err = HttpMetricsLayer::builder()
            .buckets(vec![])
            .build(&Registry::new())
            .err();
        assert!(
            matches!(err, Some(HttpMetricsError::EmptyBuckets)),
            "{err:?}"
        );
    }

    /// Asserts that `[0.1, second]` is rejected for its non-finite bound at
    /// index 1.
    #[track_caller]
    fn assert_second_bound_rejected_as_non_finite(second: f64) {
        let err = validate_buckets(&[0.1, second]).err();
        assert!(
            matches!(
                err,
                Some(HttpMetricsError::NonFiniteBucket { index: 1, .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn nan_bucket_is_rejected_with_its_position() {
        assert_second_bound_rejected_as_non_finite(f64::NAN);
    }

    #[test]
    fn infinite_bucket_is_rejected() {
        assert_second_bound_rejected_as_non_finite(f64::INFINITY);
    }

    #[test]
    fn duplicate_bucket_is_rejected_naming_both_bounds() {
        let err = validate_buckets(&[0.1, 0.5, 0.5]).err();
        let message = err.as_ref().map(ToString::to_string).unwrap_or_default();
        assert!(
            matches!(
                err,
                Some(HttpMetricsError::UnsortedBuckets {
                    index: 2,
                    value,
                    previous
                }) if value == 0.5 && previous == 0.5
            ),
            "{message}"
        );
        assert!(message.contains("strictly increasing"), "{message}");
    }

    #[test]
    fn default_buckets_are_valid() {
        assert!(validate_buckets(DEFAULT_BUCKETS).is_ok());
    }
}
