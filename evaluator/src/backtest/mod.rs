//! Backtests: alerting rules replayed over past data from a
//! Prometheus-compatible datasource, to see what they would have done.
//!
//! The data flow, one chunk of the range at a time (bounded memory):
//!
//! ```text
//! fetch.rs   query_range of each distinct (expr, interval, offset) for the chunk
//!   └─► replay.rs  each rule's vectors through the live alert state machine
//!         └─► notify.rs  the alerts it sends through the live notifier (routing,
//!                        grouping, timers, inhibition, time intervals, cooldown)
//! report.rs  per rule: episodes, firing time, near misses, flaps, notifications
//! compare.rs baseline vs changed rules        sweep.rs one rule, many thresholds
//! write.rs   --remote-write: the replayed ALERTS series to a receiver
//! ```
//!
//! A [`Simulation`] is one set of rules with its own notifier; several run
//! side by side over the same fetched data (a baseline and the changed
//! rules; one per sweep value), so a query shared by them is sent once.
//! Recording rules are not replayed: an alerting rule that reads a
//! recorded series needs that series in the datasource.

pub mod compare;
pub mod fetch;
pub mod modes;
pub mod notify;
pub mod range;
pub mod replay;
pub mod report;
pub mod sweep;
pub mod write;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::datasource::DatasourceClient;
use crate::notify::config::NotifyConfig;
use crate::rules::file::{AlertingSpec, GroupSpec, RuleSpec};
use crate::rules::send_alerts::RuleSource;
use fetch::{Source, StepVectors};
use range::TimeRange;
use replay::RuleReplay;
use report::{rule_key, RuleReport};
use sweep::Comparison;

/// Queries sent to the datasource at the same time.
const PARALLEL_QUERIES: usize = 4;
/// Evaluation times between two yields to the async runtime.
const YIELD_EVERY_STEPS: u64 = 64;

/// Settings shared by every simulation of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub range: TimeRange,
    /// The interval of groups that set none (Prometheus'
    /// `evaluation_interval`, default 1m).
    pub default_interval: Duration,
    /// How often a firing alert is re-sent to the notifier (Prometheus'
    /// `--rules.alert.resend-delay`, default 1m).
    pub resend_delay: Duration,
    /// An episode that starts within this long after the previous episode
    /// of the same alert ended is a flap.
    pub flap_window: Duration,
}

/// One alerting rule to replay.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ALERTNAME{static labels}`.
    pub key: String,
    pub group: String,
    pub file: String,
    /// The rule's position in its group, from 0 (for the alerts' links).
    pub index: usize,
    pub spec: AlertingSpec,
    pub interval: Duration,
    pub query_offset: Duration,
    pub limit: usize,
    /// What is queried; the rule's own expression unless `threshold` is set.
    pub query: String,
    /// A sweep: `query` is the other side of this comparison, applied here
    /// with the threshold.
    pub threshold: Option<(Comparison, f64)>,
}

impl Target {
    /// Where its alerts say they come from (their generator URL).
    fn rule_source(&self) -> RuleSource {
        RuleSource {
            file: self.file.clone(),
            group: self.group.clone(),
            index: self.index,
            expr: self.spec.expr.clone(),
        }
    }

    fn source(&self) -> Source {
        Source {
            expr: self.query.clone(),
            interval_ms: millis(self.interval),
            query_offset_ms: millis(self.query_offset),
        }
    }
}

