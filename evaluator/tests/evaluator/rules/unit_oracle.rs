//! Real promtool as the oracle for `vigil-evaluator test rules`: seeded,
//! generated rule files and unit-test files, whose expectations come from
//! a small model of Prometheus' alert state machine and are then partly
//! spoiled on purpose (wrong value, wrong labels, missing alert, extra
//! alert, wrong or missing annotation), are run through both tools; the
//! exit status and the pass/fail verdict of every test group must agree.
//! Files vary `for`, `keep_firing_for` and `evaluation_interval` (1m or 2m,
//! so some eval times fall between steps); inputs have gaps (`_`) and
//! staleness markers; a recording rule feeds an alert.
//!
//! The inputs keep clear of the places where Vigil's engine (Prometheus 3
//! semantics) and promtool 2.42's differ on purpose: no gap reaches the
//! 5-minute lookback edge and no range function is used.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::support::cargo_bin;
use vigil_testkit::external_tool;

const FILES: usize = 30;
const GROUPS_PER_FILE: usize = 3;
/// Minutes of input; eval times stay below this.
const MINUTES: usize = 14;
const INSTANCES: [&str; 2] = ["a", "b"];
/// Input values; `m > 1` selects the last two.
const VALUES: [f64; 4] = [0.0, 1.0, 2.5, 1500.0];

/// xorshift64*: a fixed, dependency-free generator so a failing seed can
/// be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// One input position.
#[derive(Clone, Copy, PartialEq)]
enum Point {
    Value(f64),
    Missing,
    Stale,
}

