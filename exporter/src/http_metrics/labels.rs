//! Label values of the HTTP metrics and the cache of resolved metric handles,
//! so that a request pays for a label lookup in the registry only the first
//! time its (route, method, status) is seen.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use http::{Method, StatusCode};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge};

/// `route` label of every request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// `method` label of every method outside the standard nine.
pub const OTHER_METHOD: &str = "other";

/// The `method` label values, indexed by [`MethodLabel`].
const METHOD_NAMES: [&str; METHOD_COUNT] = [
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    OTHER_METHOD,
];
const METHOD_COUNT: usize = 10;

/// A request method folded into one of the ten `method` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MethodLabel(u8);

impl MethodLabel {
    pub(crate) fn of(method: &Method) -> Self {
        let index = match *method {
            Method::GET => 0,
            Method::HEAD => 1,
            Method::POST => 2,
            Method::PUT => 3,
            Method::DELETE => 4,
            Method::CONNECT => 5,
            Method::OPTIONS => 6,
            Method::TRACE => 7,
            Method::PATCH => 8,
            _ => 9,
        };
        Self(index)
    }

    pub(crate) fn as_str(self) -> &'static str {
        METHOD_NAMES[usize::from(self.0)]
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// All metric handles, plus one [`RouteMetrics`] per route template seen.
pub(crate) struct RouteTable {
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    unmatched: Arc<RouteMetrics>,
    // Keyed by template; templates come from the application's router, so the
    // map is bounded by the number of routes, never by client input.
    routes: RwLock<HashMap<Arc<str>, Arc<RouteMetrics>>>,
}

impl RouteTable {
    pub(crate) fn new(
        requests: IntCounterVec,
        duration: HistogramVec,
        in_flight: IntGauge,
    ) -> Self {
        let unmatched = Arc::new(RouteMetrics::new(
            Arc::from(UNMATCHED_ROUTE),
            &requests,
            &duration,
            &in_flight,
        ));
        Self {
            requests,
            duration,
            in_flight,
            unmatched,
            routes: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn unmatched(&self) -> &Arc<RouteMetrics> {
        &self.unmatched
    }

    /// The metrics of route template `route`, created on first use.
    pub(crate) fn route(&self, route: &str) -> Arc<RouteMetrics> {
        // A poisoned lock only means another thread panicked while inserting;
        // the map itself is always consistent, so keep using it.
        if let Some(found) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return Arc::clone(found);
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let entry = routes.entry(Arc::from(route)).or_insert_with_key(|key| {
            Arc::new(RouteMetrics::new(
                Arc::clone(key),
                &self.requests,
                &self.duration,
                &self.in_flight,
            ))
        });
        Arc::clone(entry)
    }
}

/// Resolved handles for one route template, per method and status.
pub(crate) struct RouteMetrics {
    route: Arc<str>,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    per_method: [MethodMetrics; METHOD_COUNT],
}

#[derive(Default)]
struct MethodMetrics {
    // Created lazily so that a route exports series only for the methods it
    // has actually served.
    duration: OnceLock<Histogram>,
    // Statuses seen for this route and method: usually one to three, so a
    // linear scan beats hashing.
    statuses: RwLock<Vec<(u16, IntCounter)>>,
}

impl RouteMetrics {
    fn new(
        route: Arc<str>,
        requests: &IntCounterVec,
        duration: &HistogramVec,
        in_flight: &IntGauge,
    ) -> Self {
        Self {
            route,
            requests: requests.clone(),
            duration: duration.clone(),
            in_flight: in_flight.clone(),
            per_method: Default::default(),
        }
    }

    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    pub(crate) fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    /// Counts one answered request and observes its duration.
    pub(crate) fn record(&self, method: MethodLabel, status: StatusCode, seconds: f64) {
        let per_method = &self.per_method[method.index()];
        per_method
            .duration
            .get_or_init(|| {
                self.duration
                    .with_label_values(&[method.as_str(), &self.route])
            })
            .observe(seconds);
        self.count(per_method, method, status);
    }

    fn count(&self, per_method: &MethodMetrics, method: MethodLabel, status: StatusCode) {
        let code = status.as_u16();
        let count_in = |statuses: &[(u16, IntCounter)]| {
            let seen = statuses.iter().find(|(seen, _)| *seen == code);
            seen.map(|(_, counter)| counter.inc()).is_some()
        };
        let statuses = per_method
            .statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if count_in(&statuses) {
            return;
        }
        drop(statuses);
        let mut statuses = per_method
            .statuses
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Another request may have added it between the two locks.
        if count_in(&statuses) {
            return;
        }
        let counter =
            self.requests
                .with_label_values(&[method.as_str(), &self.route, status.as_str()]);
        counter.inc();
        statuses.push((code, counter));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_name() {
        for name in [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ] {
            let method = Method::from_bytes(name.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(method.map(|m| MethodLabel::of(&m).as_str()), Ok(name));
        }
    }

    #[test]
    fn non_standard_methods_fold_into_other() {
        for name in ["PROPFIND", "PURGE", "get", "BREW"] {
            let method = Method::from_bytes(name.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(
                method.map(|m| MethodLabel::of(&m).as_str()),
                Ok(OTHER_METHOD),
                "{name}"
            );
        }
    }
}
