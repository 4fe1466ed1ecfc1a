//! The alert state machine, driven by a scripted query engine and a stepped
//! evaluation time: `for`, `keep_firing_for`, resolved retention, resend
//! pacing, label/annotation templating, `ALERTS` output and error cases.

use std::time::Duration;

use vigil_evaluator::alerts::{AlertError, AlertState, AlertingRule, EvalContext};
use vigil_evaluator::labels::Labels;
use vigil_evaluator::rules::engine::Sample;
use vigil_evaluator::rules::fake::{sample, FakeEngine};
use vigil_evaluator::rules::file::AlertingSpec;
use vigil_evaluator::rules::text_map::TextMap;

const MIN: i64 = 60_000;
const EXPR: &str = "error_ratio > 0.05";

fn spec(for_secs: u64) -> AlertingSpec {
    AlertingSpec {
        alert: "HighErrorRate".into(),
        expr: EXPR.into(),
        for_: Duration::from_secs(for_secs),
        keep_firing_for: Duration::ZERO,
        labels: TextMap::from([("severity".to_string(), "warning".to_string())]),
        annotations: TextMap::from([(
            "summary".to_string(),
            "{{ $labels.route }} fails {{ $value | humanizePercentage }}".to_string(),
        )]),
        cooldown: Some(Duration::from_secs(3600)),
    }
}

fn rule(spec: AlertingSpec) -> AlertingRule {
    AlertingRule::new(spec).expect("templates parse")
}

fn eval(
    rule: &mut AlertingRule,
    engine: &FakeEngine,
    ts_ms: i64,
) -> Result<Vec<Sample>, AlertError> {
    eval_with(rule, engine, ts_ms, 0, Duration::ZERO)
}

fn eval_with(
    rule: &mut AlertingRule,
    engine: &FakeEngine,
    ts_ms: i64,
    limit: usize,
    query_offset: Duration,
) -> Result<Vec<Sample>, AlertError> {
    let external = Labels::from_pairs([("cluster", "eu-1")]);
    rule.eval(&EvalContext {
        ts_ms,
        query_offset,
        engine,
        external_labels: &external,
        external_url: "http://vigil.example",
        limit,
    })
}

fn state(rule: &AlertingRule) -> Option<AlertState> {
    rule.alerts().next().map(|a| a.state)
}

fn failing(engine: &FakeEngine, from_ms: i64) {
    engine.set(
        EXPR,
        from_ms,
        vec![sample(
            &[("__name__", "error_ratio"), ("route", "/api")],
            0.25,
        )],
    );
}

#[test]
fn alert_without_for_fires_on_first_evaluation() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    let mut r = rule(spec(0));
    eval(&mut r, &engine, 0).expect("eval");
    let a = r.alerts().next().expect("one alert");
    assert_eq!(a.state, AlertState::Firing);
    assert_eq!(a.fired_at_ms, Some(0));
}

#[test]
fn pending_alert_fires_after_for_duration() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    let mut r = rule(spec(300));
    for minute in 0..5 {
        eval(&mut r, &engine, minute * MIN).expect("eval");
        assert_eq!(state(&r), Some(AlertState::Pending), "minute {minute}");
    }
    eval(&mut r, &engine, 5 * MIN).expect("eval");
    let a = r.alerts().next().expect("alert");
    assert_eq!(a.state, AlertState::Firing);
    assert_eq!((a.active_at_ms, a.fired_at_ms), (0, Some(5 * MIN)));
}

#[test]
fn pending_alert_that_clears_before_for_never_fires() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    engine.set(EXPR, 2 * MIN, vec![]);
    let mut r = rule(spec(300));
    eval(&mut r, &engine, 0).expect("eval");
    eval(&mut r, &engine, MIN).expect("eval");
    assert_eq!(state(&r), Some(AlertState::Pending));
    let out = eval(&mut r, &engine, 2 * MIN).expect("eval");
    assert!(out.is_empty());
    assert_eq!(
        r.alerts().count(),
        0,
        "a vanished pending alert is dropped, not kept as resolved"
    );
    assert!(r
        .alerts_to_send(2 * MIN, Duration::from_secs(60), Duration::from_secs(60))
        .is_empty());
}

