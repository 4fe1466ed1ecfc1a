//! Where requests are recorded: one [`RouteMetrics`] per route template,
//! holding per method the status counts, the duration histogram, its sum and
//! the requests started and ended (whose difference is the in-flight gauge)
//! in per-thread [`Cells`], and the snapshot of all of it that a scrape
//! turns into metric families. A request touches one method's cells only:
//! one or two cache lines of its thread's own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};

use axum::extract::MatchedPath;
use http::StatusCode;

use super::cells::{Cells, Sharded, Slot};
use super::labels::{MethodLabel, METHOD_COUNT, UNMATCHED_ROUTE};

/// Statuses per route and method kept in the lock-free table; a route that
/// answers more distinct statuses counts the rest under a mutex.
const FAST_STATUSES: usize = 8;
// Cell layout per method and slot: status counts, the duration sum, requests
// started, requests ended (answered or dropped), then the buckets.
const SUM_CELL: usize = FAST_STATUSES;
const STARTED_CELL: usize = SUM_CELL + 1;
const ENDED_CELL: usize = STARTED_CELL + 1;
const FIRST_BUCKET_CELL: usize = ENDED_CELL + 1;

/// What every route of one layer shares: the clock that times requests and
/// the histogram's upper bounds.
pub(crate) struct Shape {
    pub(crate) clock: quanta::Clock,
    pub(crate) buckets: Box<[f64]>,
}

/// All routes of one layer (and of its clones). Made once per layer and kept
/// for the rest of the process (see [`RouteTable::leak`]), as are its routes:
/// a request then reaches its route's cells without touching a reference
/// count.
pub(crate) struct RouteTable {
    shape: Shape,
    unmatched: RouteMetrics,
    // Keyed by template; templates come from the application's router, so the
    // map is bounded by the number of routes, never by client input.
    routes: RwLock<HashMap<&'static str, &'static RouteMetrics>>,
}

