//! Rule groups: in-order evaluation with write-back, health and errors,
//! staleness, query offset, and the scheduler on a simulated clock.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_evaluator::clock::{Clock, SimClock};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::rules::fake::{sample, FakeEngine};
use vigil_evaluator::rules::file::parse_rule_file;
use vigil_evaluator::rules::group::{GroupEnv, Health, RuleGroup};
use vigil_evaluator::rules::scheduler::{run_groups, Admission, AdmitAll};
use vigil_evaluator::stale::is_stale;

const MIN: i64 = 60_000;

fn group(src: &str) -> RuleGroup {
    let mut specs = parse_rule_file(&PathBuf::from("g.yaml"), src).expect("valid rule file");
    RuleGroup::new(specs.remove(0), Duration::from_secs(15)).expect("group")
}

fn env<'a>(engine: &'a FakeEngine, external: &'a Labels) -> GroupEnv<'a> {
    GroupEnv {
        engine,
        appender: engine,
        external_labels: external,
        external_url: "http://vigil.example",
        resend_delay: Duration::from_secs(60),
        clock: &vigil_evaluator::clock::SystemClock,
    }
}

const RATIO_GROUP: &str = "groups:
- name: ratio
  rules:
  - record: route:error_ratio:rate5m
    expr: sum by (route) (rate(errors[5m])) / sum by (route) (rate(requests[5m]))
    labels: {source: vigil}
  - alert: HighErrorRatio
    expr: route:error_ratio:rate5m
    annotations: {summary: '{{ $labels.route }} at {{ $value }}'}
";

#[test]
fn later_rules_see_recording_rule_output_of_the_same_evaluation() {
    let engine = FakeEngine::new();
    engine.set(
        "sum by (route) (rate(errors[5m])) / sum by (route) (rate(requests[5m]))",
        0,
        vec![sample(&[("route", "/api")], 0.3)],
    );
    let mut g = group(RATIO_GROUP);
    let external = Labels::default();
    let sent = g.eval(MIN, &env(&engine, &external));
    assert_eq!(sent.len(), 1, "the alert fired from the recorded series");
    assert_eq!(sent[0].annotations["summary"], "/api at 0.3");
    assert_eq!(sent[0].labels.get("source"), Some("vigil"));
    let recorded = &engine.appended()[0];
    assert_eq!(
        recorded.labels,
        Labels::from_pairs([
            ("__name__", "route:error_ratio:rate5m"),
            ("route", "/api"),
            ("source", "vigil")
        ])
    );
    assert_eq!((recorded.t_ms, recorded.value), (MIN, 0.3));
    assert!(g.rules.iter().all(|r| r.health == Health::Ok));
}

#[test]
fn health_is_unknown_until_evaluated_then_err_with_message_then_ok_again() {
    let engine = FakeEngine::new();
    let mut g = group("groups:\n- name: g\n  rules:\n  - record: x:y\n    expr: vector(1)\n");
    assert_eq!(g.rules[0].health, Health::Unknown);
    engine.set_error("vector(1)", 0, "query timed out");
    engine.set("vector(1)", MIN, vec![sample(&[], 1.0)]);
    let external = Labels::default();
    g.eval(0, &env(&engine, &external));
    assert_eq!(g.rules[0].health, Health::Err);
    assert_eq!(g.rules[0].last_error.as_deref(), Some("query timed out"));
    g.eval(MIN, &env(&engine, &external));
    assert_eq!(
        (g.rules[0].health, g.rules[0].last_error.clone()),
        (Health::Ok, None)
    );
    assert_eq!(
        (g.rules[0].last_eval_ms, g.last_eval_ms),
        (Some(MIN), Some(MIN))
    );
}

#[test]
fn recording_rule_with_duplicate_output_series_is_an_error() {
    let engine = FakeEngine::new();
    engine.set(
        "up",
        0,
        vec![
            sample(&[("__name__", "up"), ("job", "a")], 1.0),
            sample(&[("__name__", "other"), ("job", "a")], 1.0),
        ],
    );
    let mut g = group("groups:\n- name: g\n  rules:\n  - record: job:up\n    expr: up\n");
    g.eval(0, &env(&engine, &Labels::default()));
    assert_eq!(
        g.rules[0].last_error.as_deref(),
        Some("vector contains metrics with the same labelset after applying rule labels")
    );
    assert!(engine.appended().is_empty());
}

