//! Specifications of the store: append rules, index lookups, retention, limits.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn re(name: &str, pattern: &str) -> Matcher {
    let anchored = format!("^(?:{pattern})$");
    Matcher::new(
        MatchOp::Re(regex::Regex::new(&anchored).expect("test regex")),
        name,
        pattern,
    )
}

fn eq(name: &str, value: &str) -> Matcher {
    Matcher::new(MatchOp::Equal, name, value)
}

#[test]
fn out_of_order_sample_is_rejected() {
    let mut store = Store::default();
    let l = labels(&[("__name__", "up")]);
    store.append(&l, 2000, 1.0).expect("first sample");
    let err = store.append(&l, 1000, 1.0).expect_err("older sample");
    assert!(matches!(
        err,
        StoreError::OutOfOrder {
            t: 1000,
            newest: 2000,
            ..
        }
    ));
}

#[test]
fn same_timestamp_same_value_is_accepted_but_different_value_is_not() {
    let mut store = Store::default();
    let l = labels(&[("__name__", "up")]);
    store.append(&l, 1000, 1.0).expect("first");
    store.append(&l, 1000, 1.0).expect("identical duplicate");
    assert_eq!(store.sample_count(), 1);
    assert!(matches!(
        store.append(&l, 1000, 2.0),
        Err(StoreError::DuplicateTimestamp { .. })
    ));
}

#[test]
fn stale_marker_is_distinguished_from_ordinary_nan() {
    assert!(is_stale(STALE_NAN));
    assert!(!is_stale(f64::NAN));
    assert!(STALE_NAN.is_nan());
}

#[test]
fn selector_intersects_equality_and_regex_matchers() {
    let mut store = Store::default();
    for (job, status) in [("x", "500"), ("x", "200"), ("y", "503"), ("x", "502")] {
        let l = labels(&[("__name__", "http"), ("job", job), ("status", status)]);
        store.append(&l, 0, 1.0).expect("append");
    }
    let got = store.select(&[eq("job", "x"), re("status", "5..")], 0, 10);
    let statuses: Vec<&str> = got.iter().filter_map(|s| s.labels.get("status")).collect();
    assert_eq!(statuses, ["500", "502"]);
}

#[test]
fn matcher_accepting_empty_value_selects_series_without_the_label() {
    let mut store = Store::default();
    store
        .append(&labels(&[("__name__", "a")]), 0, 1.0)
        .expect("append");
    store
        .append(&labels(&[("__name__", "a"), ("env", "prod")]), 0, 1.0)
        .expect("append");
    let got = store.select(&[eq("__name__", "a"), eq("env", "")], 0, 10);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].labels.get("env"), None);
}

#[test]
fn select_returns_only_samples_inside_the_time_range() {
    let mut store = Store::default();
    let l = labels(&[("__name__", "up")]);
    for t in 0..10 {
        store.append(&l, t * 1000, t as f64).expect("append");
    }
    let got = store.select(&[eq("__name__", "up")], 3000, 5000);
    let ts: Vec<i64> = got[0].samples.iter().map(|s| s.t).collect();
    assert_eq!(ts, [3000, 4000, 5000]);
}

#[test]
fn truncate_before_drops_old_samples_and_empty_series() {
    let mut store = Store::default();
    let old = labels(&[("__name__", "old")]);
    let live = labels(&[("__name__", "live")]);
    store.append(&old, 1000, 1.0).expect("append");
    store.append(&live, 1000, 1.0).expect("append");
    store.append(&live, 5000, 2.0).expect("append");
    store.truncate_before(2000);
    assert_eq!(store.series_count(), 1);
    assert_eq!(store.sample_count(), 1);
    assert!(store.select(&[eq("__name__", "old")], 0, 10_000).is_empty());
}

#[test]
fn series_limit_rejects_new_series_with_advice() {
    let mut store = Store::new(1);
    store
        .append(&labels(&[("__name__", "a")]), 0, 1.0)
        .expect("first");
    let err = store
        .append(&labels(&[("__name__", "b")]), 0, 1.0)
        .expect_err("over limit");
    assert_eq!(err, StoreError::SeriesLimit { limit: 1 });
    assert!(err.to_string().contains("raise"));
    store
        .append(&labels(&[("__name__", "a")]), 1000, 1.0)
        .expect("existing series still accepts samples");
}

#[test]
fn series_stay_selectable_after_many_removals_compact_the_index() {
    let mut store = Store::default();
    for i in 0..3000 {
        let l = labels(&[("__name__", "m"), ("i", &i.to_string())]);
        // Even series are old and will be dropped; odd ones stay.
        let t = if i % 2 == 0 { 0 } else { 10_000 };
        store.append(&l, t, i as f64).expect("append");
    }
    store.truncate_before(5_000);
    assert_eq!(store.series_count(), 1500);
    let got = store.select(&[eq("i", "2999")], 0, 20_000);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].samples[0].v, 2999.0);
    assert!(store.select(&[eq("i", "2")], 0, 20_000).is_empty());
    store
        .append(&labels(&[("__name__", "m"), ("i", "new")]), 20_000, 1.0)
        .expect("append after compaction");
    assert_eq!(store.select(&[eq("__name__", "m")], 0, 30_000).len(), 1501);
    // Every surviving series is still found by its labels, not added again.
    for i in (1..3000).step_by(2) {
        let l = labels(&[("__name__", "m"), ("i", &i.to_string())]);
        store
            .append(&l, 30_000, 0.0)
            .expect("append to a kept series");
    }
    assert_eq!(store.series_count(), 1501);
    let got = store.select(&[eq("i", "2999")], 0, 40_000);
    assert_eq!(got[0].samples.len(), 2);
}

#[test]
fn store_and_engine_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
    shareable::<crate::promql::Engine>();
    shareable::<crate::promql::Query>();
    shareable::<crate::promql::Value>();
}

#[test]
fn label_names_and_values_list_what_is_stored() {
    let mut store = Store::default();
    for (job, status) in [("b", "500"), ("a", "200"), ("a", "500")] {
        let l = labels(&[("__name__", "http"), ("job", job), ("status", status)]);
        store.append(&l, 0, 1.0).expect("append");
    }
    assert_eq!(store.label_names(), ["__name__", "job", "status"]);
    assert_eq!(store.label_values("job"), ["a", "b"]);
    assert!(store.label_values("missing").is_empty());
}
