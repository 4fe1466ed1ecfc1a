//! Engine behaviour through its public API over the in-memory store:
//! lookback and staleness, rate, errors, range queries, `@`.

use vigil_evaluator::labels::Labels;
use vigil_evaluator::promql::{Engine, PromqlError, Value};
use vigil_evaluator::store::{Store, STALE_NAN};

const MIN: i64 = 60_000;

/// A series for the fixture: label pairs and `(t, v)` samples.
type Fixture<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn store_with(series: &[Fixture<'_>]) -> Store {
    let mut store = Store::default();
    for (labels, samples) in series {
        let labels = Labels::from_pairs(labels.iter().copied());
        for (t, v) in samples.iter() {
            store.append(&labels, *t, *v).expect("append");
        }
    }
    store
}

fn vector(v: Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(samples) => {
            let mut out: Vec<(String, f64)> = samples
                .into_iter()
                .map(|s| (s.labels.to_string(), s.value))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("expected a vector, got {other:?}"),
    }
}

#[test]
fn instant_selector_looks_back_five_minutes_exclusive() {
    let store = store_with(&[(&[("__name__", "up")], &[(0, 1.0)])]);
    let engine = Engine::default();
    let inside = engine
        .instant_query(&store, "up", 5 * MIN - 1)
        .expect("query");
    let edge = engine.instant_query(&store, "up", 5 * MIN).expect("query");
    assert_eq!(vector(inside), [("up{}".to_string(), 1.0)]);
    assert!(
        vector(edge).is_empty(),
        "a sample exactly 5m old is outside the window"
    );
}

#[test]
fn stale_marker_ends_the_series_immediately() {
    let store = store_with(&[(&[("__name__", "up")], &[(0, 1.0), (MIN, STALE_NAN)])]);
    let got = Engine::default()
        .instant_query(&store, "up", 2 * MIN)
        .expect("query");
    assert!(vector(got).is_empty());
}

#[test]
fn rate_of_a_steady_counter_is_its_slope_and_drops_the_name() {
    let samples: Vec<(i64, f64)> = (0..=10).map(|i| (i * MIN, i as f64 * 60.0)).collect();
    let store = store_with(&[(&[("__name__", "req_total"), ("job", "a")], &samples)]);
    let got = Engine::default()
        .instant_query(&store, "rate(req_total[5m])", 10 * MIN)
        .expect("query");
    let got = vector(got);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, r#"{job="a"}"#);
    assert!((got[0].1 - 1.0).abs() < 1e-9, "rate was {}", got[0].1);
}

#[test]
fn name_collision_after_function_is_an_error() {
    let store = store_with(&[
        (&[("__name__", "a"), ("x", "1")], &[(0, 1.0)]),
        (&[("__name__", "b"), ("x", "1")], &[(0, 2.0)]),
    ]);
    let err = Engine::default()
        .instant_query(&store, r#"abs({x="1"})"#, 0)
        .expect_err("duplicate labelset");
    assert_eq!(
        err,
        PromqlError::Eval("vector cannot contain metrics with the same labelset".into())
    );
}

#[test]
fn parse_error_names_the_query() {
    let err = Engine::default()
        .instant_query(&Store::default(), "sum(", 0)
        .expect_err("bad syntax");
    assert!(err.to_string().contains("sum("), "{err}");
}

#[test]
fn range_query_returns_one_series_with_a_point_per_step() {
    let samples: Vec<(i64, f64)> = (0..=4).map(|i| (i * MIN, i as f64)).collect();
    let store = store_with(&[(&[("__name__", "g")], &samples)]);
    let got = Engine::default()
        .range_query(&store, "g * 2", 0, 4 * MIN, 2 * MIN)
        .expect("query");
    let Value::Matrix(series) = got else {
        panic!("expected a matrix")
    };
    assert_eq!(series.len(), 1);
    assert!(series[0].labels.is_empty());
    assert_eq!(series[0].points, [(0, 0.0), (2 * MIN, 4.0), (4 * MIN, 8.0)]);
}

#[test]
fn at_modifier_pins_the_evaluation_time() {
    let samples: Vec<(i64, f64)> = (0..=10).map(|i| (i * MIN, i as f64)).collect();
    let store = store_with(&[(&[("__name__", "g")], &samples)]);
    let got = Engine::default()
        .instant_query(&store, "g @ 120", 10 * MIN)
        .expect("query");
    assert_eq!(vector(got), [("g{}".to_string(), 2.0)]);
}

#[test]
fn lookbehind_covers_ranges_offsets_subqueries_and_lookback() {
    let engine = Engine::default();
    let lookback = std::time::Duration::from_secs(300);
    let secs = |q: &str| {
        engine
            .parse(q)
            .expect("parses")
            .lookbehind(lookback)
            .as_secs()
    };
    assert_eq!(secs("up"), 300);
    assert_eq!(secs("rate(x[10m] offset 1h)"), 4200);
    assert_eq!(secs("max_over_time(rate(x[5m])[30m:1m])"), 2100);
    assert_eq!(secs("1 + 2"), 0);
}

#[test]
fn clamp_with_nan_bound_yields_nan_like_go_math() {
    let store = store_with(&[(&[("__name__", "g")], &[(0, 5.0)])]);
    let engine = Engine::default();
    let got = vector(
        engine
            .instant_query(&store, "clamp_min(g, NaN)", 0)
            .expect("query"),
    );
    assert!(got[0].1.is_nan());
    let got = vector(
        engine
            .instant_query(&store, "clamp(g, 0, 3)", 0)
            .expect("query"),
    );
    assert_eq!(got, [("{}".to_string(), 3.0)]);
}

#[test]
fn range_query_with_too_many_steps_is_refused_with_advice() {
    let err = Engine::default()
        .range_query(&Store::default(), "1", 0, 20_000_000, 1000)
        .expect_err("too many points");
    assert!(
        err.to_string().contains("decreasing the query resolution"),
        "{err}"
    );
}

#[test]
fn metric_name_is_dropped_immediately_unless_delayed_removal_is_enabled() {
    let samples: Vec<(i64, f64)> = (0..=5).map(|i| (i * MIN, i as f64)).collect();
    let store = store_with(&[(&[("__name__", "x_total")], &samples)]);
    let query = r#"label_replace(rate(x_total[5m]), "orig", "$1", "__name__", "(.*)")"#;
    let immediate = vector(
        Engine::default()
            .instant_query(&store, query, 5 * MIN)
            .expect("query"),
    );
    assert_eq!(immediate[0].0, "{}");
    let delayed_engine = Engine::new(vigil_evaluator::promql::EngineOptions {
        delayed_name_removal: true,
        ..Default::default()
    });
    let delayed = vector(
        delayed_engine
            .instant_query(&store, query, 5 * MIN)
            .expect("query"),
    );
    assert_eq!(delayed[0].0, r#"{orig="x_total"}"#);
}

#[test]
fn collision_inside_an_aggregation_fails_with_immediate_name_removal_only() {
    let store = store_with(&[
        (&[("__name__", "a"), ("x", "1")], &[(0, 1.0)]),
        (&[("__name__", "b"), ("x", "1")], &[(0, 2.0)]),
    ]);
    let query = r#"sum(abs({x="1"}))"#;
    assert!(Engine::default().instant_query(&store, query, 0).is_err());
    let delayed_engine = Engine::new(vigil_evaluator::promql::EngineOptions {
        delayed_name_removal: true,
        ..Default::default()
    });
    let got = vector(
        delayed_engine
            .instant_query(&store, query, 0)
            .expect("query"),
    );
    assert_eq!(got, [("{}".to_string(), 3.0)]);
}

#[test]
fn instant_subquery_over_a_function_returns_series_without_the_name() {
    let samples: Vec<(i64, f64)> = (0..=10).map(|i| (i * MIN, -(i as f64))).collect();
    let store = store_with(&[(&[("__name__", "g"), ("k", "v")], &samples)]);
    let got = Engine::default()
        .instant_query(&store, "abs(g)[3m:1m]", 10 * MIN)
        .expect("query");
    let Value::Matrix(series) = got else {
        panic!("expected a matrix")
    };
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].labels.to_string(), r#"{k="v"}"#);
    assert_eq!(
        series[0].points,
        [(8 * MIN, 8.0), (9 * MIN, 9.0), (10 * MIN, 10.0)]
    );
}

#[test]
fn grouping_by_name_after_rate_depends_on_name_removal_mode() {
    let one: Vec<(i64, f64)> = (0..=10).map(|i| (i * MIN, i as f64)).collect();
    let three: Vec<(i64, f64)> = (0..=10).map(|i| (i * MIN, 3.0 * i as f64)).collect();
    let store = store_with(&[
        (&[("__name__", "m_total"), ("env", "1")], &one),
        (&[("__name__", "m_total"), ("env", "2")], &three),
    ]);
    let query = r#"sum by (__name__) (m_total{env="1"} or rate(m_total{env="2"}[5m]))"#;
    // Immediate removal: rate's output has no name, so it forms its own group.
    let immediate = vector(
        Engine::default()
            .instant_query(&store, query, 10 * MIN)
            .expect("query"),
    );
    assert_eq!(immediate.len(), 2, "{immediate:?}");
    assert_eq!(immediate[0], ("m_total{}".to_string(), 10.0));
    assert_eq!(immediate[1].0, "{}");
    // Delayed removal: the pending name still partitions, then goes.
    let delayed_engine = Engine::new(vigil_evaluator::promql::EngineOptions {
        delayed_name_removal: true,
        ..Default::default()
    });
    let delayed = vector(
        delayed_engine
            .instant_query(&store, query, 10 * MIN)
            .expect("query"),
    );
    assert_eq!(delayed.len(), 1, "{delayed:?}");
    assert_eq!(delayed[0].0, "{}");
    assert!((delayed[0].1 - 10.05).abs() < 1e-9, "{delayed:?}");
}

#[test]
fn series_selector_parses_into_matchers_usable_with_the_store() {
    use vigil_evaluator::promql::{parse_series_selector, SeriesSource};
    let store = store_with(&[
        (&[("__name__", "up"), ("job", "a")], &[(0, 1.0)]),
        (&[("__name__", "up"), ("job", "b")], &[(0, 1.0)]),
    ]);
    let sets = parse_series_selector(r#"up{job=~"a|c"}"#).expect("selector");
    assert_eq!(sets.len(), 1);
    let got = store.select(&sets[0], i64::MIN, i64::MAX);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels.get("job"), Some("a"));
    assert!(parse_series_selector("sum(up)").is_err());
}