#[test]
fn alert_labels_and_annotations_are_templated_and_carry_cooldown() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    let mut s = spec(0);
    s.labels.insert(
        "team".into(),
        "{{ if gt $value 0.2 }}oncall{{ else }}dev{{ end }}".into(),
    );
    let mut r = rule(s);
    eval(&mut r, &engine, 0).expect("eval");
    let a = r.alerts().next().expect("alert");
    assert_eq!(
        a.labels,
        Labels::from_pairs([
            ("alertname", "HighErrorRate"),
            ("route", "/api"),
            ("severity", "warning"),
            ("team", "oncall")
        ])
    );
    assert_eq!(a.annotations["summary"], "/api fails 25%");
    assert_eq!(a.cooldown, Some(Duration::from_secs(3600)));
}

#[test]
fn template_execution_error_becomes_the_annotation_text() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    let mut s = spec(0);
    s.annotations
        .insert("bad".into(), "{{ humanize \"x\" }}".into());
    let mut r = rule(s);
    eval(&mut r, &engine, 0).expect("a template error does not fail the rule");
    let a = r.alerts().next().expect("alert");
    assert_eq!(
        a.annotations["bad"],
        "<error expanding template: error executing template __alert_HighErrorRate: template: __alert_HighErrorRate:1:115: \
         executing \"__alert_HighErrorRate\" at <humanize \"x\">: error calling humanize: strconv.ParseFloat: parsing \"x\": invalid syntax>"
    );
}

#[test]
fn alerts_series_are_written_for_pending_and_firing_alerts() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    let mut r = rule(spec(60));
    let out = eval_with(&mut r, &engine, 10 * MIN, 0, Duration::from_secs(30)).expect("eval");
    let alerts = Labels::from_pairs([
        ("__name__", "ALERTS"),
        ("alertname", "HighErrorRate"),
        ("alertstate", "pending"),
        ("route", "/api"),
        ("severity", "warning"),
    ]);
    let for_state = Labels::from_pairs([
        ("__name__", "ALERTS_FOR_STATE"),
        ("alertname", "HighErrorRate"),
        ("route", "/api"),
        ("severity", "warning"),
    ]);
    let query_ts = 10 * MIN - 30_000;
    assert_eq!(
        out,
        vec![
            Sample {
                labels: alerts,
                t_ms: query_ts,
                value: 1.0
            },
            Sample {
                labels: for_state,
                t_ms: query_ts,
                value: 600.0
            },
        ]
    );
    assert_eq!(engine.queries()[0], (EXPR.to_string(), query_ts));
}

#[test]
fn resolved_alert_is_kept_fifteen_minutes_then_dropped() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    engine.set(EXPR, MIN, vec![]);
    let mut r = rule(spec(0));
    eval(&mut r, &engine, 0).expect("eval");
    let out = eval(&mut r, &engine, MIN).expect("eval");
    assert!(out.is_empty(), "no ALERTS for a resolved alert");
    let a = r.alerts().next().expect("kept");
    assert_eq!(
        (a.state, a.resolved_at_ms),
        (AlertState::Inactive, Some(MIN))
    );
    eval(&mut r, &engine, 16 * MIN).expect("eval");
    assert_eq!(r.alerts().count(), 1, "still kept at exactly 15 minutes");
    eval(&mut r, &engine, 16 * MIN + 1).expect("eval");
    assert_eq!(r.alerts().count(), 0);
}

