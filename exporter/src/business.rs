//! Business counters and gauges: metrics declared in `exporter.yaml` and fed
//! by applications through `POST /api/v1/events`, so that a service can
//! count "orders created" without linking a Prometheus client.
//!
//! Every event is checked completely (token, metric, label names, value,
//! label-set budget) before anything is recorded, so a rejected event
//! changes nothing. The label-set budget (`business.max_label_sets` per
//! metric) keeps a misbehaving client from exploding the series count.
//!
//! How `POST /api/v1/events` answers (body `{"error": "...", "code": "..."}`
//! on failure; see [`BusinessError::code`]):
//!
//! | status | when |
//! | --- | --- |
//! | 200 | recorded; body `{"metric", "labels", "value"}` with the new value |
//! | 400 | malformed JSON, unknown event fields, non-numeric or out-of-range value |
//! | 401 | missing or wrong `Authorization: Bearer` token |
//! | 403 | ingest disabled: no token configured (`business.token_file` or `VIGIL_INGEST_TOKEN`); refusing is the safe default |
//! | 413 | body larger than [`MAX_EVENT_BYTES`] |
//! | 422 | undeclared metric, unknown or missing labels, negative or non-finite counter value, gauge without value, or the metric's label-set budget is spent (422, not 429: retrying later will not help) |

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use prometheus::{CounterVec, GaugeVec, Opts, Registry};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::{BusinessConfig, IngestToken, MetricConfig, INGEST_TOKEN_ENV};

/// Largest accepted event body; larger posts are refused with 413.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Why an event was refused (or the metrics could not be set up).
#[derive(Debug, thiserror::Error)]
pub enum BusinessError {
    #[error("cannot register business metric {name}: {source}")]
    Register {
        name: String,
        #[source]
        source: prometheus::Error,
    },
    #[error("event ingest is disabled: no token is configured; set business.token_file or {INGEST_TOKEN_ENV} and restart")]
    IngestDisabled,
    #[error("missing bearer token; send the header `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("wrong bearer token")]
    WrongToken,
    #[error("event body is larger than {MAX_EVENT_BYTES} bytes")]
    TooLarge,
    #[error("malformed event: {0}; expected JSON like {{\"metric\": \"orders_created_total\", \"labels\": {{\"channel\": \"web\"}}, \"value\": 1}}")]
    Malformed(String),
    #[error("metric {0:?} is not declared in business.counters or business.gauges")]
    UnknownMetric(String),
    #[error("metric {metric:?} has no label(s) {labels:?}; declared labels are {declared:?}")]
    UnknownLabels {
        metric: String,
        labels: Vec<String>,
        declared: Vec<String>,
    },
    #[error("metric {metric:?} needs label(s) {labels:?} with non-empty values")]
    MissingLabels { metric: String, labels: Vec<String> },
    #[error("value of {metric:?} must be {expected}, got {value}")]
    InvalidValue {
        metric: String,
        value: String,
        expected: &'static str,
    },
    #[error("gauge {0:?} needs a value to set")]
    MissingGaugeValue(String),
    #[error("metric {metric:?} already has {limit} label sets (business.max_label_sets); this event would add another")]
    TooManyLabelSets { metric: String, limit: usize },
    #[error("counter {metric:?} is at {current}; adding {value} would overflow it to +Inf, so the event is refused; count in a larger unit, or restart the exporter to reset the counter (Prometheus' rate() handles resets)")]
    CounterOverflow {
        metric: String,
        current: f64,
        value: f64,
    },
}

impl BusinessError {
    /// A stable, machine-readable name of the error, for API clients.
    pub fn code(&self) -> &'static str {
        match self {
            BusinessError::Register { .. } => "internal",
            BusinessError::IngestDisabled => "ingest_disabled",
            BusinessError::MissingToken => "missing_token",
            BusinessError::WrongToken => "wrong_token",
            BusinessError::TooLarge => "body_too_large",
            BusinessError::Malformed(_) => "malformed_event",
            BusinessError::UnknownMetric(_) => "unknown_metric",
            BusinessError::UnknownLabels { .. } => "unknown_labels",
            BusinessError::MissingLabels { .. } => "missing_labels",
            BusinessError::InvalidValue { .. } | BusinessError::MissingGaugeValue(_) => {
                "invalid_value"
            }
            BusinessError::TooManyLabelSets { .. } => "too_many_label_sets",
            BusinessError::CounterOverflow { .. } => "counter_overflow",
        }
    }
}

/// One event as posted.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub metric: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Counter increment (default 1) or gauge value (required).
    pub value: Option<f64>,
}

impl Event {
    /// Parses a request body.
    pub fn from_json(body: &[u8]) -> Result<Event, BusinessError> {
        serde_json::from_slice(body).map_err(|error| BusinessError::Malformed(error.to_string()))
    }
}

/// What an accepted event did: the metric's value for its label set now.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub metric: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The declared business metrics, registered in a Prometheus registry.
#[derive(Debug)]
pub struct BusinessMetrics {
    metrics: HashMap<String, Declared>,
    token: Option<IngestToken>,
    max_label_sets: usize,
}