#[test]
fn recording_rule_over_the_group_limit_fails() {
    let engine = FakeEngine::new();
    engine.set(
        "up",
        0,
        (0..3)
            .map(|i| sample(&[("i", &i.to_string())], 1.0))
            .collect(),
    );
    let mut g =
        group("groups:\n- name: g\n  limit: 2\n  rules:\n  - record: job:up\n    expr: up\n");
    g.eval(0, &env(&engine, &Labels::default()));
    assert_eq!(
        g.rules[0].last_error.as_deref(),
        Some("exceeded limit of 2 with 3 series")
    );
}

#[test]
fn series_a_rule_stops_producing_get_a_staleness_marker() {
    let engine = FakeEngine::new();
    engine.set(
        "up",
        0,
        vec![sample(&[("job", "a")], 1.0), sample(&[("job", "b")], 1.0)],
    );
    engine.set("up", MIN, vec![sample(&[("job", "a")], 1.0)]);
    let mut g = group("groups:\n- name: g\n  rules:\n  - record: job:up\n    expr: up\n");
    let external = Labels::default();
    g.eval(0, &env(&engine, &external));
    g.eval(MIN, &env(&engine, &external));
    let stale: Vec<_> = engine
        .appended()
        .into_iter()
        .filter(|s| is_stale(s.value))
        .collect();
    assert_eq!(stale.len(), 1);
    assert_eq!(
        stale[0].labels,
        Labels::from_pairs([("__name__", "job:up"), ("job", "b")])
    );
    assert_eq!(stale[0].t_ms, MIN);
}

#[test]
fn query_offset_shifts_query_and_output_time() {
    let engine = FakeEngine::new();
    engine.set_scalar("vector(1)", 0, 1.0);
    let mut g = group(
        "groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - record: one\n    expr: vector(1)\n",
    );
    g.eval(10 * MIN, &env(&engine, &Labels::default()));
    assert_eq!(engine.queries(), vec![("vector(1)".to_string(), 9 * MIN)]);
    assert_eq!(engine.appended()[0].t_ms, 9 * MIN);
}

#[test]
fn group_interval_defaults_to_the_global_evaluation_interval() {
    assert_eq!(
        group("groups:\n- name: g\n  rules: []\n").interval,
        Duration::from_secs(15)
    );
    assert_eq!(
        group("groups:\n- name: g\n  interval: 1m\n  rules: []\n").interval,
        Duration::from_secs(60)
    );
}

#[test]
fn next_evaluation_slot_is_offset_by_a_stable_hash_within_the_interval() {
    let g = group("groups:\n- name: g\n  interval: 1m\n  rules: []\n");
    let offset = g.eval_offset().as_millis() as i64;
    assert!(offset < MIN);
    assert_eq!(
        g.next_eval_after(10 * MIN + offset, true),
        11 * MIN + offset
    );
    assert_eq!(
        g.next_eval_after(10 * MIN + offset - 1, true),
        10 * MIN + offset
    );
    assert_eq!(g.next_eval_after(10 * MIN, false), 11 * MIN);
}

