//! The three metric families of the layer as Prometheus collectors: each
//! reads the route table's snapshot and renders it the way the `prometheus`
//! crate renders its own counter, histogram and gauge types.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};

use super::routes::{MethodSnapshot, RouteTable};
use super::{REQUESTS_IN_FLIGHT, REQUESTS_TOTAL, REQUEST_DURATION_SECONDS};

/// Which of the three families a collector renders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Requests,
    Duration,
    InFlight,
}

impl Family {
    pub(crate) const ALL: [Family; 3] = [Family::Requests, Family::Duration, Family::InFlight];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Requests => REQUESTS_TOTAL,
            Family::Duration => REQUEST_DURATION_SECONDS,
            Family::InFlight => REQUESTS_IN_FLIGHT,
        }
    }

    fn help(self) -> &'static str {
        match self {
            Family::Requests => {
                "HTTP requests answered, by method, route template and status code."
            }
            Family::Duration => {
                "Time from receiving an HTTP request to producing its response headers, \
                 by method and route template."
            }
            Family::InFlight => "HTTP requests being handled right now.",
        }
    }

    fn labels(self) -> &'static [&'static str] {
        match self {
            Family::Requests => &["method", "route", "status"],
            Family::Duration => &["method", "route"],
            Family::InFlight => &[],
        }
    }

    fn metric_type(self) -> MetricType {
        match self {
            Family::Requests => MetricType::COUNTER,
            Family::Duration => MetricType::HISTOGRAM,
            Family::InFlight => MetricType::GAUGE,
        }
    }
}

/// One family of one layer, registered on its own so that a name conflict
/// names the family that conflicts.
pub(crate) struct FamilyCollector {
    family: Family,
    desc: Desc,
    routes: &'static RouteTable,
}

impl FamilyCollector {
    pub(crate) fn new(family: Family, routes: &'static RouteTable) -> prometheus::Result<Self> {
        let desc = Desc::new(
            family.name().to_owned(),
            family.help().to_owned(),
            family.labels().iter().map(|l| (*l).to_owned()).collect(),
            HashMap::new(),
        )?;
        Ok(Self {
            family,
            desc,
            routes,
        })
    }

    fn metrics(&self) -> Vec<proto::Metric> {
        if self.family == Family::InFlight {
            let mut gauge = proto::Gauge::default();
            #[allow(clippy::cast_precision_loss)]
            gauge.set_value(self.routes.in_flight() as f64);
            return vec![proto::Metric::from_gauge(gauge)];
        }
        let mut metrics = Vec::new();
        for route in self.routes.all_routes() {
            for method in route.snapshot(self.routes.shape()) {
                match self.family {
                    // A method whose requests were all dropped unanswered has
                    // no duration to show.
                    Family::Duration if method.answered() == 0 => {}
                    Family::Requests => {
                        push_counters(&mut metrics, route.route(), &method);
                    }
                    _ => metrics.push(self.histogram(route.route(), &method)),
                }
            }
        }
        metrics
    }

    fn histogram(&self, route: &str, method: &MethodSnapshot) -> proto::Metric {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(method.buckets.len());
        for (bound, count) in self.routes.shape().buckets.iter().zip(&method.buckets) {
            cumulative += count;
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(*bound);
            bucket.set_cumulative_count(cumulative);
            buckets.push(bucket);
        }
        let mut histogram = proto::Histogram::default();
        // The +Inf bucket is the count; the last cell holds what no bound took.
        histogram.set_sample_count(method.answered());
        histogram.set_sample_sum(method.sum);
        histogram.set_bucket(buckets);
        let mut metric = proto::Metric::from_label(label_pairs(&[
            ("method", method.method.as_str()),
            ("route", route),
        ]));
        metric.set_histogram(histogram);
        metric
    }
}

fn push_counters(metrics: &mut Vec<proto::Metric>, route: &str, method: &MethodSnapshot) {
    for &(status, count) in &method.statuses {
        let mut counter = proto::Counter::default();
        #[allow(clippy::cast_precision_loss)]
        counter.set_value(count as f64);
        let status = status.to_string();
        let mut metric = proto::Metric::from_label(label_pairs(&[
            ("method", method.method.as_str()),
            ("route", route),
            ("status", &status),
        ]));
        metric.set_counter(counter);
        metrics.push(metric);
    }
}

/// Label pairs in the order given, which is already sorted by name.
fn label_pairs(pairs: &[(&str, &str)]) -> Vec<LabelPair> {
    pairs
        .iter()
        .map(|(name, value)| {
            let mut pair = LabelPair::default();
            pair.set_name((*name).to_owned());
            pair.set_value((*value).to_owned());
            pair
        })
        .collect()
}

impl Collector for FamilyCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut family = MetricFamily::default();
        family.set_name(self.family.name().to_owned());
        family.set_help(self.family.help().to_owned());
        family.set_field_type(self.family.metric_type());
        family.set_metric(self.metrics());
        vec![family]
    }
}