impl RouteTable {
    /// A new table that lives until the process exits. Layers are built once
    /// at start-up, and their metrics are registered in a registry that
    /// normally lives as long; what this keeps is about 1 KB per route and
    /// method served, plus 256 bytes for each thread that served it (with the
    /// default buckets).
    pub(crate) fn leak(buckets: Vec<f64>, clock: quanta::Clock) -> &'static Self {
        Box::leak(Box::new(Self {
            shape: Shape {
                clock,
                buckets: buckets.into_boxed_slice(),
            },
            unmatched: RouteMetrics::new(UNMATCHED_ROUTE),
            routes: RwLock::new(HashMap::new()),
        }))
    }

    pub(crate) fn shape(&self) -> &Shape {
        &self.shape
    }

    /// Where a request for `matched` (none: it matched no route) with
    /// `method` records. The usual request finds it in this thread's cache
    /// of recent routes; the first of its kind goes through the shared map.
    pub(crate) fn recorder(
        &'static self,
        matched: Option<&MatchedPath>,
        method: MethodLabel,
    ) -> Recorder {
        let Some(matched) = matched else {
            return Recorder::new(&self.shape, &self.unmatched, method);
        };
        RECENT_ROUTES.with(|recent| recent.find(self, matched, method))
    }

    /// The metrics of route template `route`, created on first use.
    fn route(&'static self, route: &str) -> &'static RouteMetrics {
        // A poisoned lock only means another thread panicked while inserting;
        // the map itself is always consistent, so keep using it.
        if let Some(found) = self
            .routes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
        {
            return found;
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = routes.get(route) {
            return found;
        }
        let metrics: &'static RouteMetrics = Box::leak(Box::new(RouteMetrics::new(route)));
        routes.insert(&metrics.route, metrics);
        metrics
    }

    /// Requests that entered the layer and have not ended yet.
    pub(crate) fn in_flight(&self) -> u64 {
        let (started, ended) = self
            .all_routes()
            .iter()
            .map(|route| route.started_and_ended())
            .fold((0u64, 0u64), |(s, e), (rs, re)| (s + rs, e + re));
        // Cells are read one after the other while requests go on; a request
        // that ended between two reads must not make the gauge negative.
        started.saturating_sub(ended)
    }

    /// Every route that exists so far, the unmatched one first.
    pub(crate) fn all_routes(&self) -> Vec<&RouteMetrics> {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        std::iter::once(&self.unmatched)
            .chain(routes.values().copied())
            .collect()
    }
}

/// Per thread, the recorders of recent requests, found again by the
/// address of the request's route template. axum hands every request of a
/// route a clone of the same shared template string; an entry keeps its own
/// clone, so that allocation stays alive and an equal address and length
/// prove the same template without comparing its text.
struct RecentRoutes {
    entries: RefCell<Vec<Option<RecentRoute>>>,
}

struct RecentRoute {
    table: &'static RouteTable,
    template: MatchedPath,
    recorder: Recorder,
}

const RECENT_SIZE: usize = 64;

thread_local! {
    static RECENT_ROUTES: RecentRoutes = const {
        RecentRoutes { entries: RefCell::new(Vec::new()) }
    };
}

impl RecentRoutes {
    fn find(
        &self,
        table: &'static RouteTable,
        matched: &MatchedPath,
        method: MethodLabel,
    ) -> Recorder {
        let template = matched.as_str();
        let slow = || Recorder::new(&table.shape, table.route(template), method);
        // `find` never re-enters itself, so the borrow cannot fail; if it
        // somehow did, the shared map still has the answer.
        let Ok(mut entries) = self.entries.try_borrow_mut() else {
            return slow();
        };
        if entries.is_empty() {
            entries.resize_with(RECENT_SIZE, || None);
        }
        let index = recent_index(table, template, method);
        if let Some(recent) = &entries[index] {
            let cached = recent.template.as_str();
            if std::ptr::eq(recent.table, table)
                && recent.recorder.method == method
                && std::ptr::eq(cached.as_ptr(), template.as_ptr())
                && cached.len() == template.len()
            {
                return recent.recorder;
            }
        }
        let recorder = slow();
        entries[index] = Some(RecentRoute {
            table,
            template: matched.clone(),
            recorder,
        });
        recorder
    }
}

/// The cache entry of (table, template allocation, method).
fn recent_index(table: &RouteTable, template: &str, method: MethodLabel) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let key = (std::ptr::from_ref(table) as u64)
        ^ (template.as_ptr() as u64).rotate_left(17)
        ^ (method.index() as u64);
    // The top bits of the product are the well-mixed ones.
    (key.wrapping_mul(K) >> 58) as usize % RECENT_SIZE
}

/// Where one request records: its route and method, and the cells of the
/// thread that took it (used again at the end when the same thread ends it,
/// which is the usual case).
#[derive(Clone, Copy)]
pub(crate) struct Recorder {
    shape: &'static Shape,
    route: &'static RouteMetrics,
    method: MethodLabel,
    per_method: &'static MethodMetrics,
    slot: Slot,
    cells: &'static Cells,
}

impl Recorder {
    fn new(shape: &'static Shape, route: &'static RouteMetrics, method: MethodLabel) -> Self {
        let (slot, per_method, cells) = route.cells(shape, method);
        Self {
            shape,
            route,
            method,
            per_method,
            slot,
            cells,
        }
    }

    pub(crate) fn clock(self) -> &'static quanta::Clock {
        &self.shape.clock
    }

    /// The calling thread's slot and cells.
    fn here(self) -> (Slot, &'static Cells) {
        let slot = Slot::current();
        if slot == self.slot {
            return (slot, self.cells);
        }
        let (slot, _, cells) = self.route.cells(self.shape, self.method);
        (slot, cells)
    }

    /// A request entered the layer.
    pub(crate) fn start(self) {
        let (slot, cells) = self.here();
        cells.add(slot, STARTED_CELL, 1);
    }

    /// A request left the layer, answered or not.
    pub(crate) fn end(self) {
        let (slot, cells) = self.here();
        cells.add(slot, ENDED_CELL, 1);
    }

    /// Counts one answered request and observes its duration.
    pub(crate) fn record(self, status: StatusCode, seconds: f64) {
        let (slot, cells) = self.here();
        let buckets = &self.shape.buckets;
        // Prometheus's rule: the first bucket whose bound is >= the value.
        let bucket = buckets
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(buckets.len());
        cells.add(slot, FIRST_BUCKET_CELL + bucket, 1);
        cells.add_f64(slot, SUM_CELL, seconds);
        match self.per_method.status_place(status.as_u16()) {
            Some(place) => cells.add(slot, place, 1),
            None => self.per_method.count_more(status.as_u16()),
        }
    }
}

