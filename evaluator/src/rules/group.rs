//! A rule group: its rules evaluated in order at one timestamp, each rule's
//! output written back before the next rule runs (so later rules see it),
//! staleness markers for series a rule stopped producing, and per-rule
//! health, last error and timings for the `/api/v1/rules` API.

use std::collections::HashSet;
use std::hash::Hasher;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use super::engine::{QueryEngine, Sample, SampleAppender};
use super::file::{GroupSpec, RuleSpec};
use super::recording::RecordingRule;
use super::template::TemplateError;
use crate::alerts::state::millis;
use crate::alerts::{Alert, AlertState, AlertingRule, EvalContext};
use crate::clock::{Clock, SystemClock};
use crate::datasource::DatasourceClient;
use crate::hash::StableHasher;
use crate::labels::Labels;
use crate::stale::STALE_NAN;

/// Health of a rule, as `/api/v1/rules` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// A recording or alerting rule.
#[derive(Debug, Clone)]
pub enum Rule {
    Recording(RecordingRule),
    Alerting(AlertingRule),
}

impl Rule {
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => r.name(),
            Rule::Alerting(a) => a.name(),
        }
    }

    /// The PromQL expression it evaluates.
    pub fn expr(&self) -> &str {
        match self {
            Rule::Recording(r) => r.expr(),
            Rule::Alerting(a) => a.expr(),
        }
    }
}

/// A rule with its evaluation status.
#[derive(Debug, Clone)]
pub struct RuleEntry {
    pub rule: Rule,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_eval_ms: Option<i64>,
    pub last_eval_duration: Duration,
    /// Series written by the last successful evaluation, to mark the ones
    /// that disappear as stale.
    series_last_eval: HashSet<Labels>,
}

/// Shared inputs of a group evaluation.
pub struct GroupEnv<'a> {
    pub engine: &'a dyn QueryEngine,
    pub appender: &'a dyn SampleAppender,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    /// How often firing alerts are re-sent (Prometheus `--rules.alert.resend-delay`, default 1m).
    pub resend_delay: Duration,
    /// Times each evaluation (its monotonic time).
    pub clock: &'a dyn Clock,
}

impl<'a> GroupEnv<'a> {
    /// Evaluation with `source` answering the queries and taking the
    /// recorded samples, no external labels or URL, a one-minute resend
    /// delay and the system clock timing each evaluation; the fields that
    /// differ are set with struct update syntax.
    pub fn local<S: QueryEngine + SampleAppender>(source: &'a S) -> GroupEnv<'a> {
        static NO_LABELS: LazyLock<Labels> = LazyLock::new(Labels::default);
        GroupEnv {
            engine: source,
            appender: source,
            external_labels: &NO_LABELS,
            external_url: "",
            resend_delay: Duration::from_secs(60),
            clock: &SystemClock,
        }
    }
}

/// A rule group ready to evaluate.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub file: PathBuf,
    pub name: String,
    pub interval: Duration,
    pub query_offset: Duration,
    pub limit: usize,
    pub rules: Vec<RuleEntry>,
    pub last_eval_ms: Option<i64>,
    pub last_eval_duration: Duration,
    /// The datasource its queries go to; `None`: the local window.
    pub datasource: Option<Arc<DatasourceClient>>,
}

/// The alerts a reload took away from one rule group (see
/// [`RuleGroup::dropped_by_reload`]).
#[derive(Debug, Clone)]
pub struct DroppedByReload {
    /// The group's file, as its `file` displays.
    pub file: String,
    pub name: String,
    /// The whole group is gone.
    pub group_removed: bool,
    /// Each alert ended at the reload, with the rule that held it.
    pub alerts: Vec<(Alert, super::send_alerts::RuleSource)>,
}

