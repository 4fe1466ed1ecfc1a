//! Replays one alerting rule over past query results: each evaluation
//! time's vector goes through the live evaluator's alert state machine
//! ([`crate::alerts::AlertingRule`]: `for`, `keep_firing_for`, resolved
//! retention, resend pacing) at that simulated time, and the transitions
//! it makes are recorded as episodes (firing intervals) and near misses.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::alerts::{Alert, AlertState, AlertingRule, EvalContext};
use crate::labels::Labels;
use crate::rules::engine::{QueryEngine, QueryError, QueryResult};
use crate::rules::file::AlertingSpec;
use crate::sample::Sample;
use crate::stale::STALE_NAN;

/// One firing interval of one alert (one label set of the rule).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub labels: Labels,
    /// The evaluation at which the alert fired (ms).
    pub start_ms: i64,
    /// The evaluation at which it resolved; `None`: still firing at the end
    /// of the range.
    pub end_ms: Option<i64>,
}

/// Answers the rule's query with the vector fetched for this evaluation;
/// template `query` calls are not run (they would need the datasource at
/// every step) and expand to an error text in annotations, which a
/// backtest never shows.
struct StepEngine<'a> {
    expr: &'a str,
    vector: RefCell<Option<Vec<Sample>>>,
}

impl QueryEngine for StepEngine<'_> {
    fn instant_query(&self, expr: &str, _t_ms: i64) -> Result<QueryResult, QueryError> {
        if expr == self.expr {
            Ok(QueryResult::Vector(
                self.vector.borrow_mut().take().unwrap_or_default(),
            ))
        } else {
            Err(QueryError(
                "template queries are not run in a backtest".to_string(),
            ))
        }
    }
}

/// An alerting rule being replayed, with what happened so far.
#[derive(Debug)]
pub struct RuleReplay {
    rule: AlertingRule,
    /// The rule's expression (what [`StepEngine`] answers).
    expr: String,
    interval: Duration,
    query_offset: Duration,
    limit: usize,
    /// Pending and firing alerts after the last evaluation.
    tracked: HashMap<Labels, AlertState>,
    /// The open episode of each firing alert (index into `episodes`).
    open: HashMap<Labels, usize>,
    pub episodes: Vec<Episode>,
    pub near_misses: u64,
    pub evaluations: u64,
    pub failed_evaluations: u64,
    pub first_error: Option<String>,
    /// With `--remote-write`: the series the last evaluation wrote, to
    /// mark those that end as stale.
    written: Option<HashSet<Labels>>,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct StepOutput {
    /// The alerts to hand to the notifier now.
    pub sent: Vec<Alert>,
    /// `ALERTS`/`ALERTS_FOR_STATE` samples and staleness markers, when
    /// series are kept ([`RuleReplay::keep_series`]).
    pub series: Vec<Sample>,
}

impl RuleReplay {
    /// `spec` replayed at `interval` with the group's `query_offset` and
    /// `limit`; fails only when a template does not parse (rule files are
    /// validated before).
    pub fn new(
        mut spec: AlertingSpec,
        interval: Duration,
        query_offset: Duration,
        limit: usize,
    ) -> Result<RuleReplay, String> {
        let name = spec.alert.clone();
        // Annotations are in no report, and no count depends on them (the
        // notifier tells alerts apart by labels; `cooldown` is already in
        // the spec): not expanding their templates at every evaluation of
        // every alert saves most of a replay's time.
        spec.annotations.clear();
        let rule = AlertingRule::new(spec)
            .map_err(|e| format!("alerting rule {name}: a template does not parse: {e}"))?;
        Ok(RuleReplay {
            expr: rule.expr().to_string(),
            rule,
            interval,
            query_offset,
            limit,
            tracked: HashMap::new(),
            open: HashMap::new(),
            episodes: Vec::new(),
            near_misses: 0,
            evaluations: 0,
            failed_evaluations: 0,
            first_error: None,
            written: None,
        })
    }

    /// Makes [`RuleReplay::step`] return the series the rule writes.
    pub fn keep_series(&mut self) {
        self.written = Some(HashSet::new());
    }

    pub fn spec(&self) -> &AlertingSpec {
        self.rule.spec()
    }