/// Everything recorded for one route template.
pub(crate) struct RouteMetrics {
    route: Box<str>,
    // Created on a method's first request, so that a route exports series
    // only for the methods it has actually served.
    per_method: [OnceLock<Box<MethodMetrics>>; METHOD_COUNT],
}

/// One route and method: which statuses were answered, and per thread slot
/// the cells `[status counts..., duration sum, started, ended, buckets...,
/// above the last bound]`.
struct MethodMetrics {
    // Status codes by their index in the cells; 0 marks a free place (no
    // status is 0). Places are claimed once and never released.
    statuses: [AtomicU16; FAST_STATUSES],
    more_statuses: Mutex<Vec<(u16, u64)>>,
    cells: Sharded<Cells>,
}

impl RouteMetrics {
    fn new(route: &str) -> Self {
        Self {
            route: route.into(),
            per_method: Default::default(),
        }
    }

    pub(crate) fn route(&self) -> &str {
        &self.route
    }

    /// The method's metrics and the calling thread's cells in them.
    fn cells(
        &'static self,
        shape: &Shape,
        method: MethodLabel,
    ) -> (Slot, &'static MethodMetrics, &'static Cells) {
        let slot = Slot::current();
        let per_method = self.per_method[method.index()].get_or_init(|| {
            Box::new(MethodMetrics {
                statuses: Default::default(),
                more_statuses: Mutex::new(Vec::new()),
                cells: Sharded::default(),
            })
        });
        let cell_count = FIRST_BUCKET_CELL + shape.buckets.len() + 1;
        let cells = per_method.cells.get(slot, || Cells::new(cell_count));
        (slot, per_method, cells)
    }

    /// Requests started and ended on this route, all methods together.
    fn started_and_ended(&self) -> (u64, u64) {
        let (mut started, mut ended) = (0, 0);
        for per_method in self.per_method.iter().filter_map(OnceLock::get) {
            for cells in per_method.cells.iter() {
                // Ended before started: see `RouteTable::in_flight`.
                ended += cells.get(ENDED_CELL);
                started += cells.get(STARTED_CELL);
            }
        }
        (started, ended)
    }

    /// What was recorded for each method so far.
    pub(crate) fn snapshot(&self, shape: &Shape) -> Vec<MethodSnapshot> {
        let bucket_count = shape.buckets.len() + 1;
        let mut methods = Vec::new();
        for (index, per_method) in self.per_method.iter().enumerate() {
            let Some(per_method) = per_method.get() else {
                continue;
            };
            let mut snapshot = MethodSnapshot {
                method: MethodLabel::from_index(index),
                statuses: Vec::new(),
                buckets: vec![0; bucket_count],
                sum: 0.0,
            };
            for cells in per_method.cells.iter() {
                for (bucket, count) in snapshot.buckets.iter_mut().enumerate() {
                    *count += cells.get(FIRST_BUCKET_CELL + bucket);
                }
                snapshot.sum += cells.get_f64(SUM_CELL);
            }
            for (place, status) in per_method.statuses.iter().enumerate() {
                let status = status.load(Ordering::Acquire);
                if status != 0 {
                    let count = per_method.cells.iter().map(|c| c.get(place)).sum();
                    snapshot.statuses.push((status, count));
                }
            }
            snapshot.statuses.extend(
                per_method
                    .more_statuses
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .copied(),
            );
            methods.push(snapshot);
        }
        methods
    }
}

impl MethodMetrics {
    /// The cell that counts `status`, claiming a free one the first time;
    /// `None` once all places are taken by other statuses.
    fn status_place(&self, status: u16) -> Option<usize> {
        for (place, slot) in self.statuses.iter().enumerate() {
            let seen = slot.load(Ordering::Acquire);
            if seen == status {
                return Some(place);
            }
            if seen == 0 {
                match slot.compare_exchange(0, status, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some(place),
                    Err(now) if now == status => return Some(place),
                    // Another thread claimed it for another status: go on.
                    Err(_) => {}
                }
            }
        }
        None
    }

