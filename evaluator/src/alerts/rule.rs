//! An alerting rule and its active alerts: one evaluation step takes the
//! evaluation time and a query engine, updates every alert's state and
//! returns the `ALERTS`/`ALERTS_FOR_STATE` samples to write back.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::state::{millis, Alert, AlertState, RESOLVED_RETENTION};
use crate::labels::{Labels, METRIC_NAME};
use crate::rules::engine::{QueryEngine, QueryError, Sample};
use crate::rules::file::AlertingSpec;
use crate::rules::template::{Template, TemplateData, TemplateError, TemplateSample};
use crate::rules::text_map::TextMap;

/// Why an evaluation of an alerting rule failed; the text becomes the rule's
/// last error (and matches Prometheus').
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertError {
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateLabelset,
    #[error("exceeded limit of {limit} with {count} alerts")]
    LimitExceeded { limit: usize, count: usize },
}

/// What one evaluation needs besides the rule.
pub struct EvalContext<'a> {
    /// Evaluation time (ms since the epoch).
    pub ts_ms: i64,
    /// The group's `query_offset`: queries (and written samples) use
    /// `ts - query_offset`.
    pub query_offset: Duration,
    pub engine: &'a dyn QueryEngine,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    /// The group's `limit`; 0 = none.
    pub limit: usize,
}

/// An alerting rule with its alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    spec: AlertingSpec,
    label_templates: Vec<(String, Template)>,
    annotation_templates: Vec<(String, Template)>,
    active: BTreeMap<Labels, Alert>,
}

fn to_map(labels: &Labels) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|l| (l.name.to_string(), l.value.to_string()))
        .collect()
}

impl AlertingRule {
    /// Builds the rule; fails only if a template does not parse (which
    /// validation of the rule file already rules out).
    pub fn new(spec: AlertingSpec) -> Result<AlertingRule, TemplateError> {
        let name: std::sync::Arc<str> = format!("__alert_{}", spec.alert).into();
        let parse_all = |m: &TextMap| -> Result<Vec<(String, Template)>, TemplateError> {
            m.iter()
                .map(|(k, v)| Ok((k.clone(), Template::parse_named(name.clone(), v)?)))
                .collect()
        };
        Ok(AlertingRule {
            label_templates: parse_all(&spec.labels)?,
            annotation_templates: parse_all(&spec.annotations)?,
            spec,
            active: BTreeMap::new(),
        })
    }

    /// The PromQL expression it evaluates.
    pub fn expr(&self) -> &str {
        &self.spec.expr
    }

    pub fn name(&self) -> &str {
        &self.spec.alert
    }

    pub fn spec(&self) -> &AlertingSpec {
        &self.spec
    }