    /// One evaluation at `ts_ms` whose query returned `vector`: the alerts
    /// the live evaluator would send to the notifier now, and the series
    /// it would write.
    pub fn step(&mut self, ts_ms: i64, vector: Vec<Sample>, resend_delay: Duration) -> StepOutput {
        self.evaluations += 1;
        let engine = StepEngine {
            expr: &self.expr,
            vector: RefCell::new(Some(vector)),
        };
        let no_labels = Labels::default();
        let result = self.rule.eval(&EvalContext {
            ts_ms,
            query_offset: self.query_offset,
            engine: &engine,
            external_labels: &no_labels,
            external_url: "",
            limit: self.limit,
        });
        let mut series = Vec::new();
        match result {
            Err(e) => {
                self.failed_evaluations += 1;
                self.first_error
                    .get_or_insert_with(|| format!("at {}: {e}", super::range::show(ts_ms)));
            }
            Ok(samples) => {
                if let Some(written) = &mut self.written {
                    let now: HashSet<Labels> = samples.iter().map(|s| s.labels.clone()).collect();
                    let query_ts = ts_ms - crate::alerts::state::millis(self.query_offset);
                    series = samples;
                    series.extend(written.difference(&now).map(|labels| Sample {
                        labels: labels.clone(),
                        t_ms: query_ts,
                        value: STALE_NAN,
                    }));
                    *written = now;
                }
            }
        }
        self.record_transitions(ts_ms);
        StepOutput {
            sent: self.rule.alerts_to_send(ts_ms, resend_delay, self.interval),
            series,
        }
    }

    /// Compares the rule's alerts with the previous evaluation's.
    fn record_transitions(&mut self, ts_ms: i64) {
        let mut now: HashMap<Labels, AlertState> = HashMap::with_capacity(self.tracked.len());
        for alert in self.rule.active_alerts() {
            now.insert(alert.labels.clone(), alert.state);
            let before = self.tracked.get(&alert.labels).copied();
            if alert.state == AlertState::Firing && before != Some(AlertState::Firing) {
                self.open.insert(alert.labels.clone(), self.episodes.len());
                self.episodes.push(Episode {
                    labels: alert.labels.clone(),
                    start_ms: alert.fired_at_ms.unwrap_or(ts_ms),
                    end_ms: None,
                });
            }
        }
        for (labels, before) in &self.tracked {
            if now.contains_key(labels) {
                continue;
            }
            match before {
                AlertState::Pending => self.near_misses += 1,
                AlertState::Firing => {
                    if let Some(i) = self.open.remove(labels) {
                        self.episodes[i].end_ms = Some(ts_ms);
                    }
                }
                AlertState::Inactive => {}
            }
        }
        self.tracked = now;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    fn spec(for_s: u64, keep_s: u64) -> AlertingSpec {
        AlertingSpec {
            alert: "High".into(),
            expr: "x > 1".into(),
            for_: Duration::from_secs(for_s),
            keep_firing_for: Duration::from_secs(keep_s),
            labels: Default::default(),
            annotations: Default::default(),
            cooldown: None,
        }
    }

    fn vector(on: bool) -> Vec<Sample> {
        if !on {
            return Vec::new();
        }
        vec![Sample {
            labels: Labels::from_pairs([("__name__", "x"), ("job", "a")]),
            t_ms: 0,
            value: 2.0,
        }]
    }

    /// Replays an on/off pattern at 1 s steps from t = 0.
    fn replay(spec: AlertingSpec, pattern: &str) -> RuleReplay {
        let mut r = RuleReplay::new(spec, Duration::from_secs(1), Duration::ZERO, 0).unwrap();
        for (i, c) in pattern.chars().enumerate() {
            r.step(i as i64 * 1000, vector(c == '1'), Duration::from_secs(60));
        }
        r
    }

    #[test]
    fn episodes_run_from_firing_to_resolution() {
        let r = replay(spec(2, 0), "0111110011");
        assert_eq!(
            r.episodes.len(),
            1,
            "the second activation is still pending at the end"
        );
        assert_eq!(
            r.episodes[0].start_ms, 3000,
            "pending at 1 s, fires 2 s later"
        );
        assert_eq!(r.episodes[0].end_ms, Some(6000));
        assert_eq!(
            r.near_misses, 0,
            "pending at the end of the range is no near miss"
        );
        let r = replay(spec(0, 0), "0110");
        assert_eq!(r.episodes[0].end_ms, Some(3000));
        let r = replay(spec(0, 0), "011");
        assert_eq!(r.episodes[0].end_ms, None, "still firing at the end");
    }

    #[test]
    fn pending_that_clears_is_a_near_miss_and_keep_firing_for_holds() {
        let r = replay(spec(3, 0), "0110111100");
        assert_eq!(r.near_misses, 1);
        assert_eq!(r.episodes.len(), 1);
        let r = replay(spec(0, 2), "0100000");
        assert_eq!(r.episodes[0].start_ms, 1000);
        assert_eq!(
            r.episodes[0].end_ms,
            Some(4000),
            "held firing for 2 s after 2 s"
        );
    }
}