#[tokio::test(flavor = "current_thread")]
async fn scheduler_evaluates_each_group_on_its_interval_until_cancelled() {
    let engine = FakeEngine::new();
    engine.set_scalar("vector(1)", 0, 1.0);
    let fast = Arc::new(Mutex::new(group(
        "groups:\n- name: fast\n  interval: 1m\n  rules:\n  - record: a\n    expr: vector(1)\n",
    )));
    let slow = Arc::new(Mutex::new(group(
        "groups:\n- name: slow\n  interval: 5m\n  rules:\n  - record: b\n    expr: vector(1)\n",
    )));
    let clock = SimClock::new(chrono::DateTime::UNIX_EPOCH);
    let cancel = CancellationToken::new();
    let external = Labels::default();
    let env = env(&engine, &external);
    let groups = [fast.clone(), slow.clone()];
    let evaluations = Mutex::new(Vec::new());
    let record = |g: &RuleGroup, _alerts: Vec<_>| {
        evaluations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((g.name.clone(), g.last_eval_ms));
    };
    let driver = async {
        for _ in 0..(10 * 6) {
            clock.advance(Duration::from_millis(10_000));
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
        }
        cancel.cancel();
    };
    tokio::join!(
        run_groups(&groups, &env, &clock, &cancel, false, &AdmitAll, &record),
        driver
    );
    let evals = evaluations.into_inner().unwrap_or_else(|e| e.into_inner());
    let fast_times: Vec<i64> = evals
        .iter()
        .filter(|(n, _)| n == "fast")
        .filter_map(|(_, t)| *t)
        .collect();
    let slow_times: Vec<i64> = evals
        .iter()
        .filter(|(n, _)| n == "slow")
        .filter_map(|(_, t)| *t)
        .collect();
    assert_eq!(fast_times, (1..=10).map(|m| m * MIN).collect::<Vec<_>>());
    assert_eq!(slow_times, vec![5 * MIN, 10 * MIN]);
    assert_eq!(clock.now_ms(), 10 * MIN);
}

/// Admits a group only from `from_ms` on (as a replica that takes it
/// then), with the slots `late` first (the ones its previous owner missed).
struct From<'a> {
    group: &'static str,
    from_ms: i64,
    late: Mutex<Vec<i64>>,
    clock: &'a SimClock,
}

#[async_trait::async_trait(?Send)]
impl Admission for From<'_> {
    async fn admit(&self, group: &Mutex<RuleGroup>, slot_ms: i64) -> Vec<i64> {
        let g = group.lock().unwrap_or_else(|e| e.into_inner());
        if g.name == self.group && self.clock.now_ms() < self.from_ms {
            return Vec::new();
        }
        let mut slots = std::mem::take(&mut *self.late.lock().unwrap_or_else(|e| e.into_inner()));
        slots.push(slot_ms);
        slots
    }

    async fn claim(&self, _group: &Mutex<RuleGroup>, _slot_ms: i64) -> bool {
        true
    }
}

#[tokio::test(flavor = "current_thread")]
async fn scheduler_skips_the_slots_of_a_group_it_is_not_admitted_to_and_evaluates_late_ones() {
    let engine = FakeEngine::new();
    engine.set_scalar("vector(1)", 0, 1.0);
    let owned = Arc::new(Mutex::new(group(
        "groups:\n- name: owned\n  interval: 1m\n  rules:\n  - record: a\n    expr: vector(1)\n",
    )));
    let groups = [owned];
    let clock = SimClock::new(chrono::DateTime::UNIX_EPOCH);
    let admission = From {
        group: "owned",
        from_ms: 4 * MIN,
        late: Mutex::new(vec![2 * MIN, 3 * MIN]),
        clock: &clock,
    };
    let cancel = CancellationToken::new();
    let external = Labels::default();
    let env = env(&engine, &external);
    let times = Mutex::new(Vec::new());
    let record = |g: &RuleGroup, _alerts: Vec<_>| {
        times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(g.last_eval_ms);
    };
    let driver = async {
        for _ in 0..(6 * 6) {
            clock.advance(Duration::from_millis(10_000));
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
        }
        cancel.cancel();
    };
    tokio::join!(
        run_groups(&groups, &env, &clock, &cancel, false, &admission, &record),
        driver
    );
    let got = times.into_inner().unwrap_or_else(|e| e.into_inner());
    assert_eq!(got, vec![2 * MIN, 3 * MIN, 4 * MIN, 5 * MIN, 6 * MIN]);
}