#[derive(Debug)]
struct Declared {
    labels: Vec<String>,
    series: Series,
    /// Label-value tuples seen so far, to enforce the label-set budget.
    seen: Mutex<HashSet<Vec<String>>>,
}

impl Declared {
    /// Checks that the `labels` of an event for `metric` name only declared
    /// labels, and each declared label with a non-empty value.
    fn check_labels(
        &self,
        metric: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), BusinessError> {
        let unknown: Vec<String> = labels
            .keys()
            .filter(|name| !self.labels.contains(name))
            .cloned()
            .collect();
        if !unknown.is_empty() {
            return Err(BusinessError::UnknownLabels {
                metric: metric.to_owned(),
                labels: unknown,
                declared: self.labels.clone(),
            });
        }
        let missing: Vec<String> = self
            .labels
            .iter()
            // Prometheus treats an empty label value as an absent label.
            .filter(|name| labels.get(*name).is_none_or(String::is_empty))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BusinessError::MissingLabels {
                metric: metric.to_owned(),
                labels: missing,
            })
        }
    }
}

#[derive(Debug)]
enum Series {
    Counter(CounterVec),
    Gauge(GaugeVec),
}

impl BusinessMetrics {
    /// Creates the declared counters and gauges and registers them.
    pub fn register(
        config: &BusinessConfig,
        registry: &Registry,
    ) -> Result<BusinessMetrics, BusinessError> {
        let mut metrics = HashMap::new();
        let declared = config
            .counters
            .iter()
            .map(|m| (m, true))
            .chain(config.gauges.iter().map(|m| (m, false)));
        for (metric, is_counter) in declared {
            let series = Self::series(metric, is_counter, registry)?;
            metrics.insert(
                metric.name.clone(),
                Declared {
                    labels: metric.labels.clone(),
                    series,
                    seen: Mutex::new(HashSet::new()),
                },
            );
        }
        Ok(BusinessMetrics {
            metrics,
            token: config.token.clone(),
            max_label_sets: config.max_label_sets,
        })
    }

    fn series(
        metric: &MetricConfig,
        is_counter: bool,
        registry: &Registry,
    ) -> Result<Series, BusinessError> {
        let register_error = |source| BusinessError::Register {
            name: metric.name.clone(),
            source,
        };
        let opts = Opts::new(metric.name.clone(), metric.help.clone());
        let labels: Vec<&str> = metric.labels.iter().map(String::as_str).collect();
        let series = if is_counter {
            let vec = CounterVec::new(opts, &labels).map_err(register_error)?;
            registry
                .register(Box::new(vec.clone()))
                .map_err(register_error)?;
            Series::Counter(vec)
        } else {
            let vec = GaugeVec::new(opts, &labels).map_err(register_error)?;
            registry
                .register(Box::new(vec.clone()))
                .map_err(register_error)?;
            Series::Gauge(vec)
        };
        Ok(series)
    }

    /// Whether events can be accepted at all (a token is configured).
    pub fn ingest_enabled(&self) -> bool {
        self.token.is_some()
    }

    /// Number of declared metrics.
    pub fn declared(&self) -> usize {
        self.metrics.len()
    }