    fn count_more(&self, status: u16) {
        let mut more = self
            .more_statuses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match more.iter_mut().find(|(seen, _)| *seen == status) {
            Some((_, count)) => *count += 1,
            None => more.push((status, 1)),
        }
    }
}

/// One route and method as a scrape sees it.
pub(crate) struct MethodSnapshot {
    pub(crate) method: MethodLabel,
    /// (status code, requests answered with it).
    pub(crate) statuses: Vec<(u16, u64)>,
    /// Requests per bucket (not cumulative); the last is above every bound.
    pub(crate) buckets: Vec<u64>,
    pub(crate) sum: f64,
}

impl MethodSnapshot {
    /// Requests answered, whatever their status.
    pub(crate) fn answered(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method(name: &str) -> MethodLabel {
        match http::Method::from_bytes(name.as_bytes()) {
            Ok(method) => MethodLabel::of(&method),
            Err(err) => panic!("{err}"),
        }
    }

    fn table(buckets: Vec<f64>) -> &'static RouteTable {
        RouteTable::leak(buckets, quanta::Clock::mock().0)
    }

    fn record(table: &'static RouteTable, template: &str, method: &str, status: u16, seconds: f64) {
        let status = StatusCode::from_u16(status).unwrap_or_else(|err| panic!("{err}"));
        Recorder::new(&table.shape, table.route(template), self::method(method))
            .record(status, seconds);
    }

    fn snapshot(table: &'static RouteTable, template: &str) -> Vec<MethodSnapshot> {
        table.route(template).snapshot(&table.shape)
    }

    #[test]
    fn durations_fall_into_the_first_bucket_whose_bound_they_do_not_exceed() {
        let table = table(vec![0.1, 0.5]);
        for seconds in [0.05, 0.1, 0.3, 0.5, 2.0, f64::NAN] {
            record(table, "/a", "GET", 200, seconds);
        }
        let snapshot = snapshot(table, "/a");
        assert_eq!(snapshot.len(), 1);
        // NaN is above no bound, as in Prometheus: it lands in +Inf only.
        assert_eq!(snapshot[0].buckets, vec![2, 2, 2]);
        assert_eq!(snapshot[0].statuses, vec![(200, 6)]);
    }

    #[test]
    fn statuses_beyond_the_fast_table_are_still_counted() {
        let table = table(vec![1.0]);
        let codes: Vec<u16> = (200..200 + 3 * FAST_STATUSES as u16).collect();
        for _ in 0..2 {
            for &code in &codes {
                record(table, "/many", "POST", code, 0.0);
            }
        }
        let mut statuses = snapshot(table, "/many").remove(0).statuses;
        statuses.sort_unstable();
        let expected: Vec<(u16, u64)> = codes.iter().map(|&c| (c, 2)).collect();
        assert_eq!(statuses, expected);
    }

    #[test]
    fn methods_never_served_have_no_snapshot() {
        let table = table(vec![1.0]);
        record(table, "/x", "DELETE", 204, 0.0);
        let methods: Vec<&str> = snapshot(table, "/x")
            .iter()
            .map(|m| m.method.as_str())
            .collect();
        assert_eq!(methods, vec!["DELETE"]);
    }

    #[test]
    fn a_request_ended_on_another_thread_still_balances_in_flight() {
        let table = table(vec![1.0]);
        let recorder = Recorder::new(&table.shape, table.route("/moved"), method("GET"));
        recorder.start();
        assert_eq!(table.in_flight(), 1);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                recorder.record(StatusCode::OK, 0.5);
                recorder.end();
            });
        });
        assert_eq!(table.in_flight(), 0);
        assert_eq!(snapshot(table, "/moved")[0].statuses, vec![(200, 1)]);
    }

    #[test]
    fn the_same_template_is_one_route() {
        let table = table(vec![1.0]);
        let first = table.route("/a");
        assert!(std::ptr::eq(first, table.route("/a")));
        assert!(!std::ptr::eq(first, table.route("/b")));
        assert_eq!(table.all_routes().len(), 3);
    }
}