/// A set of rules replayed together through one notifier.
pub struct Simulation {
    pub targets: Vec<Target>,
    pub notify: Arc<NotifyConfig>,
    /// Its `ALERTS` series go to the run's writer.
    pub write: bool,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The alerting rules of loaded rule files as targets (recording rules are
/// skipped), keyed by name and static labels; a second rule with the same
/// key gets `#2`.
pub fn targets(groups: &[GroupSpec], default_interval: Duration) -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for group in groups {
        for (index, rule) in group.rules.iter().enumerate() {
            if let RuleSpec::Alerting(spec) = rule {
                push_target(
                    &mut out,
                    &group.name,
                    &group.file.display().to_string(),
                    index,
                    spec,
                    group.interval.unwrap_or(default_interval),
                    group.query_offset.unwrap_or_default(),
                    group.limit,
                );
            }
        }
    }
    out
}

/// Adds the target of alerting rule `index` of group `group` in `file`.
#[allow(clippy::too_many_arguments)]
pub fn push_target(
    out: &mut Vec<Target>,
    group: &str,
    file: &str,
    index: usize,
    spec: &AlertingSpec,
    interval: Duration,
    query_offset: Duration,
    limit: usize,
) {
    let mut key = rule_key(&spec.alert, &spec.labels);
    let same = out
        .iter()
        .filter(|t| t.key.split('#').next() == Some(key.as_str()))
        .count();
    if same > 0 {
        key = format!("{key}#{}", same + 1);
    }
    out.push(Target {
        key,
        group: group.to_string(),
        file: file.to_string(),
        index,
        spec: spec.clone(),
        interval,
        query_offset,
        limit,
        query: spec.expr.clone(),
        threshold: None,
    });
}

/// Names of recording rules in `groups` that an alerting rule reads: a
/// backtest needs their series in the datasource.
pub fn recorded_series_read(groups: &[GroupSpec]) -> Vec<(String, String)> {
    let recorded: Vec<&str> = groups
        .iter()
        .flat_map(|g| &g.rules)
        .filter_map(|r| match r {
            RuleSpec::Recording(r) => Some(r.record.as_str()),
            RuleSpec::Alerting(_) => None,
        })
        .collect();
    let mut out = Vec::new();
    for rule in groups.iter().flat_map(|g| &g.rules) {
        if let RuleSpec::Alerting(a) = rule {
            for name in &recorded {
                if a.expr.contains(name) {
                    out.push((a.alert.clone(), (*name).to_string()));
                }
            }
        }
    }
    out
}

/// Runs the simulations over `settings.range`; per simulation, a report
/// per target in order.
/// With a `writer`, the series of the simulations that have `write` set
/// are sent to it.
pub async fn run(
    client: &DatasourceClient,
    settings: &Settings,
    simulations: Vec<Simulation>,
    mut writer: Option<&mut write::BacktestWriter>,
) -> Result<Vec<Vec<RuleReport>>, String> {
    let range = settings.range;
    // Distinct queries, and who consumes each.
    let mut sources: Vec<Source> = Vec::new();
    let mut consumers: Vec<Vec<(usize, usize)>> = Vec::new();
    let mut replays: Vec<Vec<RuleReplay>> = Vec::new();
    let mut notifiers = Vec::new();
    for (s, sim) in simulations.iter().enumerate() {
        let mut sim_replays = Vec::new();
        for (t, target) in sim.targets.iter().enumerate() {
            let source = target.source();
            let index = match sources.iter().position(|x| *x == source) {
                Some(i) => i,
                None => {
                    sources.push(source);
                    consumers.push(Vec::new());
                    sources.len() - 1
                }
            };
            consumers[index].push((s, t));
            let mut replay = RuleReplay::new(
                target.spec.clone(),
                target.interval,
                target.query_offset,
                target.limit,
            )?;
            if sim.write && writer.is_some() {
                replay.keep_series();
            }
            sim_replays.push(replay);
        }
        replays.push(sim_replays);
        notifiers.push(notify::NotifySim::new(Arc::clone(&sim.notify)));
    }
    let shortest = sources
        .iter()
        .map(|s| Duration::from_millis(s.interval_ms.max(1) as u64))
        .min()
        .unwrap_or(settings.default_interval);
    let chunk = fetch::chunk_length(shortest);

    let mut steps_done: u64 = 0;
    let mut chunk_start = range.from_ms;
    while chunk_start < range.to_ms {
        let chunk_end = chunk_start.saturating_add(chunk).min(range.to_ms);
        // By index: a closure over `&Source` would not be `Send` for every
        // lifetime, which a server's handler needs.
        let sources_ref = &sources;
        let mut fetched: Vec<StepVectors> = futures::stream::iter(0..sources.len())
            .map(|i| fetch::fetch_chunk(client, &sources_ref[i], chunk_start, chunk_end))
            .buffered(PARALLEL_QUERIES)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut cursors: Vec<_> = sources
            .iter()
            .map(|s| s.steps(chunk_start, chunk_end).peekable())
            .collect();
        while let Some(t) = cursors.iter_mut().filter_map(|c| c.peek().copied()).min() {
            // Let other tasks run (and a dropped request cancel this) on a
            // server's runtime.
            steps_done += 1;
            if steps_done % YIELD_EVERY_STEPS == 0 {
                tokio::task::yield_now().await;
            }
            for n in &mut notifiers {
                n.advance_to(t);
            }
            for (index, cursor) in cursors.iter_mut().enumerate() {
                if cursor.peek() != Some(&t) {
                    continue;
                }
                cursor.next();
                let mut vector = fetched[index].remove(&t).unwrap_or_default();
                let who = &consumers[index];
                for (i, &(s, r)) in who.iter().enumerate() {
                    let input = if i + 1 == who.len() {
                        std::mem::take(&mut vector)
                    } else {
                        vector.clone()
                    };
                    let target = &simulations[s].targets[r];
                    let input = match &target.threshold {
                        Some((comparison, value)) => comparison.apply(input, *value),
                        None => input,
                    };
                    let output = replays[s][r].step(t, input, settings.resend_delay);
                    notifiers[s].send(r, &target.rule_source(), output.sent, t);
                    if let Some(w) = writer.as_deref_mut() {
                        if !output.series.is_empty() && w.push(output.series) {
                            w.flush().await?;
                        }
                    }
                }
            }
        }
        chunk_start = chunk_end;
    }
    for n in &mut notifiers {
        n.advance_to(range.to_ms);
    }
    if let Some(w) = writer {
        w.flush().await?;
    }

    let mut reports = Vec::new();
    for (s, sim) in simulations.iter().enumerate() {
        let per_target: HashMap<usize, _> = (0..sim.targets.len())
            .map(|t| (t, notifiers[s].counts_of(t)))
            .collect();
        reports.push(
            sim.targets
                .iter()
                .enumerate()
                .map(|(t, target)| {
                    RuleReport::new(
                        target.key.clone(),
                        &target.group,
                        &target.file,
                        &replays[s][t],
                        per_target.get(&t).cloned().unwrap_or_default(),
                        range,
                        settings.flap_window,
                    )
                })
                .collect(),
        );
    }
    Ok(reports)
}