    /// Checks an `Authorization` header value against the token, in
    /// constant time so the comparison does not leak the token.
    pub fn authorize(&self, authorization: Option<&str>) -> Result<(), BusinessError> {
        let token = self.token.as_ref().ok_or(BusinessError::IngestDisabled)?;
        let presented = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(BusinessError::MissingToken)?;
        if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
            Ok(())
        } else {
            Err(BusinessError::WrongToken)
        }
    }

    /// Validates `event` completely, then applies it: a counter grows by
    /// `value` (default 1), a gauge is set to it.
    pub fn record(&self, event: Event) -> Result<Recorded, BusinessError> {
        let Event {
            metric,
            labels,
            value,
        } = event;
        let declared = self
            .metrics
            .get(&metric)
            .ok_or_else(|| BusinessError::UnknownMetric(metric.clone()))?;
        declared.check_labels(&metric, &labels)?;
        let value = match (&declared.series, value) {
            (Series::Counter(_), None) => 1.0,
            (Series::Counter(_), Some(v)) if v.is_finite() && v >= 0.0 => v,
            (Series::Counter(_), Some(v)) => {
                return Err(BusinessError::InvalidValue {
                    metric,
                    value: v.to_string(),
                    expected: "a finite number of at least 0 (counters never go down)",
                })
            }
            (Series::Gauge(_), None) => return Err(BusinessError::MissingGaugeValue(metric)),
            (Series::Gauge(_), Some(v)) if v.is_finite() => v,
            (Series::Gauge(_), Some(v)) => {
                return Err(BusinessError::InvalidValue {
                    metric,
                    value: v.to_string(),
                    expected: "a finite number",
                })
            }
        };
        // Values in declaration order, which is the order the vec expects.
        let values: Vec<String> = declared
            .labels
            .iter()
            .map(|name| labels[name].clone())
            .collect();
        // The metric's lock is held until the value is applied, so the
        // overflow check and the increment see the same counter value.
        let mut seen = declared
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !seen.contains(&values) {
            if seen.len() >= self.max_label_sets {
                return Err(BusinessError::TooManyLabelSets {
                    metric,
                    limit: self.max_label_sets,
                });
            }
            seen.insert(values.clone());
        }
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let now = match &declared.series {
            Series::Counter(vec) => {
                let counter = vec.with_label_values(&values);
                let current = counter.get();
                if !(current + value).is_finite() {
                    return Err(BusinessError::CounterOverflow {
                        metric,
                        current,
                        value,
                    });
                }
                counter.inc_by(value);
                counter.get()
            }
            Series::Gauge(vec) => {
                let gauge = vec.with_label_values(&values);
                gauge.set(value);
                gauge.get()
            }
        };
        drop(seen);
        Ok(Recorded {
            metric,
            labels,
            value: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(max_label_sets: usize) -> (BusinessMetrics, Registry) {
        let config = BusinessConfig {
            token: IngestToken::new("secret"),
            max_label_sets,
            counters: vec![MetricConfig {
                name: "orders_created_total".into(),
                help: "Orders.".into(),
                labels: vec!["channel".into()],
            }],
            gauges: vec![MetricConfig {
                name: "queue_depth".into(),
                help: "Queue.".into(),
                labels: vec![],
            }],
        };
        let registry = Registry::new();
        let business = BusinessMetrics::register(&config, &registry);
        (business.unwrap_or_else(|e| panic!("{e}")), registry)
    }

    fn event(metric: &str, labels: &[(&str, &str)], value: Option<f64>) -> Event {
        Event {
            metric: metric.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
        }
    }

    #[test]
    fn counter_adds_value_defaulting_to_one() {
        let (business, _) = metrics(10);
        let web = [("channel", "web")];
        assert!(business
            .record(event("orders_created_total", &web, None))
            .is_ok());
        let recorded = business.record(event("orders_created_total", &web, Some(2.5)));
        assert_eq!(recorded.map(|r| r.value).ok(), Some(3.5));
    }

    #[test]
    fn counter_increment_that_would_reach_infinity_is_refused_and_changes_nothing() {
        let (business, _) = metrics(10);
        let web = [("channel", "web")];
        let max = business.record(event("orders_created_total", &web, Some(f64::MAX)));
        assert_eq!(max.map(|r| r.value).ok(), Some(f64::MAX));
        let over = business.record(event("orders_created_total", &web, Some(f64::MAX)));
        assert_eq!(over.map_err(|e| e.code()), Err("counter_overflow"));
        // Adding 1 to f64::MAX rounds back to f64::MAX: finite, accepted.
        let tiny = business.record(event("orders_created_total", &web, None));
        assert_eq!(tiny.map(|r| r.value).ok(), Some(f64::MAX));
    }

    #[test]
    fn gauge_is_set_not_added() {
        let (business, _) = metrics(10);
        assert!(business
            .record(event("queue_depth", &[], Some(7.0)))
            .is_ok());
        let recorded = business.record(event("queue_depth", &[], Some(-2.0)));
        assert_eq!(recorded.map(|r| r.value).ok(), Some(-2.0));
    }

    #[test]
    fn negative_counter_increment_is_rejected() {
        let (business, _) = metrics(10);
        let result = business.record(event(
            "orders_created_total",
            &[("channel", "web")],
            Some(-1.0),
        ));
        assert_eq!(result.map_err(|e| e.code()), Err("invalid_value"));
    }

    #[test]
    fn label_set_budget_counts_distinct_sets_only() {
        let (business, _) = metrics(2);
        for channel in ["web", "app", "web", "app"] {
            let result =
                business.record(event("orders_created_total", &[("channel", channel)], None));
            assert!(result.is_ok(), "{channel}: {result:?}");
        }
        let third = business.record(event("orders_created_total", &[("channel", "phone")], None));
        assert_eq!(third.map_err(|e| e.code()), Err("too_many_label_sets"));
    }

    #[test]
    fn token_must_match_exactly_with_bearer_scheme() {
        let (business, _) = metrics(1);
        assert!(business.authorize(Some("Bearer secret")).is_ok());
        assert!(business.authorize(Some("bearer secret")).is_ok());
        assert_eq!(
            business
                .authorize(Some("Bearer secret2"))
                .map_err(|e| e.code()),
            Err("wrong_token")
        );
        assert_eq!(
            business
                .authorize(Some("Basic secret"))
                .map_err(|e| e.code()),
            Err("missing_token")
        );
        assert_eq!(
            business.authorize(None).map_err(|e| e.code()),
            Err("missing_token")
        );
    }

    #[test]
    fn without_a_token_ingest_is_disabled() {
        let registry = Registry::new();
        let business = BusinessMetrics::register(&BusinessConfig::default(), &registry);
        let result = business.map(|b| b.authorize(Some("Bearer anything")).map_err(|e| e.code()));
        assert_eq!(result.ok(), Some(Err("ingest_disabled")));
    }
}