#[test]
fn keep_firing_for_holds_alert_after_condition_clears() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    engine.set(EXPR, MIN, vec![]);
    let mut s = spec(0);
    s.keep_firing_for = Duration::from_secs(120);
    let mut r = rule(s);
    eval(&mut r, &engine, 0).expect("eval");
    eval(&mut r, &engine, MIN).expect("eval");
    assert_eq!(state(&r), Some(AlertState::Firing));
    assert_eq!(
        r.alerts().next().and_then(|a| a.keep_firing_since_ms),
        Some(MIN)
    );
    eval(&mut r, &engine, 2 * MIN).expect("eval");
    assert_eq!(state(&r), Some(AlertState::Firing));
    eval(&mut r, &engine, 3 * MIN).expect("eval");
    assert_eq!(state(&r), Some(AlertState::Inactive));
}

#[test]
fn refiring_after_resolve_starts_a_new_pending_alert() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    engine.set(EXPR, MIN, vec![]);
    failing(&engine, 2 * MIN);
    let mut r = rule(spec(60));
    for minute in 0..=2 {
        eval(&mut r, &engine, minute * MIN).expect("eval");
    }
    let a = r.alerts().next().expect("alert");
    assert_eq!(
        (a.state, a.active_at_ms, a.resolved_at_ms),
        (AlertState::Pending, 2 * MIN, None)
    );
}

#[test]
fn duplicate_label_sets_after_templating_are_an_error() {
    let engine = FakeEngine::new();
    engine.set(
        EXPR,
        0,
        vec![
            sample(&[("__name__", "a"), ("route", "/x")], 1.0),
            sample(&[("__name__", "b"), ("route", "/x")], 1.0),
        ],
    );
    let mut r = rule(spec(0));
    let err = eval(&mut r, &engine, 0).expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        "vector contains metrics with the same labelset after applying alert labels"
    );
    assert_eq!(r.alerts().count(), 0);
}

#[test]
fn exceeding_the_limit_clears_all_alerts() {
    let engine = FakeEngine::new();
    engine.set(
        EXPR,
        0,
        (0..3)
            .map(|i| sample(&[("route", &format!("/r{i}"))], 1.0))
            .collect(),
    );
    let mut r = rule(spec(0));
    let err = eval_with(&mut r, &engine, 0, 2, Duration::ZERO).expect_err("limit");
    assert_eq!(err.to_string(), "exceeded limit of 2 with 3 alerts");
    assert_eq!(r.alerts().count(), 0);
    assert!(eval_with(&mut r, &engine, MIN, 3, Duration::ZERO).is_ok());
}

#[test]
fn query_error_leaves_alert_state_unchanged() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    engine.set_error(EXPR, MIN, "query timed out");
    let mut r = rule(spec(0));
    eval(&mut r, &engine, 0).expect("eval");
    let err = eval(&mut r, &engine, MIN).expect_err("query error");
    assert_eq!(err.to_string(), "query timed out");
    assert_eq!(state(&r), Some(AlertState::Firing));
}

#[test]
fn firing_alerts_are_resent_after_resend_delay_and_resolved_ones_at_once() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    engine.set(EXPR, 3 * MIN, vec![]);
    let mut r = rule(spec(0));
    let resend = Duration::from_secs(60);
    let interval = Duration::from_secs(15);
    eval(&mut r, &engine, 0).expect("eval");
    let sent = r.alerts_to_send(0, resend, interval);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].valid_until_ms, Some(4 * MIN));
    assert_eq!(sent[0].ends_at_ms(), Some(4 * MIN));
    assert!(
        r.alerts_to_send(MIN, resend, interval).is_empty(),
        "not after exactly resend_delay"
    );
    assert_eq!(r.alerts_to_send(MIN + 1, resend, interval).len(), 1);
    eval(&mut r, &engine, 3 * MIN).expect("eval");
    let sent = r.alerts_to_send(3 * MIN, resend, interval);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].state, AlertState::Inactive);
    assert_eq!(sent[0].ends_at_ms(), Some(3 * MIN));
}

#[test]
fn pending_alerts_are_never_sent() {
    let engine = FakeEngine::new();
    failing(&engine, 0);
    let mut r = rule(spec(600));
    eval(&mut r, &engine, 0).expect("eval");
    assert!(r
        .alerts_to_send(0, Duration::from_secs(60), Duration::from_secs(15))
        .is_empty());
}