    /// Alerts that are pending or firing.
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active
            .values()
            .filter(|a| a.state != AlertState::Inactive)
    }

    /// Every alert held, including resolved ones within the retention.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Puts back alerts restored from history (after a restart), so `for`
    /// timers keep running.
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = Alert>) {
        for a in alerts {
            self.active.insert(a.labels.clone(), a);
        }
    }

    /// Takes every alert out of the rule (its group moved to another
    /// replica, which restores them from the history).
    pub fn forget_alerts(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.active).into_values().collect()
    }

    /// One evaluation at `ctx.ts_ms`. Returns the `ALERTS` and
    /// `ALERTS_FOR_STATE` samples of pending and firing alerts.
    pub fn eval(&mut self, ctx: &EvalContext<'_>) -> Result<Vec<Sample>, AlertError> {
        let ts = ctx.ts_ms;
        let query_ts = ts - millis(ctx.query_offset);
        let vector = ctx
            .engine
            .instant_query(&self.spec.expr, query_ts)?
            .into_vector(query_ts);

        let template_query = |q: &str| -> Result<Vec<TemplateSample>, String> {
            let result = ctx.engine.instant_query(q, ts).map_err(|e| e.to_string())?;
            Ok(result
                .into_vector(ts)
                .into_iter()
                .map(|s| TemplateSample {
                    labels: to_map(&s.labels),
                    value: s.value,
                })
                .collect())
        };
        let external_labels = to_map(ctx.external_labels);

        let mut fresh: BTreeMap<Labels, Alert> = BTreeMap::new();
        for sample in vector {
            let data = TemplateData {
                labels: to_map(&sample.labels),
                external_labels: external_labels.clone(),
                external_url: ctx.external_url.to_string(),
                value: sample.value,
            };
            let expand = |t: &Template| match t.execute(&data, &template_query) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(alert = %self.spec.alert, error = %e, "expanding alert template failed");
                    format!("<error expanding template: {e}>")
                }
            };
            let mut labels = sample.labels.clone();
            labels.remove(METRIC_NAME);
            for (name, t) in &self.label_templates {
                labels.set(name, &expand(t));
            }
            labels.set("alertname", &self.spec.alert);
            let annotations = self
                .annotation_templates
                .iter()
                .map(|(name, t)| (name.clone(), expand(t)))
                .collect();
            if fresh.contains_key(&labels) {
                return Err(AlertError::DuplicateLabelset);
            }
            fresh.insert(
                labels.clone(),
                Alert {
                    state: AlertState::Pending,
                    labels,
                    annotations,
                    value: sample.value,
                    active_at_ms: ts,
                    fired_at_ms: None,
                    resolved_at_ms: None,
                    last_sent_at_ms: None,
                    valid_until_ms: None,
                    keep_firing_since_ms: None,
                    cooldown: self.spec.cooldown,
                },
            );
        }

        let returned: HashSet<Labels> = fresh.keys().cloned().collect();
        for (key, alert) in fresh {
            match self.active.get_mut(&key) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations;
                }
                _ => {
                    self.active.insert(key, alert);
                }
            }
        }

        let hold = millis(self.spec.for_);
        let keep_for = millis(self.spec.keep_firing_for);
        let retention = millis(RESOLVED_RETENTION);
        let mut out = Vec::new();
        let mut active_count = 0;
        let mut expired = Vec::new();
        for (key, a) in self.active.iter_mut() {
            if !returned.contains(key) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_for > 0 {
                    let since = *a.keep_firing_since_ms.get_or_insert(ts);
                    keep_firing = ts - since < keep_for;
                }
                // A pending alert that vanishes never fired: it is dropped
                // at once. A resolved one is kept (and re-sent as resolved)
                // for the retention.
                if a.state == AlertState::Pending
                    || a.resolved_at_ms.is_some_and(|r| ts - r > retention)
                {
                    expired.push(key.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at_ms = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since_ms = None;
            }
            active_count += 1;
            if a.state == AlertState::Pending && ts - a.active_at_ms >= hold {
                a.state = AlertState::Firing;
                a.fired_at_ms = Some(ts);
            }
            // After a reload that lengthened `for`, an alert that has not
            // been active that long goes back to pending (Prometheus 3).
            if a.state == AlertState::Firing && ts - a.active_at_ms < hold {
                a.state = AlertState::Pending;
                a.fired_at_ms = None;
                a.last_sent_at_ms = None;
                a.keep_firing_since_ms = None;
            }
            out.push(alerts_sample(a, query_ts));
            out.push(for_state_sample(a, query_ts));
        }
        for key in expired {
            self.active.remove(&key);
        }
        if ctx.limit > 0 && active_count > ctx.limit {
            self.active.clear();
            return Err(AlertError::LimitExceeded {
                limit: ctx.limit,
                count: active_count,
            });
        }
        Ok(out)
    }

    /// The alerts to hand to the notifier now (Prometheus' `sendAlerts`):
    /// marks them sent and sets their validity to
    /// `ts + 4 × max(interval, resend_delay)`.
    pub fn alerts_to_send(
        &mut self,
        ts_ms: i64,
        resend_delay: Duration,
        interval: Duration,
    ) -> Vec<Alert> {
        let delta = millis(resend_delay.max(interval));
        let mut out = Vec::new();
        for a in self.active.values_mut() {
            if a.needs_sending(ts_ms, resend_delay) {
                a.last_sent_at_ms = Some(ts_ms);
                a.valid_until_ms = Some(ts_ms + 4 * delta);
                out.push(a.clone());
            }
        }
        out
    }
}

fn alerts_sample(a: &Alert, t_ms: i64) -> Sample {
    let mut labels = a.labels.clone();
    labels.set(METRIC_NAME, "ALERTS");
    labels.set("alertstate", a.state.as_str());
    Sample {
        labels,
        t_ms,
        value: 1.0,
    }
}

fn for_state_sample(a: &Alert, t_ms: i64) -> Sample {
    let mut labels = a.labels.clone();
    labels.set(METRIC_NAME, "ALERTS_FOR_STATE");
    Sample {
        labels,
        t_ms,
        value: a.active_at_ms.div_euclid(1000) as f64,
    }
}