fn notation(points: &[Point]) -> String {
    points
        .iter()
        .map(|p| match p {
            Point::Value(v) => format!("{v}"),
            Point::Missing => "_".into(),
            Point::Stale => "stale".into(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Go's `humanize` for the few values used here.
fn humanize(v: f64) -> String {
    if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else {
        format!("{v}")
    }
}

/// The value a query sees at minute `t`: the latest point at or before
/// it, unless that is a staleness marker. Gaps are short, so lookback
/// never runs out.
fn visible(points: &[Point], t: usize) -> Option<f64> {
    points[..=t].iter().rev().find_map(|p| match p {
        Point::Value(v) => Some(Some(*v)),
        Point::Stale => Some(None),
        Point::Missing => None,
    })?
}

/// Model of one alert of Prometheus 2.42's state machine.
#[derive(Clone)]
struct ModelAlert {
    active_at: usize,
    firing: bool,
    value: f64,
    keep_firing_since: Option<usize>,
}

/// Per minute, the firing `High` alerts (instance → value of the summary)
/// as of the last evaluation step, with steps every `every` minutes.
fn model_high(
    series: &BTreeMap<&str, Vec<Point>>,
    for_m: usize,
    keep_m: usize,
    every: usize,
) -> Vec<BTreeMap<String, f64>> {
    let mut active: BTreeMap<String, ModelAlert> = BTreeMap::new();
    let mut per_minute: Vec<BTreeMap<String, f64>> = Vec::new();
    for t in 0..MINUTES {
        if t % every != 0 {
            let last = per_minute.last().cloned().unwrap_or_default();
            per_minute.push(last);
            continue;
        }
        let results: BTreeMap<String, f64> = series
            .iter()
            .filter_map(|(inst, pts)| visible(pts, t).map(|v| (inst.to_string(), v)))
            .filter(|(_, v)| *v > 1.0)
            .collect();
        for (inst, v) in &results {
            let a = active.entry(inst.clone()).or_insert(ModelAlert {
                active_at: t,
                firing: false,
                value: *v,
                keep_firing_since: None,
            });
            a.value = *v;
            a.keep_firing_since = None;
        }
        active.retain(|inst, a| {
            if results.contains_key(inst) {
                return true;
            }
            if a.firing && keep_m > 0 {
                let since = *a.keep_firing_since.get_or_insert(t);
                return t - since < keep_m;
            }
            false
        });
        for a in active.values_mut() {
            if !a.firing && t - a.active_at >= for_m {
                a.firing = true;
            }
        }
        per_minute.push(
            active
                .iter()
                .filter(|(_, a)| a.firing)
                .map(|(i, a)| (i.clone(), a.value))
                .collect(),
        );
    }
    per_minute
}

/// `sum by (g) (m)` at minute `t`: absent when no instance is visible.
fn sum_at(series: &BTreeMap<&str, Vec<Point>>, t: usize) -> Option<f64> {
    series
        .values()
        .filter_map(|pts| visible(pts, t))
        .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
}

/// A generated test group, and whether an expectation was spoiled on
/// purpose (then promtool must fail it, whatever the model says).
struct GroupText {
    yaml: String,
    spoiled: bool,
}

/// At most one expectation of a group is spoiled; `budget` says whether
/// that has happened yet.
struct Spoiler {
    budget: bool,
    spoiled: bool,
}

impl Spoiler {
    fn spoil(&mut self, rng: &mut Rng, percent: usize) -> bool {
        if self.budget && !self.spoiled && rng.chance(percent) {
            self.spoiled = true;
            return true;
        }
        false
    }
}

fn alert_yaml(g: usize, inst: &str, value: f64, rng: &mut Rng, sp: &mut Spoiler) -> String {
    let mut severity = "page".to_string();
    let mut summary = format!("{inst} is {}", humanize(value));
    let mut cooldown = "\n        vigil_cooldown: 10m";
    if sp.spoil(rng, 30) {
        match rng.below(3) {
            0 => severity = "ticket".into(),
            1 => summary = format!("{inst} is {}", value + 1.0),
            _ => cooldown = "",
        }
    }
    format!(
        "    - exp_labels: {{severity: {severity}, owner: {inst}-team, inst: {inst}, g: '{g}'}}\n      exp_annotations:\n        summary: '{summary}'{cooldown}\n"
    )
}

fn generate_group(g: usize, rng: &mut Rng, for_m: usize, keep_m: usize, every: usize) -> GroupText {
    let mut series: BTreeMap<&str, Vec<Point>> = BTreeMap::new();
    for inst in INSTANCES {
        let mut pts = Vec::with_capacity(MINUTES);
        let mut gap = 0;
        for _ in 0..MINUTES {
            let roll = rng.below(10);
            let p = if roll == 0 && gap < 3 {
                gap += 1;
                Point::Missing
            } else if roll == 1 {
                gap = 0;
                Point::Stale
            } else {
                gap = 0;
                // Runs make `for` reachable.
                match pts.last() {
                    Some(Point::Value(v)) if rng.chance(60) => Point::Value(*v),
                    _ => Point::Value(VALUES[rng.below(VALUES.len())]),
                }
            };
            pts.push(p);
        }
        series.insert(inst, pts);
    }
    let high = model_high(&series, for_m, keep_m, every);
    // Rules see the input loaded up to their step; PromQL tests run after
    // the last step and see the input loaded up to it.
    let step_of = |minute: usize| minute / every * every;
    let mut times: Vec<(usize, bool)> = Vec::new();
    // The step before and the step at which an alert first fires (the
    // pending/firing edge of `for`), plus random times.
    if let Some(first) = (1..MINUTES - 1).find(|m| !high[*m].is_empty()) {
        times.extend([(first - 1, false), (first, false)]);
    }
    while times.len() < 4 {
        times.push((rng.below(MINUTES - 1), rng.chance(25)));
    }
    let sum_minute = rng.below(MINUTES - 1);
    let promql_minutes = [rng.below(MINUTES - 1), rng.below(MINUTES - 1)];
    let last_minute = times
        .iter()
        .map(|t| t.0)
        .chain([sum_minute])
        .chain(promql_minutes)
        .max()
        .unwrap_or(0);
    let last_step = step_of(last_minute);
    let mut sp = Spoiler {
        budget: rng.chance(50),
        spoiled: false,
    };
    let mut y = String::new();
    let _ = writeln!(y, "- name: g{g}\n  interval: 1m\n  input_series:");
    for (inst, pts) in &series {
        let _ = writeln!(
            y,
            "  - series: 'm{{g=\"{g}\", inst=\"{inst}\"}}'\n    values: '{}'",
            notation(pts)
        );
    }
    let _ = writeln!(y, "  alert_rule_test:");
    for (minute, half) in times {
        let eval = if half {
            format!("{minute}m30s")
        } else {
            format!("{minute}m")
        };
        let _ = writeln!(y, "  - eval_time: {eval}\n    alertname: High");
        let firing = &high[minute];
        let mut alerts = String::new();
        for (inst, value) in firing {
            if sp.spoil(rng, 15) {
                continue; // a missing alert
            }
            alerts.push_str(&alert_yaml(g, inst, *value, rng, &mut sp));
        }
        if sp.spoil(rng, 15) {
            // An extra alert, itself left intact.
            let mut intact = Spoiler {
                budget: false,
                spoiled: false,
            };
            alerts.push_str(&alert_yaml(g, "zz", 2.5, rng, &mut intact));
        }
        if !alerts.is_empty() {
            let _ = write!(y, "    exp_alerts:\n{alerts}");
        }
    }
    // SumHigh reads the recording rule of the same step.
    let minute = sum_minute;
    let sum = sum_at(&series, step_of(minute));
    let _ = writeln!(y, "  - eval_time: {minute}m\n    alertname: SumHigh");
    if let Some(s) = sum.filter(|s| *s > 2.0) {
        let shown = if sp.spoil(rng, 30) { s + 1.0 } else { s };
        let _ = write!(
            y,
            "    exp_alerts:\n    - exp_labels: {{g: '{g}'}}\n      exp_annotations: {{summary: 'sum {shown}'}}\n"
        );
    }
    let _ = writeln!(y, "  promql_expr_test:");
    for minute in promql_minutes {
        let (expr, mut samples): (String, Vec<(String, f64)>) = if rng.chance(50) {
            let samples = sum_at(&series, step_of(minute))
                .map(|v| (format!("g:m:sum{{g=\"{g}\"}}"), v))
                .into_iter()
                .collect();
            (format!("g:m:sum{{g=\"{g}\"}}"), samples)
        } else {
            let samples = series
                .iter()
                .filter_map(|(inst, pts)| {
                    visible(pts, minute.min(last_step))
                        .map(|v| (format!("m{{g=\"{g}\", inst=\"{inst}\"}}"), v))
                })
                .collect();
            (format!("m{{g=\"{g}\"}}"), samples)
        };
        if !samples.is_empty() && sp.spoil(rng, 40) {
            match rng.below(3) {
                0 => samples[0].1 += 1.0,
                1 => samples[0].0 = samples[0].0.replace('}', ", extra=\"x\"}"),
                _ => {
                    samples.pop();
                }
            }
        }
        let _ = writeln!(y, "  - expr: '{expr}'\n    eval_time: {minute}m");
        if !samples.is_empty() {
            let _ = writeln!(y, "    exp_samples:");
            for (labels, v) in samples {
                let _ = writeln!(y, "    - labels: '{labels}'\n      value: {v}");
            }
        }
    }
    GroupText {
        yaml: y,
        spoiled: sp.spoiled,
    }
}

fn rule_file(for_m: usize, keep_m: usize) -> String {
    format!(
        r#"groups:
- name: rec
  rules:
  - record: g:m:sum
    expr: sum by (g) (m)
- name: alerts
  rules:
  - alert: High
    expr: m > 1
    for: {for_m}m
    keep_firing_for: {keep_m}m
    labels:
      severity: page
      owner: '{{{{ $labels.inst }}}}-team'
    annotations:
      summary: '{{{{ $labels.inst }}}} is {{{{ $value | humanize }}}}'
      vigil_cooldown: 10m
  - alert: SumHigh
    expr: g:m:sum > 2
    annotations:
      summary: 'sum {{{{ $value }}}}'
"#
    )
}

/// Runs a tool and returns its exit code and the groups it reported as
/// failed: failures name their group (`name: gN,`) or, for PromQL tests,
/// select `g="N"`.
fn failed_groups(tool: &Path, args: &[&str], file: &Path) -> (i32, Vec<usize>) {
    let out = Command::new(tool)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", tool.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = (0..GROUPS_PER_FILE)
        .filter(|g| {
            stderr.lines().any(|l| {
                l.starts_with(&format!("    name: g{g},"))
                    || (l.starts_with("    expr: ") && l.contains(&format!("g=\\\"{g}\\\"")))
            })
        })
        .collect();
    (out.status.code().unwrap_or(-1), failed)
}

#[test]
fn verdicts_agree_with_promtool_on_generated_tests() {
    let Some(promtool) = external_tool("promtool") else {
        return;
    };
    let vigil = cargo_bin("vigil-evaluator");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut passing, mut failing, mut unspoiled_failing) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for n in 0..FILES {
        let for_m = rng.below(4);
        let keep_m = rng.below(3);
        let every = 1 + rng.below(2);
        let rules = dir.path().join(format!("rules{n}.yaml"));
        std::fs::write(&rules, rule_file(for_m, keep_m)).expect("write rules");
        let mut text = format!(
            "rule_files: [rules{n}.yaml]\nevaluation_interval: {every}m\ngroup_eval_order: [rec, alerts]\ntests:\n"
        );
        let mut spoiled = Vec::new();
        for g in 0..GROUPS_PER_FILE {
            let group = generate_group(g, &mut rng, for_m, keep_m, every);
            text.push_str(&group.yaml);
            if group.spoiled {
                spoiled.push(g);
            }
        }
        let test = dir.path().join(format!("test{n}.yaml"));
        std::fs::write(&test, &text).expect("write test");

        let (want_code, want_failed) = failed_groups(&promtool, &["test", "rules"], &test);
        unspoiled_failing += want_failed.iter().filter(|g| !spoiled.contains(g)).count();
        let (got_code, got_failed) = failed_groups(&vigil, &["test", "rules"], &test);
        for g in &spoiled {
            assert!(
                want_failed.contains(g),
                "promtool passed spoiled group g{g} of {}: the verdict reading is broken\n{text}",
                test.display()
            );
        }
        failing += want_failed.len();
        passing += GROUPS_PER_FILE - want_failed.len();
        if (want_code, &want_failed) != (got_code, &got_failed) {
            disagreements.push(format!(
                "{}: promtool exit {want_code} failed groups {want_failed:?}; vigil exit {got_code} failed groups {got_failed:?}\n{text}",
                test.display()
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {FILES} files disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    eprintln!(
        "{passing} groups pass and {failing} fail under promtool ({unspoiled_failing} not spoiled)"
    );
    // Both verdicts must be well represented, or the comparison says little.
    let total = FILES * GROUPS_PER_FILE;
    assert!(
        passing >= total / 5,
        "only {passing} of {total} groups pass"
    );
    assert!(
        failing >= total / 5,
        "only {failing} of {total} groups fail"
    );
}