#[test]
fn reload_keeps_alert_state_of_unchanged_rules() {
    let engine = FakeEngine::new();
    engine.set("up == 0", 0, vec![sample(&[("job", "a")], 0.0)]);
    let rules = "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 5m\n";
    let mut old = group(rules);
    let external = Labels::default();
    for minute in 0..3 {
        old.eval(minute * MIN, &env(&engine, &external));
    }
    let mut new = group(rules);
    new.copy_state_from(&old);
    for minute in 3..=5 {
        new.eval(minute * MIN, &env(&engine, &external));
    }
    let vigil_evaluator::rules::group::Rule::Alerting(a) = &new.rules[0].rule else {
        panic!("an alerting rule")
    };
    let alert = a.alerts().next().expect("alert carried over");
    assert_eq!(
        alert.active_at_ms, 0,
        "the for timer kept running across the reload"
    );
    assert_eq!(alert.state, vigil_evaluator::alerts::AlertState::Firing);
}

#[test]
fn removed_group_marks_its_series_stale() {
    let engine = FakeEngine::new();
    engine.set("up", 0, vec![sample(&[("job", "a")], 1.0)]);
    let mut g = group("groups:\n- name: g\n  rules:\n  - record: job:up\n    expr: up\n");
    g.eval(0, &env(&engine, &Labels::default()));
    let markers = g.stale_markers(MIN);
    assert_eq!(markers.len(), 1);
    assert_eq!(
        markers[0].labels,
        Labels::from_pairs([("__name__", "job:up"), ("job", "a")])
    );
    assert!(is_stale(markers[0].value));
    assert_eq!(markers[0].t_ms, MIN);
}

#[test]
fn reload_with_longer_for_sends_a_firing_alert_back_to_pending() {
    let engine = FakeEngine::new();
    engine.set("up == 0", 0, vec![sample(&[("job", "a")], 0.0)]);
    let mut old =
        group("groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 1m\n");
    let external = Labels::default();
    for minute in 0..3 {
        old.eval(minute * MIN, &env(&engine, &external));
    }
    let mut new =
        group("groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 10m\n");
    new.copy_state_from(&old);
    new.eval(3 * MIN, &env(&engine, &external));
    let vigil_evaluator::rules::group::Rule::Alerting(a) = &new.rules[0].rule else {
        panic!("an alerting rule")
    };
    let alert = a.alerts().next().expect("alert carried over");
    assert_eq!(
        (alert.state, alert.fired_at_ms),
        (vigil_evaluator::alerts::AlertState::Pending, None)
    );
    new.eval(10 * MIN, &env(&engine, &external));
    let vigil_evaluator::rules::group::Rule::Alerting(a) = &new.rules[0].rule else {
        panic!("an alerting rule")
    };
    assert_eq!(
        a.alerts().next().map(|a| a.state),
        Some(vigil_evaluator::alerts::AlertState::Firing)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn aligned_scheduler_evaluates_at_the_groups_hash_offset() {
    let engine = FakeEngine::new();
    engine.set_scalar("vector(1)", 0, 1.0);
    let g = group(
        "groups:\n- name: aligned\n  interval: 1m\n  rules:\n  - record: a\n    expr: vector(1)\n",
    );
    let offset = g.eval_offset().as_millis() as i64;
    let groups = [Arc::new(Mutex::new(g))];
    let clock = SimClock::new(chrono::DateTime::UNIX_EPOCH);
    let cancel = CancellationToken::new();
    let external = Labels::default();
    let env = env(&engine, &external);
    let times = Mutex::new(Vec::new());
    let record = |g: &RuleGroup, _alerts: Vec<_>| {
        times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(g.last_eval_ms);
    };
    let driver = async {
        // Step 1s at a time through three minutes so every slot is hit exactly.
        for _ in 0..180 {
            clock.advance(Duration::from_millis(1_000));
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
        cancel.cancel();
    };
    tokio::join!(
        run_groups(&groups, &env, &clock, &cancel, true, &AdmitAll, &record),
        driver
    );
    let got = times.into_inner().unwrap_or_else(|e| e.into_inner());
    let want: Vec<i64> = (0..3)
        .map(|k| offset + k * MIN)
        .filter(|t| *t > 0 && *t <= 3 * MIN)
        .collect();
    assert_eq!(got, want, "evaluation timestamps are the slots themselves");
}
