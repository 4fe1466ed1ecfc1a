//! The three ways to run a backtest, shared by the command line and the
//! API: the rules alone, the rules against a baseline, or one rule swept
//! over thresholds; each builds its simulations, runs them and returns an
//! [`Outcome`] that the caller prints as text or JSON.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};

use super::compare::{self, RuleDiff};
use super::range::show;
use super::report::RuleReport;
use super::sweep::{self, Comparison, SweepSpec};
use super::write::BacktestWriter;
use super::{run, Settings, Simulation, Target};
use crate::datasource::DatasourceClient;
use crate::notify::config::NotifyConfig;

/// What to run besides the rules.
pub enum Mode {
    /// The rules alone.
    Plain,
    /// The rules against these (old) ones.
    Baseline(Vec<Target>),
    /// One rule of the rules, at each threshold.
    Sweep(SweepSpec),
}

/// One line of a sweep's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    pub threshold: f64,
    pub expr: String,
    pub episodes: usize,
    pub episodes_per_week: f64,
    pub notifications: u64,
    pub notifications_per_week: f64,
    pub firing_seconds: f64,
    pub near_misses: u64,
    pub flaps: usize,
}

/// What a run found.
pub enum Outcome {
    Plain(Vec<RuleReport>),
    Compare {
        baseline: Vec<RuleReport>,
        changed: Vec<RuleReport>,
        differences: Vec<RuleDiff>,
    },
    Sweep {
        /// The swept rule's key and expression as written.
        rule: String,
        expr: String,
        comparison: Comparison,
        rows: Vec<SweepRow>,
        /// Each value's report, in the order of `rows`.
        reports: Vec<RuleReport>,
    },
}

/// The rule a sweep names: exactly one of `targets`.
fn swept<'a>(targets: &'a [Target], spec: &SweepSpec) -> Result<&'a Target, String> {
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| spec.selects(&t.spec.alert, &t.spec.labels))
        .collect();
    let keys = |list: &[&Target]| {
        list.iter()
            .map(|t| t.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match chosen.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "--sweep: no alerting rule {}{} in the rule files; the rules are: {}",
            spec.alertname,
            if spec.labels.is_empty() {
                String::new()
            } else {
                format!(" with labels {:?}", spec.labels)
            },
            keys(&targets.iter().collect::<Vec<_>>())
        )),
        many => Err(format!(
            "--sweep: {} rules match ({}); add their labels to pick one, e.g. '{}{{severity=warning}}:...'",
            many.len(),
            keys(many),
            spec.alertname
        )),
    }
}

/// Runs `rules` in `mode` over `settings.range`; with a `writer`, the
/// rules' `ALERTS` series are written (not the baseline's or a sweep's).
pub async fn execute(
    client: &DatasourceClient,
    settings: &Settings,
    rules: Vec<Target>,
    mode: Mode,
    notify: Arc<NotifyConfig>,
    writer: Option<&mut BacktestWriter>,
) -> Result<Outcome, String> {
    match mode {
        Mode::Plain => {
            let simulations = vec![Simulation {
                targets: rules,
                notify,
                write: true,
            }];
            let mut reports = run(client, settings, simulations, writer).await?;
            Ok(Outcome::Plain(reports.remove(0)))
        }
        Mode::Baseline(old) => {
            let simulations = vec![
                Simulation {
                    targets: rules,
                    notify: Arc::clone(&notify),
                    write: true,
                },
                Simulation {
                    targets: old,
                    notify,
                    write: false,
                },
            ];
            let mut reports = run(client, settings, simulations, writer).await?;
            let changed = reports.remove(0);
            let baseline = reports.remove(0);
            let differences = compare::compare(&baseline, &changed);
            Ok(Outcome::Compare {
                baseline,
                changed,
                differences,
            })
        }
        Mode::Sweep(spec) => {
            let target = swept(&rules, &spec)?;
            let comparison = sweep::find_comparison(&target.key, &target.spec.expr)?;
            // The other rules with the same name go along unchanged: they
            // share its aggregation groups when routes group by alertname,
            // and inhibit it (critical over warning). Their queries are
            // shared by every value's simulation.
            let siblings: Vec<Target> = rules
                .iter()
                .filter(|t| t.spec.alert == target.spec.alert && t.key != target.key)
                .cloned()
                .collect();
            let simulations = spec
                .values
                .iter()
                .map(|&value| {
                    let mut t = target.clone();
                    // Tells the values' episodes apart in `--output episodes`.
                    t.key = format!("{} at {value}", target.key);
                    t.spec.expr = comparison.expr_with(value);
                    t.query = comparison.other_side.clone();
                    t.threshold = Some((comparison.clone(), value));
                    let mut targets = vec![t];
                    targets.extend(siblings.iter().cloned());
                    Simulation {
                        targets,
                        notify: Arc::clone(&notify),
                        write: false,
                    }
                })
                .collect();
            // The swept rule's report of each value.
            let reports: Vec<RuleReport> = run(client, settings, simulations, None)
                .await?
                .into_iter()
                .filter_map(|per_value| per_value.into_iter().next())
                .collect();
            let weeks = settings.range.length().as_secs_f64() / (7.0 * 86_400.0);
            let rows = reports
                .iter()
                .zip(&spec.values)
                .map(|(r, &threshold)| SweepRow {
                    threshold,
                    expr: r.expr.clone(),
                    episodes: r.episodes,
                    episodes_per_week: r.episodes as f64 / weeks,
                    notifications: r.notifications_total,
                    notifications_per_week: r.notifications_total as f64 / weeks,
                    firing_seconds: r.firing_seconds,
                    near_misses: r.near_misses,
                    flaps: r.flaps,
                })
                .collect();
            Ok(Outcome::Sweep {
                rule: target.key.clone(),
                expr: target.spec.expr.clone(),
                comparison,
                rows,
                reports,
            })
        }
    }
}

impl Outcome {
    /// Everything, as JSON, with the range.
    pub fn to_json(&self, settings: &Settings) -> Value {
        let (from, to) = (show(settings.range.from_ms), show(settings.range.to_ms));
        match self {
            Outcome::Plain(rules) => json!({"from": from, "to": to, "rules": rules}),
            Outcome::Compare {
                baseline,
                changed,
                differences,
            } => json!({
                "from": from, "to": to,
                "baseline": baseline, "changed": changed, "differences": differences,
            }),
            Outcome::Sweep {
                rule,
                expr,
                comparison,
                rows,
                ..
            } => json!({
                "from": from, "to": to,
                "rule": rule, "expr": expr, "threshold_in_rule": comparison.constant,
                "values": rows,
            }),
        }
    }
}