impl RuleGroup {
    /// Builds a group; `default_interval` is the global
    /// `evaluation_interval`, used when the group sets none.
    pub fn new(spec: GroupSpec, default_interval: Duration) -> Result<RuleGroup, TemplateError> {
        let mut rules = Vec::with_capacity(spec.rules.len());
        for r in spec.rules {
            let rule = match r {
                RuleSpec::Recording(s) => Rule::Recording(RecordingRule::new(s)),
                RuleSpec::Alerting(s) => Rule::Alerting(AlertingRule::new(s)?),
            };
            rules.push(RuleEntry {
                rule,
                health: Health::Unknown,
                last_error: None,
                last_eval_ms: None,
                last_eval_duration: Duration::ZERO,
                series_last_eval: HashSet::new(),
            });
        }
        Ok(RuleGroup {
            file: spec.file,
            name: spec.name,
            interval: spec.interval.unwrap_or(default_interval),
            query_offset: spec.query_offset.unwrap_or_default(),
            limit: spec.limit,
            rules,
            last_eval_ms: None,
            last_eval_duration: Duration::ZERO,
            datasource: None,
        })
    }

    /// Evaluates every rule in order at `ts_ms` and returns the alerts the
    /// notifier should get now.
    pub fn eval(&mut self, ts_ms: i64, env: &GroupEnv<'_>) -> Vec<Alert> {
        let group_start = env.clock.monotonic();
        let mut to_send = Vec::new();
        let query_ts = ts_ms - millis(self.query_offset);
        for entry in &mut self.rules {
            let start = env.clock.monotonic();
            let result: Result<Vec<Sample>, String> = match &mut entry.rule {
                Rule::Recording(r) => r
                    .eval(ts_ms, self.query_offset, env.engine, self.limit)
                    .map_err(|e| e.to_string()),
                Rule::Alerting(a) => a
                    .eval(&EvalContext {
                        ts_ms,
                        query_offset: self.query_offset,
                        engine: env.engine,
                        external_labels: env.external_labels,
                        external_url: env.external_url,
                        limit: self.limit,
                    })
                    .map_err(|e| e.to_string()),
            };
            if result.is_ok() {
                if let Rule::Alerting(a) = &mut entry.rule {
                    to_send.extend(a.alerts_to_send(ts_ms, env.resend_delay, self.interval));
                }
            }
            let result = result.and_then(|mut samples| {
                let returned: HashSet<Labels> = samples.iter().map(|s| s.labels.clone()).collect();
                for gone in entry.series_last_eval.difference(&returned) {
                    samples.push(Sample {
                        labels: gone.clone(),
                        t_ms: query_ts,
                        value: STALE_NAN,
                    });
                }
                env.appender.append(&samples).map_err(|e| e.to_string())?;
                entry.series_last_eval = returned;
                Ok(())
            });
            match result {
                Ok(()) => {
                    entry.health = Health::Ok;
                    entry.last_error = None;
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = %entry.rule.name(), error = %e, "rule evaluation failed");
                    entry.health = Health::Err;
                    entry.last_error = Some(e);
                }
            }
            entry.last_eval_ms = Some(ts_ms);
            entry.last_eval_duration = env.clock.monotonic().saturating_sub(start);
        }
        self.last_eval_ms = Some(ts_ms);
        self.last_eval_duration = env.clock.monotonic().saturating_sub(group_start);
        to_send
    }

    /// Takes every alert out of the group's alerting rules and returns
    /// them (the group moved to another replica, which restores them from
    /// the history before its first evaluation).
    pub fn forget_alerts(&mut self) -> Vec<crate::alerts::Alert> {
        let mut forgotten = Vec::new();
        for entry in &mut self.rules {
            if let Rule::Alerting(rule) = &mut entry.rule {
                forgotten.extend(rule.forget_alerts());
            }
        }
        forgotten
    }

    /// Carries evaluation state over from the group this one replaces on a
    /// config reload (as Prometheus' `CopyState`): a rule of the same kind,
    /// name and labels keeps its health, last error, written series and
    /// (for alerting rules) its alerts, so `for` timers keep running.
    pub fn copy_state_from(&mut self, old: &RuleGroup) {
        let mut taken = vec![false; old.rules.len()];
        for entry in &mut self.rules {
            let found = old
                .rules
                .iter()
                .enumerate()
                .find(|(i, o)| !taken[*i] && same_rule(&o.rule, &entry.rule));
            let Some((i, o)) = found else { continue };
            taken[i] = true;
            entry.health = o.health;
            entry.last_error = o.last_error.clone();
            entry.last_eval_ms = o.last_eval_ms;
            entry.last_eval_duration = o.last_eval_duration;
            entry.series_last_eval = o.series_last_eval.clone();
            if let (Rule::Alerting(new), Rule::Alerting(prev)) = (&mut entry.rule, &o.rule) {
                new.restore(prev.alerts().cloned());
            }
        }
        self.last_eval_ms = old.last_eval_ms;
        self.last_eval_duration = old.last_eval_duration;
    }

    /// What a reload to `new_groups` takes away from this group: the
    /// pending and firing alerts that the group of the same file and name
    /// (if any is left) no longer holds after [`RuleGroup::copy_state_from`]
    /// — their rule was removed, renamed, moved to another group or had its
    /// labels changed. Each is ended at `ts_ms` (inactive; resolved then if
    /// it was firing), with the rule that held it, so it
    /// can be resolved once like an alert that stopped matching. `None` when
    /// the group stays and keeps every alert.
    pub fn dropped_by_reload(
        &self,
        new_groups: &[&RuleGroup],
        ts_ms: i64,
    ) -> Option<DroppedByReload> {
        let replacement = new_groups
            .iter()
            .find(|g| g.file == self.file && g.name == self.name);
        let held = |alert: &Alert| {
            replacement.is_some_and(|g| {
                g.rules.iter().any(|e| match &e.rule {
                    Rule::Alerting(r) => {
                        r.name() == alert.name() && r.alerts().any(|a| a.labels == alert.labels)
                    }
                    Rule::Recording(_) => false,
                })
            })
        };
        let mut alerts = Vec::new();
        for (index, entry) in self.rules.iter().enumerate() {
            let Rule::Alerting(rule) = &entry.rule else {
                continue;
            };
            for alert in rule.active_alerts().filter(|a| !held(a)) {
                let mut ended = alert.clone();
                if ended.state == AlertState::Firing {
                    ended.resolved_at_ms = Some(ts_ms);
                }
                ended.state = AlertState::Inactive;
                alerts.push((ended, super::send_alerts::RuleSource::of(self, index)));
            }
        }
        (replacement.is_none() || !alerts.is_empty()).then(|| DroppedByReload {
            file: self.file.display().to_string(),
            name: self.name.clone(),
            group_removed: replacement.is_none(),
            alerts,
        })
    }

    /// Staleness markers for every series the group's rules last wrote,
    /// for when the group is removed (Prometheus marks them stale so they
    /// vanish from queries at once instead of after the lookback).
    pub fn stale_markers(&self, ts_ms: i64) -> Vec<Sample> {
        let t_ms = ts_ms - millis(self.query_offset);
        self.rules
            .iter()
            .flat_map(|e| e.series_last_eval.iter())
            .map(|labels| Sample {
                labels: labels.clone(),
                t_ms,
                value: STALE_NAN,
            })
            .collect()
    }

    /// A stable per-group offset within the interval, so groups with the
    /// same interval do not all run at the same instant (as Prometheus
    /// spreads them by a hash of file and name).
    pub fn eval_offset(&self) -> Duration {
        let interval_ms = millis(self.interval).max(1) as u64;
        let mut hasher = StableHasher::default();
        hasher.write(self.file.to_string_lossy().as_bytes());
        hasher.write_u8(0xff);
        hasher.write(self.name.as_bytes());
        Duration::from_millis(hasher.finish() % interval_ms)
    }

    /// The first evaluation slot strictly after `now_ms`: slots are
    /// `offset + k × interval`.
    pub fn next_eval_after(&self, now_ms: i64, aligned: bool) -> i64 {
        let interval = millis(self.interval).max(1);
        let offset = if aligned {
            millis(self.eval_offset())
        } else {
            0
        };
        let adjusted = now_ms - offset;
        let base = adjusted - adjusted.rem_euclid(interval);
        base + offset + interval
    }
}

/// Whether two rules are "the same rule" across a reload.
fn same_rule(a: &Rule, b: &Rule) -> bool {
    match (a, b) {
        (Rule::Recording(x), Rule::Recording(y)) => {
            x.spec().record == y.spec().record && x.spec().labels == y.spec().labels
        }
        (Rule::Alerting(x), Rule::Alerting(y)) => {
            x.spec().alert == y.spec().alert && x.spec().labels == y.spec().labels
        }
        _ => false,
    }
}
