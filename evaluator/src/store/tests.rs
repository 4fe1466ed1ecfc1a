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

fn series(prefix: &str, n: usize) -> Vec<Labels> {
    (0..n)
        .map(|i| labels(&[("__name__", prefix), ("i", &i.to_string())]))
        .collect()
}

fn batch(list: &[Labels], t: i64, v: f64) -> Vec<(&Labels, i64, f64)> {
    list.iter().map(|l| (l, t, v)).collect()
}

#[test]
fn a_target_over_its_share_is_refused_whole_and_a_small_one_keeps_adding() {
    let mut store = Store::new(100);
    let big = store.register_owner();
    let small = store.register_owner();
    // Share 50 each; the big target may use what the small one leaves
    // unreserved, but never the small one's share.
    let huge = series("big", 200);
    let err = store
        .append_owned(big, batch(&huge, 1000, 1.0))
        .expect_err("200 series cannot fit a store of 100");
    assert_eq!(
        err,
        StoreError::ShareExceeded {
            would_hold: 200,
            allowed: 50,
            limit: 100,
            owners: 2
        }
    );
    assert_eq!(store.series_count(), 0, "nothing of the batch is stored");
    store
        .append_owned(big, batch(&huge[..50], 1000, 1.0))
        .expect("its own share fits");
    assert_eq!(
        store
            .append_owned(big, batch(&huge[..51], 2000, 1.0))
            .expect_err("one more than the share while the other holds nothing"),
        StoreError::ShareExceeded {
            would_hold: 51,
            allowed: 50,
            limit: 100,
            owners: 2
        }
    );
    // The small target adds new series scrape after scrape, up to its share.
    let growing = series("small", 50);
    for n in [1, 10, 50] {
        store
            .append_owned(small, batch(&growing[..n], 1000 + n as i64, 1.0))
            .expect("within the small target's share");
        assert_eq!(store.owned_series_count(small), n);
    }
    assert_eq!(store.owned_series_count(big), 50);
    assert_eq!(store.active_series_count(), 100);
}

#[test]
fn a_big_target_may_use_what_the_others_leave_unreserved() {
    let mut store = Store::new(100);
    let big = store.register_owner();
    let small = store.register_owner();
    store
        .append_owned(small, batch(&series("small", 5), 1000, 1.0))
        .expect("small");
    // Share 50: the small target reserves 50 although it holds 5.
    assert_eq!(store.allowance(big), 50);
    store.unregister_owner(small);
    // Alone (the small target's 5 series now count as unowned): 95.
    assert_eq!(store.allowance(big), 95);
    store
        .append_owned(big, batch(&series("big", 95), 1000, 1.0))
        .expect("everything that is free");
}

#[test]
fn stale_series_free_their_slot_at_once_and_are_dropped_when_room_is_needed() {
    let mut store = Store::new(10);
    let a = store.register_owner();
    let first = series("a", 10);
    store
        .append_owned(a, batch(&first, 1000, 1.0))
        .expect("fills the store");
    // The next scrape exposes other series: the old ones get staleness
    // markers in the same batch and their slots serve the new ones.
    let second = series("b", 10);
    let mut next = batch(&second, 2000, 1.0);
    next.extend(batch(&first, 2000, STALE_NAN));
    let stats = store
        .append_owned(a, next)
        .expect("fits once the old go stale");
    assert_eq!(stats, BatchStats::default());
    assert_eq!(store.series_count(), 10);
    assert_eq!(store.owned_series_count(a), 10);
    assert!(store.select(&[eq("__name__", "a")], 0, 10_000).is_empty());

    // Stale series stay queryable while nothing needs their room.
    store
        .append_owned(a, batch(&second, 3000, STALE_NAN))
        .expect("all stale");
    assert_eq!(store.active_series_count(), 0);
    assert_eq!(store.series_count(), 10);
    assert_eq!(store.select(&[eq("__name__", "b")], 0, 10_000).len(), 10);
    // A rule's new series takes the slot of the longest-stale one.
    store
        .append(&labels(&[("__name__", "rule")]), 4000, 1.0)
        .expect("evicts one stale series");
    assert_eq!(store.series_count(), 10);
    assert_eq!(store.select(&[eq("__name__", "b")], 0, 10_000).len(), 9);
}

#[test]
fn staleness_markers_for_unknown_series_are_ignored_in_target_batches() {
    let mut store = Store::new(10);
    let a = store.register_owner();
    let never = series("never", 3);
    store
        .append_owned(a, batch(&never, 1000, STALE_NAN))
        .expect("ignored");
    assert_eq!(store.series_count(), 0);
}

#[test]
fn a_series_that_comes_back_is_active_again_and_counted_once() {
    let mut store = Store::new(10);
    let a = store.register_owner();
    let one = series("m", 1);
    store
        .append_owned(a, batch(&one, 1000, 1.0))
        .expect("value");
    store
        .append_owned(a, batch(&one, 2000, STALE_NAN))
        .expect("stale");
    assert_eq!(store.owned_series_count(a), 0);
    store.append_owned(a, batch(&one, 3000, 2.0)).expect("back");
    assert_eq!(store.owned_series_count(a), 1);
    assert_eq!(store.active_series_count(), 1);
    store.truncate_before(10_000);
    assert_eq!(store.active_series_count(), 0);
    assert_eq!(store.owned_series_count(a), 0);
}
